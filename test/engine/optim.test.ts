// Optimizer parity with torch: replays the 10-step trajectories recorded by
// scripts/fixtures/adamw_torch.py (AdamW, AdamW + decay mask + clipping + linear warmup, SGD
// momentum, SGD Nesterov + clipping) through the step runner and compares every step.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { Graph, Var } from '../../src/engine/graph.ts';
import type { OptimizerConfig } from '../../src/engine/optim.ts';
import { optimizerScalars, parseOptimizer } from '../../src/engine/optim.ts';
import { ParamStore, planLayout } from '../../src/engine/params.ts';
import { tensor } from '../../src/engine/runtime.ts';
import type { ScheduleConfig } from '../../src/engine/schedule.ts';
import { createTrainer } from '../../src/engine/step.ts';
import { planChunks } from '../../src/engine/step-graph.ts';
import { ConfigError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { fixture } from '../helpers/shared.ts';

interface Step {
  loss: number;
  grad_norm: number;
  lr: number;
  params: Record<string, number[]>;
  state: Record<string, Record<string, number[]>>;
}
interface Case {
  optimizer: OptimizerConfig;
  shapes: Record<string, number[]>;
  feed_shapes: Record<string, number[]>;
  no_decay?: string[];
  max_grad_norm?: number;
  schedule?: ScheduleConfig & { total_steps: number };
  init: Record<string, number[]>;
  feeds: Record<string, number[]>[];
  steps: Step[];
}

const REGEN = '/usr/bin/python3 scripts/fixtures/adamw_torch.py';
const doc = JSON.parse(readFileSync(fixture('engine', 'optim_torch.json'), 'utf8')) as {
  format: string;
  regenerate: string;
  cases: Record<string, Case>;
};

/** |a − b| <= atol + rtol·|b| elementwise, with a message naming the first offender. */
function close(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  what: string,
  rtol = 1e-5,
  atol = 2e-7,
  against = 'torch',
) {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    const y = b[i] as number;
    if (!(Math.abs(x - y) <= atol + rtol * Math.abs(y)))
      assert.fail(
        `${what}[${i}]: got ${x}, ${against} ${y}${against === 'torch' ? ` (regenerate with: ${REGEN})` : ''}`,
      );
  }
}

// Least squares (cases 2-4) or sum(p * G) (case 1), the same losses the script differentiates.
function builder(name: string, c: Case) {
  return (g: Graph, p: Readonly<Record<string, Var>>) => {
    if (name === 'adamw_fixed_grads') {
      const a = g.input('g.a', 'float32', c.feed_shapes['g.a'] as number[]);
      const b = g.input('g.b', 'float32', c.feed_shapes['g.b'] as number[]);
      return { loss: p.a!.mul(a).sum().add(p.b!.mul(b).sum()) };
    }
    const x = g.input('x', 'float32', c.feed_shapes.x as number[]);
    const y = g.input('y', 'float32', c.feed_shapes.y as number[]);
    const pred = x.matmul(p.weight!, { transB: true }).add(p.bias!);
    const err = pred.sub(y);
    return { loss: err.mul(err).mean() };
  };
}

test('fixture header names the regenerating command', () => {
  assert.equal(doc.format, 'instructkit optimizer trajectory v1');
  assert.equal(doc.regenerate, REGEN);
  assert.equal(Object.keys(doc.cases).length, 4);
});

for (const [name, c] of Object.entries(doc.cases)) {
  test(`${name}: 10 steps equal torch.optim within float32 tolerance`, async () => {
    const params = ParamStore.create(
      Object.entries(c.shapes).map(([n, shape]) => ({
        name: n,
        shape,
        init: { kind: 'data' as const, data: c.init[n] as number[] },
        decay: !(c.no_decay ?? []).includes(n),
      })),
      { seed: 0 },
    );
    const { total_steps, ...schedule } = c.schedule ?? { total_steps: undefined };
    const t = await createTrainer({
      build: builder(name, c),
      params,
      optimizer: c.optimizer,
      max_grad_norm: c.max_grad_norm,
      schedule,
      totalSteps: total_steps,
      session: { threads: 1 },
    });
    const slots =
      parseOptimizer(c.optimizer).type === 'adamw'
        ? ['exp_avg', 'exp_avg_sq']
        : ['momentum_buffer'];
    for (let k = 0; k < c.steps.length; k++) {
      const ref = c.steps[k] as Step;
      const feeds: Record<string, ReturnType<typeof tensor>> = {};
      for (const [n, v] of Object.entries(c.feeds[k] as Record<string, number[]>))
        feeds[n] = tensor('float32', c.feed_shapes[n] as number[], Float32Array.from(v));
      const r = await t.step(feeds);
      assert.equal(r.step, k + 1);
      assert.ok(
        Math.abs(r.lr - ref.lr) <= 1e-12 * Math.max(1, ref.lr),
        `step ${k + 1} lr ${r.lr} vs ${ref.lr}`,
      );
      close([r.loss], [ref.loss], `${name} step ${k + 1} loss`, 1e-5, 1e-6);
      close([r.gradNorm], [ref.grad_norm], `${name} step ${k + 1} grad_norm`, 1e-5, 1e-6);
      for (const n of Object.keys(c.shapes)) {
        close(t.params.get(n), ref.params[n] as number[], `${name} step ${k + 1} ${n}`);
        const view = t.params.view(n);
        for (const s of slots)
          close(
            t.slot(s).subarray(view.offset, view.offset + view.size),
            ref.state[n]?.[s] as number[],
            `${name} step ${k + 1} ${n}.${s}`,
            2e-5,
            1e-9,
          );
      }
    }
    await t.release();
  });
}

