// Composites with hand-written backward (norms, SwiGLU, masked softmax, cross-entropy,
// dropout, RoPE, attention) through checkOp, plus float32 fused kernels vs float64 references.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  attention,
  causalMask,
  paddingMask,
  rope,
  ropeTables,
  segmentMask,
} from '../../src/engine/attention.ts';
import { grad } from '../../src/engine/autodiff.ts';
import {
  crossEntropy,
  layerNorm,
  linearCrossEntropy,
  linearTokenLogProbs,
  maskedSoftmax,
  rmsNorm,
  swiglu,
  tokenLogProbs,
} from '../../src/engine/composite.ts';
import { checkOp } from '../../src/engine/gradcheck.ts';
import { Graph, type Var } from '../../src/engine/graph.ts';
import { dropout } from '../../src/engine/nn.ts';
import * as O from '../../src/engine/ops.ts';
import { createSession, type Tensor, tensor } from '../../src/engine/runtime.ts';
import { Rng } from '../../src/util/rng.ts';

/** Row-wise reference over the last dim of a [rows, d] array. */
function rows(x: Float64Array, d: number, f: (r: Float64Array) => ArrayLike<number>): Float64Array {
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i += d) out.set(f(x.subarray(i, i + d)), i);
  return out;
}
const rmsRef = (x: Float64Array, w: Float64Array, eps: number) =>
  rows(x, w.length, (r) => {
    const ms = r.reduce((p, v) => p + v * v, 0) / r.length;
    return r.map((v, j) => (v / Math.sqrt(ms + eps)) * (w[j] as number));
  });
const lnRef = (x: Float64Array, w: Float64Array, b: Float64Array, eps: number) =>
  rows(x, w.length, (r) => {
    const mu = r.reduce((p, v) => p + v, 0) / r.length;
    const vr = r.reduce((p, v) => p + (v - mu) ** 2, 0) / r.length;
    return r.map((v, j) => ((v - mu) / Math.sqrt(vr + eps)) * (w[j] as number) + (b[j] as number));
  });
const logSoftmaxRow = (r: Float64Array) => {
  const m = Math.max(...r);
  const lse = m + Math.log(r.reduce((p, v) => p + Math.exp(v - m), 0));
  return r.map((v) => v - lse);
};

test('rmsNorm and layerNorm (float64 gradients, forward vs TS)', async () => {
  await checkOp('rms_norm', [{ shape: [2, 3, 4] }, { shape: [4] }], (x, w) => rmsNorm(x, w, 1e-6), {
    reference: (x, w) => rmsRef(x, w, 1e-6),
  });
  await checkOp(
    'layer_norm',
    [{ shape: [3, 5] }, { shape: [5] }, { shape: [5] }],
    (x, w, b) => layerNorm(x, w, b),
    {
      reference: (x, w, b) => lnRef(x, w, b, 1e-5),
    },
  );
  await checkOp('layer_norm-nobias', [{ shape: [2, 4] }, { shape: [4] }], (x, w) =>
    layerNorm(x, w),
  );
});

test('swiglu and masked softmax', async () => {
  const silu = (v: number) => v / (1 + Math.exp(-v));
  await checkOp('swiglu', [{ shape: [2, 3] }, { shape: [2, 3] }], (a, b) => swiglu(a, b), {
    reference: (a, b) => a.map((v, i) => silu(v) * (b[i] as number)),
  });
  await checkOp('masked_softmax-causal', [{ shape: [2, 3, 3] }], (s) =>
    maskedSoftmax(s, causalMask(s.graph, 3, 'float64')),
  );
  await checkOp('masked_softmax-nomask', [{ shape: [2, 4] }], (s) => maskedSoftmax(s));
});

