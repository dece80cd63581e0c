// The built-in task collection: 29 tasks in 8 categories over a generated world (lexicon.ts,
// tasks.ts), each with >= 5 instruction templates of its own plus the generic ones every relation
// task shares (templates.yaml), rendered in FLAN's variants, plus the same facts as plain declarative text (the "knowledge" corpus a base model is
// pretrained on). Answers are short and checked exactly.
//
// Recommended held-out categories for the demo: `antonyms` and `sequences`. Their facts appear in
// the knowledge text ("The opposite of zarn is quib.", "The day after Monday is Tuesday."), and
// their instructions share the generic phrasings ("What is the {relation} {x}?") with the other
// categories, so a model taught to answer questions on the seen categories can carry that skill
// over; neither depends on the other categories' vocabulary.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DataError } from '../../util/errors.ts';
import { hashString, Rng } from '../../util/rng.ts';
import type { TaskExample } from '../records.ts';
import {
  loadTemplateSet,
  type RenderedExample,
  relationTaskTemplates,
  renderVariant,
  type TaskTemplateSet,
  type Variant,
} from '../templates/flan.ts';
import { buildLexicon, type Lexicon, type LexiconSizes } from './lexicon.ts';
import { type Fact, TASKS } from './tasks.ts';

export { buildLexicon, type Lexicon } from './lexicon.ts';
export { type Fact, TASKS, type TaskDef } from './tasks.ts';

export const TEMPLATES_PATH = join(dirname(fileURLToPath(import.meta.url)), 'templates.yaml');
export const DEMO_HELDOUT_CATEGORIES = ['antonyms', 'sequences'] as const;
/** Category of the invented relations (lexicon `relations`): extra training tasks, not evaluated. */
export const INVENTED_CATEGORY = 'invented';

export interface CollectionTask {
  name: string;
  category: string;
  templates: TaskTemplateSet;
  facts: Fact[];
  answers: string[];
}

export interface Collection {
  seed: number;
  lexicon: Lexicon;
  tasks: CollectionTask[];
}

/** The collection for a seed (the lexicon, and so every fact, depends on it). */
export function builtinCollection(opts: { seed?: number; sizes?: LexiconSizes } = {}): Collection {
  const seed = opts.seed ?? 0;
  const lexicon = buildLexicon(seed, opts.sizes);
  const set = loadTemplateSet(TEMPLATES_PATH, 5);
  const tasks = TASKS.map((t) => {
    const templates = set.tasks.get(t.name);
    if (!templates)
      throw new DataError(`no templates for task '${t.name}'`, {
        file: TEMPLATES_PATH,
        field: `tasks.${t.name}`,
      });
    if (templates.category !== t.category) {
      throw new DataError(
        `task '${t.name}' is '${t.category}' in code but '${templates.category}' in the templates`,
        { file: TEMPLATES_PATH },
      );
    }
    return {
      name: t.name,
      category: t.category,
      templates,
      facts: t.facts(lexicon),
      answers: t.answers(lexicon),
    };
  });
  // Invented relations have only the generic wording: they add relation diversity to training
  // (more tasks, as FLAN found helps held-out tasks), not new kinds of instructions.
  lexicon.relations.forEach((rel, i) => {
    const name = `invented_${i}`;
    const facts = rel.facts.map(({ thing, value }) => ({
      x: `a ${thing.name}`,
      y: value,
      rationale: `The ${rel.name} a ${thing.name} is ${value}.`,
      also: [],
    }));
    tasks.push({
      name,
      category: INVENTED_CATEGORY,
      templates: relationTaskTemplates(set, name, INVENTED_CATEGORY, rel.name),
      facts,
      answers: [...new Set(facts.map((f) => f.y))],
    });
  });
  return { seed, lexicon, tasks };
}

/** task → category, for split planning (data/split.ts). */
export function categoryTable(c: Collection): Record<string, string> {
  return Object.fromEntries(c.tasks.map((t) => [t.name, t.category]));
}

/**
 * The knowledge corpus: every fact of every task as plain sentences (the rationale and its
 * paraphrases), deduplicated, shuffled with the seed, `repeats` passes with a new order each.
 */
