// End-to-end gradients of a tiny 2-layer LLaMA-style model (embedding, RMSNorm, causal GQA
// attention with RoPE, SwiGLU MLP, lm head, cross-entropy with ignore_index): float64
// autodiff vs finite differences, and the float32 graph (fused kernels) vs float64; plus a
// GPT-2-style block (LayerNorm, learned positions, GELU-tanh, tied embeddings).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { attention, causalMask, rope, ropeTables } from '../../src/engine/attention.ts';
import { grad } from '../../src/engine/autodiff.ts';
import {
  crossEntropy,
  layerNorm,
  linearCrossEntropy,
  rmsNorm,
  swiglu,
} from '../../src/engine/composite.ts';
import type { DType } from '../../src/engine/dtype.ts';
import { checkOp } from '../../src/engine/gradcheck.ts';
import { Graph, type Var } from '../../src/engine/graph.ts';
import { embedding, linear } from '../../src/engine/nn.ts';
import { arange, gelu, split } from '../../src/engine/ops.ts';
import { createSession, tensor } from '../../src/engine/runtime.ts';
import { Rng } from '../../src/util/rng.ts';

const cfg = { V: 11, D: 8, H: 2, Hkv: 1, F: 12, L: 2, B: 2, T: 5 };
const Dh = cfg.D / cfg.H;

/** Parameter names and shapes in HF layout ([out, in] for linear weights). */
function paramSpecs(): [string, number[], 'norm' | 'w'][] {
  const { V, D, F, L, Hkv } = cfg;
  const specs: [string, number[], 'norm' | 'w'][] = [['embed_tokens', [V, D], 'w']];
  for (let l = 0; l < L; l++) {
    const p = `layers.${l}.`;
    specs.push(
      [`${p}input_layernorm`, [D], 'norm'],
      [`${p}q_proj`, [D, D], 'w'],
      [`${p}k_proj`, [Hkv * Dh, D], 'w'],
      [`${p}v_proj`, [Hkv * Dh, D], 'w'],
      [`${p}o_proj`, [D, D], 'w'],
      [`${p}post_attention_layernorm`, [D], 'norm'],
      [`${p}gate_proj`, [F, D], 'w'],
      [`${p}up_proj`, [F, D], 'w'],
      [`${p}down_proj`, [D, F], 'w'],
    );
  }
  specs.push(['norm', [D], 'norm'], ['lm_head', [V, D], 'w']);
  return specs;
}

/** The forward + loss, from token ids, targets and params (in paramSpecs order). */
function llamaLoss(ids: Var, targets: Var, params: Var[]): Var {
  const g = ids.graph;
  const { B, T, H, Hkv, D, L } = cfg;
  const dtype = params[0]!.dtype;
  const P = new Map(paramSpecs().map(([n], i) => [n, params[i] as Var]));
  const p = (n: string) => P.get(n) as Var;
  const { cos, sin } = ropeTables(T, Dh);
  const c = g.constant(cos, [T, Dh]);
  const s = g.constant(sin, [T, Dh]);
  const mask = causalMask(g, T, dtype);
  const heads = (x: Var, n: number) => x.reshape([B, T, n, Dh]).transpose([0, 2, 1, 3]); // [B,T,n·Dh] -> [B,n,T,Dh]
  let h = embedding(p('embed_tokens'), ids); // [B,T,D]
  for (let l = 0; l < L; l++) {
    const q = (n: string) => p(`layers.${l}.${n}`);
    const x = rmsNorm(h, q('input_layernorm'), 1e-6);
    const qh = rope(heads(linear(x, q('q_proj')), H), c, s);
    const kh = rope(heads(linear(x, q('k_proj')), Hkv), c, s);
    const vh = heads(linear(x, q('v_proj')), Hkv);
    const a = attention(qh, kh, vh, mask).transpose([0, 2, 1, 3]).reshape([B, T, D]); // [B,H,T,Dh] -> [B,T,D]
    h = h.add(linear(a, q('o_proj')));
    const y = rmsNorm(h, q('post_attention_layernorm'), 1e-6);
    h = h.add(linear(swiglu(linear(y, q('gate_proj')), linear(y, q('up_proj'))), q('down_proj')));
  }
  const logits = linear(rmsNorm(h, p('norm'), 1e-6), p('lm_head')); // [B,T,V]
  return crossEntropy(logits, targets, { ignoreIndex: -100 });
}

const ids = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3];
const targets = [1, 4, 1, 5, -100, 2, 6, 5, 3, -100];

test('2-layer LLaMA-style model: float64 gradients match finite differences', async () => {
  const specs = paramSpecs();
  const res = await checkOp(
    'llama-2l',
    [
      { shape: [cfg.B, cfg.T], dtype: 'int64', values: ids },
      { shape: [cfg.B, cfg.T], dtype: 'int64', values: targets },
      ...specs.map(([, shape, kind]) =>
        kind === 'norm' ? { shape, scale: 0.2, shift: 1 } : { shape, scale: 0.5 },
      ),
    ],
    (i, t, ...ps) => llamaLoss(i, t, ps),
    { rtol: 1e-5, atol: 1e-8 },
  );
  assert.equal(
    res.checked,
    specs.reduce((n, [, s]) => n + s.reduce((a, b) => a * b, 1), 0),
  );
});

