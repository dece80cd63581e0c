// HF config.json → one internal ModelSpec, and back. Schemas for the LLaMA family (llama,
// mistral, qwen2 share LlamaConfig with flags) and GPT-2, a registry from model_type /
// architectures to a family, and the rope_theta / rope_parameters version trap. Keys that change
// the math and that we do not implement are ConfigErrors naming the key. The forward graphs
// that consume a ModelSpec are built elsewhere (llama.ts / gpt2.ts).
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError } from '../util/errors.ts';
import { bookkeepingShape } from './config-keys.ts';
import { parseRope, type RopeSpec, ropeToHf } from './rope-config.ts';

export type { RopeScaling, RopeSpec } from './rope-config.ts';

/** Model families a forward builder exists for. */
export type ModelFamily = 'llama' | 'gpt2';

/** config.json `model_type` values we load, with their family and HF class name. */
export const MODEL_TYPES = {
  llama: { family: 'llama', architecture: 'LlamaForCausalLM' },
  mistral: { family: 'llama', architecture: 'MistralForCausalLM' },
  qwen2: { family: 'llama', architecture: 'Qwen2ForCausalLM' },
  gpt2: { family: 'gpt2', architecture: 'GPT2LMHeadModel' },
} as const satisfies Record<string, { family: ModelFamily; architecture: string }>;

/** A supported `model_type`. */
export type ModelType = keyof typeof MODEL_TYPES;

/** Everything the forward pass needs to know about a model, in one normalised shape. */
export interface ModelSpec {
  readonly family: ModelFamily;
  readonly modelType: ModelType;
  /** HF class name written to `architectures`. */
  readonly architecture: string;
  readonly vocabSize: number;
  /** D: residual stream width. */
  readonly hiddenSize: number;
  /** MLP hidden width (SwiGLU gate/up width for llama, fc width for GPT-2). */
  readonly intermediateSize: number;
  /** L: number of transformer blocks. */
  readonly numLayers: number;
  /** H: query heads. */
  readonly numHeads: number;
  /** Key/value heads (GQA when smaller than numHeads). */
  readonly numKvHeads: number;
  /** Dh: per-head width (may differ from hiddenSize / numHeads when config.head_dim is set). */
  readonly headDim: number;
  /** Longest sequence the positions cover. */
  readonly maxPositions: number;
  readonly norm: 'rmsnorm' | 'layernorm';
  readonly normEps: number;
  /** HF activation name: 'silu' for SwiGLU; 'gelu_new' / 'gelu' / ... for GPT-2. */
  readonly activation: string;
  readonly mlp: 'swiglu' | 'gelu-mlp';
  readonly position: 'rope' | 'learned';
  /** RoPE base and scaling; null for learned positions. */
  readonly rope: RopeSpec | null;
  /** Biases on the q/k/v projections (qwen2, llama with attention_bias, GPT-2). */
  readonly qkvBias: boolean;
  /** Bias on the attention output projection. */
  readonly oBias: boolean;
  /** Biases in the MLP. */
  readonly mlpBias: boolean;
  readonly tieWordEmbeddings: boolean;
  /** Training-time dropout rates (0 at inference). */
  readonly attentionDropout: number;
  readonly residDropout: number;
  readonly embdDropout: number;
  readonly initializerRange: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | readonly number[] | null;
  readonly padTokenId: number | null;
  /** torch_dtype / dtype as written in the config (storage only; compute is f32). */
  readonly torchDtype: string | null;
}

const posInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative().nullish();
const tokenIds = z
  .union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative())])
  .nullish();

