// The step runner: double-buffered state (the input set is never written), NaN/Inf loss and
// gradient handling (error naming the step, or skip), exact checkpoint/resume, frozen params,
// symbolic batch dims with extra outputs, and every bad input the runner checks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Graph, Var } from '../../src/engine/graph.ts';
import { gelu } from '../../src/engine/ops.ts';
import { ParamStore } from '../../src/engine/params.ts';
import { tensor } from '../../src/engine/runtime.ts';
import { createTrainer, type Feeds } from '../../src/engine/step.ts';
import type { TrainerOptions } from '../../src/engine/step-graph.ts';
import { ConfigError, ShapeError, TrainingError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';

const D = 6;
const H = 5;
const O = 3;

// A 2-layer MLP regression with biases: decayed matrices, undecayed vectors.
function mlpParams(seed = 1, frozenHead = false): ParamStore {
  return ParamStore.create(
    [
      { name: 'w1', shape: [H, D], init: { kind: 'normal', std: 0.5 } },
      { name: 'b1', shape: [H], init: { kind: 'normal', std: 0.1 } },
      { name: 'w2', shape: [O, H], init: { kind: 'normal', std: 0.5 }, frozen: frozenHead },
      { name: 'b2', shape: [O] },
    ],
    { seed },
  );
}

function mlp(g: Graph, p: Readonly<Record<string, Var>>, batch: number | string = 'B') {
  const x = g.input('x', 'float32', [batch, D]);
  const y = g.input('y', 'float32', [batch, O]);
  const h = gelu(x.matmul(p.w1!, { transB: true }).add(p.b1!));
  const pred = h.matmul(p.w2!, { transB: true }).add(p.b2!);
  const err = pred.sub(y);
  return { loss: err.mul(err).mean(), outputs: { pred } };
}

function batch(rng: Rng, b: number): Feeds {
  const x = new Float32Array(b * D).map(() => rng.normal());
  const y = new Float32Array(b * O).map(() => rng.normal());
  return { x: tensor('float32', [b, D], x), y: tensor('float32', [b, O], y) };
}

const adamw = { type: 'adamw' as const, learning_rate: 0.02, weight_decay: 0.1 };
const base = (params: ParamStore): TrainerOptions & { session: { threads: number } } => ({
  build: (g, p) => mlp(g, p),
  params,
  optimizer: adamw,
  session: { threads: 1 },
});

test('double buffering: a step reads one set and writes the other, then swaps', async () => {
  const store = mlpParams();
  const t = await createTrainer(base(store));
  const rng = new Rng(1);
  const a = t.params.flat;
  assert.equal(a, store.flat, 'buffer set A is the store, adopted without a copy');
  const before = a.slice();
  const r = await t.step(batch(rng, 4));
  const b = t.params.flat;
  assert.notEqual(b.buffer, a.buffer);
  assert.deepEqual(a, before, 'the input set is untouched by the step that read it');
  assert.ok(
    b.some((v, i) => v !== before[i]),
    'the new set holds updated parameters',
  );
  assert.equal(r.step, 1);
  assert.ok(r.loss > 0 && r.gradNorm > 0 && r.lr === 0.02);
  await t.step(batch(rng, 4));
  assert.equal(t.params.flat, a, 'the second step writes back into set A');
  assert.deepEqual(t.params.get('w1'), a.subarray(0, H * D));
  await t.release();
});

test('a NaN loss stops training with a TrainingError naming the step; params untouched', async () => {
  const t = await createTrainer(base(mlpParams()));
  const rng = new Rng(2);
  await t.step(batch(rng, 4));
  await t.step(batch(rng, 4));
  const snapshot = (await t.state()).params;
  const bad = batch(rng, 4);
  (bad.y?.data as Float32Array)[5] = Number.NaN;
  await assert.rejects(
    t.step(bad),
    (e: unknown) =>
      e instanceof TrainingError && e.step === 3 && /step 3: loss is NaN/.test(e.message),
  );
  assert.deepEqual(t.params.flat, snapshot);
  assert.equal(t.stepCount, 2);
  await t.release();
});

test("nonFinite: 'skip' skips the update for free and counts it", async () => {
  const t = await createTrainer({ ...base(mlpParams()), nonFinite: 'skip' });
  const rng = new Rng(3);
  await t.step(batch(rng, 4));
  const snap = await t.state();
  const bad = batch(rng, 4);
  (bad.x?.data as Float32Array)[0] = Number.POSITIVE_INFINITY;
  const r = await t.step(bad);
  assert.equal(r.skipped, true);
  assert.equal(r.step, 2);
  assert.ok(!Number.isFinite(r.loss));
  assert.equal(t.skippedCount, 1);
  assert.equal(t.stepCount, 1);
  assert.deepEqual(t.params.flat, snap.params);
  assert.deepEqual(t.slot('exp_avg'), snap.slots.exp_avg);
  const ok = await t.step(batch(rng, 4));
  assert.equal(ok.skipped, false);
  assert.equal(ok.step, 2);
  assert.equal(t.stepCount, 2);
  await t.release();
});

test('an infinite gradient with a finite loss is caught by the gradient norm', async () => {
  // loss = Σ sqrt(p) at p = 0 is 0, but d/dp sqrt(p) = +Inf.
  const params = ParamStore.create([{ name: 'p', shape: [3] }], { seed: 0 });
  const build = (g: Graph, p: Readonly<Record<string, Var>>) => {
    const s = g.input('s', 'float32', [3]);
    return { loss: p.p!.sqrt().mul(s).sum() };
  };
  const t = await createTrainer({ build, params, optimizer: adamw, session: { threads: 1 } });
  await assert.rejects(
    t.step({ s: tensor('float32', [3], Float32Array.of(1, 1, 1)) }),
    (e: unknown) =>
      e instanceof TrainingError && /step 1: gradient norm is Infinity/.test(e.message),
  );
  await t.release();
});

test('checkpoint after step k and resume: bit-identical to an uninterrupted run', async () => {
  const opts = (store: ParamStore): TrainerOptions & { session: { threads: number } } => ({
    ...base(store),
    max_grad_norm: 0.5,
    schedule: { type: 'cosine', warmup_steps: 2 },
    totalSteps: 8,
  });
  const batches = Array.from({ length: 8 }, (_, i) => batch(new Rng(100 + i), 4));
  const full = await createTrainer(opts(mlpParams(9)));
  const lrs: number[] = [];
  for (const b of batches) lrs.push((await full.step(b)).lr);
  const want = await full.state();

  const first = await createTrainer(opts(mlpParams(9)));
  for (const b of batches.slice(0, 3)) await first.step(b);
  const saved = await first.state();
  await first.release();

  const resumed = await createTrainer(opts(mlpParams(1234))); // other init: load must overwrite
  await resumed.load(saved);
  assert.equal(resumed.stepCount, 3);
  const resumedLrs: number[] = [];
  for (const b of batches.slice(3)) resumedLrs.push((await resumed.step(b)).lr);
  const got = await resumed.state();
  assert.deepEqual(resumedLrs, lrs.slice(3));
  assert.equal(got.step, 8);
  assert.deepEqual(got.params, want.params);
  assert.deepEqual(got.slots.exp_avg, want.slots.exp_avg);
  assert.deepEqual(got.slots.exp_avg_sq, want.slots.exp_avg_sq);
  // A checkpoint from another layout or optimizer is refused.
  await assert.rejects(resumed.load({ ...saved, params: new Float32Array(3) }), ShapeError);
  await assert.rejects(resumed.load({ ...saved, slots: {} }), /exp_avg/);
  await full.release();
  await resumed.release();
});

test('frozen parameters are fed but never updated; the trainable ones all move', async () => {
  const store = mlpParams(4, true);
  const frozenBefore = store.get('w2').slice();
  const t = await createTrainer(base(store));
  assert.deepEqual(
    t.plan.layout.views.map((v) => v.name),
    ['w1', 'b1', 'b2'],
  );
  const before = t.params.flat.slice();
  const rng = new Rng(4);
  for (let i = 0; i < 3; i++) await t.step(batch(rng, 4));
  assert.deepEqual(t.params.get('w2'), frozenBefore);
  for (const v of t.plan.layout.views) {
    const now = t.params.get(v.name);
    const old = before.subarray(v.offset, v.offset + v.size);
    assert.ok(
      now.every((x, i) => x !== old[i]),
      `every element of ${v.name} moved`,
    );
  }
  await t.release();
});

test('symbolic batch: any batch size per step; extra outputs are sized from the feeds', async () => {
  const t = await createTrainer(base(mlpParams(5)));
  const rng = new Rng(5);
  for (const b of [3, 7]) {
    const f = batch(rng, b);
    const w = t.params.flat.slice();
    const r = await t.step(f);
    const pred = r.outputs.pred;
    assert.deepEqual(pred?.shape, [b, O]);
    // The reported loss is the loss of the parameters the step started from.
    const x = f.x?.data as Float32Array;
    const y = f.y?.data as Float32Array;
    const view = (n: string) => {
      const v = t.plan.layout.views.find((q) => q.name === n)!;
      return w.subarray(v.offset, v.offset + v.size);
    };
    let sse = 0;
    for (let i = 0; i < b; i++)
      for (let o = 0; o < O; o++) {
        let acc = view('b2')[o] as number;
        for (let j = 0; j < H; j++) {
          let z = view('b1')[j] as number;
          for (let k = 0; k < D; k++)
            z += (view('w1')[j * D + k] as number) * (x[i * D + k] as number);
          const gz = 0.5 * z * (1 + erf(z / Math.SQRT2));
          acc += (view('w2')[o * H + j] as number) * gz;
        }
        assert.ok(Math.abs(acc - (pred?.data[i * O + o] as number)) < 1e-5);
        sse += (acc - (y[i * O + o] as number)) ** 2;
      }
    assert.ok(Math.abs(r.loss - sse / (b * O)) < 1e-5 * Math.max(1, r.loss));
  }
  await t.release();
});

// Abramowitz & Stegun 7.1.26 is too coarse for 1e-5; use the series / continued fraction.
function erf(x: number): number {
  const t = Math.abs(x);
  let sum = t;
  let term = t;
  for (let n = 1; n < 60; n++) {
    term *= (-t * t) / n;
    sum += term / (2 * n + 1);
  }
  const r = (2 / Math.sqrt(Math.PI)) * sum;
  return x < 0 ? -r : r;
}

test('bad feeds are ShapeErrors naming the input', async () => {
  const t = await createTrainer(base(mlpParams()));
  const rng = new Rng(6);
  const good = batch(rng, 4);
  const cases: [Feeds, RegExp][] = [
    [{ x: good.x! }, /missing input 'y'/],
    [{ ...good, y: tensor('float64', [4, O]) }, /'y' must be float32, got float64/],
    [{ ...good, y: tensor('float32', [4, O + 1]) }, /'y' expects \[B,3\], got \[4,4\]/],
    [{ ...good, y: tensor('float32', [5, O]) }, /dim 'B' is 4 elsewhere but 5 in 'y'/],
  ];
  for (const [f, re] of cases)
    await assert.rejects(t.step(f), (e: unknown) => e instanceof ShapeError && re.test(e.message));
  await assert.rejects(t.step([good, good]), /expected 1 micro-batch feeds, got 2/);
  assert.equal(t.stepCount, 0);
  await t.release();
});

test('a shape mismatch in the forward fails at build time, naming the op and both shapes', async () => {
  const build = (g: Graph, p: Readonly<Record<string, Var>>) => {
    const x = g.input('x', 'float32', [4, D + 1]);
    return { loss: x.matmul(p.w1!, { transB: true }).sum() };
  };
  await assert.rejects(
    createTrainer({ ...base(mlpParams()), build }),
    (e: unknown) =>
      e instanceof ShapeError &&
      e.op === 'matmul' &&
      /\[4,7\]/.test(e.message) &&
      /\[5,6\]/.test(e.message),
  );
});

test('bad trainer options are ConfigErrors naming the field', async () => {
  const store = mlpParams();
  const bad: [Partial<TrainerOptions>, RegExp][] = [
    [{ accumulation: 0 }, /field 'accumulation'/],
    [{ max_grad_norm: -1 }, /field 'max_grad_norm'/],
    [{ nonFinite: 'ignore' as never }, /field 'nonFinite'/],
    [{ schedule: { type: 'linear' } }, /field 'schedule.total_steps'/],
    [{ optimizer: { type: 'adamw', learning_rate: 1, eps: -1 } }, /field 'optimizer.eps'/],
    [{ build: (g, p) => ({ ...mlp(g, p), outputs: { loss: p.w1! } }) }, /'loss' is reserved/],
    [
      { params: ParamStore.create([{ name: 'w', shape: [2], frozen: true }], { seed: 0 }) },
      /no trainable/,
    ],
  ];
  for (const [o, re] of bad)
    await assert.rejects(
      createTrainer({ ...base(store), ...o }),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      re.source,
    );
  await assert.rejects(
    createTrainer({ ...base(store), build: (g, p) => ({ loss: mlp(g, p, 4).outputs.pred }) }),
    (e: unknown) => e instanceof ShapeError && /loss must be a scalar/.test(e.message),
  );
});

test('overlapping steps are refused: both would write the same buffer set', async () => {
  const t = await createTrainer(base(mlpParams()));
  const rng = new Rng(8);
  const first = t.step(batch(rng, 4));
  await assert.rejects(
    t.step(batch(rng, 4)),
    (e: unknown) => e instanceof TrainingError && /while a step is running/.test(e.message),
  );
  await assert.rejects(t.load(await t.state()), /load called while a step is running/);
  assert.equal((await first).step, 1);
  assert.equal((await t.step(batch(rng, 4))).step, 2);
  await t.release();
});