test('cross-entropy with ignore_index, per-token log-probs', async () => {
  const logits = { shape: [2, 3, 5] };
  const targets = { shape: [2, 3], dtype: 'int64', values: [1, -100, 4, 0, 2, -100] } as const;
  const ref = (l: Float64Array, t: Float64Array) => {
    const out = new Float64Array(t.length);
    for (let i = 0; i < t.length; i++)
      out[i] =
        t[i] === -100 ? 0 : (logSoftmaxRow(l.subarray(i * 5, i * 5 + 5))[t[i] as number] as number);
    return out;
  };
  await checkOp('token_log_probs', [logits, targets], (l, t) => tokenLogProbs(l, t), {
    reference: ref,
  });
  await checkOp('cross_entropy-mean', [logits, targets], (l, t) => crossEntropy(l, t), {
    reference: (l, t) => [-ref(l, t).reduce((p, v) => p + v, 0) / 4],
  });
  await checkOp('cross_entropy-sum', [logits, targets], (l, t) =>
    crossEntropy(l, t, { reduction: 'sum' }),
  );
  await checkOp('cross_entropy-none', [logits, targets], (l, t) =>
    crossEntropy(l, t, { reduction: 'none' }),
  );
  const hidden = { shape: [2, 3, 4] };
  const lmHead = { shape: [5, 4] };
  await checkOp(
    'linear_token_log_probs',
    [hidden, lmHead, targets],
    (h, w, t) => linearTokenLogProbs(h, w, t),
    {
      reference: (h, w, t) => {
        const logits = new Float64Array(30);
        for (let i = 0; i < 6; i++)
          for (let v = 0; v < 5; v++)
            for (let k = 0; k < 4; k++)
              logits[i * 5 + v]! += (h[i * 4 + k] as number) * (w[v * 4 + k] as number);
        return ref(logits, t);
      },
    },
  );
  await checkOp('linear_cross_entropy', [hidden, lmHead, targets], (h, w, t) =>
    linearCrossEntropy(h, w, t),
  );
  await checkOp(
    'linear_cross_entropy-sum',
    [{ shape: [4, 4] }, lmHead, { shape: [4], dtype: 'int64', values: [0, 4, -100, 2] }],
    (h, w, t) => linearCrossEntropy(h, w, t, { reduction: 'sum' }),
  );
  const allIgnored = { shape: [2], dtype: 'int64', values: [-1, -1] } as const;
  await checkOp('cross_entropy-all-ignored', [{ shape: [2, 3] }, allIgnored], (l, t) =>
    crossEntropy(l, t, { ignoreIndex: -1 }).add(l.sum().mul(0)),
  );
});

test('rope (slice and matmul forms) and attention with GQA', async () => {
  const { cos, sin } = ropeTables(3, 4, 10000);
  const tables = (x: { graph: Graph }) =>
    [x.graph.constant(cos, [3, 4]), x.graph.constant(sin, [3, 4])] as const;
  const ropeRef = (x: Float64Array) => {
    const out = new Float64Array(x.length);
    for (let i = 0; i < x.length; i += 4) {
      const p = (i / 4) % 3;
      for (let j = 0; j < 4; j++) {
        const rot = j < 2 ? -(x[i + j + 2] as number) : (x[i + j - 2] as number);
        out[i + j] =
          (x[i + j] as number) * (cos[p * 4 + j] as number) + rot * (sin[p * 4 + j] as number);
      }
    }
    return out;
  };
  await checkOp('rope-slice', [{ shape: [1, 2, 3, 4] }], (x) => rope(x, ...tables(x), 'slice'), {
    reference: ropeRef,
    refTol: 1e-7,
  });
  await checkOp('rope-matmul', [{ shape: [1, 2, 3, 4] }], (x) => rope(x, ...tables(x), 'matmul'), {
    reference: ropeRef,
    refTol: 1e-7,
  });
  await checkOp(
    'attention-gqa',
    [{ shape: [1, 4, 3, 2] }, { shape: [1, 2, 3, 2] }, { shape: [1, 2, 3, 2] }],
    (q, k, v) => attention(q, k, v, causalMask(q.graph, 3, 'float64')),
  );
});

test('dropout is a seeded, reproducible mask with matching gradient', async () => {
  await checkOp(
    'dropout',
    [{ shape: [4, 8] }, { shape: [], dtype: 'int64', values: [7] }],
    (x, seed) => dropout(x, 0.3, seed, 1),
  );
  const g = new Graph({ name: 'dropout' });
  const x = g.input('x', 'float32', [64, 64]);
  const seed = g.input('seed', 'int64', []);
  g.output('a', dropout(x, 0.25, seed, 1));
  g.output('b', dropout(x, 0.25, seed, 2));
  const s = await createSession(g, { threads: 1 });
  const ones = tensor('float32', [64, 64], new Float32Array(4096).fill(1));
  const run = async (v: number) =>
    s.run({ x: ones, seed: tensor('int64', [], BigInt64Array.of(BigInt(v))) });
  const r1 = await run(5);
  const r2 = await run(5);
  const r3 = await run(6);
  const a1 = r1.a!.data as Float32Array;
  assert.deepEqual(a1, r2.a!.data, 'same seed, same mask');
  assert.notDeepEqual(a1, r3.a!.data, 'another seed, another mask');
  assert.notDeepEqual(a1, r1.b!.data, 'another salt, another mask');
  const kept = a1.filter((v) => v !== 0);
  assert.ok(Math.abs(kept.length / 4096 - 0.75) < 0.03, `keep rate ${kept.length / 4096}`);
  assert.ok(kept.every((v) => Math.abs(v - 1 / 0.75) < 1e-6));
});

