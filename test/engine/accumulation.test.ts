// Gradient accumulation: 4 micro-batches of 2 equal one batch of 8 (loss and weights, with
// clipping and weight decay on), unequal micro-batches weighted by size equal the big batch,
// and a NaN in one micro-batch stops or skips the whole optimizer step.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Graph, Var } from '../../src/engine/graph.ts';
import { silu } from '../../src/engine/ops.ts';
import { ParamStore } from '../../src/engine/params.ts';
import { tensor } from '../../src/engine/runtime.ts';
import { createTrainer, type Feeds } from '../../src/engine/step.ts';
import { TrainingError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

const D = 8;
const O = 4;

function params(): ParamStore {
  return ParamStore.create(
    [
      { name: 'w1', shape: [16, D], init: { kind: 'normal', std: 0.4 } },
      { name: 'b1', shape: [16] },
      { name: 'w2', shape: [O, 16], init: { kind: 'normal', std: 0.4 } },
    ],
    { seed: 11 },
  );
}

function build(g: Graph, p: Readonly<Record<string, Var>>) {
  const x = g.input('x', 'float32', ['B', D]);
  const y = g.input('y', 'float32', ['B', O]);
  const h = silu(x.matmul(p.w1!, { transB: true }).add(p.b1!));
  const err = h.matmul(p.w2!, { transB: true }).sub(y);
  return { loss: err.mul(err).mean() };
}

function data(seed: number, rows: number): { x: Float32Array; y: Float32Array } {
  const r = new Rng(seed);
  return {
    x: new Float32Array(rows * D).map(() => r.normal()),
    y: new Float32Array(rows * O).map(() => r.normal()),
  };
}

/** Rows [from, to) of a batch as feeds. */
function rows(d: { x: Float32Array; y: Float32Array }, from: number, to: number): Feeds {
  const n = to - from;
  return {
    x: tensor('float32', [n, D], d.x.slice(from * D, to * D)),
    y: tensor('float32', [n, O], d.y.slice(from * O, to * O)),
  };
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++)
    m = Math.max(
      m,
      Math.abs((a[i] as number) - (b[i] as number)) / Math.max(1e-3, Math.abs(b[i] as number)),
    );
  return m;
}

const optimizer = { type: 'adamw' as const, learning_rate: 0.01, weight_decay: 0.05 };

test('accumulation 4 × batch 2 equals batch 8 × accumulation 1 (loss and weights)', async () => {
  const common = { build, optimizer, max_grad_norm: 1, session: { threads: 1 } };
  const big = await createTrainer({ ...common, params: params() });
  const acc = await createTrainer({ ...common, params: params(), accumulation: 4 });
  assert.ok(acc.plan.accumModel, 'a separate micro-batch graph is built');
  let clipped = 0;
  for (let s = 0; s < 6; s++) {
    const d = data(s, 8);
    const a = await big.step(rows(d, 0, 8));
    const b = await acc.step([0, 2, 4, 6].map((i) => rows(d, i, i + 2)));
    assert.ok(
      Math.abs(a.loss - b.loss) <= 1e-5 * a.loss,
      `step ${s + 1} loss ${a.loss} vs ${b.loss}`,
    );
    assert.ok(Math.abs(a.gradNorm - b.gradNorm) <= 1e-5 * a.gradNorm, `step ${s + 1} grad norm`);
    if (a.gradNorm > 1) clipped++;
    const diff = maxRelDiff(acc.params.flat, big.params.flat);
    assert.ok(diff < 1e-4, `step ${s + 1}: weights differ by ${diff}`);
  }
  // Clipping was active (norms above max_grad_norm) and the weights moved.
  assert.ok(clipped > 0, 'no step had a gradient norm above 1');
  assert.ok((await big.state()).params.some((v, i) => v !== params().flat[i]));
  await big.release();
  await acc.release();
});

test('unequal micro-batches weighted by size equal the big batch', async () => {
  const common = { build, optimizer, session: { threads: 1 } };
  const big = await createTrainer({ ...common, params: params() });
  const acc = await createTrainer({ ...common, params: params(), accumulation: 2 });
  for (let s = 0; s < 3; s++) {
    const d = data(50 + s, 8);
    const a = await big.step(rows(d, 0, 8));
    const b = await acc.step([rows(d, 0, 3), rows(d, 3, 8)], { weights: [3 / 8, 5 / 8] });
    assert.ok(Math.abs(a.loss - b.loss) <= 1e-5 * a.loss);
    assert.ok(maxRelDiff(acc.params.flat, big.params.flat) < 1e-4);
  }
  // Equal weights on unequal micro-batches are a different (wrong for this case) gradient.
  const eq = await createTrainer({ ...common, params: params(), accumulation: 2 });
  const ref = await createTrainer({ ...common, params: params() });
  const d = data(77, 8);
  await eq.step([rows(d, 0, 3), rows(d, 3, 8)]);
  await ref.step(rows(d, 0, 8));
  assert.ok(maxRelDiff(eq.params.flat, ref.params.flat) > 1e-4);
  for (const t of [big, acc, eq, ref]) await t.release();
});

test('a NaN in any micro-batch stops the step, or skips all of it', async () => {
  const d = data(9, 8);
  const poisoned = rows(d, 2, 4);
  (poisoned.x?.data as Float32Array)[3] = Number.NaN;
  const micro = [rows(d, 0, 2), poisoned, rows(d, 4, 6), rows(d, 6, 8)];
  const common = { build, optimizer, params: params(), accumulation: 4, session: { threads: 1 } };
  const t = await createTrainer(common);
  await assert.rejects(
    t.step(micro),
    (e: unknown) =>
      e instanceof TrainingError && /step 1: loss is NaN \(micro-batch 2\)/.test(e.message),
  );
  const s = await createTrainer({ ...common, params: params(), nonFinite: 'skip' });
  const before = s.params.flat.slice();
  const r = await s.step(micro);
  assert.equal(r.skipped, true);
  assert.deepEqual(s.params.flat, before);
  // The next clean step starts from a fresh accumulator: it equals a clean first step.
  const clean = [0, 2, 4, 6].map((i) => rows(d, i, i + 2));
  await s.step(clean);
  const fresh = await createTrainer({ ...common, params: params() });
  await fresh.step(clean);
  assert.deepEqual(s.params.flat, fresh.params.flat);
  for (const x of [t, s, fresh]) await x.release();
});
