// The decoder-only transformer skeleton shared by every family: embed → L × (norm → attention
// with optional KV cache → residual → norm → MLP → residual) → final norm. A family (llama.ts,
// gpt2.ts, picked by registry.ts) supplies only what differs: norms, q/k/v and MLP layout, the
// position scheme and the HF weight names. LoRA branches wrap chosen projections here. The
// graphs built on top (training, scoring, decode) are in graphs.ts.
import { attention } from '../engine/attention.ts';
import type { Graph, Var } from '../engine/graph.ts';
import { dropout, linear } from '../engine/nn.ts';
import { add, concat, mul } from '../engine/ops.ts';
import type { Dim } from '../engine/shape.ts';
import { hashString } from '../util/rng.ts';
import type { ModelFamily, ModelSpec } from './config.ts';
import { type LoraSpec, loraMatcher, loraNames, moduleScaling } from './lora.ts';
import { familyOf } from './registry.ts';

export { type LoraSpec, loraNames, loraScaling } from './lora.ts';

export interface KvPair {
  /** Keys [B, Hkv, P, Dh] (already rotated). */
  k: Var;
  /** Values [B, Hkv, P, Dh]. */
  v: Var;
}

export interface DecoderInputs {
  /** Token ids [B, S] int64. */
  ids: Var;
  /** Position of each token [B, S] int64 (restarts per packed example; counts real tokens). */
  positions: Var;
  /** Additive attention bias broadcastable to [B, H, S, P+S] (MASK_MIN drops a key). */
  bias: Var;
  /** Per layer cached keys and values [B, Hkv, P, Dh]; absent for a full forward. */
  past?: readonly KvPair[];
  /** Seed scalar for dropout; dropout runs only when given and a rate is > 0. */
  dropoutSeed?: Var;
}

export interface DecoderOptions {
  lora?: LoraSpec;
  /** Recompute each block's activations in the backward pass (activation checkpointing). */
  recompute?: boolean;
  /**
   * Apply the spec's dropout when a dropout seed is given: embedding and residual (GPT-2's
   * embd_pdrop, resid_pdrop) and attention probabilities (attn_pdrop, LLaMA / Qwen's
   * attention_dropout). Training only: inference graphs never pass a seed. @default false
   */
  modelDropout?: boolean;
}

export interface DecoderOutputs {
  /** Final hidden states after the last norm [B, S, D]. */
  hidden: Var;
  /** Keys and values of past + new tokens per layer [B, Hkv, P+S, Dh]. */
  present: KvPair[];
}

/** Weight lookup by HF name. */
export type Weights = (name: string) => Var;

/** What a family's layer functions get: the spec, weights, dims and the projection helper. */
export interface LayerContext {
  readonly spec: ModelSpec;
  readonly w: Weights;
  readonly g: Graph;
  /** Batch and new-token dims of this forward. */
  readonly B: Dim;
  readonly S: Dim;
  /**
   * The linear layer of HF module `module` (weight `${module}.weight`, plus `${module}.bias`
   * when `bias`), in the family's storage layout, with its LoRA branch if targeted.
   */
  proj(x: Var, module: string, bias: boolean): Var;
}

/** What a model family declares; the skeleton does the rest. */
export interface Family {
  readonly name: ModelFamily;
  /** HF names of the token embedding, final norm and untied lm head weights. */
  readonly embedWeight: string;
  readonly finalNorm: string;
  readonly lmHeadWeight: string;
  /** HF module names of layer l's pre-attention and pre-MLP norms. */
  attnNorm(l: number): string;
  mlpNorm(l: number): string;
  /** Weights stored [in, out] (GPT-2's Conv1D) rather than torch's [out, in]. */
  readonly inOutLayout: boolean;
  /** Token (and learned position) embedding: [B, S] ids → [B, S, D]. */
  embed(c: LayerContext, ids: Var, positions: Var): Var;
  /** The norm of HF module `module` over the last dim. */
  norm(c: LayerContext, x: Var, module: string): Var;
  /** q [B, S, H·Dh], k and v [B, S, Hkv·Dh] of layer l. */
  qkv(c: LayerContext, x: Var, l: number): [Var, Var, Var];
  /** A rotation applied to q and k heads [B, n, S, Dh] (RoPE), or null for learned positions. */
  rotary(c: LayerContext, positions: Var): ((x: Var) => Var) | null;
  /** The attention output projection [B, S, H·Dh] → [B, S, D]. */
  attnOut(c: LayerContext, a: Var, l: number): Var;
  /** The MLP [B, S, D] → [B, S, D]. */
  mlp(c: LayerContext, y: Var, l: number): Var;
}

/** The lm head weight [V, D] (the embedding when tied). */
export function lmHeadWeight(spec: ModelSpec, w: Weights): Var {
  const f = familyOf(spec);
  return w(spec.tieWordEmbeddings ? f.embedWeight : f.lmHeadWeight);
}

