// LLaMA-family models to and from GGUF for llama.cpp / Ollama. Export writes the `llama`
// architecture (Q/K rows permuted for its interleaved RoPE) or `qwen2` (NEOX RoPE, no
// permutation, q/k/v biases), the hyperparameter keys llama.cpp reads, the tokenizer, and the
// weights as f32 / f16 / q8_0. Import reads f32 / f16 / bf16 / q8_0 files back into HF-named f32
// tensors and a ModelSpec. The container format itself is gguf.ts / gguf-reader.ts.
import { FormatError } from '../util/errors.ts';
import { hfConfigFromSpec, type ModelSpec, parseHfConfig } from './config.ts';
import { GgufType, GgufWriter } from './gguf.ts';
import {
  GGUF_FILE_TYPE,
  type GgufFileType,
  ggufToHf,
  hfToGguf,
  permuteRope,
} from './gguf-names.ts';
import { encodeGgml, GgmlType, QK8_0 } from './gguf-quant.ts';
import { GgufReader } from './gguf-reader.ts';
import { tokenizerFromGguf, writeGgufTokenizer } from './gguf-tokenizer.ts';
import { ropeInvFreq } from './rope-config.ts';
import type { HostTensor, TensorMap } from './tensor.ts';
import type { Tokenizer } from './tokenizer.ts';

/** llama.cpp architectures we export to. */
export type GgufArch = 'llama' | 'qwen2';

/** Options for exportGguf. */
export interface GgufExportOptions {
  /**
   * The model's tokenizer: byte-level BPE (written as llama.cpp's "gpt2" vocabulary) or
   * SentencePiece-style BPE with byte fallback (its "llama" vocabulary, with scores).
   */
  tokenizer: Tokenizer;
  /** Target architecture. @default 'qwen2' for qwen2 models, else 'llama' */
  arch?: GgufArch;
  /** Weight storage; norms and biases always stay f32. @default 'f16' */
  fileType?: GgufFileType;
  /** general.name. @default spec.modelType */
  name?: string;
  /** tokenizer.ggml.pre override for byte-level BPE (normally derived from tokenizer.json). */
  pre?: string;
  /** Data alignment in bytes. @default 32 */
  alignment?: number;
}

function expectShape(
  name: string,
  t: HostTensor | undefined,
  shape: readonly number[],
): HostTensor {
  if (t === undefined) throw new FormatError(`missing tensor '${name}'`);
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
    throw new FormatError(
      `tensor '${name}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`,
    );
  return t;
}

/**
 * Llama 3 RoPE scaling as llama.cpp wants it: a rope_freqs tensor of per-frequency divisors
 * (the plain frequency over the scaled one), as convert_hf_to_gguf.py computes them.
 */
function ropeFreqFactors(spec: ModelSpec): Float32Array {
  const plain = ropeInvFreq({ theta: spec.rope!.theta, scaling: null }, spec.headDim);
  const scaled = ropeInvFreq(spec.rope!, spec.headDim);
  return Float32Array.from(plain, (p, i) => p / scaled[i]);
}

/**
 * Write a LLaMA-family model (HF tensor names, f32) with its tokenizer to a GGUF file.
 * @example await exportGguf('tiny.gguf', spec, tensors, { tokenizer, fileType: 'q8_0' });
 */