/** config.json of the LLaMA family (LlamaConfig, MistralConfig, Qwen2Config fields). */
export const LlamaConfigSchema = z.strictObject({
  ...bookkeepingShape,
  model_type: z.enum(['llama', 'mistral', 'qwen2']).optional(),
  bos_token_id: tokenId,
  eos_token_id: tokenIds,
  pad_token_id: tokenId,
  vocab_size: posInt,
  hidden_size: posInt,
  intermediate_size: posInt,
  num_hidden_layers: posInt,
  num_attention_heads: posInt,
  num_key_value_heads: posInt.nullish(),
  head_dim: posInt.nullish(),
  hidden_act: z.string().default('silu'),
  max_position_embeddings: posInt.optional(),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().optional(),
  rope_scaling: z.record(z.string(), z.unknown()).nullish(),
  rope_parameters: z.record(z.string(), z.unknown()).nullish(),
  attention_bias: z.boolean().default(false),
  attention_dropout: z.number().min(0).max(1).default(0),
  mlp_bias: z.boolean().default(false),
  tie_word_embeddings: z.boolean().default(false),
  sliding_window: z.number().int().nullish(),
  use_sliding_window: z.boolean().optional(),
  max_window_layers: z.number().int().optional(),
  layer_types: z.array(z.string()).optional(),
});

/** config.json of GPT-2 (GPT2Config fields). */
export const Gpt2ConfigSchema = z.strictObject({
  ...bookkeepingShape,
  model_type: z.literal('gpt2').optional(),
  bos_token_id: tokenId,
  eos_token_id: tokenIds,
  pad_token_id: tokenId,
  vocab_size: posInt,
  n_positions: posInt,
  n_ctx: posInt.optional(),
  n_embd: posInt,
  n_layer: posInt,
  n_head: posInt,
  n_inner: posInt.nullish(),
  activation_function: z.string().default('gelu_new'),
  resid_pdrop: z.number().min(0).max(1).default(0.1),
  embd_pdrop: z.number().min(0).max(1).default(0.1),
  attn_pdrop: z.number().min(0).max(1).default(0.1),
  layer_norm_epsilon: z.number().positive().default(1e-5),
  scale_attn_weights: z.boolean().default(true),
  scale_attn_by_inverse_layer_idx: z.boolean().default(false),
  reorder_and_upcast_attn: z.boolean().optional(),
  tie_word_embeddings: z.boolean().default(true),
  summary_type: z.unknown().optional(),
  summary_use_proj: z.unknown().optional(),
  summary_activation: z.unknown().optional(),
  summary_proj_to_labels: z.unknown().optional(),
  summary_first_dropout: z.unknown().optional(),
});

const GPT2_ACTIVATIONS = new Set(['gelu_new', 'gelu_pytorch_tanh', 'gelu', 'relu']);

/** Which family a config belongs to, from `model_type` (or `architectures` when it is absent). */
export function resolveModelType(raw: Record<string, unknown>, file?: string): ModelType {
  const mt = raw.model_type;
  if (typeof mt === 'string') {
    if (Object.hasOwn(MODEL_TYPES, mt)) return mt as ModelType;
    throw new ConfigError(
      `model_type '${mt}' is not supported`,
      { file, field: 'model_type' },
      {
        hint: `supported: ${Object.keys(MODEL_TYPES).join(', ')}`,
      },
    );
  }
  const arch = Array.isArray(raw.architectures) ? raw.architectures[0] : undefined;
  for (const [k, v] of Object.entries(MODEL_TYPES))
    if (v.architecture === arch) return k as ModelType;
  throw new ConfigError(
    `cannot tell the model family (model_type missing, architectures ${JSON.stringify(raw.architectures)})`,
    {
      file,
      field: 'model_type',
    },
  );
}

function zodError(err: z.ZodError, file?: string): ConfigError {
  const i = err.issues[0];
  if (i.code === 'unrecognized_keys') {
    const key = [...i.path, i.keys[0]].join('.');
    return new ConfigError(
      `unsupported key '${key}'`,
      { file, field: key },
      {
        hint: 'this key is not one instructkit implements; remove it only if it does not change the model',
      },
    );
  }
  const field = i.path.join('.');
  return new ConfigError(i.message, { file, field });
}

/** Parse a config.json object into a ModelSpec; throws ConfigError naming the offending key. */
export function parseHfConfig(raw: unknown, file?: string): ModelSpec {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new ConfigError('config.json must be a JSON object', { file });
  const modelType = resolveModelType(raw as Record<string, unknown>, file);
  return modelType === 'gpt2' ? parseGpt2(raw, file) : parseLlama(raw, modelType, file);
}

/** Read and parse a config.json file. */
export async function loadHfConfig(path: string): Promise<ModelSpec> {
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`cannot read config (${(e as Error).message})`, { file: path });
  }
  return parseHfConfig(raw, path);
}