test('attention-probability dropout: gradient check, seeded mask, a no-op at p = 0', async () => {
  // GQA shapes so the dropped probabilities also flow through repeatKvAdjoint.
  await checkOp(
    'attention-dropout',
    [
      { shape: [1, 4, 3, 2] },
      { shape: [1, 2, 3, 2] },
      { shape: [1, 2, 3, 2] },
      { shape: [], dtype: 'int64', values: [11] },
    ],
    (q, k, v, seed) =>
      attention(q, k, v, causalMask(q.graph, 3, 'float64'), undefined, { p: 0.4, seed, salt: 3 }),
  );
  const g = new Graph({ name: 'attn-dropout' });
  const q = g.input('q', 'float32', [2, 2, 8, 4]);
  const seed = g.input('seed', 'int64', []);
  g.output('plain', attention(q, q, q));
  g.output('d', attention(q, q, q, undefined, undefined, { p: 0.3, seed, salt: 1 }));
  g.output('zero', attention(q, q, q, undefined, undefined, { p: 0, seed, salt: 1 }));
  const s = await createSession(g, { threads: 1 });
  const rng = new Rng(4);
  const qv = tensor(
    'float32',
    [2, 2, 8, 4],
    Float32Array.from({ length: 128 }, () => rng.normal()),
  );
  const run = (v: number) =>
    s.run({ q: qv, seed: tensor('int64', [], BigInt64Array.of(BigInt(v))) });
  const [r1, r2, r3] = [await run(5), await run(5), await run(6)];
  assert.deepEqual(r1.d!.data, r2.d!.data, 'same seed, same output');
  assert.notDeepEqual(r1.d!.data, r3.d!.data, 'another seed, another mask');
  assert.notDeepEqual(r1.d!.data, r1.plain!.data, 'dropout changes the output');
  assert.deepEqual(r1.zero!.data, r1.plain!.data, 'p = 0 is the plain attention');
  assert.throws(
    () => attention(q, q, q, undefined, undefined, { p: 1, seed, salt: 1 }),
    /dropout p must be in \[0, 1\)/,
  );
});

test('packed-sequence mask: a token never attends across segments', async () => {
  // Two packed examples [0,0,0,1,1] and a padding position (-1): the output for example 2
  // must not change when example 1's values change.
  const g = new Graph({ name: 'packed' });
  const q = g.input('q', 'float32', [1, 1, 6, 2]);
  const seg = g.input('seg', 'int64', [1, 6]);
  g.output('y', attention(q, q, q, segmentMask(seg)));
  g.output('mask', segmentMask(seg));
  const s = await createSession(g, { threads: 1 });
  const segT = tensor('int64', [1, 6], BigInt64Array.from([0n, 0n, 0n, 1n, 1n, -1n]));
  const base = Float32Array.from({ length: 12 }, (_, i) => Math.sin(i));
  const changed = base.map((v, i) => (i < 6 ? v + 3 : v));
  const y1 = (await s.run({ q: tensor('float32', [1, 1, 6, 2], base), seg: segT })).y!
    .data as Float32Array;
  const r2 = await s.run({ q: tensor('float32', [1, 1, 6, 2], changed), seg: segT });
  const y2 = r2.y!.data as Float32Array;
  for (let i = 6; i < 12; i++) assert.equal(y1[i], y2[i], `position ${i >> 1} saw another segment`);
  const m = r2.mask!.data as Float32Array;
  const allowed = (i: number, j: number) => m[i * 6 + j] === 0;
  assert.ok(allowed(4, 3) && !allowed(3, 2) && !allowed(1, 2) && allowed(2, 0) && !allowed(5, 4));
});

