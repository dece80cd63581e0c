// Evaluation task definitions in YAML, close to lm-evaluation-harness's TaskConfig: documents
// from a file (or given in code), doc_to_text / doc_to_target / doc_to_choice as field names or
// Jinja templates (rendered like Python Jinja2), delimiters, few-shot sampling, output type,
// metrics and generation settings. Prompt construction follows the harness byte for byte.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { describeZodError } from '../data/config.ts';
import { JinjaTemplate } from '../data/templates/jinja.ts';
import { parseYamlDocument } from '../data/yaml.ts';
import { ConfigError, DataError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { superNiTask, templateSetTask } from './builders.ts';

export const METRICS = [
  'acc',
  'acc_norm',
  'acc_bytes',
  'exact_match',
  'rougeL',
  'f1',
  'exact_match_strict',
  /** Exact match of the lenient answer extraction (tasks with answer_extraction). */
  'exact_match_fallback',
] as const;
export type MetricName = (typeof METRICS)[number];

const TextSpec = z.union([z.string(), z.number().int()]);

export const TaskConfig = z.strictObject({
  task: z.string().min(1),
  /** Category for held-out reports (e.g. a Super-NI task category). */
  category: z.string().optional(),
  /** JSONL or JSON-array file of documents (relative to the YAML file). */
  dataset_path: z.string().optional(),
  /** Documents for few-shot examples; default: the first documents of dataset_path are not reused. */
  fewshot_path: z.string().optional(),
  description: z.string().default(''),
  doc_to_text: z.string(),
  doc_to_target: TextSpec,
  doc_to_choice: z.union([z.string(), z.array(z.string()).min(2)]).optional(),
  target_delimiter: z.string().default(' '),
  fewshot_delimiter: z.string().default('\n\n'),
  num_fewshot: z.number().int().min(0).default(0),
  fewshot_config: z
    .strictObject({
      sampler: z.enum(['first_n', 'random']).default('first_n'),
      seed: z.number().int().default(1234),
    })
    .prefault({}),
  output_type: z
    .enum(['multiple_choice', 'generate_until', 'loglikelihood'])
    .default('generate_until'),
  metric_list: z.array(z.strictObject({ metric: z.enum(METRICS) })).min(1),
  generation_kwargs: z
    .strictObject({
      until: z.array(z.string()).optional(),
      max_gen_toks: z.number().int().positive().default(256),
      temperature: z.number().min(0).default(0),
    })
    .prefault({}),
  /** Answer extraction before scoring generations: none, BBH's "the answer is", or a regex. */
  answer_extraction: z
    .union([z.enum(['none', 'bbh']), z.strictObject({ regex: z.string() })])
    .default('none'),
  /** Evaluate at most this many documents. */
  limit: z.number().int().positive().optional(),
});
export type TaskConfig = z.infer<typeof TaskConfig>;

export type Doc = Record<string, unknown>;

export interface Task {
  config: TaskConfig;
  docs: Doc[];
  fewshotDocs: Doc[];
  file?: string;
}

/** Parses a task config; a missing or unknown field is a ConfigError naming it. */
export function parseTaskConfig(
  raw: unknown,
  file?: string,
  lineOf?: (p: string[]) => number | undefined,
): TaskConfig {
  const r = TaskConfig.safeParse(raw);
  if (!r.success) {
    const { path, field, message } = describeZodError(r.error);
    let at: unknown = raw;
    for (const k of path)
      at = at && typeof at === 'object' ? (at as Record<string, unknown>)[k] : undefined;
    throw new ConfigError(
      at === undefined && r.error.issues[0]!.code !== 'unrecognized_keys'
        ? 'missing required field'
        : message,
      { file, line: lineOf?.(path), field },
      { hint: 'see TaskConfig in src/eval/task.ts' },
    );
  }
  return r.data;
}

function readDocs(path: string): Doc[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DataError(`cannot read documents: ${(e as Error).message}`, { file: path });
  }
  if (path.endsWith('.json')) {
    let v: unknown;
    try {
      v = JSON.parse(text);
    } catch (e) {
      throw new DataError(`invalid JSON: ${(e as Error).message}`, { file: path });
    }
    if (!Array.isArray(v))
      throw new DataError('expected a JSON array of documents', { file: path });
    return v as Doc[];
  }
  return text.split('\n').flatMap((l, i) => {
    if (l.trim() === '') return [];
    try {
      return [JSON.parse(l) as Doc];
    } catch (e) {
      throw new DataError(`invalid JSON: ${(e as Error).message}`, { file: path, line: i + 1 });
    }
  });
}

/** `dataset: {super_ni: file, ...}`: a Super-NI task JSON in the Tk-Instruct encoding. */
export const SuperNiDataset = z.strictObject({
  super_ni: z.string().min(1),
  definition: z.boolean().optional(),
  positive: z.number().int().min(0).optional(),
  negative: z.number().int().min(0).optional(),
  explanation: z.boolean().optional(),
  task_name: z.boolean().optional(),
});

