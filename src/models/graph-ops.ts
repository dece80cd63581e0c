// Inference-only ops the model graphs need and the engine's op table does not have: Cos and Sin
// (RoPE angles come from integer positions, so no gradient ever reaches them) and TopK (the
// top alternatives of scoring runs). They have no vjp: autodiff refuses them on a path from a
// parameter to the loss, so they cannot silently break training.
import type { Var } from '../engine/graph.ts';
import { simpleOp } from '../engine/ops-core.ts';
import { ShapeError } from '../util/errors.ts';

const unary = (name: string, onnx: string) =>
  simpleOp<Record<string, never>>({
    name,
    onnx,
    infer: ([x]) => {
      if (x!.dtype !== 'float32' && x!.dtype !== 'float64')
        throw new ShapeError(name, `expects a float tensor, got ${x}`);
      return [{ dtype: x!.dtype, shape: x!.shape }];
    },
  });
const COS = unary('cos', 'Cos');
const SIN = unary('sin', 'Sin');

/** Elementwise cosine (no gradient). */
export const cos = (x: Var): Var => x.graph.apply(COS, [x], {})[0]!;
/** Elementwise sine (no gradient). */
export const sin = (x: Var): Var => x.graph.apply(SIN, [x], {})[0]!;

const TOPK = simpleOp<{ k: number }>({
  name: 'top_k',
  onnx: 'TopK',
  attrs: () => ({ axis: { i: -1 }, largest: { i: 1 }, sorted: { i: 1 } }),
  infer: ([x], a) => {
    const shape = [...x!.shape.slice(0, -1), a.k];
    return [
      { dtype: x!.dtype, shape },
      { dtype: 'int64', shape },
    ];
  },
});

/**
 * The k largest values along the last dim, sorted descending, and their indices (ONNX TopK:
 * equal values keep the lower index first). No gradient.
 */
export function topK(x: Var, k: number): { values: Var; indices: Var } {
  const n = x.shape[x.rank - 1];
  if (!Number.isInteger(k) || k < 1 || (typeof n === 'number' && k > n))
    throw new ShapeError('top_k', `k = ${k} does not fit the last dim of ${x}`);
  const kv = x.graph.constant(BigInt64Array.from([BigInt(k)]), [1]);
  const [values, indices] = x.graph.apply(TOPK, [x, kv], { k });
  return { values: values!, indices: indices! };
}
