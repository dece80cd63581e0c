// File-to-file data jobs behind the `instructkit data` commands: convert, stats, inspect, dedup
// and decontaminate. Each streams its input, reports progress through a small callback
// interface, and returns a summary the CLI prints. Mixing and splitting files: mix-files.ts,
// split-files.ts.
import { rmSync } from 'node:fs';
import { DataError } from '../util/errors.ts';
import { JsonlWriter, type SkipReport } from '../util/jsonl.ts';
import { Rng } from '../util/rng.ts';
import { type ConvertOptions, converter } from './convert.ts';
import {
  buildEvalIndex,
  type DecontaminateConfigInput,
  type DecontaminationReport,
  decontaminate,
} from './decontaminate.ts';
import { type DedupConfigInput, type DedupReport, dedupRecords } from './dedup.ts';
import {
  type LocatedRecord,
  newReadReport,
  openRecordWriter,
  parseKind,
  type ReadReport,
  readLocatedRecords,
  readRecords,
} from './io.ts';
import type { RecordKind } from './records.ts';
import { type DataStats, StatsCollector } from './stats.ts';

/** Progress callbacks; the CLI passes util/progress, tests and libraries may pass nothing. */
export interface JobProgress {
  tick(n?: number): void;
  setTotal(total: number): void;
  done(): void;
  /** Called instead of done() when the job fails. */
  fail?(): void;
}

export const silentProgress: JobProgress = { tick() {}, setTotal() {}, done() {} };
const silent = silentProgress;

/**
 * Runs `body`, which writes to `writers`. On success closes them and ends the progress report;
 * on failure closes them, deletes the partial output files (a truncated file must not pass for
 * a finished one), reports the stop, and rethrows.
 */
export async function withOutputs<R>(
  writers: { path: string; close(): Promise<void> }[],
  p: JobProgress,
  body: () => Promise<R>,
): Promise<R> {
  let r: R;
  try {
    r = await body();
  } catch (e) {
    for (const w of writers) {
      await w.close().catch(() => {});
      rmSync(w.path, { force: true });
    }
    p.fail?.();
    throw e;
  }
  for (const w of writers) await w.close();
  p.done();
  return r;
}

/** Adds what `from` skipped to `into`, keeping the first reasons (as recordSkip caps them). */
export function mergeSkips(into: SkipReport, from: SkipReport, maxReasons = 20): void {
  into.skipped += from.skipped;
  for (const r of from.reasons) if (into.reasons.length < maxReasons) into.reasons.push(r);
}

/** Options shared by jobs that read one record file. */
export interface ReadJob {
  input: string;
  kind?: string;
  skipInvalid?: boolean;
  progress?: JobProgress;
}

/** Re-throws an error raised by a conversion with the record's file and line. */
function locate(e: unknown, r: LocatedRecord): never {
  if (!(e instanceof DataError)) throw e;
  const first = e.message.split('\n')[0]!;
  const bare = e.field ? first.replace(`field '${e.field}': `, '') : first;
  const row = r.line === undefined ? `row ${r.row}: ` : '';
  throw new DataError(
    `${row}${bare}`,
    { file: r.file, line: r.line, field: e.field },
    {
      hint: e.hint,
    },
  );
}

const where = (r: LocatedRecord) =>
  r.line !== undefined ? `${r.file}:${r.line}` : `${r.file} row ${r.row}`;

/** Counts the valid records of a file (streaming). */
export async function countRecords(
  path: string,
  opts: { kind?: string; skipInvalid?: boolean } = {},
): Promise<{ count: number; kind?: RecordKind; report: ReadReport }> {
  const report = newReadReport();
  let count = 0;
  for await (const _ of readRecords(path, { ...opts, report })) count++;
  return { count, kind: report.kind, report };
}

export interface ConvertSummary {
  input: string;
  output: string;
  from: RecordKind;
  to: RecordKind;
  read: number;
  written: number;
  /** Invalid or unconvertible records skipped (skipInvalid), with the first reasons. */
  skipped: number;
  reasons: string[];
}

/**
 * Converts a record file to another kind and/or format (by the output's extension).
 * Records that cannot be converted (e.g. a multi-turn chat to prompt/completion) are errors
 * naming file and line, or with skipInvalid are counted with the invalid ones.
 */