/** `dataset: {template_set: file, name, docs: file, ...}`: a FLAN-style template task. */
export const TemplateSetDataset = z.strictObject({
  template_set: z.string().min(1),
  /** Task of the set; optional when the set has one task. */
  name: z.string().optional(),
  /** JSONL / JSON-array file of field records ({x, y, ...}) to render. */
  docs: z.string().min(1),
  variant: z.enum(['zero_shot', 'few_shot', 'options', 'cot', 'inversion']).optional(),
  template: z.union([z.number().int().min(0), z.enum(['round_robin', 'random'])]).optional(),
  seed: z.number().int().optional(),
  shots: z.number().int().positive().optional(),
  options_field: z.string().optional(),
  option_style: z.enum(['deterministic', 'random']).optional(),
  score_choices: z.boolean().optional(),
});

function datasetTask(
  spec: unknown,
  at: (p: string) => string,
  file: string,
  lineOf: (p: string[]) => number | undefined,
): Task {
  const parse = <S extends z.ZodType>(schema: S): z.infer<S> => {
    const r = schema.safeParse(spec);
    if (r.success) return r.data;
    const { path, field, message } = describeZodError(r.error);
    throw new ConfigError(message, {
      file,
      line: lineOf(['dataset', ...path]),
      field: `dataset.${field}`,
    });
  };
  const isMap = spec !== null && typeof spec === 'object' && !Array.isArray(spec);
  if (isMap && 'super_ni' in spec) {
    const d = parse(SuperNiDataset);
    return superNiTask(at(d.super_ni), {
      definition: d.definition,
      positive: d.positive,
      negative: d.negative,
      explanation: d.explanation,
      taskName: d.task_name,
    });
  }
  if (isMap && 'template_set' in spec) {
    const d = parse(TemplateSetDataset);
    return templateSetTask(at(d.template_set), d.name, readDocs(at(d.docs)), {
      variant: d.variant,
      template: d.template,
      seed: d.seed,
      ...(d.shots !== undefined ? { fewShot: { k: d.shots } } : {}),
      options: { field: d.options_field ?? 'options', style: d.option_style ?? 'deterministic' },
      score_choices: d.score_choices,
    });
  }
  throw new ConfigError('dataset needs super_ni (a task JSON) or template_set (a template YAML)', {
    file,
    line: lineOf(['dataset']),
    field: 'dataset',
  });
}

/**
 * Loads a task YAML file; dataset paths are resolved against its folder. The documents come
 * from dataset_path (with doc_to_text / doc_to_target given), or from `dataset:` (a Super-NI
 * task or a template-set task, which supplies the prompt fields; keys given beside it, such
 * as limit, metric_list or generation_kwargs, override the built task's).
 */