export async function exportGguf(
  path: string,
  spec: ModelSpec,
  tensors: TensorMap,
  opts: GgufExportOptions,
): Promise<void> {
  if (spec.family !== 'llama')
    throw new FormatError(`GGUF export supports the LLaMA family, not ${spec.modelType}`, path);
  const arch = opts.arch ?? (spec.modelType === 'qwen2' ? 'qwen2' : 'llama');
  const fileType = opts.fileType ?? 'f16';
  const scaling = spec.rope?.scaling ?? null;
  if (scaling?.type === 'dynamic')
    throw new FormatError('dynamic NTK RoPE scaling has no GGUF form', path);
  if (arch === 'qwen2' && scaling?.type === 'llama3')
    throw new FormatError('llama3 RoPE scaling needs the llama architecture', path);
  if (arch === 'qwen2' && spec.oBias)
    throw new FormatError("llama.cpp's qwen2 has no attn_output bias", path);

  const w = new GgufWriter({ alignment: opts.alignment });
  const {
    hiddenSize: d,
    numHeads: h,
    numKvHeads: kv,
    headDim: dh,
    intermediateSize: f,
    vocabSize: v,
  } = spec;
  w.set('general.architecture', GgufType.STRING, arch);
  w.set('general.type', GgufType.STRING, 'model');
  w.set('general.name', GgufType.STRING, opts.name ?? spec.modelType);
  w.set('general.file_type', GgufType.UINT32, GGUF_FILE_TYPE[fileType]);
  if (fileType === 'q8_0') w.set('general.quantization_version', GgufType.UINT32, 2);
  const hp = (k: string, type: GgufType, value: number) => w.set(`${arch}.${k}`, type, value);
  hp('context_length', GgufType.UINT32, spec.maxPositions);
  hp('embedding_length', GgufType.UINT32, d);
  hp('block_count', GgufType.UINT32, spec.numLayers);
  hp('feed_forward_length', GgufType.UINT32, f);
  hp('attention.head_count', GgufType.UINT32, h);
  hp('attention.head_count_kv', GgufType.UINT32, kv);
  hp('attention.layer_norm_rms_epsilon', GgufType.FLOAT32, spec.normEps);
  hp('rope.freq_base', GgufType.FLOAT32, spec.rope!.theta);
  hp('rope.dimension_count', GgufType.UINT32, dh);
  hp('vocab_size', GgufType.UINT32, v);
  if (dh * h !== d) {
    hp('attention.key_length', GgufType.UINT32, dh);
    hp('attention.value_length', GgufType.UINT32, dh);
  }
  if (scaling?.type === 'linear') {
    w.set(`${arch}.rope.scaling.type`, GgufType.STRING, 'linear');
    hp('rope.scaling.factor', GgufType.FLOAT32, scaling.factor);
  }
  writeGgufTokenizer(w, opts.tokenizer, v, { pre: opts.pre });

  const storage = (shape: readonly number[]): GgmlType => {
    if (shape.length === 1 || fileType === 'f32') return GgmlType.F32;
    if (fileType === 'q8_0' && shape[shape.length - 1] % QK8_0 === 0) return GgmlType.Q8_0;
    return GgmlType.F16; // q8_0 fallback for rows that do not split into blocks, as the converter does
  };
  const used = new Set<string>();
  const put = (
    hf: string,
    shape: readonly number[],
    transform?: (x: Float32Array) => Float32Array,
  ) => {
    const t = expectShape(hf, tensors.get(hf), shape);
    used.add(hf);
    const data = transform ? transform(t.data) : t.data;
    const type = storage(shape);
    w.addTensor(hfToGguf(hf)!, shape, type, encodeGgml(data, type));
  };
  const zeros = (hf: string, n: number) =>
    w.addTensor(hfToGguf(hf)!, [n], GgmlType.F32, encodeGgml(new Float32Array(n), GgmlType.F32));
  const perm = (heads: number, cols: number) =>
    arch === 'llama' ? (x: Float32Array) => permuteRope(x, heads, cols) : undefined;

  put('model.embed_tokens.weight', [v, d]);
  if (scaling?.type === 'llama3') {
    const fac = ropeFreqFactors(spec);
    w.addTensor('rope_freqs.weight', [fac.length], GgmlType.F32, encodeGgml(fac, GgmlType.F32));
  }
  for (let l = 0; l < spec.numLayers; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, [d]);
    put(`${p}.self_attn.q_proj.weight`, [h * dh, d], perm(h, d));
    put(`${p}.self_attn.k_proj.weight`, [kv * dh, d], perm(kv, d));
    put(`${p}.self_attn.v_proj.weight`, [kv * dh, d]);
    if (spec.qkvBias) {
      put(`${p}.self_attn.q_proj.bias`, [h * dh], perm(h, 1));
      put(`${p}.self_attn.k_proj.bias`, [kv * dh], perm(kv, 1));
      put(`${p}.self_attn.v_proj.bias`, [kv * dh]);
    } else if (arch === 'qwen2') {
      // llama.cpp's qwen2 graph adds q/k/v biases unconditionally; zeros keep the math.
      zeros(`${p}.self_attn.q_proj.bias`, h * dh);
      zeros(`${p}.self_attn.k_proj.bias`, kv * dh);
      zeros(`${p}.self_attn.v_proj.bias`, kv * dh);
    }
    put(`${p}.self_attn.o_proj.weight`, [d, h * dh]);
    if (spec.oBias) put(`${p}.self_attn.o_proj.bias`, [d]);
    put(`${p}.post_attention_layernorm.weight`, [d]);
    put(`${p}.mlp.gate_proj.weight`, [f, d]);
    put(`${p}.mlp.up_proj.weight`, [f, d]);
    put(`${p}.mlp.down_proj.weight`, [d, f]);
  }
  put('model.norm.weight', [d]);
  // Tied embeddings: no output.weight; llama.cpp then reuses token_embd.
  if (!spec.tieWordEmbeddings) put('lm_head.weight', [v, d]);
  for (const name of tensors.keys())
    if (!used.has(name) && !name.endsWith('rotary_emb.inv_freq'))
      throw new FormatError(`tensor '${name}' has no place in the ${arch} GGUF layout`, path, {
        hint:
          spec.tieWordEmbeddings && name === 'lm_head.weight'
            ? 'the config ties embeddings; drop lm_head.weight'
            : undefined,
      });
  await w.write(path);
}

