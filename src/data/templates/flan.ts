// FLAN-style template sets in instructkit's own YAML format, and their rendering variants:
// zero-shot, few-shot, options (deterministic or randomised markers), chain-of-thought and
// input inversion, plus FLAN's "0to10" round-robin assignment of templates to examples.
//
// Format (validated; unknown keys are errors naming the file and key):
//   generic:                  # patterns every task with a `relation` gets, before its own
//     - input: "What is the {relation} of {x}?"
//       target: "{y}"
//   generic_inversions: [...] # input-inversion patterns for every task with a `relation`
//   generic_cot: [...]        # chain-of-thought patterns for every task
//   tasks:
//     capital_of:
//       category: geography
//       relation: capital            # optional; fills {relation} in generic patterns
//       patterns:                    # >= 1; with the generic ones a task needs >= 5
//         - { input: "Which city is the capital of {x}?", target: "{y}" }
//       cot:                         # chain of thought: target states a rationale first
//         - { input: "{input} Think it through.", target: "{rationale} So the answer is {y}." }
//       inversions:                  # input inversion: produce the question from the answer
//         - { input: "Ask a question whose answer is {y}.", target: "What is the capital of {x}?" }
// Placeholders are {field} names of the example; {{ and }} are literal braces. In cot
// patterns, {input} is the rendered zero-shot input of the same template index.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DataError } from '../../util/errors.ts';
import type { Rng } from '../../util/rng.ts';
import { describeZodError } from '../config.ts';
import { parseYamlDocument } from '../yaml.ts';
import { formatOptions, formatOptionsRandom } from './options.ts';

const Pattern = z.strictObject({ input: z.string().min(1), target: z.string() });
export type Pattern = z.infer<typeof Pattern>;

const TaskTemplates = z.strictObject({
  category: z.string().min(1),
  relation: z.string().optional(),
  patterns: z.array(Pattern).default([]),
  cot: z.array(Pattern).default([]),
  inversions: z.array(Pattern).default([]),
});

export const TemplateSetSchema = z.strictObject({
  generic: z.array(Pattern).default([]),
  generic_inversions: z.array(Pattern).default([]),
  generic_cot: z.array(Pattern).default([]),
  tasks: z.record(z.string(), TaskTemplates),
});

export interface TaskTemplateSet {
  name: string;
  category: string;
  relation?: string;
  /** Zero-shot patterns: the task's own, then the generic ones filled with its relation. */
  patterns: Pattern[];
  cot: Pattern[];
  inversions: Pattern[];
}

export interface TemplateSet {
  file?: string;
  tasks: Map<string, TaskTemplateSet>;
  /** The generic patterns, unfilled, for tasks made in code (see relationTaskTemplates). */
  generic: { patterns: Pattern[]; cot: Pattern[]; inversions: Pattern[] };
}

/** Fills a pattern's {relation}. */
const withRelation = (p: Pattern, relation: string): Pattern => ({
  input: p.input.split('{relation}').join(relation),
  target: p.target.split('{relation}').join(relation),
});

/** The template set of a task that has only the generic patterns, filled with `relation`. */
export function relationTaskTemplates(
  set: TemplateSet,
  name: string,
  category: string,
  relation: string,
): TaskTemplateSet {
  const fill = (p: Pattern) => withRelation(p, relation);
  return {
    name,
    category,
    relation,
    patterns: set.generic.patterns.map(fill),
    cot: set.generic.cot.map(fill),
    inversions: set.generic.inversions.map(fill),
  };
}

/** Parses a template-set YAML text; errors name the file, line and field. */
export function parseTemplateSet(text: string, file?: string, minPatterns = 1): TemplateSet {
  // prettyErrors off: yaml's pretty errors cost quadratic time on a document with many errors
  // (an 80 KB one took 39 s; bench/fuzz); the line is computed from the first error's offset.
  const doc = parseYamlDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new DataError(doc.errors[0]!.message.split('\n')[0]!, {
      file,
      line: text.slice(0, doc.errors[0]!.pos[0]).split('\n').length,
    });
  }
  let value: unknown;
  try {
    value = doc.toJS();
  } catch (e) {
    // yaml refuses alias expansion past its limit ("billion laughs") with a ReferenceError.
    throw new DataError(`invalid YAML: ${(e as Error).message}`, { file });
  }
  const r = TemplateSetSchema.safeParse(value);
  if (!r.success) {
    const { path, field, message } = describeZodError(r.error);
    const node = doc.getIn(path, true) as { range?: [number, number, number] } | undefined;
    const line = node?.range ? text.slice(0, node.range[0]).split('\n').length : undefined;
    throw new DataError(message, { file, line, field });
  }
  const tasks = new Map<string, TaskTemplateSet>();
  for (const [name, t] of Object.entries(r.data.tasks)) {
    const fill = (p: Pattern): Pattern => withRelation(p, t.relation ?? '');
    const generic = t.relation ? r.data.generic.map(fill) : [];
    const inversions = [
      ...t.inversions,
      ...(t.relation ? r.data.generic_inversions.map(fill) : []),
    ];
    const patterns = [...t.patterns, ...generic];
    if (patterns.length < minPatterns) {
      throw new DataError(
        `task '${name}' has ${patterns.length} patterns, needs at least ${minPatterns}`,
        { file, field: `tasks.${name}.patterns` },
      );
    }
    const cot = [...t.cot, ...r.data.generic_cot.map(fill)];
    tasks.set(name, {
      name,
      category: t.category,
      relation: t.relation,
      patterns,
      cot,
      inversions,
    });
  }
  return {
    file,
    tasks,
    generic: {
      patterns: r.data.generic,
      cot: r.data.generic_cot,
      inversions: r.data.generic_inversions,
    },
  };
}

