// Evaluation tasks built from the data layer instead of a hand-written YAML: a Super-NI task
// file in the Tk-Instruct encoding (generation, exact match + ROUGE-L over every reference, as
// the official script scores), and a task of a FLAN-style template set rendered over field
// records in one variant. Task YAML files reach these through `dataset: {super_ni: ...}` and
// `dataset: {template_set: ...}` (see loadTaskFile).
import type { z } from 'zod';
import {
  type FewShotConfig,
  fillPattern,
  loadTemplateSet,
  renderVariant,
  type TaskTemplateSet,
  type TemplateSet,
} from '../data/templates/flan.ts';
import {
  encodeNatInst,
  loadNatInstTask,
  type NatInstEncoding,
  type NatInstTask,
} from '../data/templates/natinst.ts';
import { ConfigError, DataError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { type Doc, type MetricName, makeTask, type Task, type TaskConfig } from './task.ts';

type ConfigInput = z.input<typeof TaskConfig>;

export interface SuperNiTaskOptions extends Omit<NatInstEncoding, 'length' | 'maxLength'> {
  /** Evaluate at most this many instances. */
  limit?: number;
  /** Stop strings; default none, so generation ends at EOS as Tk-Instruct's does. */
  until?: string[];
  /** @default 128 (Tk-Instruct's max_target_length) */
  max_gen_toks?: number;
}

/**
 * A Super-NI task as a generation task: each instance's input in the Tk-Instruct encoding
 * (definition + positive examples by default), every reference output kept, scored with
 * exact_match and rougeL (max over references).
 */
export function superNiTask(file: string | NatInstTask, opts: SuperNiTaskOptions = {}): Task {
  const t = typeof file === 'string' ? loadNatInstTask(file) : file;
  if (t.instances.length === 0)
    throw new DataError(`Super-NI task '${t.name}' has no Instances to evaluate`, {
      file: typeof file === 'string' ? file : undefined,
      field: 'Instances',
    });
  const docs: Doc[] = t.instances.map((inst) => ({
    id: inst.id,
    input: inst.input,
    references: inst.output,
    source: encodeNatInst(t, inst.input, opts),
  }));
  const task = makeTask(
    {
      task: t.name,
      ...(t.categories[0] ? { category: t.categories[0] } : {}),
      doc_to_text: 'source',
      doc_to_target: 'references',
      output_type: 'generate_until',
      generation_kwargs: { until: opts.until ?? [], max_gen_toks: opts.max_gen_toks ?? 128 },
      metric_list: [{ metric: 'exact_match' }, { metric: 'rougeL' }],
      ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
    },
    docs,
  );
  if (typeof file === 'string') task.file = file;
  return task;
}

export interface TemplateSetTaskOptions {
  /** @default 'zero_shot' */
  variant?: 'zero_shot' | 'few_shot' | 'options' | 'cot' | 'inversion';
  /**
   * Which template each document gets: a fixed index, FLAN's round robin (document i gets
   * template i mod n), or a seeded random draw. @default 'round_robin'
   */
  template?: number | 'round_robin' | 'random';
  /** Seed of random templates, few-shot exemplars and random option styles. @default 0 */
  seed?: number;
  /** Few-shot: exemplars per document (other documents of the task) and layout. */
  fewShot?: FewShotConfig;
  /** Options: the list field holding the choices, and the marker style. */
  options?: { field: string; style: 'deterministic' | 'random' };
  /**
   * Options variant only: score by the log-likelihood of each choice (multiple_choice, acc /
   * acc_norm) instead of generating. @default false
   */
  score_choices?: boolean;
  limit?: number;
  /** @default ['\n'] */
  until?: string[];
  /** @default 32 */
  max_gen_toks?: number;
  /** File the template set came from, for error messages. */
  file?: string;
}

function pickTask(set: TemplateSet | TaskTemplateSet, name: string | undefined): TaskTemplateSet {
  if (!('tasks' in set)) return set;
  if (name === undefined) {
    if (set.tasks.size === 1) return [...set.tasks.values()][0]!;
    throw new ConfigError(`the template set has ${set.tasks.size} tasks; name one`, {
      file: set.file,
      field: 'name',
    });
  }
  const t = set.tasks.get(name);
  if (!t)
    throw new ConfigError(
      `no task '${name}' in the template set (it has ${[...set.tasks.keys()].join(', ')})`,
      { file: set.file, field: 'name' },
    );
  return t;
}

/**
 * A task of a FLAN-style template set rendered over field records (e.g. {x, y, rationale}):
 * generation scored by exact match against the rendered target. Chain-of-thought documents are
 * scored on the answer alone (the zero-shot target of the same template, extracted BBH-style
 * from "... the answer is X."); inversions by exact match and ROUGE-L.
 */
export function templateSetTask(
  set: TemplateSet | TaskTemplateSet | string,
  name: string | undefined,
  records: readonly Doc[],
  opts: TemplateSetTaskOptions = {},
): Task {
  const file =
    typeof set === 'string' ? set : (opts.file ?? ('file' in set ? set.file : undefined));
  const ts = pickTask(typeof set === 'string' ? loadTemplateSet(set) : set, name);
  const variant = opts.variant ?? 'zero_shot';
  const n =
    variant === 'cot'
      ? ts.cot.length
      : variant === 'inversion'
        ? ts.inversions.length
        : ts.patterns.length;
  if (n === 0)
    throw new ConfigError(`task '${ts.name}' has no ${variant} patterns`, {
      file,
      field: 'variant',
    });
  if (records.length === 0)
    throw new DataError(`no documents for template task '${ts.name}'`, { file, field: 'docs' });
  const seed = opts.seed ?? 0;
  const choose = opts.template ?? 'round_robin';
  if (typeof choose === 'number' && !(Number.isInteger(choose) && choose >= 0 && choose < n))
    throw new ConfigError(`template ${choose} is out of range: '${ts.name}' has ${n}`, {
      file,
      field: 'template',
    });
  const rng = new Rng(`${seed}/${ts.name}/${variant}`);
  const shots = opts.fewShot?.k ?? 2;
  if (variant === 'few_shot' && records.length <= shots)
    throw new ConfigError(
      `few_shot needs more than ${shots} documents for '${ts.name}', got ${records.length}`,
      { file, field: 'fewShot.k' },
    );
  const docs: Doc[] = records.map((fields, i) => {
    const template =
      typeof choose === 'number' ? choose : choose === 'round_robin' ? i % n : undefined;
    const exemplars =
      variant === 'few_shot'
        ? rng.sample(
            records.filter((_, j) => j !== i),
            shots,
          )
        : undefined;
    const r = renderVariant(ts, fields, {
      variant,
      template,
      rng,
      exemplars,
      fewShot: opts.fewShot ?? { k: shots },
      options: opts.options ?? { field: 'options', style: 'deterministic' },
      file,
    });
    let answer = r.target;
    if (variant === 'cot') {
      // The answer of a CoT target is the zero-shot target of the same template index.
      const ti = Number(r.template.split(':').pop());
      answer = fillPattern(ts.patterns[ti % ts.patterns.length]!.target, fields, { file });
    }
    return {
      input: r.input,
      target: answer,
      template: r.template,
      ...(r.choices ? { choices: r.choices } : {}),
    };
  });
  const metrics: MetricName[] =
    variant === 'inversion' ? ['exact_match', 'rougeL'] : ['exact_match'];
  const base: Omit<ConfigInput, 'metric_list'> = {
    task: `${ts.name}_${variant}`,
    category: ts.category,
    doc_to_text: 'input',
    doc_to_target: 'target',
    ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
  };
  if (opts.score_choices) {
    if (variant !== 'options')
      throw new ConfigError('score_choices applies to the options variant only', {
        file,
        field: 'score_choices',
      });
    docs.forEach((d, i) => {
      if (!(d.choices as string[]).includes(d.target as string))
        throw new DataError(
          `document ${i}: the target '${d.target}' is not one of its choices (random option markers rewrite it; use style deterministic)`,
          { file, field: 'options' },
        );
    });
    return makeTask(
      {
        ...base,
        doc_to_choice: 'choices',
        output_type: 'multiple_choice',
        metric_list: [{ metric: 'acc' }, { metric: 'acc_norm' }],
      },
      docs,
    );
  }
  return makeTask(
    {
      ...base,
      output_type: 'generate_until',
      generation_kwargs: { until: opts.until ?? ['\n'], max_gen_toks: opts.max_gen_toks ?? 32 },
      metric_list: metrics.map((metric) => ({ metric })),
      ...(variant === 'cot' ? { answer_extraction: 'bbh' as const } : {}),
    },
    docs,
  );
}
