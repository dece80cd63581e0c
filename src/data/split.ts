// OPT-IML style evaluation splits from a task -> category table (Iyer et al. 2022, sec. 3.2):
// fully held-out categories, partially supervised (held-out tasks of categories seen in
// training) and fully supervised (held-out instances of training tasks). Also the leak check
// that proves nothing held out reaches training. Reading tables and task lists: task-lists.ts.
import { z } from 'zod';
import { ConfigError, DataError } from '../util/errors.ts';
import { hashString, Rng } from '../util/rng.ts';
import { parseConfig } from './config.ts';
import { normalizeText } from './text.ts';

/** task name -> category name. */
export type TaskCategoryTable = ReadonlyMap<string, string>;

export const SplitConfig = z.strictObject({
  /** Categories held out entirely (the fully held-out level). */
  heldOutCategories: z.array(z.string()).optional(),
  /** Or pick this many categories at random (seeded) to hold out. */
  numHeldOutCategories: z.number().int().nonnegative().optional(),
  /** Tasks held out from categories that stay in training (the partially supervised level). */
  heldOutTasks: z.array(z.string()).optional(),
  /**
   * Or hold out this fraction of the tasks of every remaining category with >= 2 tasks
   * (rounded, at least 1 when > 0, and always leaving one task of the category in training).
   */
  partialTaskFraction: z.number().min(0).max(1).default(0),
  /** Fraction of each training task's instances held out (the fully supervised level). */
  supervisedFraction: z.number().min(0).max(1).default(0),
  seed: z.number().int().default(0),
});
export type SplitConfig = z.infer<typeof SplitConfig>;
export type SplitConfigInput = z.input<typeof SplitConfig>;

/** Where an example goes. */
export type SplitName = 'train' | 'fully_held_out' | 'partially_supervised' | 'fully_supervised';
export const SPLIT_NAMES: readonly SplitName[] = [
  'train',
  'fully_held_out',
  'partially_supervised',
  'fully_supervised',
];

/** The task-level decisions of a split; instance-level ones follow from seed and fraction. */
export interface SplitPlan {
  seed: number;
  supervisedFraction: number;
  heldOutCategories: string[];
  /** Tasks of the held-out categories. */
  fullyHeldOutTasks: string[];
  /** Held-out tasks whose category still has training tasks. */
  partiallySupervisedTasks: string[];
  /** Tasks trained on (some of their instances may be held out as fully_supervised). */
  trainTasks: string[];
  /** The table the plan was made from, as a plain object. */
  categoryOf: Record<string, string>;
}

/**
 * Decides which categories and tasks are held out. Deterministic for config.seed.
 * Throws ConfigError when a named category or task is not in the table, when a named
 * held-out task belongs to a held-out category, or when holding a task out would leave its
 * category with no training task (it would then be fully held out, not partially supervised).
 */
export function planSplit(table: TaskCategoryTable, config: SplitConfigInput = {}): SplitPlan {
  const c = parseConfig(SplitConfig, config);
  const rng = new Rng(c.seed);
  const byCat = new Map<string, string[]>();
  for (const [task, cat] of [...table].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
    if (!byCat.has(cat)) byCat.set(cat, []);
    byCat.get(cat)!.push(task);
  }
  const cats = [...byCat.keys()].sort();
  let held: string[];
  if (c.heldOutCategories) {
    for (const h of c.heldOutCategories)
      if (!byCat.has(h))
        throw new ConfigError(
          `held-out category '${h}' is not in the task table`,
          { field: 'heldOutCategories' },
          {
            hint: `categories: ${cats.slice(0, 12).join(', ')}${cats.length > 12 ? ', ...' : ''}`,
          },
        );
    held = [...new Set(c.heldOutCategories)].sort();
  } else {
    const k = c.numHeldOutCategories ?? 0;
    if (k >= cats.length)
      throw new ConfigError(`cannot hold out ${k} of ${cats.length} categories`, {
        field: 'numHeldOutCategories',
      });
    held = rng.sample(cats, k).sort();
  }
  const heldSet = new Set(held);
  const fully = held.flatMap((h) => byCat.get(h)!);
  let partial: string[];
  if (c.heldOutTasks) {
    partial = [...new Set(c.heldOutTasks)].sort();
    for (const t of partial) {
      const cat = table.get(t);
      if (cat === undefined)
        throw new ConfigError(`held-out task '${t}' is not in the task table`, {
          field: 'heldOutTasks',
        });
      if (heldSet.has(cat))
        throw new ConfigError(`held-out task '${t}' is in held-out category '${cat}' already`, {
          field: 'heldOutTasks',
        });
    }
  } else {
    partial = [];
    const f = c.partialTaskFraction;
    for (const cat of cats) {
      if (heldSet.has(cat) || f === 0) continue;
      const tasks = byCat.get(cat)!;
      if (tasks.length < 2) continue;
      const k = Math.min(tasks.length - 1, Math.max(1, Math.round(f * tasks.length)));
      partial.push(...rng.fork(cat).sample(tasks, k));
    }
    partial.sort();
  }
  const partialSet = new Set(partial);
  for (const cat of cats) {
    if (heldSet.has(cat)) continue;
    if (byCat.get(cat)!.every((t) => partialSet.has(t)))
      throw new ConfigError(
        `every task of category '${cat}' is held out`,
        { field: 'heldOutTasks' },
        {
          hint: 'a partially supervised category keeps at least one training task; hold the category out instead',
        },
      );
  }
  const trainTasks = [...table.keys()]
    .filter((t) => !heldSet.has(table.get(t)!) && !partialSet.has(t))
    .sort();
  return {
    seed: c.seed,
    supervisedFraction: c.supervisedFraction,
    heldOutCategories: held,
    fullyHeldOutTasks: fully.sort(),
    partiallySupervisedTasks: partial,
    trainTasks,
    categoryOf: Object.fromEntries([...table].sort((a, b) => (a[0] < b[0] ? -1 : 1))),
  };
}