export function loadTemplateSet(path: string, minPatterns = 1): TemplateSet {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DataError(`cannot read: ${(e as Error).message}`, { file: path });
  }
  return parseTemplateSet(text, path, minPatterns);
}

/**
 * Fills {field} placeholders (Python str.format style, {{ and }} literal).
 * @throws DataError naming the template and the missing field.
 */
export function fillPattern(
  pattern: string,
  fields: Readonly<Record<string, unknown>>,
  where: { file?: string; template?: string } = {},
): string {
  return pattern.replace(
    /\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}/g,
    (m, name: string | undefined) => {
      if (m === '{{') return '{';
      if (m === '}}') return '}';
      // Own properties only: `in` would find Object.prototype's constructor, toString, ...
      if (!Object.hasOwn(fields, name!)) {
        throw new DataError(
          `template ${where.template ?? ''} uses {${name}} but the example has no field '${name}'`,
          {
            file: where.file,
            field: name,
          },
        );
      }
      return String(fields[name!]);
    },
  );
}

export type Variant = 'zero_shot' | 'few_shot' | 'options' | 'cot' | 'inversion';

export interface FewShotConfig {
  k: number;
  inputs_prefix?: string;
  targets_prefix?: string;
  /** Between an exemplar's input and target. @default "\n\n" */
  x_y_delimiter?: string;
  /** After each exemplar. @default "\n\n\n" */
  example_separator?: string;
  final_suffix?: string;
}

export interface RenderOptions {
  variant: Variant;
  /** Which pattern (index into the variant's list); default chosen with rng. */
  template?: number;
  rng: Rng;
  /** Few-shot: exemplars (other examples of the same task) and layout. */
  exemplars?: readonly Readonly<Record<string, unknown>>[];
  fewShot?: FewShotConfig;
  /** Options: the choices field; 'random' draws the style with rng. */
  options?: { field: string; style: 'deterministic' | 'random' };
  file?: string;
}

export interface RenderedExample {
  input: string;
  target: string;
  template: string;
  choices?: string[];
}

/** Renders one example of a task in the requested variant. */
export function renderVariant(
  task: TaskTemplateSet,
  fields: Readonly<Record<string, unknown>>,
  o: RenderOptions,
): RenderedExample {
  const list =
    o.variant === 'cot' ? task.cot : o.variant === 'inversion' ? task.inversions : task.patterns;
  if (list.length === 0)
    throw new DataError(`task '${task.name}' has no ${o.variant} patterns`, {
      file: o.file,
      field: `tasks.${task.name}`,
    });
  const ti = o.template ?? o.rng.int(list.length);
  const p = list[ti % list.length]!;
  const where = { file: o.file, template: `${task.name}/${o.variant}/${ti}` };
  const tag = `${task.name}:${o.variant}:${ti % list.length}`;
  if (o.variant === 'cot') {
    const zs = task.patterns[ti % task.patterns.length]!;
    const base = fillPattern(zs.input, fields, where);
    return {
      input: fillPattern(p.input, { ...fields, input: base }, where),
      target: fillPattern(p.target, fields, where),
      template: tag,
    };
  }
  let input = fillPattern(p.input, fields, where);
  const target = fillPattern(p.target, fields, where);
  if (o.variant === 'options') {
    const field = o.options?.field ?? 'options';
    const choices = Object.hasOwn(fields, field) ? fields[field] : undefined;
    if (!Array.isArray(choices))
      throw new DataError(`options variant needs a list field '${field}'`, { file: o.file, field });
    const f =
      o.options?.style === 'random'
        ? formatOptionsRandom(choices.map(String), target, o.rng)
        : formatOptions(choices.map(String), target);
    return {
      input: `${input}\n\n${f.text}`,
      target: f.target,
      template: tag,
      choices: choices.map(String),
    };
  }
  if (o.variant === 'few_shot') {
    const fs = o.fewShot ?? { k: 2 };
    const xy = fs.x_y_delimiter ?? '\n\n';
    const sep = fs.example_separator ?? '\n\n\n';
    let prefix = '';
    for (const ex of (o.exemplars ?? []).slice(0, fs.k)) {
      prefix += `${fs.inputs_prefix ?? ''}${fillPattern(p.input, ex, where)}${xy}${fs.targets_prefix ?? ''}${fillPattern(p.target, ex, where)}${sep}`;
    }
    input = `${prefix}${fs.inputs_prefix ?? ''}${input}${fs.final_suffix ?? ''}`;
  }
  return { input, target, template: tag };
}

/** FLAN's "0to10": example i of every group of n gets template i (the remainder is dropped). */
export function roundRobinTemplates(count: number, templates: number): number[] {
  const usable = count - (count % templates);
  return Array.from({ length: usable }, (_, i) => i % templates);
}
