// Super-NaturalInstructions tasks (allenai/natural-instructions task JSON): loading, the split
// lists, and the Tk-Instruct encodings (definition, ± k positive examples, ± k negative
// examples, ± explanations, then "Now complete the following example"). Every reference output
// is kept for evaluation; training picks one with a seed.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DataError } from '../../util/errors.ts';
import { pyStrip } from '../../util/pystr.ts';
import { Rng } from '../../util/rng.ts';
import type { TaskExample } from '../records.ts';

const Example = z.looseObject({
  input: z.string(),
  output: z.string(),
  explanation: z.string().optional(),
});
const Instance = z.looseObject({
  id: z.string(),
  input: z.string(),
  output: z.array(z.string()).min(1),
});

export const NatInstTaskSchema = z.looseObject({
  Definition: z.union([z.string(), z.array(z.string()).min(1)]),
  Categories: z.array(z.string()).default([]),
  'Positive Examples': z.array(Example).default([]),
  'Negative Examples': z.array(Example).default([]),
  Instances: z.array(Instance).default([]),
});

export interface NatInstTask {
  name: string;
  definition: string;
  categories: string[];
  positive: { input: string; output: string; explanation?: string }[];
  negative: { input: string; output: string; explanation?: string }[];
  instances: { id: string; input: string; output: string[] }[];
}

/** Parses a task JSON; the name defaults to the file name without extension. */
export function parseNatInstTask(raw: unknown, name: string, file?: string): NatInstTask {
  const r = NatInstTaskSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const field = i.path.join('.');
    throw new DataError(
      field === 'Definition' && i.code === 'invalid_union' ? 'missing Definition' : i.message,
      { file, field },
    );
  }
  const t = r.data;
  return {
    name,
    definition: Array.isArray(t.Definition) ? t.Definition[0]! : t.Definition,
    categories: t.Categories,
    positive: t['Positive Examples'],
    negative: t['Negative Examples'],
    instances: t.Instances,
  };
}

export function loadNatInstTask(path: string): NatInstTask {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new DataError(`cannot read task JSON: ${(e as Error).message}`, { file: path });
  }
  const base = path
    .split('/')
    .pop()!
    .replace(/\.json$/, '')
    .replace(/\.EXCERPT$/, '');
  return parseNatInstTask(raw, base, path);
}

/** Task names of a split file (one per line, e.g. splits/default/test_tasks.txt). */
export function loadNatInstSplit(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

export interface NatInstEncoding {
  /** Include the task definition. @default true */
  definition?: boolean;
  /** Positive examples shown. @default 2 (Tk-Instruct's default) */
  positive?: number;
  /** Negative examples shown. @default 0 */
  negative?: number;
  /** Show the examples' explanations. @default false */
  explanation?: boolean;
  /** Prefix the task name. @default false */
  taskName?: boolean;
  /** Stop adding examples when the source would exceed this many units of `length`. */
  maxLength?: number;
  /** Length function for maxLength (e.g. a token count). @default characters */
  length?: (s: string) => number;
}

/** Python string.punctuation, used for Tk-Instruct's "end with punctuation" rule. */
const PUNCT = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
const endWith = (s: string): string => (s.length > 0 && PUNCT.has(s[s.length - 1]!) ? s : `${s}.`);

function exampleBlock(
  kind: 'Positive' | 'Negative',
  k: number,
  ex: { input: string; output: string; explanation?: string },
  explain: boolean,
): string {
  let s = endWith(` ${kind} Example ${k} -\nInput: ${pyStrip(ex.input)}`);
  s += '\n';
  s = endWith(`${s} Output: ${pyStrip(ex.output)}`);
  s += '\n';
  if (explain && ex.explanation !== undefined)
    s = `${endWith(`${s} Explanation: ${pyStrip(ex.explanation)}`)}\n`;
  return `${s}\n`;
}

/** The Tk-Instruct source text for one instance input. */
export function encodeNatInst(task: NatInstTask, input: string, o: NatInstEncoding = {}): string {
  const len = o.length ?? ((s: string) => s.length);
  const taskInput = `${endWith(`Now complete the following example -\nInput: ${pyStrip(input)}`)}\nOutput: `;
  const def =
    (o.definition ?? true) ? `${endWith(`Definition: ${pyStrip(task.definition)}`)}\n\n` : '';
  const name = o.taskName ? `${task.name}. ` : '';
  const fits = (parts: string[]) =>
    o.maxLength === undefined || len(name + def + parts.join('') + taskInput) <= o.maxLength;
  const pos: string[] = [];
  for (const [i, ex] of task.positive.slice(0, o.positive ?? 2).entries()) {
    const b = exampleBlock('Positive', i + 1, ex, o.explanation ?? false);
    if (!fits([...pos, b])) break;
    pos.push(b);
  }
  const neg: string[] = [];
  for (const [i, ex] of task.negative.slice(0, o.negative ?? 0).entries()) {
    const b = exampleBlock('Negative', i + 1, ex, o.explanation ?? false);
    if (!fits([...pos, ...neg, b])) break;
    neg.push(b);
  }
  return name + def + pos.join('') + neg.join('') + taskInput;
}

/**
 * Instances as TaskExample records, one at a time (see natInstExamples), so a writer can take
 * each as it is encoded.
 */
export function* natInstExampleStream(
  task: NatInstTask,
  o: NatInstEncoding & { seed?: number; limit?: number } = {},
): Generator<TaskExample> {
  const rng = new Rng(`${o.seed ?? 0}/${task.name}`);
  for (const inst of task.instances.slice(0, o.limit))
    yield {
      task: task.name,
      ...(task.categories[0] ? { category: task.categories[0] } : {}),
      template: 'tk-instruct',
      input: encodeNatInst(task, inst.input, o),
      target: rng.choice(inst.output),
      references: inst.output,
      id: inst.id,
    };
}

/**
 * Instances as TaskExample records: the encoded input, one reference chosen with the seed as
 * the target (for training) and every reference kept (for evaluation).
 */
export function natInstExamples(
  task: NatInstTask,
  o: NatInstEncoding & { seed?: number; limit?: number } = {},
): TaskExample[] {
  return [...natInstExampleStream(task, o)];
}
