// The LLaMA family (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM) as a decoder.ts
// Family: RMSNorm, RoPE (rope.ts, with the spec's theta and scaling) on q and k, grouped-query
// attention, a SwiGLU MLP, optional q/k/v biases (Qwen2, attention_bias) and HF weight names
// (model.layers.N.self_attn.q_proj, ...). Tied or untied lm head is the skeleton's concern.
import { rope } from '../engine/attention.ts';
import { rmsNorm, swiglu } from '../engine/composite.ts';
import type { Var } from '../engine/graph.ts';
import { embedding } from '../engine/nn.ts';
import type { Family, LayerContext } from './decoder.ts';
import { ropeCosSin } from './rope.ts';

const layer = (l: number) => `model.layers.${l}`;

export const llamaFamily: Family = {
  name: 'llama',
  embedWeight: 'model.embed_tokens.weight',
  finalNorm: 'model.norm',
  lmHeadWeight: 'lm_head.weight',
  attnNorm: (l) => `${layer(l)}.input_layernorm`,
  mlpNorm: (l) => `${layer(l)}.post_attention_layernorm`,
  inOutLayout: false,

  embed: (c: LayerContext, ids: Var) => embedding(c.w('model.embed_tokens.weight'), ids), // [B,S] -> [B,S,D]

  norm: (c: LayerContext, x: Var, module: string) =>
    rmsNorm(x, c.w(`${module}.weight`), c.spec.normEps),

  qkv(c: LayerContext, x: Var, l: number): [Var, Var, Var] {
    const p = `${layer(l)}.self_attn`;
    const bias = c.spec.qkvBias;
    return [
      c.proj(x, `${p}.q_proj`, bias), // [B,S,D] -> [B,S,H·Dh]
      c.proj(x, `${p}.k_proj`, bias), // [B,S,D] -> [B,S,Hkv·Dh]
      c.proj(x, `${p}.v_proj`, bias), // [B,S,D] -> [B,S,Hkv·Dh]
    ];
  },

  rotary(c: LayerContext, positions: Var) {
    const { cos, sin } = ropeCosSin(c.spec, positions); // [B,1,S,Dh]
    return (x: Var) => rope(x, cos, sin);
  },

  attnOut: (c: LayerContext, a: Var, l: number) =>
    c.proj(a, `${layer(l)}.self_attn.o_proj`, c.spec.oBias), // [B,S,H·Dh] -> [B,S,D]

  mlp(c: LayerContext, y: Var, l: number): Var {
    const p = `${layer(l)}.mlp`;
    const b = c.spec.mlpBias;
    const gate = c.proj(y, `${p}.gate_proj`, b); // [B,S,D] -> [B,S,F]
    const up = c.proj(y, `${p}.up_proj`, b); // [B,S,D] -> [B,S,F]
    return c.proj(swiglu(gate, up), `${p}.down_proj`, b); // [B,S,F] -> [B,S,D]
  },
};