test('AdamW scalars follow torch: bias corrections, decoupled decay factor', () => {
  const c = parseOptimizer({
    type: 'adamw',
    learning_rate: 0.1,
    betas: [0.9, 0.99],
    weight_decay: 0.5,
  });
  const s = optimizerScalars(c, 3, 0.1);
  assert.equal(s['opt.decay'], 1 - 0.1 * 0.5);
  assert.ok(Math.abs((s['opt.neg_step_size'] as number) + 0.1 / (1 - 0.9 ** 3)) < 1e-15);
  assert.ok(Math.abs((s['opt.bc2_sqrt'] as number) - Math.sqrt(1 - 0.99 ** 3)) < 1e-15);
  const sgd = parseOptimizer({ type: 'sgd', learning_rate: 0.1, momentum: 0.9, dampening: 0.25 });
  assert.equal(optimizerScalars(sgd, 1, 0.1)['opt.damp'], 1);
  assert.equal(optimizerScalars(sgd, 2, 0.1)['opt.damp'], 0.75);
});

test('bad optimizer configs are ConfigErrors naming the field', () => {
  const bad: [unknown, RegExp][] = [
    [{ type: 'adam', learning_rate: 1 }, /field 'optimizer.type'/],
    [{ type: 'adamw', learning_rate: -1 }, /field 'optimizer.learning_rate'/],
    [{ type: 'adamw', learning_rate: 1, betas: [0.9, 1.5] }, /field 'optimizer.betas.1'/],
    [{ type: 'adamw', learning_rate: 1, beta1: 0.9 }, /optimizer/],
    [{ type: 'sgd', learning_rate: 1, nesterov: true }, /field 'optimizer.nesterov'/],
  ];
  for (const [cfg, re] of bad)
    assert.throws(
      () => parseOptimizer(cfg as OptimizerConfig),
      (e: unknown) => e instanceof ConfigError && re.test(e.message),
      JSON.stringify(cfg),
    );
});

test('weight-decay masks: decoupled (AdamW) and L2 (SGD) decay touch only masked params', async () => {
  // Zero gradients isolate the decay: AdamW's Adam term is 0 / (0 + eps) = 0, SGD's d = wd·p.
  const make = () =>
    ParamStore.create(
      [
        { name: 'w', shape: [2, 3], init: { kind: 'constant', value: 2 } },
        { name: 'g', shape: [3], init: { kind: 'constant', value: 2 }, decay: true },
        { name: 'e', shape: [4, 1], init: { kind: 'constant', value: 2 }, decay: false },
      ],
      { seed: 0 },
    );
  const build = (g: Graph, p: Readonly<Record<string, Var>>) => ({
    loss: p
      .w!.sum()
      .add(p.g!.sum())
      .add(p.e!.sum())
      .mul(g.input('zero', 'float32', [])),
  });
  const feeds = { zero: tensor('float32', [], Float32Array.of(0)) };
  const lr = 0.1;
  const wd = 0.5;
  for (const optimizer of [
    { type: 'adamw' as const, learning_rate: lr, weight_decay: wd },
    { type: 'sgd' as const, learning_rate: lr, weight_decay: wd, momentum: 0.9 },
  ]) {
    const t = await createTrainer({ build, params: make(), optimizer, session: { threads: 1 } });
    // w and g decay, e does not: decay is a property of whole chunks, so they are apart.
    assert.deepEqual(
      t.plan.chunks.map((c) => [c.offset, c.size, c.decay]),
      [
        [0, 9, true],
        [9, 4, false],
      ],
    );
    await t.step(feeds);
    await t.step(feeds);
    // AdamW: p·(1 − lr·wd) per step. SGD: buf = wd·p then μ·buf + wd·p; p −= lr·buf.
    let want: number;
    if (optimizer.type === 'adamw') want = 2 * Math.fround(1 - lr * wd) ** 2;
    else {
      const p1 = 2 - lr * wd * 2;
      want = p1 - lr * (0.9 * wd * 2 + wd * p1);
    }
    for (const n of ['w', 'g'])
      close(
        t.params.get(n),
        new Array(t.params.get(n).length).fill(want),
        `${optimizer.type} ${n}`,
      );
    assert.deepEqual([...t.params.get('e')], [2, 2, 2, 2], `${optimizer.type}: undecayed param`);
    await t.release();
  }
});

