// The decoder-only transformer as an engine graph, for every family in the registry: LLaMA
// (RMSNorm, RoPE with scaling, GQA, SwiGLU; Qwen2's q/k/v biases; Mistral) and GPT-2
// (LayerNorm, learned positions, GELU-tanh, Conv1D [in, out] weights). Weights are looked up by
// their HF names; optional LoRA adapters wrap chosen projections. The same body serves training
// (packed, block-diagonal masks) and cached decoding (past keys/values in, present out).
import { attention, rope } from '../engine/attention.ts';
import { layerNorm, rmsNorm, swiglu } from '../engine/composite.ts';
import type { Graph, Var } from '../engine/graph.ts';
import { dropout, embedding, linear } from '../engine/nn.ts';
import { add, concat, gather, gelu, mul, split, unsqueeze } from '../engine/ops.ts';
import type { ModelSpec } from './config.ts';
import { ropeInvFreq } from './rope-config.ts';

/** LoRA on a set of projections: y = W·x + scale · B·(A·dropout(x)) (Hu et al. 2021, eq. 3). */
export interface LoraSpec {
  r: number;
  alpha: number;
  dropout: number;
  /** Short module names, e.g. q_proj, v_proj (GPT-2: c_attn, c_proj, c_fc). */
  targets: ReadonlySet<string>;
  /** rsLoRA scale alpha/√r instead of alpha/r (Kalajdzievski 2023). */
  rslora: boolean;
}

export const loraScaling = (l: LoraSpec): number =>
  l.rslora ? l.alpha / Math.sqrt(l.r) : l.alpha / l.r;

/** PEFT's parameter names for an adapter on module `module` (an HF name without `.weight`). */
export function loraNames(module: string): { a: string; b: string } {
  return {
    a: `base_model.model.${module}.lora_A.weight`,
    b: `base_model.model.${module}.lora_B.weight`,
  };
}

export interface KvPair {
  k: Var;
  v: Var;
}

export interface DecoderInputs {
  /** Token ids [B, S] int64. */
  ids: Var;
  /** Position of each token [B, S] int64 (restarts per packed example). */
  positions: Var;
  /** Additive attention bias broadcastable to [B, H, S, P+S] (0 allowed, large negative not). */
  bias: Var;
  /** Per layer cached keys and values [B, Hkv, P, Dh]; absent for a full forward. */
  past?: readonly KvPair[];
  /** Seed scalar for dropout; dropout runs only when given and the spec's rates are > 0. */
  dropoutSeed?: Var;
}

export interface DecoderOptions {
  lora?: LoraSpec;
  /** Recompute each block's activations in the backward pass (activation checkpointing). */
  recompute?: boolean;
}

export interface DecoderOutputs {
  /** Final hidden states after the last norm [B, S, D]. */
  hidden: Var;
  /** Keys and values of past + new tokens per layer [B, Hkv, P+S, Dh]. */
  present: KvPair[];
}

/** Weight lookup by HF name. */
export type Weights = (name: string) => Var;

/** cos/sin tables [maxPositions, Dh] for the spec's RoPE (rotate_half layout), as constants. */
function ropeConstants(g: Graph, spec: ModelSpec): { cos: Var; sin: Var } {
  const dh = spec.headDim;
  const inv = ropeInvFreq(spec.rope!, dh);
  const n = spec.maxPositions;
  const cos = new Float32Array(n * dh);
  const sin = new Float32Array(n * dh);
  for (let p = 0; p < n; p++)
    for (let i = 0; i < dh / 2; i++) {
      const a = p * inv[i]!;
      cos[p * dh + i] = cos[p * dh + i + dh / 2] = Math.cos(a);
      sin[p * dh + i] = sin[p * dh + i + dh / 2] = Math.sin(a);
    }
  return { cos: g.constant(cos, [n, dh]), sin: g.constant(sin, [n, dh]) };
}

/** The lm head weight [V, D] (the embedding when tied). */
export function lmHeadWeight(spec: ModelSpec, w: Weights): Var {
  if (spec.family === 'gpt2')
    return spec.tieWordEmbeddings ? w('transformer.wte.weight') : w('lm_head.weight');
  return spec.tieWordEmbeddings ? w('model.embed_tokens.weight') : w('lm_head.weight');
}

export function decoderForward(
  spec: ModelSpec,
  w: Weights,
  inp: DecoderInputs,
  opts: DecoderOptions = {},
): DecoderOutputs {
  return spec.family === 'gpt2'
    ? gpt2Forward(spec, w, inp, opts)
    : llamaForward(spec, w, inp, opts);
}

function projector(w: Weights, inp: DecoderInputs, opts: DecoderOptions) {
  let salt = 1000;
  /** HF-layout linear ([out, in]) with an optional LoRA branch on `module`. */
  return (x: Var, module: string, short: string, bias: boolean, conv1d = false): Var => {
    const weight = w(`${module}.weight`);
    let y = conv1d ? x.matmul(weight) : linear(x, weight);
    if (bias) y = add(y, w(`${module}.bias`));
    const lora = opts.lora;
    if (lora?.targets.has(short)) {
      const names = loraNames(module);
      const xd =
        inp.dropoutSeed && lora.dropout > 0 ? dropout(x, lora.dropout, inp.dropoutSeed, salt++) : x;
      y = add(y, mul(linear(linear(xd, w(names.a)), w(names.b)), loraScaling(lora)));
    }
    return y;
  };
}

