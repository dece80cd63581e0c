// Mixing record files: resolves sources (one file per task, or one file of task examples split
// by its `task` field into per-task spill files), counts their sizes when not given, and
// streams the mixture into an output file. The sampling itself is mixture.ts.
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, extname, join } from 'node:path';
import { z } from 'zod';
import { ConfigError } from '../util/errors.ts';
import type { SkipReport } from '../util/jsonl.ts';
import { parseConfig } from './config.ts';
import {
  detectFileKind,
  newReadReport,
  openRecordWriter,
  parseKind,
  readLocatedRecords,
  readRecords,
} from './io.ts';
import { countRecords, type JobProgress, mergeSkips, withOutputs } from './jobs.ts';
import { MixtureConfig, type MixtureSource, type MixtureSummary, mix } from './mixture.ts';
import type { RecordKind } from './records.ts';

/** One source file of a mixture config. */
export const MixSourceSpec = z.strictObject({
  /** Default: the file name without extension. */
  name: z.string().optional(),
  path: z.string(),
  /** Records in the file; counted with one pass when absent. */
  size: z.number().int().nonnegative().optional(),
  /** Rate for the explicit strategy. */
  rate: z.number().nonnegative().optional(),
});

/** A mixture config as a YAML file or flags give it: MixtureConfig plus the sources. */
export const MixFilesConfig = MixtureConfig.extend({
  sources: z.array(MixSourceSpec).min(1),
  /** Treat each source as task examples and mix by their `task` field instead of by file. */
  byTask: z.boolean().default(false),
  /** Record kind of the sources (default: detected). */
  kind: z.string().optional(),
});
export type MixFilesConfig = z.infer<typeof MixFilesConfig>;

export interface MixFilesSummary extends MixtureSummary {
  output: string;
  written: number;
  kind: RecordKind;
  /**
   * Invalid records skipped (skipInvalid), each counted once: in the counting pass, or for a
   * source whose size the config gives, in its first pass of the mixture. First reasons listed.
   */
  skipped: number;
  reasons: string[];
}

interface ResolvedSource {
  name: string;
  path: string;
  size: number;
  rate?: number;
}

/** Streams task examples into one JSONL spill file per task, with bounded buffers. */
async function spillByTask(
  files: string[],
  dir: string,
  skipInvalid: boolean,
  progress: JobProgress,
  skips: SkipReport,
): Promise<ResolvedSource[]> {
  const buffers = new Map<string, string[]>();
  const sizes = new Map<string, number>();
  const paths = new Map<string, string>();
  let buffered = 0;
  const flush = () => {
    for (const [task, lines] of buffers) {
      if (lines.length === 0) continue;
      appendFileSync(paths.get(task)!, lines.join(''));
      lines.length = 0;
    }
    buffered = 0;
  };
  for (const f of files) {
    for await (const r of readLocatedRecords<{ task: string }>(f, {
      kind: 'task',
      skipInvalid,
      report: skips,
    })) {
      const task = r.record.task;
      if (!paths.has(task)) {
        paths.set(task, join(dir, `${paths.size}.jsonl`));
        buffers.set(task, []);
      }
      const line = `${JSON.stringify(r.record)}\n`;
      buffers.get(task)!.push(line);
      sizes.set(task, (sizes.get(task) ?? 0) + 1);
      buffered += line.length;
      if (buffered > 16 << 20) flush();
      progress.tick();
    }
  }
  flush();
  return [...paths].map(([name, path]) => ({ name, path, size: sizes.get(name)! }));
}

/**
 * Mixes record files into `output` (format by extension). Paths in the config are used as
 * given (the CLI resolves them against the config file's folder).
 */
export async function mixFiles(job: {
  config: z.input<typeof MixFilesConfig>;
  output: string;
  skipInvalid?: boolean;
  progress?: { count?: JobProgress; mix?: JobProgress };
}): Promise<MixFilesSummary> {
  const c = parseConfig(MixFilesConfig, job.config);
  const silent: JobProgress = { tick() {}, setTotal() {}, done() {} };
  const pc = job.progress?.count ?? silent;
  const pm = job.progress?.mix ?? silent;
  if (c.onExhausted === 'repeat' && c.total === undefined)
    throw new ConfigError("onExhausted 'repeat' never runs out: set total", { field: 'total' });
  let tmp: string | undefined;
  const skips = newReadReport();
  // Sources whose skips are collected while mixing (their size was given, so no counting pass).
  const countWhileMixing = new Set<string>();
  try {
    let resolved: ResolvedSource[];
    let kind: RecordKind;
    if (c.byTask) {
      tmp = mkdtempSync(join(tmpdir(), 'ik-mix-'));
      resolved = await spillByTask(
        c.sources.map((x) => x.path),
        tmp,
        job.skipInvalid ?? false,
        pc,
        skips,
      );
      pc.done();
      kind = 'task';
    } else {
      resolved = [];
      let k: RecordKind | undefined = c.kind ? parseKind(c.kind) : undefined;
      for (const s of c.sources) {
        const name = s.name ?? basename(s.path, extname(s.path));
        const skipInvalid = job.skipInvalid;
        // Its skips are counted again by the counting or mixing pass, so they are not kept.
        const fileKind = c.kind
          ? parseKind(c.kind)
          : await detectFileKind(s.path, { skipInvalid, report: newReadReport() });
        if (k && fileKind !== k)
          throw new ConfigError(`source '${name}' holds ${fileKind} records, the others ${k}`, {
            field: 'sources',
          });
        k = fileKind;
        let size = s.size;
        if (size === undefined) {
          const counted = await countRecords(s.path, { kind: k, skipInvalid });
          size = counted.count;
          mergeSkips(skips, counted.report);
          pc.tick(counted.count);
        } else countWhileMixing.add(name);
        resolved.push({ name, path: s.path, size, rate: s.rate });
      }
      pc.done();
      if (!k) throw new ConfigError('the mixture sources hold no records', { field: 'sources' });
      kind = k;
    }
    const sources: MixtureSource<unknown>[] = resolved.map((s) => ({
      name: s.name,
      size: s.size,
      rate: s.rate,
      open: ({ epoch }) => {
        // Each skip counts once: in the counting pass, or in the first pass of a source whose
        // size was given. Later epochs re-read the same lines.
        const report = epoch === 0 && countWhileMixing.has(s.name) ? skips : newReadReport();
        return readRecords(s.path, { kind, skipInvalid: job.skipInvalid, report });
      },
    }));
    const { sources: _s, byTask: _b, kind: _k, ...mixCfg } = c;
    const m = mix(sources, mixCfg);
    pm.setTotal(c.total ?? resolved.reduce((a, s) => a + s.size, 0));
    const writer = openRecordWriter(job.output, { kind, validate: false });
    await withOutputs([writer], pm, async () => {
      for await (const r of m) {
        await writer.write(r);
        pm.tick();
      }
    });
    return {
      ...m.summary,
      output: job.output,
      written: writer.count,
      kind,
      skipped: skips.skipped,
      reasons: skips.reasons,
    };
  } finally {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  }
}
