// Held-out evaluation without a model: two scripted systems answer generation tasks from
// tables, so every per-example score is known and the aggregation, deltas and bootstrap
// intervals can be checked exactly.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { LmBackend } from '../../src/eval/backend.ts';
import { compareHeldout, evaluateHeldout, type HeldoutTask } from '../../src/eval/heldout.ts';
import { bootstrapMean, pairedBootstrap } from '../../src/eval/metrics.ts';
import { makeTask } from '../../src/eval/task.ts';
import { Rng } from '../../src/util/rng.ts';

/** Which documents each system gets right, per task (1 = right). */
const RIGHT = {
  base: { t1: [1, 0, 0, 0], t2: [1, 1], t3: [0, 1, 0] },
  tuned: { t1: [1, 1, 0, 0], t2: [1, 1], t3: [0, 1, 0] },
} as const;

const tasks: HeldoutTask[] = [
  ['t1', 'cat_x', 'heldout', 4],
  ['t2', 'cat_x', 'heldout', 2],
  ['t3', 'cat_y', 'seen', 3],
].map(([name, category, group, n]) => ({
  group: group as string,
  category: category as string,
  task: makeTask(
    {
      task: name as string,
      category: category as string,
      doc_to_text: '{{ task }} {{ i }}:',
      doc_to_target: 'answer',
      generation_kwargs: { until: ['\n'] },
      metric_list: [{ metric: 'exact_match' }],
    },
    Array.from({ length: n as number }, (_, i) => ({ task: name, i, answer: `a${i}` })),
  ),
}));

function system(name: keyof typeof RIGHT): LmBackend {
  return {
    name,
    supportsLoglikelihood: false,
    loglikelihood: async () => [],
    generate: async (reqs) =>
      reqs.map((r) => {
        const [, t, i] = /^(t\d) (\d+):$/.exec(r.context)!;
        const right = (RIGHT[name] as Record<string, readonly number[]>)[t!]![Number(i)];
        return right ? `a${i}` : 'wrong';
      }),
  };
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

test('evaluateHeldout: per-task, per-category and per-group scores pool examples; CIs are seeded', async () => {
  const r = await evaluateHeldout(tasks, system('base'), { seed: 3, resamples: 400 });
  assert.equal(r.metric, 'exact_match');
  assert.deepEqual(r.perExample, { t1: [1, 0, 0, 0], t2: [1, 1], t3: [0, 1, 0] });
  const score = (list: typeof r.byTask, name: string) => list.find((g) => g.name === name)!;
  assert.deepEqual(
    r.byTask.map((g) => [g.name, g.n, g.score]),
    [
      ['t1', 4, 0.25],
      ['t2', 2, 1],
      ['t3', 3, 1 / 3],
    ],
  );
  // Categories and groups are micro-averages over examples (3/6), not means of task means (0.625).
  assert.equal(score(r.byCategory, 'cat_x').n, 6);
  assert.equal(score(r.byCategory, 'cat_x').score, 0.5);
  assert.equal(score(r.byCategory, 'cat_y').score, 1 / 3);
  assert.deepEqual(
    r.byGroup.map((g) => [g.name, g.n, g.score]),
    [
      ['heldout', 6, 0.5],
      ['seen', 3, 1 / 3],
    ],
  );
  // Each interval is the seeded bootstrap of that level's pooled examples.
  assert.deepEqual(
    score(r.byGroup, 'heldout').ci,
    bootstrapMean([1, 0, 0, 0, 1, 1], { seed: 3, resamples: 400 }),
  );
  const again = await evaluateHeldout(tasks, system('base'), { seed: 3, resamples: 400 });
  assert.deepEqual(again.byGroup, r.byGroup, 'same seed, same intervals');
  // With few resamples the percentiles move with the seed (the pooled values are few).
  const cis = async (seed: number) =>
    JSON.stringify(
      (await evaluateHeldout(tasks, system('base'), { seed, resamples: 20 })).byGroup.map(
        (g) => g.ci,
      ),
    );
  const first = await cis(0);
  let moved = false;
  for (const s of [1, 2, 3, 4, 5]) if ((await cis(s)) !== first) moved = true;
  assert.ok(moved, 'the seed is used');
  assert.equal(r.tasks[0]!.examples[1]!.prediction, 'wrong');
});

test('compareHeldout: deltas per level with a paired, seeded bootstrap', async () => {
  const base = await evaluateHeldout(tasks, system('base'));
  const tuned = await evaluateHeldout(tasks, system('tuned'));
  const cmp = compareHeldout(base, tuned, tasks, { seed: 9, resamples: 2000 });
  assert.deepEqual(
    cmp.rows.map((row) => [row.level, row.name, row.n, row.a, row.b]),
    [
      ['group', 'heldout', 6, 0.5, 4 / 6],
      ['group', 'seen', 3, 1 / 3, 1 / 3],
      ['category', 'cat_x', 6, 0.5, 4 / 6],
      ['category', 'cat_y', 3, 1 / 3, 1 / 3],
      ['task', 't1', 4, 0.25, 0.5],
      ['task', 't2', 2, 1, 1],
      ['task', 't3', 3, 1 / 3, 1 / 3],
    ],
  );
  const held = cmp.rows.find((r) => r.name === 'heldout')!;
  assert.ok(Math.abs(held.delta.mean - (4 / 6 - 0.5)) < 1e-12);
  const a = [1, 0, 0, 0, 1, 1];
  const b = [1, 1, 0, 0, 1, 1];
  assert.deepEqual(held.delta, pairedBootstrap(b, a, { seed: 9, resamples: 2000 }));
  // Paired: the tuned system is never worse on an example, so no resample shows a loss and the
  // interval cannot go below 0. Resampling the two systems independently would.
  assert.ok(held.delta.low >= 0, `paired interval ${held.delta.low}..${held.delta.high}`);
  const rng = new Rng(9);
  const unpaired: number[] = [];
  for (let k = 0; k < 2000; k++) {
    const pick = (xs: number[]) => mean(xs.map(() => xs[rng.int(xs.length)]!));
    unpaired.push(pick(b) - pick(a));
  }
  unpaired.sort((x, y) => x - y);
  assert.ok(unpaired[Math.floor(0.025 * 2000)]! < 0, 'an unpaired interval would cross 0');
  // Unchanged examples give a zero-width interval at 0.
  const seen = cmp.rows.find((r) => r.name === 'seen')!;
  assert.deepEqual(seen.delta, { mean: 0, low: 0, high: 0 });
  // Seeded: the same seed repeats the intervals, another seed moves them.
  assert.deepEqual(compareHeldout(base, tuned, tasks, { seed: 9, resamples: 2000 }), cmp);
  const t1 = (s: number) =>
    compareHeldout(base, tuned, tasks, { seed: s, resamples: 50 }).rows.find(
      (r) => r.name === 't1',
    )!.delta;
  assert.ok([1, 2, 3, 4, 5].some((s) => JSON.stringify(t1(s)) !== JSON.stringify(t1(0))));
  // Results over different tasks cannot be compared.
  const fewer = await evaluateHeldout(tasks.slice(0, 2), system('tuned'));
  assert.throws(() => compareHeldout(base, fewer, tasks), RangeError);
});