function llamaForward(
  spec: ModelSpec,
  w: Weights,
  inp: DecoderInputs,
  opts: DecoderOptions,
): DecoderOutputs {
  const g = inp.ids.graph;
  const { numHeads: H, numKvHeads: Hkv, headDim: Dh } = spec;
  const [B, S] = inp.ids.shape as [number | string, number | string];
  const proj = projector(w, inp, opts);
  const { cos: cosT, sin: sinT } = ropeConstants(g, spec);
  const cos = unsqueeze(gather(cosT, inp.positions, 0), [1]); // [B,S] -> [B,1,S,Dh]
  const sin = unsqueeze(gather(sinT, inp.positions, 0), [1]);
  const heads = (x: Var, n: number) => x.reshape([B, S, n, Dh]).transpose([0, 2, 1, 3]); // [B,S,n·Dh] -> [B,n,S,Dh]
  let h = embedding(w('model.embed_tokens.weight'), inp.ids); // [B,S,D]
  const present: KvPair[] = [];
  for (let l = 0; l < spec.numLayers; l++) {
    const p = `model.layers.${l}`;
    const block = (hIn: Var): Var[] => {
      const x = rmsNorm(hIn, w(`${p}.input_layernorm.weight`), spec.normEps);
      const q = rope(heads(proj(x, `${p}.self_attn.q_proj`, 'q_proj', spec.qkvBias), H), cos, sin);
      let k = rope(heads(proj(x, `${p}.self_attn.k_proj`, 'k_proj', spec.qkvBias), Hkv), cos, sin);
      let v = heads(proj(x, `${p}.self_attn.v_proj`, 'v_proj', spec.qkvBias), Hkv);
      const past = inp.past?.[l];
      if (past) {
        k = concat([past.k, k], 2); // [B,Hkv,P+S,Dh]
        v = concat([past.v, v], 2);
      }
      const a = attention(q, k, v, inp.bias)
        .transpose([0, 2, 1, 3])
        .reshape([B, S, H * Dh]); // [B,H,S,Dh] -> [B,S,H·Dh]
      let h2 = add(hIn, proj(a, `${p}.self_attn.o_proj`, 'o_proj', spec.oBias));
      const y = rmsNorm(h2, w(`${p}.post_attention_layernorm.weight`), spec.normEps);
      const gate = proj(y, `${p}.mlp.gate_proj`, 'gate_proj', spec.mlpBias);
      const up = proj(y, `${p}.mlp.up_proj`, 'up_proj', spec.mlpBias);
      h2 = add(h2, proj(swiglu(gate, up), `${p}.mlp.down_proj`, 'down_proj', spec.mlpBias));
      return [h2, k, v];
    };
    const [hOut, k, v] =
      opts.recompute && !inp.past ? g.checkpoint(`block${l}`, [h], (x) => block(x)) : block(h);
    h = hOut!;
    present.push({ k: k!, v: v! });
  }
  return { hidden: rmsNorm(h, w('model.norm.weight'), spec.normEps), present };
}

function gpt2Forward(
  spec: ModelSpec,
  w: Weights,
  inp: DecoderInputs,
  opts: DecoderOptions,
): DecoderOutputs {
  const { numHeads: H, headDim: Dh, hiddenSize: D } = spec;
  const [B, S] = inp.ids.shape as [number | string, number | string];
  const proj = projector(w, inp, opts);
  const heads = (x: Var) => x.reshape([B, S, H, Dh]).transpose([0, 2, 1, 3]); // [B,S,D] -> [B,H,S,Dh]
  let h = add(
    embedding(w('transformer.wte.weight'), inp.ids),
    embedding(w('transformer.wpe.weight'), inp.positions),
  ); // [B,S,D]
  const act = spec.activation === 'gelu' ? 'none' : 'tanh';
  const present: KvPair[] = [];
  for (let l = 0; l < spec.numLayers; l++) {
    const p = `transformer.h.${l}`;
    const x = layerNorm(h, w(`${p}.ln_1.weight`), w(`${p}.ln_1.bias`), spec.normEps);
    const qkv = proj(x, `${p}.attn.c_attn`, 'c_attn', true, true); // [B,S,3D]
    const [q, k0, v0] = split(qkv, -1, [D, D, D]) as [Var, Var, Var];
    let k = heads(k0);
    let v = heads(v0);
    const past = inp.past?.[l];
    if (past) {
      k = concat([past.k, k], 2);
      v = concat([past.v, v], 2);
    }
    const a = attention(heads(q), k, v, inp.bias).transpose([0, 2, 1, 3]).reshape([B, S, D]); // [B,H,S,Dh] -> [B,S,D]
    h = add(h, proj(a, `${p}.attn.c_proj`, 'c_proj', true, true));
    const y = layerNorm(h, w(`${p}.ln_2.weight`), w(`${p}.ln_2.bias`), spec.normEps);
    const f = gelu(proj(y, `${p}.mlp.c_fc`, 'c_fc', true, true), act);
    h = add(h, proj(f, `${p}.mlp.c_proj`, 'c_proj', true, true));
    present.push({ k, v });
  }
  return {
    hidden: layerNorm(h, w('transformer.ln_f.weight'), w('transformer.ln_f.bias'), spec.normEps),
    present,
  };
}