test('planChunks splits big parameters, groups small neighbours of one decay class', () => {
  const layout = planLayout(
    [10, 1, 1, 3, 1].map((n, i) => ({ name: `p${i}`, shape: [n], decay: [0, 3].includes(i) })),
  );
  assert.deepEqual(
    planChunks(layout, 4, 2).map((c) => [c.offset, c.size, c.decay]),
    [
      [0, 4, true],
      [4, 3, true],
      [7, 3, true],
      [10, 2, false],
      [12, 3, true],
      [15, 1, false],
    ],
  );
});

test('AdamW over split and grouped chunks with clipping matches a float64 reference', async () => {
  // 'big' is over MAX_CHUNK values, so its gradient is split into pieces; b1 and b2 share a
  // chunk. The loss is linear, so each gradient is the fed tensor itself.
  const shapes: Record<string, number[]> = { big: [1100, 1000], b1: [3], b2: [5], w: [4, 2] };
  const decay: Record<string, boolean> = { big: true, b1: false, b2: false, w: true };
  const rng = new Rng(5);
  const init: Record<string, Float32Array> = {};
  const grads: Record<string, Float32Array> = {};
  for (const [n, s] of Object.entries(shapes)) {
    const len = s.reduce((p, q) => p * q, 1);
    init[n] = Float32Array.from({ length: len }, () => rng.normal());
    grads[n] = Float32Array.from({ length: len }, () => rng.normal());
  }
  const params = ParamStore.create(
    Object.entries(shapes).map(([name, shape]) => ({
      name,
      shape,
      init: { kind: 'data' as const, data: init[name] as Float32Array },
      decay: decay[name] as boolean,
    })),
    { seed: 0 },
  );
  const [lr, wd, b1, b2, eps, maxNorm] = [0.01, 0.1, 0.9, 0.999, 1e-8, 50];
  const t = await createTrainer({
    build: (g, p) => {
      const terms = Object.keys(shapes).map((n) =>
        p[n]!.mul(g.input(`g.${n}`, 'float32', shapes[n]!)).sum(),
      );
      return { loss: terms.reduce((x, y) => x.add(y)) };
    },
    params,
    optimizer: { type: 'adamw', learning_rate: lr, weight_decay: wd, betas: [b1, b2], eps },
    max_grad_norm: maxNorm,
  });
  assert.ok(t.plan.chunks.length >= 4, `${t.plan.chunks.length} chunks`);
  const feeds = Object.fromEntries(
    Object.entries(grads).map(([n, d]) => [`g.${n}`, tensor('float32', shapes[n]!, d)]),
  );
  let sq = 0;
  for (const d of Object.values(grads)) for (const x of d) sq += x * x;
  const norm = Math.sqrt(sq);
  const coef = Math.min(1, maxNorm / (norm + 1e-6));
  const ref = Object.fromEntries(
    Object.entries(init).map(([n, d]) => [
      n,
      { p: Float64Array.from(d), m: new Float64Array(d.length), v: new Float64Array(d.length) },
    ]),
  );
  for (let step = 1; step <= 3; step++) {
    const r = await t.step(feeds);
    close([r.gradNorm], [norm], `step ${step} grad_norm`, 1e-5, 0, 'reference');
    for (const [n, s] of Object.entries(ref)) {
      const g = grads[n] as Float32Array;
      for (let i = 0; i < g.length; i++) {
        const gc = (g[i] as number) * coef;
        if (decay[n]) s.p[i] = (s.p[i] as number) * (1 - lr * wd);
        s.m[i] = b1 * (s.m[i] as number) + (1 - b1) * gc;
        s.v[i] = b2 * (s.v[i] as number) + (1 - b2) * gc * gc;
        const denom = Math.sqrt(s.v[i] as number) / Math.sqrt(1 - b2 ** step) + eps;
        s.p[i] = (s.p[i] as number) - (lr / (1 - b1 ** step)) * ((s.m[i] as number) / denom);
      }
      close(t.params.get(n), s.p, `step ${step} ${n}`, 1e-5, 1e-6, 'reference');
      const view = t.params.view(n);
      const v = t.slot('exp_avg_sq').subarray(view.offset, view.offset + view.size);
      close(v, s.v, `step ${step} ${n}.exp_avg_sq`, 1e-5, 1e-12, 'reference');
    }
  }
  await t.release();
});
