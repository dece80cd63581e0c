// Names and codes shared by the GGUF export and import: HF ↔ GGUF tensor names for the LLaMA
// family (gguf-py tensor_mapping.py), token types and general.file_type codes (llama.h).

/** tokenizer.ggml.token_type values (llama_token_type). */
export const GGUF_TOKEN_TYPE = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;

/** Storage choices for exported weights and their general.file_type codes (llama_ftype). */
export const GGUF_FILE_TYPE = { f32: 0, f16: 1, q8_0: 7 } as const;
export type GgufFileType = keyof typeof GGUF_FILE_TYPE;

const TOP: Record<string, string> = {
  'model.embed_tokens.weight': 'token_embd.weight',
  'model.norm.weight': 'output_norm.weight',
  'lm_head.weight': 'output.weight',
};

const BLOCK: Record<string, string> = {
  'input_layernorm.weight': 'attn_norm.weight',
  'self_attn.q_proj.weight': 'attn_q.weight',
  'self_attn.q_proj.bias': 'attn_q.bias',
  'self_attn.k_proj.weight': 'attn_k.weight',
  'self_attn.k_proj.bias': 'attn_k.bias',
  'self_attn.v_proj.weight': 'attn_v.weight',
  'self_attn.v_proj.bias': 'attn_v.bias',
  'self_attn.o_proj.weight': 'attn_output.weight',
  'self_attn.o_proj.bias': 'attn_output.bias',
  'post_attention_layernorm.weight': 'ffn_norm.weight',
  'mlp.gate_proj.weight': 'ffn_gate.weight',
  'mlp.up_proj.weight': 'ffn_up.weight',
  'mlp.down_proj.weight': 'ffn_down.weight',
};
const BLOCK_INV = Object.fromEntries(Object.entries(BLOCK).map(([a, b]) => [b, a]));
const TOP_INV = Object.fromEntries(Object.entries(TOP).map(([a, b]) => [b, a]));

/** GGUF name of an HF LLaMA-family tensor, or undefined when the name is not one we know. */
export function hfToGguf(name: string): string | undefined {
  if (TOP[name] !== undefined) return TOP[name];
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (m === null) return undefined;
  const g = BLOCK[m[2]];
  return g === undefined ? undefined : `blk.${m[1]}.${g}`;
}

/** HF name of a GGUF LLaMA-family tensor, or undefined. */
export function ggufToHf(name: string): string | undefined {
  if (TOP_INV[name] !== undefined) return TOP_INV[name];
  const m = /^blk\.(\d+)\.(.+)$/.exec(name);
  if (m === null) return undefined;
  const h = BLOCK_INV[m[2]];
  return h === undefined ? undefined : `model.layers.${m[1]}.${h}`;
}

/**
 * Row permutation llama.cpp's `llama` architecture needs for q_proj / k_proj (weights and
 * biases). HF applies RoPE with rotate_half, pairing element i with i + Dh/2 of each head;
 * llama.cpp's LLAMA_ROPE_TYPE_NORM pairs 2i with 2i+1. Reordering each head's rows from
 * [first half; second half] to interleaved makes the two agree (convert_hf_to_gguf.py permute).
 * `w` is [nHead·Dh, cols] row-major; returns a new array.
 */
export function permuteRope(
  w: Float32Array,
  nHead: number,
  cols: number,
  inverse = false,
): Float32Array {
  const rows = w.length / cols;
  const dh = rows / nHead;
  const half = dh / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < nHead; h++)
    for (let i = 0; i < half; i++)
      for (let j = 0; j < 2; j++) {
        const interleaved = h * dh + 2 * i + j; // llama.cpp row
        const halves = h * dh + j * half + i; // HF row
        const [dst, src] = inverse ? [halves, interleaved] : [interleaved, halves];
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
  return out;
}
