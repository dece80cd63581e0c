// GPT-2 (GPT2LMHeadModel) as a decoder.ts Family: LayerNorm with bias, learned absolute
// positions added to the token embedding, a fused q/k/v projection (c_attn) split in three,
// and a GELU MLP (gelu_new = the tanh approximation). HF stores GPT-2's linear layers as
// Conv1D with weights [in, out]; inOutLayout tells the skeleton to multiply by them unchanged.
import { layerNorm } from '../engine/composite.ts';
import type { Var } from '../engine/graph.ts';
import { embedding } from '../engine/nn.ts';
import { add, gelu, relu, split } from '../engine/ops.ts';
import type { Family, LayerContext } from './decoder.ts';

const layer = (l: number) => `transformer.h.${l}`;

/** HF activation_function → our op (gelu_new and gelu_pytorch_tanh are both the tanh form). */
function activation(name: string, x: Var): Var {
  if (name === 'relu') return relu(x);
  return gelu(x, name === 'gelu' ? 'none' : 'tanh');
}

export const gpt2Family: Family = {
  name: 'gpt2',
  embedWeight: 'transformer.wte.weight',
  finalNorm: 'transformer.ln_f',
  lmHeadWeight: 'lm_head.weight',
  attnNorm: (l) => `${layer(l)}.ln_1`,
  mlpNorm: (l) => `${layer(l)}.ln_2`,
  inOutLayout: true,

  embed: (c: LayerContext, ids: Var, positions: Var) =>
    add(
      embedding(c.w('transformer.wte.weight'), ids), // [B,S] -> [B,S,D]
      embedding(c.w('transformer.wpe.weight'), positions), // [B,S] -> [B,S,D]
    ),

  norm: (c: LayerContext, x: Var, module: string) =>
    layerNorm(x, c.w(`${module}.weight`), c.w(`${module}.bias`), c.spec.normEps),

  qkv(c: LayerContext, x: Var, l: number): [Var, Var, Var] {
    const D = c.spec.hiddenSize;
    const qkv = c.proj(x, `${layer(l)}.attn.c_attn`, true); // [B,S,D] -> [B,S,3D]
    return split(qkv, -1, [D, D, D]) as [Var, Var, Var]; // [B,S,3D] -> 3 × [B,S,D]
  },

  rotary: () => null,

  attnOut: (c: LayerContext, a: Var, l: number) => c.proj(a, `${layer(l)}.attn.c_proj`, true), // [B,S,D] -> [B,S,D]

  mlp(c: LayerContext, y: Var, l: number): Var {
    const f = c.proj(y, `${layer(l)}.mlp.c_fc`, true); // [B,S,D] -> [B,S,F]
    return c.proj(activation(c.spec.activation, f), `${layer(l)}.mlp.c_proj`, true); // [B,S,F] -> [B,S,D]
  },
};
