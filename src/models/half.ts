// 16-bit float conversions (IEEE 754 binary16 and bfloat16) to and from float32, with
// round-to-nearest-even, as the checkpoint formats store them. Compute is always float32;
// these run only at load and save time. Leaves the element layout of files to the callers.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** One float32 to the bit pattern of the nearest binary16 (ties to even; overflow to inf). */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // inf/NaN
  // Unbiased exponent, rebias for half (bias 15).
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa with the implicit bit.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && (m & 1) !== 0)) m++;
    return sign | m;
  }
  let h = sign | (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (and can reach inf).
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0)) h++;
  return h;
}

/** A binary16 bit pattern to its float32 value (exact). */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** One float32 to the nearest bfloat16 bit pattern (ties to even; NaN stays NaN). */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff;
  const rounded = b + 0x7fff + ((b >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/** A bfloat16 bit pattern to float32 (exact: bf16 is the top half of a float32). */
export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0];
}

/** Lookup table for binary16 → float32; 256 KiB, built on first use. */
let f16Table: Float32Array | undefined;
function f16Lut(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) f16Table[i] = f16BitsToF32(i);
  }
  return f16Table;
}

/** Decode little-endian binary16 values to float32. */
export function f16ToF32Array(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const lut = f16Lut();
  for (let i = 0; i < src.length; i++) out[i] = lut[src[i]];
  return out;
}

/** Encode float32 values as binary16 bit patterns. */
export function f32ToF16Array(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16Bits(src[i]);
  return out;
}

/** Decode bfloat16 values to float32. */
export function bf16ToF32Array(src: Uint16Array, out = new Float32Array(src.length)): Float32Array {
  const o = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < src.length; i++) o[i] = src[i] << 16;
  return out;
}

/** Encode float32 values as bfloat16 bit patterns. */
export function f32ToBf16Array(src: Float32Array, out = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16Bits(src[i]);
  return out;
}