function parseLlama(raw: unknown, modelType: ModelType, file?: string): ModelSpec {
  const r = LlamaConfigSchema.safeParse(raw);
  if (!r.success) throw zodError(r.error, file);
  const c = r.data;
  const err = (field: string, msg: string, hint?: string) =>
    new ConfigError(msg, { file, field }, { hint });
  if (c.hidden_act !== 'silu')
    throw err(
      'hidden_act',
      `hidden_act '${c.hidden_act}' is not supported (LLaMA-family MLPs here are SwiGLU with silu)`,
    );
  if (c.mlp_bias) throw err('mlp_bias', 'mlp_bias=true is not supported');
  const maxPositions = c.max_position_embeddings ?? (modelType === 'llama' ? 2048 : 32768);
  if (c.use_sliding_window === true)
    throw err(
      'use_sliding_window',
      'sliding-window attention is not supported',
      'set use_sliding_window to false',
    );
  if (c.layer_types?.some((t) => t !== 'full_attention'))
    throw err(
      'layer_types',
      `only full_attention layers are supported, got ${[...new Set(c.layer_types)].join(', ')}`,
    );
  // Mistral-style configs turn the window on by setting sliding_window; Qwen2 by the flag above.
  if (modelType !== 'qwen2' && c.sliding_window != null && c.sliding_window < maxPositions)
    throw err(
      'sliding_window',
      `sliding-window attention (window ${c.sliding_window} < ${maxPositions} positions) is not supported`,
      'set sliding_window to null',
    );
  const numKv = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % numKv !== 0)
    throw err(
      'num_key_value_heads',
      `num_attention_heads ${c.num_attention_heads} is not a multiple of num_key_value_heads ${numKv}`,
    );
  if (c.head_dim == null && c.hidden_size % c.num_attention_heads !== 0)
    throw err(
      'num_attention_heads',
      `hidden_size ${c.hidden_size} is not a multiple of num_attention_heads ${c.num_attention_heads}`,
    );
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (headDim % 2 !== 0) throw err('head_dim', `head_dim ${headDim} must be even for RoPE`);
  const rope = parseRope(c.rope_theta, c.rope_scaling, c.rope_parameters, 10000, file);
  const qwen = modelType === 'qwen2';
  return {
    family: 'llama',
    modelType,
    architecture: MODEL_TYPES[modelType].architecture,
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads: numKv,
    headDim,
    maxPositions,
    norm: 'rmsnorm',
    normEps: c.rms_norm_eps,
    activation: 'silu',
    mlp: 'swiglu',
    position: 'rope',
    rope,
    qkvBias: qwen || c.attention_bias,
    oBias: !qwen && c.attention_bias,
    mlpBias: false,
    tieWordEmbeddings: c.tie_word_embeddings,
    attentionDropout: c.attention_dropout,
    residDropout: 0,
    embdDropout: 0,
    initializerRange: typeof c.initializer_range === 'number' ? c.initializer_range : 0.02,
    bosTokenId: c.bos_token_id ?? null,
    eosTokenId: c.eos_token_id ?? null,
    padTokenId: c.pad_token_id ?? null,
    torchDtype: dtypeOf(c.torch_dtype ?? c.dtype),
  };
}

