// A plain float64 LLaMA-family forward pass for tests: token embedding, RMSNorm, RoPE with HF's
// rotate_half, grouped-query causal attention, SwiGLU MLP, final norm and LM head, reading
// HF-named f32 tensors. No KV cache and no batching: it is the slow, obvious reference that
// exports, imports and our own ONNX graphs are checked against. Also seeded random weights.
import type { ModelSpec } from '../../src/models/config.ts';
import { ropeInvFreq } from '../../src/models/rope-config.ts';
import type { TensorMap } from '../../src/models/tensor.ts';
import { Rng } from '../../src/util/rng.ts';

function get(t: TensorMap, name: string): Float32Array {
  const x = t.get(name);
  if (x === undefined) throw new Error(`reference forward: missing tensor ${name}`);
  return x.data;
}

/** y[T, out] = x[T, in] · W[out, in]^T (+ b). */
function linear(
  x: Float64Array,
  T: number,
  n: number,
  w: Float32Array,
  out: number,
  b?: Float32Array,
): Float64Array {
  const y = new Float64Array(T * out);
  for (let t = 0; t < T; t++)
    for (let o = 0; o < out; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < n; i++) s += x[t * n + i] * w[o * n + i];
      y[t * out + o] = s;
    }
  return y;
}

function rmsnorm(
  x: Float64Array,
  T: number,
  D: number,
  w: Float32Array,
  eps: number,
): Float64Array {
  const y = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    let ss = 0;
    for (let i = 0; i < D; i++) ss += x[t * D + i] ** 2;
    const r = 1 / Math.sqrt(ss / D + eps);
    for (let i = 0; i < D; i++) y[t * D + i] = x[t * D + i] * r * w[i];
  }
  return y;
}

/** RoPE in place on [T, heads·Dh], rotate_half pairing (i, i + Dh/2), position p = t. */
function rope(x: Float64Array, T: number, heads: number, dh: number, inv: Float64Array): void {
  const half = dh / 2;
  for (let t = 0; t < T; t++)
    for (let h = 0; h < heads; h++) {
      const o = t * heads * dh + h * dh;
      for (let i = 0; i < half; i++) {
        const a = t * inv[i];
        const c = Math.cos(a);
        const s = Math.sin(a);
        const x1 = x[o + i];
        const x2 = x[o + i + half];
        x[o + i] = x1 * c - x2 * s;
        x[o + i + half] = x2 * c + x1 * s;
      }
    }
}

/** Logits [T, V] (row per position) of a LLaMA-family model for one sequence. */
export function referenceLogits(
  spec: ModelSpec,
  w: TensorMap,
  ids: readonly number[],
): Float64Array[] {
  const { hiddenSize: D, vocabSize: V } = spec;
  const T = ids.length;
  const x = referenceHidden(spec, w, ids).reduce(
    (acc, row, t) => {
      acc.set(row, t * D);
      return acc;
    },
    new Float64Array(T * D),
  );
  const head = spec.tieWordEmbeddings
    ? get(w, 'model.embed_tokens.weight')
    : get(w, 'lm_head.weight');
  const logits = linear(x, T, D, head, V);
  return Array.from({ length: T }, (_, t) => logits.subarray(t * V, (t + 1) * V));
}

