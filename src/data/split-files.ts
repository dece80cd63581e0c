// Splitting a file of task examples into OPT-IML's evaluation levels on disk: builds the task
// -> category table (given, or from the examples' category fields in a first pass), plans the
// split, streams examples into one file per split, writes the plan, and runs the leak check
// over the written files. The decisions themselves are split.ts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, DataError } from '../util/errors.ts';
import { parseConfig } from './config.ts';
import {
  type FileFormat,
  formatOf,
  newReadReport,
  openRecordWriter,
  type RecordWriter,
  readLocatedRecords,
  readRecords,
} from './io.ts';
import { type JobProgress, withOutputs } from './jobs.ts';
import type { TaskExample } from './records.ts';
import {
  checkLeaks,
  type LeakReport,
  planSplit,
  SPLIT_NAMES,
  SplitConfig,
  type SplitName,
  type SplitPlan,
  splitter,
} from './split.ts';

/** A split config as a YAML file or flags give it: SplitConfig plus an optional table path. */
export const SplitFilesConfig = SplitConfig.extend({
  /** task -> category table (YAML/JSON/CSV/TSV/JSONL); default: the examples' category fields. */
  table: z.string().optional(),
});

export interface SplitFilesSummary {
  input: string;
  outDir: string;
  plan: SplitPlan;
  counts: Record<SplitName, number>;
  files: Record<SplitName, string>;
  planFile: string;
  leaks: LeakReport;
  /** Invalid records skipped (skipInvalid), with the first reasons (file:line: why). */
  skipped: number;
  reasons: string[];
}

const EXT: Record<FileFormat, string> = { jsonl: 'jsonl', json: 'json', parquet: 'parquet' };

/** task -> category from the examples themselves; every example must name its category. */
async function tableFromExamples(
  input: string,
  skipInvalid: boolean,
  progress: JobProgress,
): Promise<Map<string, string>> {
  const table = new Map<string, string>();
  // The split pass re-reads the file and reports the same skips, so this report is dropped.
  const report = newReadReport();
  for await (const r of readLocatedRecords<TaskExample>(input, {
    kind: 'task',
    skipInvalid,
    report,
  })) {
    const { task, category } = r.record;
    if (category === undefined)
      throw new DataError(
        `example of task '${task}' has no category`,
        { file: input, line: r.line, field: 'category' },
        {
          hint: 'pass a task -> category table with --table',
        },
      );
    const prev = table.get(task);
    if (prev !== undefined && prev !== category)
      throw new DataError(`task '${task}' has category '${category}' here but '${prev}' earlier`, {
        file: input,
        line: r.line,
        field: 'category',
      });
    table.set(task, category);
    progress.tick();
  }
  return table;
}

/**
 * Splits `input` (task examples) into `outDir`/{train,fully_held_out,partially_supervised,
 * fully_supervised}.<ext> plus split_plan.json, then proves the boundary with checkLeaks over
 * the written train file (against every held-out file's instances). Throws DataError when a
 * leak is found, after writing the report into the plan file.
 */
export async function splitFile(job: {
  input: string;
  outDir: string;
  config: z.input<typeof SplitConfig>;
  table?: Map<string, string>;
  format?: FileFormat;
  skipInvalid?: boolean;
  progress?: { table?: JobProgress; split?: JobProgress; check?: JobProgress };
}): Promise<SplitFilesSummary> {
  const silent: JobProgress = { tick() {}, setTotal() {}, done() {} };
  const config = parseConfig(SplitConfig, job.config);
  const format = job.format ?? formatOf(job.input);
  const skipInvalid = job.skipInvalid ?? false;
  let table = job.table;
  if (!table) {
    const pt = job.progress?.table ?? silent;
    table = await tableFromExamples(job.input, skipInvalid, pt);
    pt.done();
  }
  if (table.size === 0) throw new ConfigError('the task table is empty', { field: 'table' });
  const plan = planSplit(table, config);
  const assign = splitter(plan);
  mkdirSync(job.outDir, { recursive: true });
  const files = Object.fromEntries(
    SPLIT_NAMES.map((s) => [s, join(job.outDir, `${s}.${EXT[format]}`)]),
  ) as Record<SplitName, string>;
  const writers = Object.fromEntries(
    SPLIT_NAMES.map((s) => [s, openRecordWriter(files[s], { kind: 'task', format })]),
  ) as Record<SplitName, RecordWriter>;
  const counts = Object.fromEntries(SPLIT_NAMES.map((s) => [s, 0])) as Record<SplitName, number>;
  const report = newReadReport();
  const ps = job.progress?.split ?? silent;
  await withOutputs(Object.values(writers), ps, async () => {
    for await (const r of readLocatedRecords<TaskExample>(job.input, {
      kind: 'task',
      skipInvalid,
      report,
    })) {
      let s: SplitName;
      try {
        s = assign(r.record);
      } catch (e) {
        if (e instanceof DataError)
          throw new DataError(
            e.message.split('\n')[0]!.replace("field 'task': ", ''),
            { file: job.input, line: r.line, field: 'task' },
            { hint: e.hint },
          );
        throw e;
      }
      counts[s]++;
      await writers[s].write(r.record);
      ps.tick();
    }
  });
  const pc = job.progress?.check ?? silent;
  const held = (async function* () {
    for (const s of SPLIT_NAMES)
      if (s !== 'train') yield* readRecords<TaskExample>(files[s], { kind: 'task' });
  })();
  const train = (async function* () {
    for await (const r of readRecords<TaskExample>(files.train, { kind: 'task' })) {
      pc.tick();
      yield r;
    }
  })();
  const leaks = await checkLeaks(plan, train, { evalInstances: held });
  pc.done();
  const planFile = join(job.outDir, 'split_plan.json');
  writeFileSync(
    planFile,
    `${JSON.stringify({ input: job.input, config, plan, counts, leak_check: { ok: leaks.ok, checked_train: leaks.checkedTrain, leaks: leaks.leaks } }, null, 2)}\n`,
  );
  if (!leaks.ok)
    throw new DataError(
      `leak check failed: ${leaks.leaks.length} leak(s), first: ${leaks.leaks[0]!.detail}`,
      { file: planFile },
      {
        hint: 'the leaks are listed in the plan file',
      },
    );
  return {
    input: job.input,
    outDir: job.outDir,
    plan,
    counts,
    files,
    planFile,
    leaks,
    skipped: report.skipped,
    reasons: report.reasons,
  };
}