/** The shortest decimal that rounds to the same float32 (GGUF stores eps, theta as f32). */
function shortestF32(x: number): number {
  for (let p = 1; p <= 9; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === Math.fround(x)) return y;
  }
  return x;
}

/** A model read back from GGUF. */
export interface ImportedGguf {
  readonly spec: ModelSpec;
  /** HF-named float32 tensors (Q/K permutation undone for `llama`). */
  readonly tensors: TensorMap;
  readonly tokenizer: Tokenizer | null;
  readonly arch: GgufArch;
}

/** Read a llama / qwen2 GGUF (f32, f16, bf16 or q8_0 weights) as an HF-style model. */
export async function importGguf(path: string): Promise<ImportedGguf> {
  const r = GgufReader.open(path);
  try {
    const arch = r.str('general.architecture');
    if (arch !== 'llama' && arch !== 'qwen2')
      throw new FormatError(
        `general.architecture '${arch}' cannot be imported (llama and qwen2 can)`,
        path,
      );
    const k = (key: string, fallback?: number) => r.num(`${arch}.${key}`, fallback);
    const d = k('embedding_length');
    const h = k('attention.head_count');
    const kv = k('attention.head_count_kv', h);
    const dh = k('attention.key_length', k('rope.dimension_count', d / h));
    const embd = r.tensor('token_embd.weight');
    const names = new Set(r.tensors.map((t) => t.name));
    if (names.has('rope_freqs.weight'))
      throw new FormatError(
        'llama3 rope_freqs cannot be mapped back to HF rope_scaling parameters',
        path,
      );
    const qkvBias = names.has('blk.0.attn_q.bias');
    const oBias = names.has('blk.0.attn_output.bias');
    const scalingType = r.str(`${arch}.rope.scaling.type`);
    const config: Record<string, unknown> = {
      model_type: arch,
      vocab_size: embd.shape[0],
      hidden_size: d,
      intermediate_size: k('feed_forward_length'),
      num_hidden_layers: k('block_count'),
      num_attention_heads: h,
      num_key_value_heads: kv,
      head_dim: dh,
      max_position_embeddings: k('context_length'),
      rms_norm_eps: shortestF32(k('attention.layer_norm_rms_epsilon')),
      rope_theta: shortestF32(k('rope.freq_base', 10000)),
      rope_scaling:
        scalingType === 'linear'
          ? { rope_type: 'linear', factor: shortestF32(k('rope.scaling.factor')) }
          : null,
      tie_word_embeddings: !names.has('output.weight'),
    };
    if (scalingType !== undefined && scalingType !== 'linear' && scalingType !== 'none')
      throw new FormatError(`rope scaling type '${scalingType}' cannot be imported`, path);
    if (arch === 'llama') config.attention_bias = qkvBias || oBias;
    else config.use_sliding_window = false;
    const spec = parseHfConfig(
      JSON.parse(JSON.stringify(hfConfigFromSpec(parseHfConfig(config, path)))),
      path,
    );
    const tensors: TensorMap = new Map();
    for (const t of r.tensors) {
      const hf = ggufToHf(t.name);
      if (hf === undefined)
        throw new FormatError(`tensor '${t.name}' is not part of the ${arch} layout`, path);
      let data = r.readF32(t.name);
      const cols = t.shape.length === 2 ? t.shape[1] : 1;
      if (arch === 'llama' && /self_attn\.q_proj/.test(hf)) data = permuteRope(data, h, cols, true);
      if (arch === 'llama' && /self_attn\.k_proj/.test(hf))
        data = permuteRope(data, kv, cols, true);
      tensors.set(hf, { shape: t.shape, data });
    }
    // HF llama's attention_bias puts a bias on o_proj too; supply zeros when the file has none.
    if (arch === 'llama' && qkvBias && !oBias)
      for (let l = 0; l < spec.numLayers; l++)
        tensors.set(`model.layers.${l}.self_attn.o_proj.bias`, {
          shape: [d],
          data: new Float32Array(d),
        });
    return { spec, tensors, tokenizer: tokenizerFromGguf(r), arch };
  } finally {
    r.close();
  }
}