/** The minimum an example needs for splitting: its task, and an id when it has one. */
export interface SplittableExample {
  task: string;
  category?: string;
  id?: string;
}

/**
 * Returns a function that assigns examples (in stream order) to splits. Instances of training
 * tasks go to fully_supervised when a seeded hash of (task, id or per-task index) falls below
 * supervisedFraction, so the choice is stable for a seed and needs no memory beyond one counter
 * per task. An example whose task is not in the plan is a DataError: nothing lands in training
 * by default.
 */
export function splitter(plan: SplitPlan): (ex: SplittableExample) => SplitName {
  const fully = new Set(plan.fullyHeldOutTasks);
  const partial = new Set(plan.partiallySupervisedTasks);
  const train = new Set(plan.trainTasks);
  const counters = new Map<string, number>();
  const seed = plan.seed >>> 0;
  return (ex) => {
    if (fully.has(ex.task)) return 'fully_held_out';
    if (partial.has(ex.task)) return 'partially_supervised';
    if (!train.has(ex.task))
      throw new DataError(
        `task '${ex.task}' is not in the split's task table`,
        { field: 'task' },
        {
          hint: 'add it to the task -> category table',
        },
      );
    const i = counters.get(ex.task) ?? 0;
    counters.set(ex.task, i + 1);
    if (plan.supervisedFraction === 0) return 'train';
    const h = hashString(`${ex.task}\u0000${ex.id ?? i}`, seed) / 2 ** 32;
    return h < plan.supervisedFraction ? 'fully_supervised' : 'train';
  };
}

/** One way something held out reached training. */
export interface Leak {
  kind: 'plan' | 'held_out_task' | 'held_out_category' | 'eval_instance';
  task?: string;
  category?: string;
  /** 0-based position of the offending training example. */
  index?: number;
  detail: string;
}

export interface LeakReport {
  ok: boolean;
  checkedTrain: number;
  leaks: Leak[];
}

/** Text identity of an example for instance-level checks: id, else normalised input. */
function instanceKey(ex: SplittableExample & { input?: string }): string | undefined {
  if (ex.id !== undefined) return `id:${ex.id}`;
  return ex.input !== undefined ? `in:${ex.task}\u0000${normalizeText(ex.input)}` : undefined;
}

/**
 * Proves the held-out boundary: checks the plan's own consistency, then that no training
 * example belongs to a held-out task or category (by the table and by the example's own
 * category field), and, when `evalInstances` are given, that none of them (by id, else by task
 * and normalised input) appears in training. Streams the training set.
 */
export async function checkLeaks(
  plan: SplitPlan,
  train:
    | Iterable<SplittableExample & { input?: string }>
    | AsyncIterable<SplittableExample & { input?: string }>,
  opts: {
    evalInstances?:
      | Iterable<SplittableExample & { input?: string }>
      | AsyncIterable<SplittableExample & { input?: string }>;
    maxLeaks?: number;
  } = {},
): Promise<LeakReport> {
  const leaks: Leak[] = [];
  const max = opts.maxLeaks ?? 1000;
  const add = (l: Leak) => {
    if (leaks.length < max) leaks.push(l);
  };
  const heldCats = new Set(plan.heldOutCategories);
  const heldTasks = new Set([...plan.fullyHeldOutTasks, ...plan.partiallySupervisedTasks]);
  const trainCats = new Set<string>();
  for (const t of plan.trainTasks) {
    const cat = plan.categoryOf[t];
    if (cat !== undefined) trainCats.add(cat);
    if (heldTasks.has(t))
      add({ kind: 'plan', task: t, detail: `task '${t}' is both trained on and held out` });
    if (cat !== undefined && heldCats.has(cat))
      add({
        kind: 'plan',
        task: t,
        category: cat,
        detail: `training task '${t}' is in held-out category '${cat}'`,
      });
  }
  for (const t of plan.partiallySupervisedTasks) {
    const cat = plan.categoryOf[t];
    if (cat === undefined || !trainCats.has(cat))
      add({
        kind: 'plan',
        task: t,
        category: cat,
        detail: `partially supervised task '${t}' has no training task in its category`,
      });
  }
  const evalKeys = new Set<string>();
  for await (const ex of opts.evalInstances ?? []) {
    const k = instanceKey(ex);
    if (k !== undefined) evalKeys.add(k);
  }
  let index = 0;
  for await (const ex of train) {
    const tableCat = plan.categoryOf[ex.task];
    if (heldTasks.has(ex.task))
      add({
        kind: 'held_out_task',
        task: ex.task,
        category: tableCat,
        index,
        detail: `held-out task '${ex.task}' in training`,
      });
    for (const cat of new Set([tableCat, ex.category])) {
      if (cat !== undefined && heldCats.has(cat))
        add({
          kind: 'held_out_category',
          task: ex.task,
          category: cat,
          index,
          detail: `example of held-out category '${cat}' in training`,
        });
    }
    if (evalKeys.size > 0) {
      const k = instanceKey(ex);
      if (k !== undefined && evalKeys.has(k))
        add({
          kind: 'eval_instance',
          task: ex.task,
          index,
          detail: `held-out instance (${k.slice(0, 60)}) in training`,
        });
    }
    index++;
  }
  return { ok: leaks.length === 0, checkedTrain: index, leaks };
}