/** A LayerContext whose projections carry the LoRA branches of `opts.lora`. */
function layerContext(
  fam: Family,
  spec: ModelSpec,
  w: Weights,
  inp: DecoderInputs,
  opts: DecoderOptions,
): LayerContext {
  const [B, S] = inp.ids.shape as [Dim, Dim];
  const lora = opts.lora;
  const adapted = lora ? loraMatcher(spec.family, lora.targets) : () => false;
  const proj = (x: Var, module: string, bias: boolean): Var => {
    const weight = w(`${module}.weight`);
    let y = fam.inOutLayout ? x.matmul(weight) : linear(x, weight); // [.., in] -> [.., out]
    if (bias) y = add(y, w(`${module}.bias`));
    if (lora && adapted(module)) {
      const n = loraNames(module);
      // A per-module salt (not a call counter), so the mask depends only on (seed, module).
      const xd =
        inp.dropoutSeed && lora.dropout > 0
          ? dropout(x, lora.dropout, inp.dropoutSeed, hashString(module))
          : x;
      const delta = linear(linear(xd, w(n.a)), w(n.b)); // [.., in] -> [.., r] -> [.., out]
      y = add(y, mul(delta, moduleScaling(lora, module)));
    }
    return y;
  };
  return { spec, w, g: inp.ids.graph, B, S, proj };
}

/**
 * The decoder body for `spec`'s family: hidden states after the final norm, and each layer's
 * keys/values (past concatenated with the new ones) for a KV cache.
 * @example const { hidden } = decoderForward(spec, (n) => params[n], { ids, positions, bias });
 */
export function decoderForward(
  spec: ModelSpec,
  w: Weights,
  inp: DecoderInputs,
  opts: DecoderOptions = {},
): DecoderOutputs {
  const fam = familyOf(spec);
  const c = layerContext(fam, spec, w, inp, opts);
  const { g, B, S } = c;
  const { numHeads: H, numKvHeads: Hkv, headDim: Dh } = spec;
  const seed = inp.dropoutSeed;
  // Fixed salts per call site, so a recomputed block draws the same masks as its forward.
  const drop = (x: Var, p: number, salt: number): Var =>
    seed && opts.modelDropout && p > 0 ? dropout(x, p, seed, salt) : x;
  const heads = (x: Var, n: number): Var => x.reshape([B, S, n, Dh]).transpose([0, 2, 1, 3]); // [B,S,n·Dh] -> [B,n,S,Dh]
  const rot = fam.rotary(c, inp.positions);
  let h = drop(fam.embed(c, inp.ids, inp.positions), spec.embdDropout, 1); // [B,S,D]
  const present: KvPair[] = [];
  for (let l = 0; l < spec.numLayers; l++) {
    const block = (hIn: Var): Var[] => {
      const x = fam.norm(c, hIn, fam.attnNorm(l)); // [B,S,D]
      const [q0, k0, v0] = fam.qkv(c, x, l);
      let q = heads(q0, H); // [B,H,S,Dh]
      let k = heads(k0, Hkv); // [B,Hkv,S,Dh]
      let v = heads(v0, Hkv); // [B,Hkv,S,Dh]
      if (rot) {
        q = rot(q);
        k = rot(k);
      }
      const past = inp.past?.[l];
      if (past) {
        k = concat([past.k, k], 2); // [B,Hkv,P,Dh] + [B,Hkv,S,Dh] -> [B,Hkv,P+S,Dh]
        v = concat([past.v, v], 2);
      }
      const attnDrop =
        seed && opts.modelDropout && spec.attentionDropout > 0
          ? { p: spec.attentionDropout, seed, salt: 2 + 2 * spec.numLayers + l }
          : undefined;
      const a = attention(q, k, v, inp.bias, undefined, attnDrop)
        .transpose([0, 2, 1, 3]) // [B,H,S,Dh] -> [B,S,H,Dh]
        .reshape([B, S, H * Dh]); // [B,S,H,Dh] -> [B,S,H·Dh]
      let hOut = add(hIn, drop(fam.attnOut(c, a, l), spec.residDropout, 2 + 2 * l));
      const y = fam.norm(c, hOut, fam.mlpNorm(l));
      hOut = add(hOut, drop(fam.mlp(c, y, l), spec.residDropout, 3 + 2 * l));
      return [hOut, k, v];
    };
    // Checkpointing needs a backward pass, so it never applies to a cached (inference) forward.
    const [hOut, k, v] =
      opts.recompute && !inp.past ? g.checkpoint(`block${l}`, [h], (x) => block(x)) : block(h);
    h = hOut!;
    present.push({ k: k!, v: v! });
  }
  return { hidden: fam.norm(c, h, fam.finalNorm), present };
}