test('padding mask: padded keys get no weight, real tokens match the unpadded sequence', async () => {
  // Row 0 is right-padded (3 real tokens, 2 pads), row 1 left-padded (2 pads, 3 real tokens);
  // the HF attention_mask comes in as int64 for one graph and bool for the other.
  const [T, Dh, R] = [5, 2, 3];
  const real = [
    [0, 1, 2],
    [2, 3, 4],
  ];
  const am = [1, 1, 1, 0, 0, 0, 0, 1, 1, 1];
  const rng = new Rng(7);
  const qkv = () => Float64Array.from({ length: 2 * T * Dh }, () => rng.normal());
  const [qd, kd, vd] = [qkv(), qkv(), qkv()];
  const padded = async (dtype: 'int64' | 'bool') => {
    const g = new Graph({ name: `padded-${dtype}` });
    const [q, k, v] = ['q', 'k', 'v'].map((n) => g.input(n, 'float64', [2, 1, T, Dh])) as [
      Var,
      Var,
      Var,
    ];
    const m = g.input('am', dtype, [2, T]);
    const mask = O.add(causalMask(g, T, 'float64'), paddingMask(m, 'float64')); // [2,1,T,T]
    g.output('p', maskedSoftmax(q.matmul(k, { transB: true }), mask));
    g.output('y', attention(q, k, v, mask));
    const s = await createSession(g, { threads: 1 });
    const amT =
      dtype === 'bool'
        ? tensor('bool', [2, T], Uint8Array.from(am))
        : tensor('int64', [2, T], BigInt64Array.from(am, BigInt));
    const f = (d: Float64Array) => tensor('float64', [2, 1, T, Dh], d);
    const r = await s.run({ q: f(qd), k: f(kd), v: f(vd), am: amT });
    return { p: r.p!.data as Float64Array, y: r.y!.data as Float64Array };
  };
  // The unpadded computation: each row's real tokens alone, causal mask only.
  const g = new Graph({ name: 'unpadded' });
  const [q, k, v] = ['q', 'k', 'v'].map((n) => g.input(n, 'float64', [2, 1, R, Dh])) as [
    Var,
    Var,
    Var,
  ];
  g.output('y', attention(q, k, v, causalMask(g, R, 'float64')));
  const s = await createSession(g, { threads: 1 });
  const pick = (d: Float64Array) =>
    tensor(
      'float64',
      [2, 1, R, Dh],
      Float64Array.from({ length: 2 * R * Dh }, (_, i) => {
        const [b, t, j] = [Math.floor(i / (R * Dh)), Math.floor(i / Dh) % R, i % Dh];
        return d[(b * T + real[b]![t]!) * Dh + j] as number;
      }),
    );
  const want = (await s.run({ q: pick(qd), k: pick(kd), v: pick(vd) })).y!.data as Float64Array;
  for (const dtype of ['int64', 'bool'] as const) {
    const { p, y } = await padded(dtype);
    for (let b = 0; b < 2; b++)
      for (const [t, i] of real[b]!.entries()) {
        for (let j = 0; j < T; j++)
          if (am[b * T + j] === 0)
            assert.equal(p[(b * T + i) * T + j], 0, `${dtype}: row ${b} query ${i} sees pad ${j}`);
        for (let d = 0; d < Dh; d++) {
          const got = y[(b * T + i) * Dh + d] as number;
          const ref = want[(b * R + t) * Dh + d] as number;
          assert.ok(Math.abs(got - ref) < 1e-12, `${dtype}: row ${b} token ${i}: ${got} vs ${ref}`);
        }
      }
  }
});

