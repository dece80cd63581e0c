// The built-in tiny model: a LLaMA-architecture config small enough to train on a CPU in
// minutes for the demo and the tests, with its own byte-level BPE vocabulary (bpe-train.ts).
// Weight initialisation and training belong to later stages; this file only fixes the shape.
import type { ByteLevelBpe } from './bpe.ts';
import { DEFAULT_SPECIAL_TOKENS, trainBpe } from './bpe-train.ts';
import { hfConfigFromSpec, type ModelSpec, parseHfConfig } from './config.ts';
import { Tokenizer } from './tokenizer.ts';

/** Options that may be varied around the built-in tiny shape. */
export interface TinyLlamaOptions {
  /** Vocabulary size, incl. special tokens. @default 2048 */
  vocabSize?: number;
  /** Context length in tokens. @default 256 */
  maxPositions?: number;
  /** Token ids of the special tokens of the tokenizer the model is trained with. */
  bosTokenId?: number | null;
  eosTokenId?: number | null;
  padTokenId?: number | null;
  /**
   * A smaller (or larger) shape for tests and benchmarks; every field defaults to the built-in
   * one. Passed through config.json keys, so the spec stays consistent with what is saved.
   */
  shape?: {
    hiddenSize?: number;
    intermediateSize?: number;
    numLayers?: number;
    numHeads?: number;
    numKvHeads?: number;
    headDim?: number;
    initializerRange?: number;
  };
}

/**
 * The built-in tiny LLaMA: D=256, L=4, H=4 (Dh=64) with 2 KV heads, SwiGLU width 704,
 * vocab 2048, context 256, tied embeddings, rope_theta 10000, rms eps 1e-5: 3.48 M parameters.
 *
 * Why these numbers:
 * - Dh=64 is the head width of every LLaMA size, so RoPE and attention run at the real shape.
 * - 2 KV heads (GQA 2:1) keep the grouped-attention path of Llama 3 / Qwen2 exercised.
 * - 704 = 11·64 ≈ 8/3·D: a SwiGLU MLP has three matrices, so its width is 2/3 of the 4·D of a
 *   plain MLP to keep the parameter count (Shazeer 2020, "GLU Variants Improve Transformer"); rounded to a multiple of 32 so every row splits into q8_0 blocks for GGUF export
 *   (688, the plain rounding to 16, would not).
 * - vocab 2048 from our own BPE: 4 specials + 256 bytes + 1788 merges covers English well enough
 *   for a few-MB corpus; tied embeddings keep the embedding share at 15 % of the weights.
 */
export function tinyLlamaConfig(opts: TinyLlamaOptions = {}): ModelSpec {
  return parseHfConfig({
    model_type: 'llama',
    architectures: ['LlamaForCausalLM'],
    vocab_size: opts.vocabSize ?? 2048,
    hidden_size: opts.shape?.hiddenSize ?? 256,
    intermediate_size: opts.shape?.intermediateSize ?? 704,
    num_hidden_layers: opts.shape?.numLayers ?? 4,
    num_attention_heads: opts.shape?.numHeads ?? 4,
    num_key_value_heads: opts.shape?.numKvHeads ?? 2,
    head_dim: opts.shape?.headDim ?? 64,
    hidden_act: 'silu',
    max_position_embeddings: opts.maxPositions ?? 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: true,
    initializer_range: opts.shape?.initializerRange ?? 0.02,
    bos_token_id: opts.bosTokenId ?? null,
    eos_token_id: opts.eosTokenId ?? null,
    pad_token_id: opts.padTokenId ?? null,
    torch_dtype: 'float32',
  });
}

/** Parameter count of a LLaMA-family or GPT-2 spec (weights + biases + norms). */
export function parameterCount(spec: ModelSpec): number {
  const { hiddenSize: d, intermediateSize: f, numHeads: h, numKvHeads: kv, headDim: dh } = spec;
  const q = h * dh;
  const k = kv * dh;
  const emb = spec.vocabSize * d + (spec.position === 'learned' ? spec.maxPositions * d : 0);
  const head = spec.tieWordEmbeddings ? 0 : spec.vocabSize * d;
  const normParams = spec.norm === 'layernorm' ? 2 * d : d;
  const attn = d * (q + 2 * k) + q * d + (spec.qkvBias ? q + 2 * k : 0) + (spec.oBias ? d : 0);
  const mlp = spec.mlp === 'swiglu' ? 3 * d * f : 2 * d * f;
  const mlpB = spec.mlpBias ? (spec.mlp === 'swiglu' ? 2 * f + d : f + d) : 0;
  return emb + head + normParams + spec.numLayers * (attn + mlp + mlpB + 2 * normParams);
}

/** config.json object for the tiny model. */
export function tinyLlamaHfConfig(opts: TinyLlamaOptions = {}): Record<string, unknown> {
  return hfConfigFromSpec(tinyLlamaConfig(opts));
}

/**
 * ChatML-style chat template of the tiny model (written here): each message as
 * <|im_start|>role, newline, content, <|im_end|>, newline; the generation prompt opens an
 * assistant turn.
 */
export const TINY_CHAT_TEMPLATE = [
  '{%- for message in messages -%}',
  "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' -}}",
  '{%- endfor -%}',
  "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}",
].join('\n');

/**
 * Train the tiny model's tokenizer on a corpus: byte-level BPE with the four special tokens
 * (<|endoftext|>, <|im_start|>, <|im_end|>, <pad> at ids 0..3); eos is <|im_end|> (the end of an
 * assistant turn), pad is <pad>, no bos.
 */
export function trainTinyTokenizer(
  texts: Iterable<string>,
  vocabSize = 2048,
): { bpe: ByteLevelBpe; tokenizer: Tokenizer } {
  const bpe = trainBpe(texts, { vocabSize, specialTokens: DEFAULT_SPECIAL_TOKENS });
  const tokenizer = Tokenizer.fromBpe(bpe, {
    eosToken: '<|im_end|>',
    padToken: '<pad>',
    chatTemplate: TINY_CHAT_TEMPLATE,
    modelMaxLength: 256,
  });
  return { bpe, tokenizer };
}