function parseGpt2(raw: unknown, file?: string): ModelSpec {
  const r = Gpt2ConfigSchema.safeParse(raw);
  if (!r.success) throw zodError(r.error, file);
  const c = r.data;
  const err = (field: string, msg: string) => new ConfigError(msg, { file, field });
  if (!GPT2_ACTIVATIONS.has(c.activation_function))
    throw err(
      'activation_function',
      `activation_function '${c.activation_function}' is not supported`,
    );
  if (!c.scale_attn_weights)
    throw err('scale_attn_weights', 'scale_attn_weights=false is not supported');
  if (c.scale_attn_by_inverse_layer_idx)
    throw err(
      'scale_attn_by_inverse_layer_idx',
      'scale_attn_by_inverse_layer_idx=true is not supported',
    );
  if (c.n_embd % c.n_head !== 0)
    throw err('n_head', `n_embd ${c.n_embd} is not a multiple of n_head ${c.n_head}`);
  return {
    family: 'gpt2',
    modelType: 'gpt2',
    architecture: MODEL_TYPES.gpt2.architecture,
    vocabSize: c.vocab_size,
    hiddenSize: c.n_embd,
    intermediateSize: c.n_inner ?? 4 * c.n_embd,
    numLayers: c.n_layer,
    numHeads: c.n_head,
    numKvHeads: c.n_head,
    headDim: c.n_embd / c.n_head,
    maxPositions: c.n_positions,
    norm: 'layernorm',
    normEps: c.layer_norm_epsilon,
    activation: c.activation_function,
    mlp: 'gelu-mlp',
    position: 'learned',
    rope: null,
    qkvBias: true,
    oBias: true,
    mlpBias: true,
    tieWordEmbeddings: c.tie_word_embeddings,
    attentionDropout: c.attn_pdrop,
    residDropout: c.resid_pdrop,
    embdDropout: c.embd_pdrop,
    initializerRange: typeof c.initializer_range === 'number' ? c.initializer_range : 0.02,
    bosTokenId: c.bos_token_id ?? null,
    eosTokenId: c.eos_token_id ?? null,
    padTokenId: c.pad_token_id ?? null,
    torchDtype: dtypeOf(c.torch_dtype ?? c.dtype),
  };
}

function dtypeOf(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

/**
 * The config.json object for a spec, in the form transformers v4.4x writes (top-level
 * `rope_theta` + `rope_scaling`, not v5's `rope_parameters`): every loader since v4.31 reads
 * it, including transformers v5 (which converts it on load) and llama.cpp's converter.
 */
export function hfConfigFromSpec(spec: ModelSpec): Record<string, unknown> {
  const common = {
    architectures: [spec.architecture],
    model_type: spec.modelType,
    bos_token_id: spec.bosTokenId,
    eos_token_id: spec.eosTokenId,
    pad_token_id: spec.padTokenId,
    initializer_range: spec.initializerRange,
    tie_word_embeddings: spec.tieWordEmbeddings,
    use_cache: true,
    vocab_size: spec.vocabSize,
    ...(spec.torchDtype !== null ? { torch_dtype: spec.torchDtype } : {}),
  };
  if (spec.family === 'gpt2') {
    return sortKeys({
      ...common,
      activation_function: spec.activation,
      attn_pdrop: spec.attentionDropout,
      embd_pdrop: spec.embdDropout,
      resid_pdrop: spec.residDropout,
      layer_norm_epsilon: spec.normEps,
      n_embd: spec.hiddenSize,
      n_head: spec.numHeads,
      n_inner: spec.intermediateSize === 4 * spec.hiddenSize ? null : spec.intermediateSize,
      n_layer: spec.numLayers,
      n_positions: spec.maxPositions,
      scale_attn_weights: true,
    });
  }
  const rope = ropeToHf(spec.rope!);
  const out: Record<string, unknown> = {
    ...common,
    attention_dropout: spec.attentionDropout,
    hidden_act: 'silu',
    hidden_size: spec.hiddenSize,
    intermediate_size: spec.intermediateSize,
    max_position_embeddings: spec.maxPositions,
    num_attention_heads: spec.numHeads,
    num_hidden_layers: spec.numLayers,
    num_key_value_heads: spec.numKvHeads,
    rms_norm_eps: spec.normEps,
    rope_scaling: rope.rope_scaling,
    rope_theta: rope.rope_theta,
  };
  // Qwen2Config in v4 has no head_dim field; write it there only when it is not the default.
  if (spec.modelType !== 'qwen2' || spec.headDim * spec.numHeads !== spec.hiddenSize)
    out.head_dim = spec.headDim;
  if (spec.modelType === 'qwen2') {
    out.use_sliding_window = false;
    out.max_window_layers = spec.numLayers;
  } else {
    out.attention_bias = spec.qkvBias;
    out.mlp_bias = false;
    if (spec.modelType === 'mistral') out.sliding_window = null;
  }
  return sortKeys(out);
}

function sortKeys(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => (a < b ? -1 : 1)));
}
