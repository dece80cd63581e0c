// Held-out evaluation (FLAN / T0 / OPT-IML): run many tasks, then report per task, per category,
// and per split group (held-out vs seen), and compare two models (base vs tuned) in one table
// with deltas and paired bootstrap confidence intervals over examples.
import type { LmBackend } from './backend.ts';
import { type Interval, pairedBootstrap } from './metrics.ts';
import { evaluateTask, type TaskResult } from './run.ts';
import type { Task } from './task.ts';

export interface HeldoutTask {
  task: Task;
  /** e.g. 'heldout' or 'seen' (OPT-IML: fully held-out / partially supervised / supervised). */
  group: string;
  category: string;
}

export interface GroupScore {
  name: string;
  /** Examples pooled over the group's tasks (micro-average, like weight_by_size). */
  n: number;
  score: number;
  ci: Interval;
}

export interface HeldoutResult {
  backend: string;
  metric: string;
  tasks: TaskResult[];
  byTask: GroupScore[];
  byCategory: GroupScore[];
  byGroup: GroupScore[];
  /** Per-example metric values keyed by task, for paired comparisons. */
  perExample: Record<string, number[]>;
}

export interface HeldoutOptions {
  /** Metric to aggregate; default: the first metric of each task's metric_list. */
  metric?: string;
  limit?: number;
  resamples?: number;
  seed?: number;
}

function score(name: string, values: number[], opts: HeldoutOptions): GroupScore {
  const ci = pairedBootstrap(values, undefined, {
    resamples: opts.resamples ?? 1000,
    seed: opts.seed ?? 0,
  });
  return { name, n: values.length, score: ci.mean, ci };
}

/** Evaluates every task and aggregates by task, category and group. */
export async function evaluateHeldout(
  tasks: readonly HeldoutTask[],
  backend: LmBackend,
  opts: HeldoutOptions = {},
): Promise<HeldoutResult> {
  const results: TaskResult[] = [];
  const perExample: Record<string, number[]> = {};
  const byCat = new Map<string, number[]>();
  const byGroup = new Map<string, number[]>();
  let metricName = opts.metric;
  for (const t of tasks) {
    const r = await evaluateTask(t.task, backend, { limit: opts.limit });
    results.push(r);
    const m = opts.metric ?? t.task.config.metric_list[0]!.metric;
    metricName ??= m;
    const values = r.examples.map((e) => (e.metrics as Record<string, number>)[m] ?? 0);
    perExample[r.task] = values;
    const push = (map: Map<string, number[]>, k: string) => {
      const xs = map.get(k) ?? [];
      map.set(k, xs);
      xs.push(...values);
    };
    push(byCat, t.category);
    push(byGroup, t.group);
  }
  return {
    backend: backend.name,
    metric: metricName ?? 'acc',
    tasks: results,
    byTask: results.map((r) => score(r.task, perExample[r.task]!, opts)),
    byCategory: [...byCat].map(([k, v]) => score(k, v, opts)),
    byGroup: [...byGroup].map(([k, v]) => score(k, v, opts)),
    perExample,
  };
}

export interface ComparisonRow {
  level: 'group' | 'category' | 'task';
  name: string;
  n: number;
  a: number;
  b: number;
  /** b − a, with a paired bootstrap interval. */
  delta: Interval;
}

export interface Comparison {
  a: string;
  b: string;
  metric: string;
  rows: ComparisonRow[];
}

/**
 * Compares two results on the same tasks (e.g. base = a, tuned = b): for every task, category
 * and group, the scores and the paired bootstrap interval of b − a.
 */
export function compareHeldout(
  a: HeldoutResult,
  b: HeldoutResult,
  tasks: readonly HeldoutTask[],
  opts: { resamples?: number; seed?: number } = {},
): Comparison {
  const rows: ComparisonRow[] = [];
  const collect = (keyOf: (t: HeldoutTask) => string) => {
    const m = new Map<string, { a: number[]; b: number[] }>();
    for (const t of tasks) {
      const name = t.task.config.task;
      const xa = a.perExample[name];
      const xb = b.perExample[name];
      if (!xa || !xb || xa.length !== xb.length)
        throw new RangeError(`task ${name} is missing or has different example counts`);
      const k = keyOf(t);
      const e = m.get(k) ?? { a: [], b: [] };
      m.set(k, e);
      e.a.push(...xa);
      e.b.push(...xb);
    }
    return m;
  };
  const add = (level: ComparisonRow['level'], m: Map<string, { a: number[]; b: number[] }>) => {
    for (const [name, v] of m) {
      const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
      rows.push({
        level,
        name,
        n: v.a.length,
        a: mean(v.a),
        b: mean(v.b),
        delta: pairedBootstrap(v.b, v.a, {
          resamples: opts.resamples ?? 1000,
          seed: opts.seed ?? 0,
        }),
      });
    }
  };
  add(
    'group',
    collect((t) => t.group),
  );
  add(
    'category',
    collect((t) => t.category),
  );
  add(
    'task',
    collect((t) => t.task.config.task),
  );
  return { a: a.backend, b: b.backend, metric: a.metric, rows };
}