export async function convertFile(
  job: ReadJob & { output: string; to?: string; options?: ConvertOptions },
): Promise<ConvertSummary> {
  const p = job.progress ?? silent;
  const report = newReadReport();
  const to0 = job.to === undefined ? undefined : parseKind(job.to);
  let convert: ((r: unknown) => unknown[]) | undefined;
  let from: RecordKind | undefined;
  let to = to0;
  let read = 0;
  const writer = openRecordWriter(job.output, { kind: to0 });
  await withOutputs([writer], p, async () => {
    for await (const r of readLocatedRecords(job.input, {
      kind: job.kind,
      skipInvalid: job.skipInvalid,
      report,
    })) {
      if (!convert) {
        from = r.kind;
        to ??= r.kind;
        convert = converter(from, to, job.options);
      }
      read++;
      p.tick();
      let out: unknown[];
      try {
        out = convert(r.record);
      } catch (e) {
        if (!job.skipInvalid || !(e instanceof DataError)) locate(e, r);
        report.skipped++;
        if (report.reasons.length < 20)
          report.reasons.push(`${where(r)}: ${(e as Error).message.split('\n')[0]}`);
        continue;
      }
      for (const o of out) await writer.write(o);
    }
  });
  const kind =
    from ?? report.kind ?? (job.kind ? parseKind(job.kind) : undefined) ?? to ?? 'instruction';
  return {
    input: job.input,
    output: job.output,
    from: kind,
    to: to ?? kind,
    read,
    written: writer.count,
    skipped: report.skipped,
    reasons: report.reasons,
  };
}

/** Statistics of one file, plus what was skipped. */
export async function fileStats(
  job: ReadJob,
): Promise<DataStats & { file: string; skipped: number; reasons: string[] }> {
  const p = job.progress ?? silent;
  const report = newReadReport();
  let acc: StatsCollector | undefined;
  for await (const r of readLocatedRecords(job.input, {
    kind: job.kind,
    skipInvalid: job.skipInvalid,
    report,
  })) {
    acc ??= new StatsCollector(r.kind);
    acc.add(r.record);
    p.tick();
  }
  p.done();
  acc ??= new StatsCollector(report.kind ?? (job.kind ? parseKind(job.kind) : 'instruction'));
  return { file: job.input, ...acc.result(), skipped: report.skipped, reasons: report.reasons };
}

/**
 * Picks records to look at: the first `count` after `offset`, or with `sample` a seeded
 * uniform sample of `count` (reservoir sampling, Vitter's algorithm R: one pass, O(count) memory).
 */
export async function inspectFile(
  job: ReadJob & { count?: number; offset?: number; sample?: boolean; seed?: number },
): Promise<{
  records: LocatedRecord[];
  kind?: RecordKind;
  seen: number;
  skipped: number;
  reasons: string[];
}> {
  const p = job.progress ?? silent;
  const count = job.count ?? 3;
  const offset = job.offset ?? 0;
  const report = newReadReport();
  const picked: LocatedRecord[] = [];
  const rng = new Rng(job.seed ?? 0);
  let seen = 0;
  for await (const r of readLocatedRecords(job.input, {
    kind: job.kind,
    skipInvalid: job.skipInvalid,
    report,
  })) {
    p.tick();
    if (job.sample) {
      if (picked.length < count) picked.push(r);
      else {
        const j = rng.int(seen + 1);
        if (j < count) picked[j] = r;
      }
    } else if (seen >= offset) {
      picked.push(r);
      if (picked.length >= count) {
        seen++;
        break;
      }
    }
    seen++;
  }
  p.done();
  if (job.sample) picked.sort((a, b) => a.row - b.row);
  return {
    records: picked,
    kind: report.kind,
    seen,
    skipped: report.skipped,
    reasons: report.reasons,
  };
}

export interface DedupSummary extends DedupReport {
  input: string;
  output: string;
  kind: RecordKind;
  /** Invalid records skipped (skipInvalid), with the first reasons (file:line: why). */
  skipped: number;
  reasons: string[];
  report?: string;
}

/**
 * Deduplicates a file into `output`. With `reportPath`, writes one JSONL line per removed
 * record: {index, line|row, kind, duplicate_of, duplicate_of_line|row, similarity?}.
 */
