// Every primitive op through checkOp: float64 autodiff gradient vs central finite
// differences, plus the forward against a plain-TS reference where one is cheap to write.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { grad } from '../../src/engine/autodiff.ts';
import { checkOp } from '../../src/engine/gradcheck.ts';
import { Graph } from '../../src/engine/graph.ts';
import * as O from '../../src/engine/ops.ts';
import { createSession, tensor } from '../../src/engine/runtime.ts';
import { Rng } from '../../src/util/rng.ts';

const map = (f: (v: number) => number) => (x: Float64Array) => x.map(f);
const zip = (f: (a: number, b: number) => number) => (a: Float64Array, b: Float64Array) =>
  a.map((v, i) => f(v, b[i] as number));
const pos = { shape: [2, 3], scale: 0.3, shift: 1.5 } as const; // strictly positive inputs

test('elementwise binary with broadcasting', async () => {
  await checkOp('add', [{ shape: [2, 3] }, { shape: [2, 3] }], (a, b) => a.add(b), {
    reference: zip((a, b) => a + b),
  });
  await checkOp('add-bcast', [{ shape: [2, 3] }, { shape: [3] }], (a, b) => a.add(b));
  await checkOp('sub-bcast', [{ shape: [2, 1, 3] }, { shape: [4, 1] }], (a, b) => a.sub(b));
  await checkOp('mul-bcast', [{ shape: [2, 3] }, { shape: [1, 3] }], (a, b) => a.mul(b));
  await checkOp('mul-self', [{ shape: [2, 3] }], (a) => a.mul(a), { reference: map((v) => v * v) });
  await checkOp('div', [{ shape: [2, 3] }, pos], (a, b) => a.div(b), {
    reference: zip((a, b) => a / b),
  });
  await checkOp('pow', [pos, { shape: [3], scale: 0.5, shift: 1 }], (a, b) => a.pow(b));
  await checkOp('pow-const', [pos], (a) => a.pow(3), { reference: map((v) => v ** 3) });
  await checkOp('maximum', [{ shape: [2, 3] }, { shape: [2, 3] }], (a, b) => O.maximum(a, b), {
    reference: zip(Math.max),
  });
  await checkOp('minimum', [{ shape: [2, 3] }, { shape: [3] }], (a, b) => O.minimum(a, b));
  await checkOp('sum_n', [{ shape: [2, 3] }, { shape: [3] }, { shape: [2, 1] }], (a, b, c) =>
    O.sumN([a, b, c]),
  );
});

test('elementwise unary', async () => {
  await checkOp('neg', [{ shape: [2, 3] }], (x) => x.neg(), { reference: map((v) => -v) });
  await checkOp('exp', [{ shape: [2, 3] }], (x) => x.exp(), { reference: map(Math.exp) });
  await checkOp('log', [pos], (x) => x.log(), { reference: map(Math.log) });
  await checkOp('sqrt', [pos], (x) => x.sqrt(), { reference: map(Math.sqrt) });
  await checkOp('reciprocal', [pos], (x) => x.reciprocal(), { reference: map((v) => 1 / v) });
  await checkOp('sigmoid', [{ shape: [2, 3] }], (x) => x.sigmoid(), {
    reference: map((v) => 1 / (1 + Math.exp(-v))),
  });
  await checkOp('tanh', [{ shape: [2, 3] }], (x) => x.tanh(), { reference: map(Math.tanh) });
  await checkOp('relu', [{ shape: [2, 3] }], (x) => x.relu(), {
    reference: map((v) => Math.max(v, 0)),
  });
  await checkOp('abs', [{ shape: [2, 3] }], (x) => x.abs(), { reference: map(Math.abs) });
  await checkOp('silu', [{ shape: [2, 3] }], (x) => O.silu(x), {
    reference: map((v) => v / (1 + Math.exp(-v))),
  });
});

