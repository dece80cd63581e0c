// The host-side tensor every model file format in src/models reads into and writes from: a
// row-major float32 array with its shape, keyed by the HF parameter name. Compute is f32; the
// storage dtype (f16, bf16, q8_0) is chosen only when a file is written.
import { ShapeError } from '../util/errors.ts';

/** A row-major float32 tensor held in memory (shape in PyTorch order, outermost first). */
export interface HostTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** Parameter name → tensor, in a stable (insertion) order. HF names unless stated. */
export type TensorMap = Map<string, HostTensor>;

/** Number of elements of a shape (1 for a scalar). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A HostTensor after checking that `data` has exactly numel(shape) elements. */
export function hostTensor(
  shape: readonly number[],
  data: Float32Array,
  what = 'tensor',
): HostTensor {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0)
      throw new ShapeError(what, `bad dimension ${d} in shape [${shape.join(', ')}]`);
  }
  const n = numel(shape);
  if (data.length !== n)
    throw new ShapeError(what, `shape [${shape.join(', ')}] needs ${n} values, got ${data.length}`);
  return { shape: [...shape], data };
}

/** True when two tensor maps hold the same names, shapes and bit-identical values. */
export function tensorMapsEqual(a: TensorMap, b: TensorMap): boolean {
  if (a.size !== b.size) return false;
  for (const [name, x] of a) {
    const y = b.get(name);
    if (y === undefined || x.shape.length !== y.shape.length) return false;
    if (x.shape.some((d, i) => d !== y.shape[i])) return false;
    const xb = new Uint32Array(x.data.buffer, x.data.byteOffset, x.data.length);
    const yb = new Uint32Array(y.data.buffer, y.data.byteOffset, y.data.length);
    for (let i = 0; i < xb.length; i++) if (xb[i] !== yb[i]) return false;
  }
  return true;
}
