// Element types the engine understands, their ONNX TensorProto codes and typed-array backing.
// float64 exists for gradient checks; int64 is the ONNX index type (BigInt64Array in JS).
// Leaves the mapping to onnxruntime's own type names to runtime.ts.

/** Element type of a graph value. */
export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'uint32' | 'bool';

/** Typed array that backs a tensor of each dtype. */
export interface TypedArrayOf {
  float32: Float32Array;
  float64: Float64Array;
  int64: BigInt64Array;
  int32: Int32Array;
  uint32: Uint32Array;
  bool: Uint8Array;
}

/** Any typed array the engine stores tensor data in. */
export type TypedArray = TypedArrayOf[DType];

/** ONNX `TensorProto.DataType` codes (onnx.proto, enum DataType). */
export const ONNX_DTYPE: Readonly<Record<DType, number>> = {
  float32: 1,
  uint32: 12,
  int32: 6,
  int64: 7,
  bool: 9,
  float64: 11,
};

/** Bytes per element. */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = {
  float32: 4,
  float64: 8,
  int64: 8,
  int32: 4,
  uint32: 4,
  bool: 1,
};

/** True for the dtypes gradients flow through. */
export function isFloat(d: DType): d is 'float32' | 'float64' {
  return d === 'float32' || d === 'float64';
}

/** A zero-filled typed array of `n` elements of dtype `d`. */
export function allocTyped<D extends DType>(d: D, n: number): TypedArrayOf[D] {
  switch (d) {
    case 'float32':
      return new Float32Array(n) as TypedArrayOf[D];
    case 'float64':
      return new Float64Array(n) as TypedArrayOf[D];
    case 'int64':
      return new BigInt64Array(n) as TypedArrayOf[D];
    case 'int32':
      return new Int32Array(n) as TypedArrayOf[D];
    case 'uint32':
      return new Uint32Array(n) as TypedArrayOf[D];
    default:
      return new Uint8Array(n) as TypedArrayOf[D];
  }
}

/** Copy plain numbers (or bigints) into a fresh typed array of dtype `d`. */
export function toTyped<D extends DType>(
  d: D,
  values: ArrayLike<number> | ArrayLike<bigint>,
): TypedArrayOf[D] {
  const out = allocTyped(d, values.length);
  if (d === 'int64') {
    const o = out as BigInt64Array;
    for (let i = 0; i < values.length; i++) o[i] = BigInt(values[i] as number | bigint);
  } else {
    const o = out as Exclude<TypedArray, BigInt64Array>;
    for (let i = 0; i < values.length; i++) o[i] = Number(values[i]);
  }
  return out;
}

/** The dtype a typed array naturally holds (Uint8Array is read as bool). */
export function dtypeOfArray(a: TypedArray): DType {
  if (a instanceof Float32Array) return 'float32';
  if (a instanceof Float64Array) return 'float64';
  if (a instanceof BigInt64Array) return 'int64';
  if (a instanceof Int32Array) return 'int32';
  if (a instanceof Uint32Array) return 'uint32';
  return 'bool';
}