test('float32 fused norm kernels match the float64 path (forward and gradients)', async () => {
  const build = (dtype: 'float32' | 'float64') => {
    const g = new Graph({ name: `norms-${dtype}` });
    const x = g.input('x', dtype, [3, 8]);
    const w = g.input('w', dtype, [8]);
    const b = g.input('b', dtype, [8]);
    const y = layerNorm(rmsNorm(x, w), w, b);
    const loss = y.mul(y).sum();
    const [dx, dw, db] = grad(loss, [x, w, b]);
    g.output('y', y);
    g.output('dx', dx!);
    g.output('dw', dw!);
    g.output('db', db!);
    return g;
  };
  const xs = Float64Array.from({ length: 24 }, (_, i) => Math.cos(i * 1.7) * 2);
  const ws = Float64Array.from({ length: 8 }, (_, i) => 1 + 0.1 * i);
  const bs = Float64Array.from({ length: 8 }, (_, i) => 0.05 * i);
  const run = async (dtype: 'float32' | 'float64') => {
    const s = await createSession(build(dtype), { threads: 1 });
    const T = dtype === 'float32' ? Float32Array : Float64Array;
    return s.run({
      x: tensor(dtype, [3, 8], T.from(xs) as never),
      w: tensor(dtype, [8], T.from(ws) as never),
      b: tensor(dtype, [8], T.from(bs) as never),
    });
  };
  const [r32, r64] = [await run('float32'), await run('float64')];
  for (const k of ['y', 'dx', 'dw', 'db']) {
    const a = r32[k]!.data as Float32Array;
    const e = r64[k]!.data as Float64Array;
    for (let i = 0; i < e.length; i++)
      assert.ok(
        Math.abs((a[i] as number) - (e[i] as number)) < 1e-4 * (1 + Math.abs(e[i] as number)),
        `${k}[${i}]`,
      );
  }
});

test('KV-cache decode with a symbolic past length matches full causal attention', async () => {
  // One attention layer built once with symbolic dims: B, T new tokens, P cached positions.
  const [D, H, Dh, S] = [4, 2, 2, 5];
  const { cos, sin } = ropeTables(16, Dh);
  const g = new Graph({ name: 'decode' });
  const x = g.input('x', 'float32', [1, 'T', D]);
  const pos = g.input('position_ids', 'int64', [1, 'T']);
  const pastK = g.input('past_k', 'float32', [1, H, 'P', Dh]);
  const pastV = g.input('past_v', 'float32', [1, H, 'P', Dh]);
  const wq = g.param('wq', [D, D]);
  const heads = (v: Var) => v.reshape([1, 'T', H, Dh]).transpose([0, 2, 1, 3]); // [1,T,D] -> [1,H,T,Dh]
  const c = O.unsqueeze(O.gather(g.constant(cos, [16, Dh]), pos), [1]); // [1,1,T,Dh]
  const s = O.unsqueeze(O.gather(g.constant(sin, [16, Dh]), pos), [1]);
  const q = rope(heads(x.matmul(wq)), c, s);
  const k = O.concat([pastK, rope(heads(x), c, s)], 2); // [1,H,P+T,Dh]
  const v = O.concat([pastV, heads(x.mul(0.5))], 2);
  const qpos = O.arange(g, 'T', 'int64').add(O.dimValue(g, 'P')); // absolute query positions
  const kpos = O.arange(g, 'P+T', 'int64');
  const allowed = O.lessOrEqual(O.unsqueeze(kpos, [0]), O.unsqueeze(qpos, [1])); // [T, P+T]
  const mask = O.where(allowed, 0, -1e9).cast('float32');
  g.output('y', attention(q, k, v, O.where(allowed, g.scalar(0), g.scalar(-1e9))));
  g.output('k', k);
  g.output('v', v);
  g.output('mask', mask);
  const sess = await createSession(g, { threads: 1 });
  const xs = Float32Array.from({ length: S * D }, (_, i) => Math.sin(1.3 * i));
  const wqT = tensor(
    'float32',
    [D, D],
    Float32Array.from({ length: D * D }, (_, i) => Math.cos(i)),
  );
  const step = (from: number, to: number, pk: Tensor, pv: Tensor) =>
    sess.run({
      x: tensor('float32', [1, to - from, D], xs.slice(from * D, to * D)),
      position_ids: tensor(
        'int64',
        [1, to - from],
        BigInt64Array.from({ length: to - from }, (_, i) => BigInt(from + i)),
      ),
      past_k: pk,
      past_v: pv,
      wq: wqT,
    });
  const empty = tensor('float32', [1, H, 0, Dh]);
  const full = await step(0, S, empty, empty);
  const pre = await step(0, S - 1, empty, empty);
  const last = await step(S - 1, S, pre.k!, pre.v!);
  assert.deepEqual(last.y!.shape, [1, H, 1, Dh]);
  const fy = full.y!.data as Float32Array;
  const ly = last.y!.data as Float32Array;
  for (let h = 0; h < H; h++)
    for (let d = 0; d < Dh; d++) {
      const a = fy[(h * S + S - 1) * Dh + d] as number;
      assert.ok(Math.abs(a - (ly[h * Dh + d] as number)) < 1e-5, `head ${h} dim ${d}`);
    }
});
