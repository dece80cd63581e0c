// Activation recomputation: checkpointed blocks give the same gradients as plain ones (float64
// finite differences and float32 bit-for-bit), while fewer intermediates stay alive.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attention, causalMask } from '../../src/engine/attention.ts';
import { grad } from '../../src/engine/autodiff.ts';
import { rmsNorm, swiglu } from '../../src/engine/composite.ts';
import type { DType } from '../../src/engine/dtype.ts';
import { checkOp } from '../../src/engine/gradcheck.ts';
import { Graph, type Var } from '../../src/engine/graph.ts';
import { memoryProfile } from '../../src/engine/memory.ts';
import { dropout, linear } from '../../src/engine/nn.ts';
import { createSession, type Tensor, tensor } from '../../src/engine/runtime.ts';
import { Rng } from '../../src/util/rng.ts';

interface Cfg {
  B: number;
  T: number;
  D: number;
  H: number;
  F: number;
  L: number;
}

/** Pre-norm transformer layers reading their weights from `ws` (6 per layer). */
function layers(h0: Var, ws: Var[], c: Cfg, checkpoint: boolean, seed?: Var): Var {
  const g = h0.graph;
  const mask = causalMask(g, c.T, h0.dtype);
  const dh = c.D / c.H;
  const heads = (x: Var) => x.reshape([c.B, c.T, c.H, dh]).transpose([0, 2, 1, 3]);
  let h = h0;
  for (let l = 0; l < c.L; l++) {
    const [n1, wqkv, wo, n2, wgu, wd] = ws.slice(6 * l, 6 * l + 6) as Var[];
    const layer = (x: Var): Var[] => {
      const qkv = linear(rmsNorm(x, n1!), wqkv!); // [B,T,3D]
      const [q, k, v] = [0, 1, 2].map((i) => heads(qkv.slice(-1, i * c.D, (i + 1) * c.D)));
      const a = attention(q!, k!, v!, mask).transpose([0, 2, 1, 3]).reshape([c.B, c.T, c.D]);
      let y = x.add(linear(a, wo!));
      const gu = linear(rmsNorm(y, n2!), wgu!); // [B,T,2F]
      const m = linear(swiglu(gu.slice(-1, 0, c.F), gu.slice(-1, c.F)), wd!);
      y = y.add(seed ? dropout(m, 0.1, seed, l) : m);
      return [y];
    };
    h = (checkpoint ? g.checkpoint(`layer${l}`, [h], layer) : layer(h))[0] as Var;
  }
  return h;
}

function shapes(c: Cfg): number[][] {
  const per = [[c.D], [3 * c.D, c.D], [c.D, c.D], [c.D], [2 * c.F, c.D], [c.D, c.F]];
  return Array.from({ length: c.L }, () => per).flat();
}

test('checkpointed layers: float64 gradients match finite differences', async () => {
  const c: Cfg = { B: 1, T: 3, D: 4, H: 2, F: 6, L: 2 };
  const specs = shapes(c).map((shape) =>
    shape.length === 1 ? { shape, scale: 0.2, shift: 1 } : { shape, scale: 0.5 },
  );
  await checkOp(
    'checkpointed-layers',
    [{ shape: [c.B, c.T, c.D] }, { shape: [], dtype: 'int64', values: [3] }, ...specs],
    (x, seed, ...ws) => {
      const y = layers(x, ws, c, true, seed);
      return y.mul(y).sum();
    },
    { rtol: 1e-5, atol: 1e-8 },
  );
});

test('recomputation gives identical gradients and keeps fewer intermediates alive', async () => {
  const c: Cfg = { B: 2, T: 16, D: 32, H: 4, F: 64, L: 4 };
  const ws = shapes(c);
  const rng = new Rng(11);
  const values = ws.map((s, i) =>
    Float32Array.from(
      { length: s.reduce((a, b) => a * b, 1) },
      () => (s.length === 1 ? 1 : 0.2 * rng.normal()) + 0 * i,
    ),
  );
  const xs = Float32Array.from({ length: c.B * c.T * c.D }, () => rng.normal());
  const build = (checkpoint: boolean) => {
    const g = new Graph({ name: checkpoint ? 'ckpt' : 'plain' });
    const x = g.input('x', 'float32', [c.B, c.T, c.D]);
    const seed = g.input('seed', 'int64', []);
    const params = ws.map((s, i) => g.param(`w${i}`, s, { dtype: 'float32' as DType }));
    const y = layers(x, params, c, checkpoint, seed);
    const loss = y.mul(y).mean();
    g.output('loss', loss);
    const ds = grad(loss, [x, ...params]);
    for (const [i, d] of ds.entries()) g.output(`d${i}`, d!);
    return g;
  };
  const plain = build(false);
  const ckpt = build(true);
  const feeds: Record<string, Tensor> = Object.fromEntries(
    ws.map((s, i) => [`w${i}`, tensor('float32', s, values[i])]),
  );
  feeds.x = tensor('float32', [c.B, c.T, c.D], xs);
  feeds.seed = tensor('int64', [], BigInt64Array.of(42n));
  const r1 = await (await createSession(plain, { threads: 1 })).run(feeds);
  const r2 = await (await createSession(ckpt, { threads: 1 })).run(feeds);
  assert.equal((r1.loss!.data as Float32Array)[0], (r2.loss!.data as Float32Array)[0]);
  for (let i = 0; i <= ws.length; i++) {
    const a = r1[`d${i}`]!.data as Float32Array;
    const b = r2[`d${i}`]!.data as Float32Array;
    for (let k = 0; k < a.length; k++)
      assert.ok(
        Math.abs((a[k] as number) - (b[k] as number)) <= 1e-6 * (1 + Math.abs(a[k] as number)),
        `d${i}[${k}]`,
      );
  }
  // onnxruntime's execution order (the default) and the order the builder emitted.
  for (const order of ['ort', 'emission'] as const) {
    const mPlain = memoryProfile(plain, { order });
    const mCkpt = memoryProfile(ckpt, { order });
    assert.ok(mCkpt.nodes > mPlain.nodes, 'the checkpointed graph recomputes forward nodes');
    assert.ok(
      mCkpt.peakTempBytes < 0.5 * mPlain.peakTempBytes,
      `peak live activations ${mCkpt.peakTempBytes} B (checkpointed) vs ${mPlain.peakTempBytes} B (plain)`,
    );
    assert.ok(mCkpt.peakTempValues < mPlain.peakTempValues);
    assert.ok(mCkpt.peakBytes < mPlain.peakBytes);
  }
});