export function loadTaskFile(path: string): Task {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read the task file: ${(e as Error).message}`, { file: path });
  }
  // prettyErrors off: yaml's pretty errors cost quadratic time on a document with many errors
  // (an 80 KB one took 39 s; bench/fuzz); the line is computed from the first error's offset.
  const doc = parseYamlDocument(text, { keepSourceTokens: false, prettyErrors: false });
  if (doc.errors.length > 0)
    throw new ConfigError(doc.errors[0]!.message.split('\n')[0]!, {
      file: path,
      line: text.slice(0, doc.errors[0]!.pos[0]).split('\n').length,
    });
  const lineOf = (p: string[]): number | undefined => {
    const node = doc.getIn(p, true) as { range?: [number, number, number] } | undefined;
    if (!node?.range) return undefined;
    return text.slice(0, node.range[0]).split('\n').length;
  };
  const base = dirname(resolve(path));
  const at = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  let raw: unknown;
  try {
    raw = doc.toJS();
  } catch (e) {
    // yaml refuses alias expansion past its limit ("billion laughs") with a ReferenceError.
    throw new ConfigError(`invalid YAML: ${(e as Error).message}`, { file: path });
  }
  if (raw !== null && typeof raw === 'object' && !Array.isArray(raw) && 'dataset' in raw) {
    const { dataset, ...rest } = raw as Record<string, unknown>;
    if ('dataset_path' in rest)
      throw new ConfigError('give dataset or dataset_path, not both', {
        file: path,
        line: lineOf(['dataset_path']),
        field: 'dataset_path',
      });
    const built = datasetTask(dataset, at, path, lineOf);
    const gk = rest.generation_kwargs;
    const merged = {
      ...built.config,
      ...rest,
      ...(gk && typeof gk === 'object' && !Array.isArray(gk)
        ? { generation_kwargs: { ...built.config.generation_kwargs, ...gk } }
        : {}),
    };
    const config = parseTaskConfig(merged, path, lineOf);
    return {
      config,
      docs: built.docs,
      fewshotDocs: config.fewshot_path ? readDocs(at(config.fewshot_path)) : [],
      file: path,
    };
  }
  const config = parseTaskConfig(raw, path, lineOf);
  if (!config.dataset_path)
    throw new ConfigError('a task file needs dataset_path (or dataset)', {
      file: path,
      field: 'dataset_path',
    });
  return {
    config,
    docs: readDocs(at(config.dataset_path)),
    fewshotDocs: config.fewshot_path ? readDocs(at(config.fewshot_path)) : [],
    file: path,
  };
}

/** Builds a task from an in-memory config and documents (for code-built tasks). */
export function makeTask(
  config: z.input<typeof TaskConfig>,
  docs: Doc[],
  fewshotDocs: Doc[] = [],
): Task {
  return { config: parseTaskConfig(config), docs, fewshotDocs };
}

// ---------------------------------------------------------------------------------------------
// doc_to_* resolution

const templates = new Map<string, JinjaTemplate>();
function render(source: string, doc: Doc, task: Task, field: string): string {
  let t = templates.get(source);
  if (!t) {
    try {
      t = new JinjaTemplate(source);
    } catch (e) {
      throw new ConfigError(`Jinja syntax error: ${(e as Error).message}`, {
        file: task.file,
        field,
      });
    }
    templates.set(source, t);
  }
  try {
    return t.render(doc);
  } catch (e) {
    throw new DataError(
      `cannot render ${field} of task '${task.config.task}': ${(e as Error).message}`,
      { file: task.file, field },
    );
  }
}

/** A doc_to_* spec is a field name when the document has that field, else a Jinja template. */
function resolveSpec(spec: string | number, doc: Doc, task: Task, field: string): unknown {
  if (typeof spec === 'number') return spec;
  if (Object.hasOwn(doc, spec)) return doc[spec];
  return render(spec, doc, task, field);
}

/** Parses a Python list literal of strings (what `{{ choices }}` renders to). */
function parsePyStringList(s: string): string[] | undefined {
  const t = s.trim();
  if (!t.startsWith('[') || !t.endsWith(']')) return undefined;
  const out: string[] = [];
  let i = 1;
  const skip = () => {
    while (i < t.length && /[\s,]/.test(t[i]!)) i++;
  };
  skip();
  while (i < t.length - 1) {
    const q = t[i];
    if (q !== "'" && q !== '"') return undefined;
    let v = '';
    i++;
    while (i < t.length && t[i] !== q) {
      if (t[i] === '\\') {
        const n = t[i + 1];
        v += n === 'n' ? '\n' : n === 't' ? '\t' : n === '\\' ? '\\' : (n ?? '');
        i += 2;
      } else v += t[i++];
    }
    i++;
    out.push(v);
    skip();
  }
  return out;
}

export function docText(task: Task, doc: Doc): string {
  return String(resolveSpec(task.config.doc_to_text, doc, task, 'doc_to_text'));
}

export function docChoices(task: Task, doc: Doc): string[] | undefined {
  const spec = task.config.doc_to_choice;
  if (spec === undefined) return undefined;
  if (Array.isArray(spec)) return spec;
  const v = resolveSpec(spec, doc, task, 'doc_to_choice');
  if (Array.isArray(v)) return v.map(String);
  const parsed = parsePyStringList(String(v));
  if (!parsed)
    throw new DataError(`doc_to_choice did not give a list: ${String(v).slice(0, 80)}`, {
      file: task.file,
      field: 'doc_to_choice',
    });
  return parsed;
}

/** The gold target: an index into the choices for multiple choice, else the reference text(s). */
export function docTarget(task: Task, doc: Doc): { index?: number; texts: string[] } {
  const v = resolveSpec(task.config.doc_to_target, doc, task, 'doc_to_target');
  const choices = docChoices(task, doc);
  if (choices) {
    let index: number;
    if (typeof v === 'number') index = v;
    else if (typeof v === 'string' && /^\d+$/.test(v.trim()) && !choices.includes(v))
      index = Number(v.trim());
    else index = choices.indexOf(String(v));
    if (!(index >= 0 && index < choices.length)) {
      throw new DataError(
        `target ${JSON.stringify(v)} is not one of the ${choices.length} choices`,
        { file: task.file, field: 'doc_to_target' },
      );
    }
    return { index, texts: [choices[index]!] };
  }
  if (Array.isArray(v)) return { texts: v.map(String) };
  return { texts: [String(v)] };
}

/** The few-shot documents for a given evaluation document (never the document itself). */
export function fewshotFor(task: Task, docIndex: number): Doc[] {
  const k = task.config.num_fewshot;
  if (k === 0) return [];
  const pool =
    task.fewshotDocs.length > 0 ? task.fewshotDocs : task.docs.filter((_, i) => i !== docIndex);
  if (pool.length < k)
    throw new ConfigError(`num_fewshot is ${k} but only ${pool.length} few-shot documents exist`, {
      file: task.file,
      field: 'num_fewshot',
    });
  if (task.config.fewshot_config.sampler === 'first_n') return pool.slice(0, k);
  return new Rng(`${task.config.fewshot_config.seed}/${docIndex}`).sample(pool, k);
}

/**
 * The harness's context: description + k labelled examples (text + target_delimiter + target)
 * each followed by fewshot_delimiter, then the document's text.
 */
export function buildContext(task: Task, docIndex: number, doc: Doc): string {
  const c = task.config;
  let out = c.description;
  for (const ex of fewshotFor(task, docIndex)) {
    const target = docTarget(task, ex).texts[0]!;
    out += docText(task, ex) + c.target_delimiter + target + c.fewshot_delimiter;
  }
  return out + docText(task, doc);
}
