// Rendering templates into a file of TaskExample records (`instructkit data render`): the
// built-in collection, a Super-NaturalInstructions task, or a PromptSource templates.yaml over
// JSONL dataset rows. Examples are written as they are rendered, so memory holds one task's
// examples (built-in), one encoded instance (Super-NI) or one row (PromptSource).
import { ConfigError, DataError } from '../util/errors.ts';
import { readJsonl } from '../util/jsonl.ts';
import { PyRandom } from '../util/pyrandom.ts';
import { builtinCollection, renderTask } from './collection/index.ts';
import { newReadReport, openRecordWriter } from './io.ts';
import { type JobProgress, silentProgress, withOutputs } from './jobs.ts';
import type { TaskExample } from './records.ts';
import type { Variant } from './templates/flan.ts';
import {
  loadNatInstTask,
  type NatInstEncoding,
  natInstExampleStream,
} from './templates/natinst.ts';
import { applyTemplate, loadPromptSourceFile } from './templates/promptsource.ts';

export const RENDER_VARIANTS: readonly Variant[] = [
  'zero_shot',
  'few_shot',
  'options',
  'cot',
  'inversion',
];

export type RenderSource =
  | {
      builtin: {
        seed?: number;
        variants?: readonly string[];
        /** Only these categories (default all); an unknown one is an error. */
        categories?: readonly string[];
      };
    }
  | { natinst: { path: string; seed?: number; encoding?: NatInstEncoding } }
  | {
      promptsource: {
        /** A PromptSource templates.yaml. */
        path: string;
        /** JSONL dataset rows, one object per line. */
        records: string;
        /** Row i renders with PyRandom(seed + i), for `choice` and `random`. */
        seed?: number;
      };
    };

export interface RenderSummary {
  output: string;
  written: number;
  /** Examples per task, in first-seen order. */
  byTask: Record<string, number>;
  /** PromptSource: rows read. */
  rows?: number;
  /** PromptSource: template applications that the template's own condition excluded. */
  excluded: number;
  /** Invalid rows or failed template applications skipped (skipInvalid), first reasons. */
  skipped: number;
  reasons: string[];
}

function builtinExamples(
  o: {
    seed?: number;
    variants?: readonly string[];
    categories?: readonly string[];
  },
  p: JobProgress,
): Iterable<TaskExample> {
  const seed = o.seed ?? 0;
  const variants = o.variants ?? ['zero_shot'];
  for (const v of variants)
    if (!(RENDER_VARIANTS as readonly string[]).includes(v))
      throw new ConfigError(
        `unknown variant '${v}'`,
        { field: 'variants' },
        { hint: `valid variants: ${RENDER_VARIANTS.join(', ')}` },
      );
  const c = builtinCollection({ seed });
  const known = new Set(c.tasks.map((t) => t.category));
  for (const cat of o.categories ?? [])
    if (!known.has(cat))
      throw new ConfigError(
        `unknown category '${cat}'`,
        { field: 'categories' },
        { hint: `categories: ${[...known].join(', ')}` },
      );
  const tasks = c.tasks.filter((t) => !o.categories || o.categories.includes(t.category));
  p.setTotal(tasks.reduce((n, t) => n + t.facts.length, 0) * variants.length);
  return (function* () {
    for (const t of tasks)
      for (const v of variants) yield* renderTask(c, t, { variant: v as Variant, seed });
  })();
}

/** Renders `source` into `output` (.jsonl, .json or .parquet), reporting progress per example. */
export async function renderFile(job: {
  source: RenderSource;
  output: string;
  skipInvalid?: boolean;
  progress?: JobProgress;
}): Promise<RenderSummary> {
  const p = job.progress ?? silentProgress;
  const s = job.source;
  const byTask = new Map<string, number>();
  const skips = newReadReport();
  const skip = (reason: string, err: DataError) => {
    if (!job.skipInvalid) throw err;
    skips.skipped++;
    if (skips.reasons.length < 20) skips.reasons.push(reason);
  };
  let excluded = 0;
  let rows: number | undefined;
  // Sources are loaded and checked here, before the output file is touched.
  let examples: Iterable<TaskExample> | AsyncIterable<TaskExample>;
  if ('builtin' in s) examples = builtinExamples(s.builtin, p);
  else if ('natinst' in s) {
    const task = loadNatInstTask(s.natinst.path);
    p.setTotal(task.instances.length);
    examples = natInstExampleStream(task, { ...s.natinst.encoding, seed: s.natinst.seed });
  } else {
    const { path, records, seed = 0 } = s.promptsource;
    const file = loadPromptSourceFile(path);
    rows = 0;
    examples = (async function* () {
      for await (const { value, line } of readJsonl(records, {
        skipInvalid: job.skipInvalid,
        report: skips,
      })) {
        const row = rows!++;
        p.tick();
        if (value === null || typeof value !== 'object' || Array.isArray(value)) {
          const msg = `a dataset row must be a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}`;
          skip(`${records}:${line}: ${msg}`, new DataError(msg, { file: records, line }));
          continue;
        }
        for (const t of file.templates) {
          let r: ReturnType<typeof applyTemplate>;
          try {
            r = applyTemplate(t, value as Record<string, unknown>, {
              rng: new PyRandom(seed + row),
            });
          } catch (e) {
            if (!(e instanceof DataError)) throw e;
            const msg = e.message.split('\n')[0]!;
            skip(
              `${records}:${line}: ${msg}`,
              new DataError(
                msg,
                { file: records, line },
                { hint: 'fix the row, or pass --skip-invalid to count and skip it' },
              ),
            );
            continue;
          }
          if (r.kind === 'skipped') {
            excluded++;
            continue;
          }
          yield {
            task: file.dataset,
            template: t.name,
            input: r.input,
            target: r.target,
            references: r.targets,
            ...(r.answerChoices ? { choices: r.answerChoices } : {}),
          };
        }
      }
    })();
  }
  const writer = openRecordWriter(job.output, { kind: 'task' });
  const perRow = 'promptsource' in s;
  await withOutputs([writer], p, async () => {
    for await (const e of examples) {
      await writer.write(e);
      byTask.set(e.task, (byTask.get(e.task) ?? 0) + 1);
      if (!perRow) p.tick();
    }
  });
  return {
    output: job.output,
    written: writer.count,
    byTask: Object.fromEntries(byTask),
    ...(rows !== undefined ? { rows } : {}),
    excluded,
    skipped: skips.skipped,
    reasons: skips.reasons,
  };
}