export function knowledgeCorpus(
  c: Collection,
  opts: { seed?: number; repeats?: number } = {},
): string[] {
  const sentences = new Set<string>();
  for (const t of c.tasks)
    for (const f of t.facts) for (const s of [f.rationale, ...f.also]) sentences.add(s);
  const base = [...sentences];
  const out: string[] = [];
  for (let r = 0; r < (opts.repeats ?? 1); r++)
    out.push(...new Rng(`${opts.seed ?? c.seed}/knowledge/${r}`).shuffle([...base]));
  return out;
}

/** Deterministic train / eval partition of a task's facts (eval gets about `evalFraction`). */
export function splitFacts(
  task: CollectionTask,
  evalFraction: number,
  seed: number,
): { train: Fact[]; eval: Fact[] } {
  const train: Fact[] = [];
  const evalSet: Fact[] = [];
  for (const f of task.facts) {
    const h = hashString(`${seed}/${task.name}/${f.x}`) / 2 ** 32;
    (h < evalFraction ? evalSet : train).push(f);
  }
  return { train, eval: evalSet };
}

export interface RenderTaskOptions {
  variant: Variant;
  seed: number;
  /** Facts to render (default: all of the task's). */
  facts?: readonly Fact[];
  /** Options variant: number of choices incl. the answer. @default 4 */
  numOptions?: number;
  optionStyle?: 'deterministic' | 'random';
  /** Few-shot exemplars per example. @default 2 */
  shots?: number;
  /** Assign templates round-robin (FLAN's "0to10") instead of at random. */
  roundRobin?: boolean;
}

function optionsFor(task: CollectionTask, fact: Fact, n: number, rng: Rng): string[] {
  const others = task.answers.filter((a) => a !== fact.y);
  return rng.shuffle([fact.y, ...rng.sample(others, Math.min(n - 1, others.length))]);
}

/** Renders a task's facts as TaskExample records in one variant. */
export function renderTask(
  _c: Collection,
  task: CollectionTask,
  o: RenderTaskOptions,
): TaskExample[] {
  const rng = new Rng(`${o.seed}/${task.name}/${o.variant}`);
  const facts = o.facts ?? task.facts;
  const n =
    o.variant === 'cot'
      ? task.templates.cot.length
      : o.variant === 'inversion'
        ? task.templates.inversions.length
        : task.templates.patterns.length;
  return facts.map((fact, i) => {
    const choices = optionsFor(task, fact, o.numOptions ?? 4, rng);
    const fields = { x: fact.x, y: fact.y, rationale: fact.rationale, options: choices };
    const exemplars =
      o.variant === 'few_shot'
        ? rng
            .sample(
              task.facts.filter((f) => f !== fact),
              o.shots ?? 2,
            )
            .map((f) => ({ x: f.x, y: f.y, rationale: f.rationale }))
        : undefined;
    const r: RenderedExample = renderVariant(task.templates, fields, {
      variant: o.variant,
      rng,
      template: o.roundRobin ? i % n : undefined,
      exemplars,
      fewShot: { k: o.shots ?? 2, x_y_delimiter: '\n', example_separator: '\n\n' },
      options: { field: 'options', style: o.optionStyle ?? 'random' },
      file: TEMPLATES_PATH,
    });
    return {
      task: task.name,
      category: task.category,
      template: r.template,
      input: r.input,
      target: r.target,
      references: [r.target],
      ...(o.variant === 'options' ? { choices: r.choices } : {}),
      id: `${task.name}/${o.variant}/${i}`,
    };
  });
}

export interface RenderCollectionOptions {
  seed?: number;
  variants?: readonly Variant[];
  /** Only these tasks (default all). */
  tasks?: readonly string[];
  /** Only these categories (default all). */
  categories?: readonly string[];
}

/** Renders every selected task in every selected variant. */
export function renderCollection(c: Collection, opts: RenderCollectionOptions = {}): TaskExample[] {
  const out: TaskExample[] = [];
  for (const t of c.tasks) {
    if (opts.tasks && !opts.tasks.includes(t.name)) continue;
    if (opts.categories && !opts.categories.includes(t.category)) continue;
    for (const v of opts.variants ?? ['zero_shot'])
      out.push(...renderTask(c, t, { variant: v, seed: opts.seed ?? c.seed }));
  }
  return out;
}
