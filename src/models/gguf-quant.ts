// ggml tensor element types we write and read in GGUF files: F32, F16, BF16 and the Q8_0
// block format (ggml-common.h block_q8_0: 32 values share one f16 scale d = max|x| / 127 and
// are stored as int8 round(x / d), rounding half away from zero as llama.cpp's converter does).
// Other quantisations (Q4_K, ...) are left to llama.cpp's own llama-quantize.
import { FormatError } from '../util/errors.ts';
import {
  bf16ToF32Array,
  f16BitsToF32,
  f16ToF32Array,
  f32ToBf16Array,
  f32ToF16Array,
  f32ToF16Bits,
} from './half.ts';

/** ggml_type ids (ggml.h) of the types handled here. */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
export type GgmlType = (typeof GgmlType)[keyof typeof GgmlType];

/** Elements per block and bytes per block of each type. */
export const GGML_TYPE_SIZE: Readonly<
  Record<number, { readonly block: number; readonly bytes: number; readonly name: string }>
> = {
  [GgmlType.F32]: { block: 1, bytes: 4, name: 'F32' },
  [GgmlType.F16]: { block: 1, bytes: 2, name: 'F16' },
  [GgmlType.Q8_0]: { block: 32, bytes: 34, name: 'Q8_0' },
  [GgmlType.BF16]: { block: 1, bytes: 2, name: 'BF16' },
};

/** Q8_0 block: 32 values. */
export const QK8_0 = 32;

/** Bytes taken by `n` elements of `type` (n must be a whole number of blocks). */
export function ggmlBytes(type: number, n: number, what = 'tensor'): number {
  const t = GGML_TYPE_SIZE[type];
  if (t === undefined)
    throw new FormatError(`${what}: ggml type ${type} is not supported (F32, F16, BF16, Q8_0 are)`);
  if (n % t.block !== 0)
    throw new FormatError(
      `${what}: ${n} elements is not a whole number of ${t.name} blocks of ${t.block}`,
    );
  return (n / t.block) * t.bytes;
}

/** JS Math.round rounds -2.5 to -2; C roundf gives -3. */
function roundAway(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

/** Quantise float32 values (length a multiple of 32, row-major) into Q8_0 blocks. */
export function quantizeQ8_0(src: Float32Array): Uint8Array {
  if (src.length % QK8_0 !== 0)
    throw new FormatError(`Q8_0 needs a multiple of ${QK8_0} values, got ${src.length}`);
  const nb = src.length / QK8_0;
  const out = new Uint8Array(nb * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) amax = Math.max(amax, Math.abs(src[b * QK8_0 + j]));
    // float32 arithmetic, as the reference (numpy float32 / C float) does it.
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 34, f32ToF16Bits(d), true);
    for (let j = 0; j < QK8_0; j++)
      dv.setInt8(b * 34 + 2 + j, roundAway(Math.fround(src[b * QK8_0 + j] * id)));
  }
  return out;
}

/** Dequantise Q8_0 blocks: x = f16(d) · q. */
export function dequantizeQ8_0(bytes: Uint8Array, n: number): Float32Array {
  if (bytes.length !== (n / QK8_0) * 34)
    throw new FormatError(`Q8_0 data has ${bytes.length} bytes, expected ${(n / QK8_0) * 34}`);
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let b = 0; b < n / QK8_0; b++) {
    const d = f16BitsToF32(dv.getUint16(b * 34, true));
    for (let j = 0; j < QK8_0; j++) out[b * QK8_0 + j] = d * dv.getInt8(b * 34 + 2 + j);
  }
  return out;
}

/** Encode float32 values as `type` bytes (little-endian). */
export function encodeGgml(data: Float32Array, type: GgmlType): Uint8Array {
  switch (type) {
    case GgmlType.F32:
      return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    case GgmlType.F16: {
      const h = f32ToF16Array(data);
      return new Uint8Array(h.buffer);
    }
    case GgmlType.BF16: {
      const h = f32ToBf16Array(data);
      return new Uint8Array(h.buffer);
    }
    default:
      return quantizeQ8_0(data);
  }
}

/** Decode `n` elements of `type` to float32. */
export function decodeGgml(
  bytes: Uint8Array,
  type: number,
  n: number,
  what = 'tensor',
): Float32Array {
  const need = ggmlBytes(type, n, what);
  if (bytes.length !== need)
    throw new FormatError(`${what}: ${bytes.length} bytes of data, expected ${need}`);
  // Copy into a fresh, aligned buffer before viewing it as 16/32-bit values.
  const own = new Uint8Array(bytes);
  switch (type) {
    case GgmlType.F32:
      return new Float32Array(own.buffer);
    case GgmlType.F16:
      return f16ToF32Array(new Uint16Array(own.buffer));
    case GgmlType.BF16:
      return bf16ToF32Array(new Uint16Array(own.buffer));
    default:
      return dequantizeQ8_0(own, n);
  }
}