export async function dedupFile(
  job: ReadJob & { output: string; config?: DedupConfigInput; reportPath?: string },
): Promise<DedupSummary> {
  const p = job.progress ?? silent;
  const readReport = newReadReport();
  const counts: DedupReport = { total: 0, kept: 0, removedExact: 0, removedNear: 0 };
  const reportOut = job.reportPath ? new JsonlWriter(job.reportPath) : undefined;
  const writer = openRecordWriter(job.output, { kind: job.kind ? parseKind(job.kind) : undefined });
  // Line (JSONL/JSON) or row (Parquet) of every record by index, 4 bytes each, so the report
  // can say where the kept original of each removed record is. This is the one cost that grows
  // with removed records too; it is small next to the Deduper's per kept record (dedup.ts).
  let locs = new Int32Array(1024);
  const locKey = (r: LocatedRecord) => (r.line !== undefined ? 'line' : 'row');
  let kind: RecordKind | undefined;
  await withOutputs(reportOut ? [writer, reportOut] : [writer], p, async () => {
    const src = readLocatedRecords(job.input, {
      kind: job.kind,
      skipInvalid: job.skipInvalid,
      report: readReport,
    });
    const first = await src.next();
    if (!first.done) {
      kind = first.value.kind;
      const all = (async function* () {
        yield first.value;
        yield* src;
      })();
      let index = 0;
      const tagged = (async function* () {
        for await (const r of all) {
          if (index >= locs.length) {
            const grown = new Int32Array(locs.length * 2);
            grown.set(locs);
            locs = grown;
          }
          locs[index++] = r.line ?? r.row;
          p.tick();
          yield r;
        }
      })();
      for await (const r of dedupRecords(tagged, kind, job.config, {
        report: counts,
        recordOf: (x) => x.record,
        onRemoved: async (d, r) => {
          const k = locKey(r);
          await reportOut?.write({
            index: d.index,
            [k]: locs[d.index],
            kind: d.kind,
            duplicate_of: d.duplicateOf,
            [`duplicate_of_${k}`]: locs[d.duplicateOf],
            ...(d.similarity !== undefined ? { similarity: Number(d.similarity.toFixed(4)) } : {}),
          });
        },
      }))
        await writer.write(r.record);
    }
  });
  return {
    input: job.input,
    output: job.output,
    kind: kind ?? readReport.kind ?? 'instruction',
    ...counts,
    skipped: readReport.skipped,
    reasons: readReport.reasons,
    report: job.reportPath,
  };
}

export interface DecontaminateSummary extends DecontaminationReport {
  input: string;
  output: string;
  kind: RecordKind;
  evalSets: { name: string; path: string; records: number; tooShort: number; skipped: number }[];
  evalNgrams: number;
  /** Invalid records skipped (skipInvalid) in the input and the eval sets, with the first reasons. */
  skipped: number;
  reasons: string[];
  report?: string;
}

/**
 * Removes training records sharing an n-gram with any eval file. With `reportPath`, writes one
 * JSONL line per removed record: {index, line|row, eval_set, eval_index, ngram, eval_sets, matches}.
 */
export async function decontaminateFile(
  job: ReadJob & {
    output: string;
    evalSets: { name: string; path: string; kind?: string }[];
    config?: DecontaminateConfigInput;
    reportPath?: string;
  },
): Promise<DecontaminateSummary> {
  const p = job.progress ?? silent;
  const sets = [];
  const evalReports: ReadReport[] = [];
  for (const e of job.evalSets) {
    const rep = newReadReport();
    evalReports.push(rep);
    const records = readRecords(e.path, {
      kind: e.kind,
      skipInvalid: job.skipInvalid,
      report: rep,
    });
    const first = await records.next();
    const kind = rep.kind ?? 'instruction';
    sets.push({
      name: e.name,
      kind,
      records: (async function* () {
        if (!first.done) yield first.value;
        yield* records;
      })(),
    });
  }
  const index = await buildEvalIndex(sets, job.config);
  const readReport = newReadReport();
  const counts: DecontaminationReport = { total: 0, kept: 0, removed: 0, removedBySet: {} };
  const reportOut = job.reportPath ? new JsonlWriter(job.reportPath) : undefined;
  const writer = openRecordWriter(job.output, { kind: job.kind ? parseKind(job.kind) : undefined });
  let kind: RecordKind | undefined;
  await withOutputs(reportOut ? [writer, reportOut] : [writer], p, async () => {
    const src = readLocatedRecords(job.input, {
      kind: job.kind,
      skipInvalid: job.skipInvalid,
      report: readReport,
    });
    const first = await src.next();
    if (!first.done) {
      kind = first.value.kind;
      const all = (async function* () {
        p.tick();
        yield first.value;
        for await (const r of src) {
          p.tick();
          yield r;
        }
      })();
      for await (const r of decontaminate(all, kind, index, {
        report: counts,
        recordOf: (x) => x.record,
        onRemoved: async (e, r) => {
          await reportOut?.write({
            index: e.index,
            ...(r.line !== undefined ? { line: r.line } : { row: r.row }),
            eval_set: e.evalSet,
            eval_index: e.evalIndex,
            ngram: e.ngram,
            eval_sets: e.evalSets,
            matches: e.matches,
          });
        },
      }))
        await writer.write(r.record);
    }
  });
  const skips: SkipReport = { skipped: 0, reasons: [] };
  for (const r of [readReport, ...evalReports]) mergeSkips(skips, r);
  return {
    input: job.input,
    output: job.output,
    kind: kind ?? readReport.kind ?? 'instruction',
    ...counts,
    evalSets: job.evalSets.map((e, i) => ({
      name: e.name,
      path: e.path,
      records: index.evalRecords[i]!,
      tooShort: index.tooShort[i]!,
      skipped: evalReports[i]!.skipped,
    })),
    evalNgrams: index.size,
    skipped: skips.skipped,
    reasons: skips.reasons,
    report: job.reportPath,
  };
}