/** Hidden states [T, D] after the final norm (what the LM head and scalar heads read). */
export function referenceHidden(
  spec: ModelSpec,
  w: TensorMap,
  ids: readonly number[],
): Float64Array[] {
  if (spec.family !== 'llama') throw new Error('reference forward: LLaMA family only');
  if (spec.rope?.scaling?.type === 'dynamic')
    throw new Error('reference forward: dynamic NTK not implemented');
  const { hiddenSize: D, numHeads: H, numKvHeads: KV, headDim: Dh, intermediateSize: F } = spec;
  const T = ids.length;
  const inv = ropeInvFreq(spec.rope!, Dh);
  const emb = get(w, 'model.embed_tokens.weight');
  let x: Float64Array = new Float64Array(T * D);
  ids.forEach((id, t) => {
    for (let i = 0; i < D; i++) x[t * D + i] = emb[id * D + i];
  });
  const opt = (n: string) => w.get(n)?.data;
  for (let l = 0; l < spec.numLayers; l++) {
    const p = `model.layers.${l}`;
    const hN = rmsnorm(x, T, D, get(w, `${p}.input_layernorm.weight`), spec.normEps);
    const q = linear(
      hN,
      T,
      D,
      get(w, `${p}.self_attn.q_proj.weight`),
      H * Dh,
      opt(`${p}.self_attn.q_proj.bias`),
    );
    const k = linear(
      hN,
      T,
      D,
      get(w, `${p}.self_attn.k_proj.weight`),
      KV * Dh,
      opt(`${p}.self_attn.k_proj.bias`),
    );
    const v = linear(
      hN,
      T,
      D,
      get(w, `${p}.self_attn.v_proj.weight`),
      KV * Dh,
      opt(`${p}.self_attn.v_proj.bias`),
    );
    rope(q, T, H, Dh, inv);
    rope(k, T, KV, Dh, inv);
    const att = new Float64Array(T * H * Dh);
    const scale = 1 / Math.sqrt(Dh);
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / KV)); // GQA: query head h reads kv head g
      for (let t = 0; t < T; t++) {
        const s = new Float64Array(t + 1);
        let m = Number.NEGATIVE_INFINITY;
        for (let u = 0; u <= t; u++) {
          let dot = 0;
          for (let i = 0; i < Dh; i++)
            dot += q[t * H * Dh + h * Dh + i] * k[u * KV * Dh + g * Dh + i];
          s[u] = dot * scale;
          m = Math.max(m, s[u]);
        }
        let z = 0;
        for (let u = 0; u <= t; u++) z += s[u] = Math.exp(s[u] - m);
        for (let u = 0; u <= t; u++)
          for (let i = 0; i < Dh; i++)
            att[t * H * Dh + h * Dh + i] += (s[u] / z) * v[u * KV * Dh + g * Dh + i];
      }
    }
    const o = linear(
      att,
      T,
      H * Dh,
      get(w, `${p}.self_attn.o_proj.weight`),
      D,
      opt(`${p}.self_attn.o_proj.bias`),
    );
    for (let i = 0; i < x.length; i++) x[i] += o[i];
    const h2 = rmsnorm(x, T, D, get(w, `${p}.post_attention_layernorm.weight`), spec.normEps);
    const gate = linear(h2, T, D, get(w, `${p}.mlp.gate_proj.weight`), F);
    const up = linear(h2, T, D, get(w, `${p}.mlp.up_proj.weight`), F);
    for (let i = 0; i < gate.length; i++) gate[i] = (gate[i] / (1 + Math.exp(-gate[i]))) * up[i];
    const down = linear(gate, T, F, get(w, `${p}.mlp.down_proj.weight`), D);
    for (let i = 0; i < x.length; i++) x[i] += down[i];
  }
  x = rmsnorm(x, T, D, get(w, 'model.norm.weight'), spec.normEps);
  return Array.from({ length: T }, (_, t) => x.subarray(t * D, (t + 1) * D));
}

/** Greedy continuation of `ids` by `n` tokens (argmax, lowest id on ties), recomputing fully. */
export function referenceGreedy(
  spec: ModelSpec,
  w: TensorMap,
  ids: readonly number[],
  n: number,
): number[] {
  const seq = [...ids];
  for (let s = 0; s < n; s++) {
    const last = referenceLogits(spec, w, seq).at(-1)!;
    let best = 0;
    for (let i = 1; i < last.length; i++) if (last[i] > last[best]) best = i;
    seq.push(best);
  }
  return seq.slice(ids.length);
}

/**
 * Seeded random HF-named weights for a LLaMA-family spec. Matrices ~ N(0, std²), norm weights
 * ~ 1 + N(0, 0.1²), biases ~ N(0, 0.1²): large enough that logits spread over a few units, so a
 * wrong permutation or rope convention shows up far above a 1e-3 tolerance.
 */
export function randomLlamaWeights(spec: ModelSpec, seed: number, std = 0.15): TensorMap {
  const rng = new Rng(seed);
  const t: TensorMap = new Map();
  const {
    hiddenSize: D,
    numHeads: H,
    numKvHeads: KV,
    headDim: Dh,
    intermediateSize: F,
    vocabSize: V,
  } = spec;
  const mk = (name: string, shape: number[], mean: number, s: number) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = mean + s * rng.normal();
    t.set(name, { shape, data });
  };
  mk('model.embed_tokens.weight', [V, D], 0, 0.5);
  for (let l = 0; l < spec.numLayers; l++) {
    const p = `model.layers.${l}`;
    mk(`${p}.input_layernorm.weight`, [D], 1, 0.1);
    mk(`${p}.self_attn.q_proj.weight`, [H * Dh, D], 0, std);
    mk(`${p}.self_attn.k_proj.weight`, [KV * Dh, D], 0, std);
    mk(`${p}.self_attn.v_proj.weight`, [KV * Dh, D], 0, std);
    if (spec.qkvBias) {
      mk(`${p}.self_attn.q_proj.bias`, [H * Dh], 0, 0.1);
      mk(`${p}.self_attn.k_proj.bias`, [KV * Dh], 0, 0.1);
      mk(`${p}.self_attn.v_proj.bias`, [KV * Dh], 0, 0.1);
    }
    mk(`${p}.self_attn.o_proj.weight`, [D, H * Dh], 0, std);
    if (spec.oBias) mk(`${p}.self_attn.o_proj.bias`, [D], 0, 0.1);
    mk(`${p}.post_attention_layernorm.weight`, [D], 1, 0.1);
    mk(`${p}.mlp.gate_proj.weight`, [F, D], 0, std);
    mk(`${p}.mlp.up_proj.weight`, [F, D], 0, std);
    mk(`${p}.mlp.down_proj.weight`, [D, F], 0, std);
  }
  mk('model.norm.weight', [D], 1, 0.1);
  if (!spec.tieWordEmbeddings) mk('lm_head.weight', [V, D], 0, std);
  return t;
}
