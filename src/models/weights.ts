// The HF parameter names and shapes a ModelSpec implies (LlamaForCausalLM / Qwen2ForCausalLM /
// MistralForCausalLM and GPT2LMHeadModel layouts), and a check of a loaded tensor map against
// them. The forward builders read the same names; the checkpoint loader uses the check so a
// file with a missing or misshapen tensor fails at load time, naming it.
import { ConfigError, FormatError } from '../util/errors.ts';
import type { ModelSpec } from './config.ts';
import type { HostTensor, TensorMap } from './tensor.ts';

/** Name → row-major shape of every parameter the spec's HF model has. */
export function expectedTensors(spec: ModelSpec): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const {
    hiddenSize: D,
    intermediateSize: F,
    vocabSize: V,
    numHeads: H,
    numKvHeads: KV,
    headDim: Dh,
  } = spec;
  if (spec.family === 'gpt2') {
    m.set('transformer.wte.weight', [V, D]);
    m.set('transformer.wpe.weight', [spec.maxPositions, D]);
    for (let l = 0; l < spec.numLayers; l++) {
      const p = `transformer.h.${l}`;
      // GPT-2 uses Conv1D: weights are stored [in, out].
      m.set(`${p}.ln_1.weight`, [D]).set(`${p}.ln_1.bias`, [D]);
      m.set(`${p}.attn.c_attn.weight`, [D, 3 * D]).set(`${p}.attn.c_attn.bias`, [3 * D]);
      m.set(`${p}.attn.c_proj.weight`, [D, D]).set(`${p}.attn.c_proj.bias`, [D]);
      m.set(`${p}.ln_2.weight`, [D]).set(`${p}.ln_2.bias`, [D]);
      m.set(`${p}.mlp.c_fc.weight`, [D, F]).set(`${p}.mlp.c_fc.bias`, [F]);
      m.set(`${p}.mlp.c_proj.weight`, [F, D]).set(`${p}.mlp.c_proj.bias`, [D]);
    }
    m.set('transformer.ln_f.weight', [D]).set('transformer.ln_f.bias', [D]);
    if (!spec.tieWordEmbeddings) m.set('lm_head.weight', [V, D]);
    return m;
  }
  m.set('model.embed_tokens.weight', [V, D]);
  for (let l = 0; l < spec.numLayers; l++) {
    const p = `model.layers.${l}`;
    m.set(`${p}.input_layernorm.weight`, [D]);
    m.set(`${p}.self_attn.q_proj.weight`, [H * Dh, D]);
    m.set(`${p}.self_attn.k_proj.weight`, [KV * Dh, D]);
    m.set(`${p}.self_attn.v_proj.weight`, [KV * Dh, D]);
    if (spec.qkvBias) {
      m.set(`${p}.self_attn.q_proj.bias`, [H * Dh]);
      m.set(`${p}.self_attn.k_proj.bias`, [KV * Dh]);
      m.set(`${p}.self_attn.v_proj.bias`, [KV * Dh]);
    }
    m.set(`${p}.self_attn.o_proj.weight`, [D, H * Dh]);
    if (spec.oBias) m.set(`${p}.self_attn.o_proj.bias`, [D]);
    m.set(`${p}.post_attention_layernorm.weight`, [D]);
    m.set(`${p}.mlp.gate_proj.weight`, [F, D]);
    m.set(`${p}.mlp.up_proj.weight`, [F, D]);
    m.set(`${p}.mlp.down_proj.weight`, [D, F]);
  }
  m.set('model.norm.weight', [D]);
  if (!spec.tieWordEmbeddings) m.set('lm_head.weight', [V, D]);
  return m;
}

/** Buffers some checkpoints carry that are not parameters (recomputed from the config). */
const IGNORABLE = /(\.rotary_emb\.inv_freq|\.attn\.bias|\.attn\.masked_bias)$/;

/**
 * HF names of a checkpoint's tensors, normalised: GPT-2 files saved from GPT2Model lack the
 * `transformer.` prefix; non-parameter buffers and a redundant tied lm_head are dropped.
 */
export function normaliseTensorNames(
  spec: ModelSpec,
  names: readonly string[],
): Map<string, string> {
  const out = new Map<string, string>(); // stored name → HF name
  const gpt2Bare = spec.family === 'gpt2' && !names.some((n) => n.startsWith('transformer.'));
  for (const n of names) {
    if (IGNORABLE.test(n)) continue;
    if (spec.tieWordEmbeddings && n === 'lm_head.weight') continue;
    out.set(n, gpt2Bare && n !== 'lm_head.weight' ? `transformer.${n}` : n);
  }
  return out;
}

/** Throw a FormatError naming the first missing, misshapen or unexpected tensor. */
export function checkTensors(
  spec: ModelSpec,
  tensors: TensorMap | ReadonlyMap<string, { shape: readonly number[] }>,
  file?: string,
): void {
  const want = expectedTensors(spec);
  for (const [name, shape] of want) {
    const t = tensors.get(name);
    if (t === undefined)
      throw new FormatError(`missing tensor '${name}'`, file, {
        hint: 'the weights do not match config.json',
      });
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new FormatError(
        `tensor '${name}' has shape [${t.shape.join(', ')}], config.json implies [${shape.join(', ')}]`,
        file,
      );
  }
  for (const name of tensors.keys())
    if (!want.has(name))
      throw new FormatError(`unexpected tensor '${name}' for a ${spec.modelType} model`, file);
}

/**
 * Writes `values` into the model's host tensors in place (base first, then adapter), so sessions
 * that read those tensors by reference see them. Unknown names and wrong sizes are ConfigErrors.
 */
export function assignWeights(
  values: ReadonlyMap<string, ArrayLike<number>>,
  base: ReadonlyMap<string, HostTensor>,
  adapter: ReadonlyMap<string, HostTensor> | undefined,
): void {
  for (const [name, data] of values) {
    const t = base.get(name) ?? adapter?.get(name);
    if (!t) throw new ConfigError(`unknown weight '${name}'`, { field: name });
    if (data.length !== t.data.length)
      throw new ConfigError(`weight '${name}' has ${t.data.length} values, got ${data.length}`, {
        field: name,
      });
    t.data.set(data);
  }
}