// erf: onnxruntime has no float64 Erf kernel, so even a float64 graph runs Erf in float32, and
// central differences of that forward (step 1e-6 on values rounded to ~1e-7) would be noise.
// So the forward is compared with a float64 TS reference (to float32 accuracy), and the graph's
// gradient, built from our vjp formula, is compared with central differences of the reference.
// That is still a finite-difference check of the formula: a wrong vjp fails it (erf's vjp is
// all float64, so it is held to 1e-8; gelu-erf's reads erf in float32, hence its atol of 1e-6).
function erfRef(x: number): number {
  // Maclaurin series, exact to double precision for |x| < 3 (the inputs here).
  let sum = 0;
  let term = x;
  for (let n = 0; n < 80; n++) {
    sum += term / (2 * n + 1);
    term *= (-x * x) / (n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const geluErf = (v: number) => 0.5 * v * (1 + erfRef(v / Math.SQRT2));
const geluTanh = (v: number) =>
  0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
const f32 = { refTol: 1e-6, fdOnReference: true, rtol: 1e-5, atol: 1e-6 };

test('activations (gelu, erf)', async () => {
  await checkOp('erf', [{ shape: [2, 3] }], (x) => O.erf(x), {
    reference: map(erfRef),
    ...f32,
    rtol: 1e-8,
    atol: 1e-9,
  });
  await checkOp('gelu-erf', [{ shape: [2, 3] }], (x) => O.gelu(x), {
    reference: map(geluErf),
    ...f32,
  });
  await checkOp('gelu-tanh', [{ shape: [2, 3] }], (x) => O.gelu(x, 'tanh'), {
    reference: map(geluTanh),
  });
});

test('cast and where', async () => {
  await checkOp(
    'cast-f32',
    [{ shape: [2, 3], values: [0.5, -1, 2, 0.25, 3, -0.75] }],
    (x) => x.cast('float32').cast('float64'),
    {
      reference: (x) => x,
      fdOnReference: true,
    },
  );
  await checkOp(
    'where',
    [{ shape: [2, 3], dtype: 'int64', low: 0, high: 2 }, { shape: [2, 3] }, { shape: [3] }],
    (c, a, b) => O.where(O.equal(c, 1), a, b),
  );
});

test('reductions and softmax', async () => {
  await checkOp('reduce_sum', [{ shape: [2, 3, 4] }], (x) => x.sum([1]));
  await checkOp('reduce_sum-all', [{ shape: [2, 3] }], (x) => x.sum(), {
    reference: (x) => [x.reduce((p, q) => p + q, 0)],
  });
  await checkOp('reduce_sum-keep', [{ shape: [2, 3, 4] }], (x) => x.sum([0, 2], true));
  await checkOp('reduce_sum_square', [{ shape: [2, 3, 4] }], (x) => O.reduceSumSquare(x, [1]));
  await checkOp('reduce_sum_square-all', [{ shape: [2, 3] }], (x) => O.reduceSumSquare(x), {
    reference: (x) => [x.reduce((p, q) => p + q * q, 0)],
  });
  await checkOp('reduce_mean', [{ shape: [2, 3, 4] }], (x) => x.mean([-1]));
  await checkOp('reduce_mean-keep', [{ shape: [2, 3] }], (x) => x.mean([0], true));
  await checkOp('reduce_max', [{ shape: [2, 3, 4] }], (x) => x.max([1]));
  await checkOp('softmax', [{ shape: [2, 5] }], (x) => x.softmax(-1));
  await checkOp('softmax-axis0', [{ shape: [3, 2, 2] }], (x) => x.softmax(0));
  await checkOp('log_softmax', [{ shape: [2, 5] }], (x) => x.logSoftmax(-1));
});

test('matmul and FusedMatMul (all transpose cases, batch broadcast)', async () => {
  const a = { shape: [3, 4] };
  await checkOp('matmul', [a, { shape: [4, 2] }], (x, y) => x.matmul(y));
  await checkOp('matmul-tA', [{ shape: [4, 3] }, { shape: [4, 2] }], (x, y) =>
    x.matmul(y, { transA: true }),
  );
  await checkOp('matmul-tB', [a, { shape: [2, 4] }], (x, y) =>
    x.matmul(y, { transB: true, alpha: 0.5 }),
  );
  await checkOp('matmul-tAtB', [{ shape: [4, 3] }, { shape: [2, 4] }], (x, y) =>
    x.matmul(y, { transA: true, transB: true, alpha: -2 }),
  );
  await checkOp('matmul-batch-weight', [{ shape: [2, 3, 4] }, { shape: [4, 5] }], (x, y) =>
    x.matmul(y),
  );
  await checkOp('matmul-batch-weightT', [{ shape: [2, 3, 4] }, { shape: [5, 4] }], (x, y) =>
    x.matmul(y, { transB: true }),
  );
  await checkOp('matmul-batched', [{ shape: [2, 2, 3, 4] }, { shape: [2, 2, 4, 3] }], (x, y) =>
    x.matmul(y),
  );
  await checkOp('matmul-bcast', [{ shape: [2, 1, 3, 4] }, { shape: [3, 4, 2] }], (x, y) =>
    x.matmul(y),
  );
  await checkOp('matmul-tA-batch', [{ shape: [2, 4, 3] }, { shape: [2, 4, 5] }], (x, y) =>
    x.matmul(y, { transA: true }),
  );
});

test('shape ops', async () => {
  await checkOp('reshape', [{ shape: [2, 3, 4] }], (x) => x.reshape([6, -1]));
  await checkOp('transpose', [{ shape: [2, 3, 4] }], (x) => x.transpose([2, 0, 1]));
  await checkOp('slice', [{ shape: [3, 5] }], (x) => x.slice(1, 1, 4));
  await checkOp('slice-neg', [{ shape: [3, 5] }], (x) => x.slice(-1, -2));
  await checkOp('pad', [{ shape: [2, 3] }], (x) => O.pad(x, [1, 0, 0, 2]));
  await checkOp('concat', [{ shape: [2, 3] }, { shape: [2, 1] }], (x, y) => O.concat([x, y], 1));
  await checkOp('split', [{ shape: [5, 2] }], (x) => {
    const [p, q] = O.split(x, 0, [2, 3]);
    return O.concat([q!, p!.mul(2)], 0);
  });
  await checkOp('split-unused', [{ shape: [5, 2] }], (x) => O.split(x, 0, [2, 3])[1]!);
  await checkOp('unsqueeze-squeeze', [{ shape: [2, 3] }], (x) =>
    x.unsqueeze([0, 2]).mul(2).squeeze([0]),
  );
  await checkOp('expand', [{ shape: [3, 1] }], (x) => x.expand([2, 3, 4]));
});

test('indexing ops', async () => {
  const idx = { shape: [2, 3], dtype: 'int64', values: [0, 3, 1, 3, 3, 4] } as const;
  await checkOp('gather-embedding', [{ shape: [5, 2] }, idx], (w, i) => O.gather(w, i));
  // Data of rank != 2 takes the ScatterND(add) gradient instead of the one-hot GEMM; the
  // repeated ids (3 three times) check that hits on the same slice accumulate.
  await checkOp('gather-rank3', [{ shape: [5, 2, 3] }, idx], (w, i) => O.gather(w, i));
  await checkOp('gather-rank1', [{ shape: [5] }, idx], (w, i) => O.gather(w, i), {
    reference: (w) => [0, 3, 1, 3, 3, 4].map((k) => w[k] as number),
  });
  await checkOp(
    'gather_elements',
    [{ shape: [2, 4] }, { shape: [2, 3], dtype: 'int64', values: [0, 3, 3, 1, 1, 2] }],
    (x, i) => O.gatherElements(x, i, 1),
  );
  await checkOp(
    'scatter_elements-add',
    [{ shape: [2, 4] }, { shape: [2, 2], dtype: 'int64', values: [1, 1, 0, 3] }, { shape: [2, 2] }],
    (d, i, u) => O.scatterElements(d, i, u, 1, 'add'),
  );
  await checkOp(
    'scatter_elements-none',
    [{ shape: [2, 4] }, { shape: [2, 2], dtype: 'int64', values: [1, 2, 0, 3] }, { shape: [2, 2] }],
    (d, i, u) => O.scatterElements(d, i, u, 1, 'none'),
  );
  await checkOp(
    'scatter_nd-add',
    [{ shape: [4, 2] }, { shape: [3, 1], dtype: 'int64', values: [1, 1, 3] }, { shape: [3, 2] }],
    (d, i, u) => O.scatterND(d, i, u, 'add'),
  );
  await checkOp(
    'gather_nd',
    [{ shape: [3, 2] }, { shape: [2, 2], dtype: 'int64', values: [0, 1, 2, 0] }],
    (d, i) => O.gatherND(d, i),
  );
});

test('weight gradients take both transpose orientations, with static and symbolic rows', async () => {
  // linear's dW = dYᵀ·X runs as a plain MatMul after transposing the cheaper side (matmulTN):
  // X when the weight has fewer outputs than inputs, dY and then the result otherwise.
  await checkOp('matmul-weightT-wide', [{ shape: [3, 2] }, { shape: [8, 2] }], (x, y) =>
    x.matmul(y, { transB: true }),
  );
  await checkOp('matmul-weight-wide', [{ shape: [3, 8] }, { shape: [8, 2] }], (x, y) =>
    x.matmul(y),
  );
  const rng = new Rng(4);
  for (const out of [2, 5]) {
    const g = new Graph({ name: `symbolic-${out}` });
    const x = g.input('x', 'float64', ['R', 3]);
    const up = g.input('up', 'float64', ['R', out]);
    const w = g.param('w', [out, 3], { dtype: 'float64' });
    const [dw] = grad(x.matmul(w, { transB: true }).mul(up).sum(), [w]);
    g.output('dw', dw!);
    const s = await createSession(g, { threads: 1 });
    const R = 4;
    const xd = Float64Array.from({ length: R * 3 }, () => rng.normal());
    const ud = Float64Array.from({ length: R * out }, () => rng.normal());
    const r = await s.run({
      x: tensor('float64', [R, 3], xd),
      up: tensor('float64', [R, out], ud),
      w: tensor('float64', [out, 3], new Float64Array(out * 3)),
    });
    const got = r.dw!.data as Float64Array;
    for (let o = 0; o < out; o++)
      for (let i = 0; i < 3; i++) {
        let want = 0;
        for (let k = 0; k < R; k++) want += (ud[k * out + o] as number) * (xd[k * 3 + i] as number);
        assert.ok(Math.abs((got[o * 3 + i] as number) - want) < 1e-12, `out ${out} dW[${o},${i}]`);
      }
    await s.release();
  }
});
