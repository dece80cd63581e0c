// Layer helpers on top of the op table: linear (HF [out, in] weight layout), embedding, and
// dropout whose mask is a counter-based hash of (seed input, salt, element index), so the same
// seed reproduces the same mask in any run, session or recomputed block.
import { ShapeError } from '../util/errors.ts';
import type { Var } from './graph.ts';
import {
  add,
  arange,
  bitwiseXor,
  cast,
  gather,
  greaterOrEqual,
  mul,
  reshape,
  shiftRight,
  where,
} from './ops.ts';
import { needFloat } from './ops-core.ts';
import { dimEq, fmtShape, numel } from './shape.ts';

/**
 * x · Wᵀ + b with W in the HF/torch layout [out, in] (one FusedMatMul with transB).
 * @example const h = linear(x, g.param('q_proj.weight', [D, D]));
 */
export function linear(x: Var, weight: Var, bias?: Var): Var {
  if (weight.rank !== 2 || !dimEq(weight.shape[1]!, x.shape[x.rank - 1]!))
    throw new ShapeError(
      'linear',
      `weight ${fmtShape(weight.shape)} does not fit input ${fmtShape(x.shape)}`,
      {
        hint: 'weights are [out_features, in_features]',
      },
    );
  const y = x.matmul(weight, { transB: true });
  return bias ? add(y, bias) : y;
}

/**
 * Rows of `table` [V, D] at int64 `ids` [...] → [..., D]. The gradient is a one-hot GEMM over
 * the batch's distinct ids (gather's vjp), because ORT's ScatterND(add) races on repeated rows
 * with several threads.
 */
export function embedding(table: Var, ids: Var): Var {
  return gather(table, ids, 0);
}

// murmur3's 32-bit finaliser (fmix32): a bijection on uint32 with good avalanche.
function fmix32(h: Var): Var {
  const g = h.graph;
  const u = (v: number) => g.scalar(v, 'uint32');
  let x = bitwiseXor(h, shiftRight(h, u(16)));
  x = mul(x, u(0x85ebca6b));
  x = bitwiseXor(x, shiftRight(x, u(13)));
  x = mul(x, u(0xc2b2ae35));
  return bitwiseXor(x, shiftRight(x, u(16)));
}

/**
 * A uniform [0, 1) tensor of `like`'s shape, a pure function of (seed, salt, element index).
 * `seed` is an int64 or uint32 scalar graph value, so each step can feed its own.
 */
export function hashUniform(like: Var, seed: Var, salt: number): Var {
  const g = like.graph;
  if (seed.rank !== 0 || (seed.dtype !== 'int64' && seed.dtype !== 'uint32'))
    throw new ShapeError('hash_uniform', `seed must be an int64 or uint32 scalar, got ${seed}`);
  const u = (v: number) => g.scalar(v >>> 0, 'uint32');
  const key = fmix32(add(cast(seed, 'uint32'), u(Math.imul(salt + 1, 0x9e3779b9))));
  const idx = reshape(cast(arange(g, numel(like.shape), 'int64'), 'uint32'), like.shape);
  const h = fmix32(bitwiseXor(mul(idx, u(0x9e3779b1)), key));
  // top 24 bits → float in [0, 1) exactly representable in float32
  return mul(cast(shiftRight(h, u(8)), like.dtype), 1 / 16777216);
}

/**
 * Inverted dropout: zero each element with probability `p` and scale the rest by 1/(1−p).
 * `salt` tells call sites apart (use a distinct one per dropout in a model).
 */
export function dropout(x: Var, p: number, seed: Var, salt = 0): Var {
  needFloat('dropout', x);
  if (!(p >= 0 && p < 1)) throw new ShapeError('dropout', `p must be in [0, 1), got ${p}`);
  if (p === 0) return x;
  const scale = 1 / (1 - p);
  return x.graph.composite('dropout', [x], () => {
    const keep = greaterOrEqual(hashUniform(x, seed, salt), p);
    const y = where(keep, mul(x, scale), 0);
    return { outputs: [y], vjp: ([dy]) => [where(keep, mul(dy!, scale), 0)] };
  })[0] as Var;
}