test('float32 graph (fused kernels) agrees with float64 on loss and gradients', async () => {
  const rng = new Rng(7);
  const specs = paramSpecs();
  const values = specs.map(([, shape, kind]) =>
    Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () =>
      kind === 'norm' ? 1 + 0.2 * rng.normal() : 0.5 * rng.normal(),
    ),
  );
  const run = async (dtype: DType) => {
    const g = new Graph({ name: `llama-${dtype}` });
    const idV = g.input('ids', 'int64', [cfg.B, cfg.T]);
    const tV = g.input('targets', 'int64', [cfg.B, cfg.T]);
    const ps = specs.map(([n, shape]) => g.param(n, shape, { dtype }));
    const loss = llamaLoss(idV, tV, ps);
    g.output('loss', loss);
    for (const [i, d] of grad(loss, ps).entries()) g.output(`d.${specs[i]![0]}`, d!);
    const s = await createSession(g, { threads: 1 });
    const T = dtype === 'float32' ? Float32Array : Float64Array;
    const feeds = Object.fromEntries(
      specs.map(([n, shape], i) => [n, tensor(dtype, shape, T.from(values[i]!) as never)]),
    );
    feeds.ids = tensor('int64', [cfg.B, cfg.T], BigInt64Array.from(ids.map(BigInt)));
    feeds.targets = tensor('int64', [cfg.B, cfg.T], BigInt64Array.from(targets.map(BigInt)));
    return s.run(feeds);
  };
  const r32 = await run('float32');
  const r64 = await run('float64');
  const l64 = (r64.loss!.data as Float64Array)[0] as number;
  assert.ok(Math.abs(((r32.loss!.data as Float32Array)[0] as number) - l64) < 1e-5 * l64);
  for (const [n] of specs) {
    const a = r32[`d.${n}`]!.data as Float32Array;
    const e = r64[`d.${n}`]!.data as Float64Array;
    const scale = Math.max(...e.map(Math.abs));
    for (let i = 0; i < e.length; i++)
      assert.ok(
        Math.abs((a[i] as number) - (e[i] as number)) <= 1e-4 * scale + 1e-7,
        `${n}[${i}]: ${a[i]} vs ${e[i]}`,
      );
  }
});

test('GPT-2-style block (LayerNorm, learned positions, GELU-tanh, tied lm head): float64 gradients', async () => {
  const [V, D, H, T, B] = [7, 6, 2, 4, 2];
  const dh = D / H;
  const heads = (x: Var) => x.reshape([B, T, H, dh]).transpose([0, 2, 1, 3]);
  await checkOp(
    'gpt2-block',
    [
      { shape: [B, T], dtype: 'int64', values: [1, 5, 2, 6, 0, 3, 3, 4] },
      { shape: [B, T], dtype: 'int64', values: [5, 2, 6, -100, 3, 3, 4, 1] },
      { shape: [V, D], scale: 0.5 }, // wte, tied with the lm head
      { shape: [T, D], scale: 0.5 }, // wpe
      { shape: [D], scale: 0.2, shift: 1 }, // ln_1.weight
      { shape: [D], scale: 0.2 }, // ln_1.bias
      { shape: [3 * D, D], scale: 0.5 }, // c_attn (as [out, in])
      { shape: [3 * D], scale: 0.2 }, // c_attn bias
      { shape: [D, D], scale: 0.5 }, // c_proj
      { shape: [D], scale: 0.2, shift: 1 }, // ln_f.weight
      { shape: [D], scale: 0.2 }, // ln_f.bias
      { shape: [2 * D, D], scale: 0.5 }, // mlp fc
      { shape: [D, 2 * D], scale: 0.5 }, // mlp proj
    ],
    (ids, tg, wte, wpe, l1w, l1b, wa, ba, wp, lfw, lfb, wfc, wpr) => {
      const g = ids.graph;
      const pos = arange(g, T, 'int64');
      let h = embedding(wte!, ids).add(embedding(wpe!, pos)); // [B,T,D] + [T,D]
      const qkv = linear(layerNorm(h, l1w!, l1b!), wa!, ba!); // [B,T,3D]
      const [q, k, v] = split(qkv, -1, [D, D, D]).map(heads) as [Var, Var, Var];
      h = h.add(
        linear(
          attention(q, k, v, causalMask(g, T, 'float64'))
            .transpose([0, 2, 1, 3])
            .reshape([B, T, D]),
          wp!,
        ),
      );
      h = h.add(linear(gelu(linear(layerNorm(h, l1w!, l1b!), wfc!), 'tanh'), wpr!));
      return linearCrossEntropy(layerNorm(h, lfw!, lfb!), wte!, tg);
    },
    { rtol: 1e-5, atol: 1e-8 },
  );
});
