// Attention building blocks: additive masks (causal, padding, block-diagonal for packed
// sequences), rotary position embeddings with a hand-written backward, RoPE tables, and
// scaled dot-product attention with grouped-query heads. Models assemble layers from these.
import { ShapeError } from '../util/errors.ts';
import type { DType } from './dtype.ts';
import type { Graph, Var } from './graph.ts';
import { hashUniform } from './nn.ts';
import {
  add,
  and,
  arange,
  cast,
  concat,
  equal,
  expand,
  greaterOrEqual,
  lessOrEqual,
  mul,
  neg,
  reduceSum,
  reshape,
  softmax,
  split,
  sub,
  unsqueeze,
  where,
} from './ops.ts';
import type { Dim } from './shape.ts';
import { dimDiv, dimEq, fmtShape } from './shape.ts';

/** Additive mask value for dropped positions: exp underflows to exactly 0, no NaN on full rows. */
export const MASK_MIN = -1e9;

/** [T, T] bool: query i may see key j iff j <= i. */
export function causalAllowed(g: Graph, t: Dim): Var {
  const i = arange(g, t, 'int64');
  return lessOrEqual(unsqueeze(i, [0]), unsqueeze(i, [1])); // [T(q), T(k)]
}

/** Additive causal mask [T, T] (0 where allowed, MASK_MIN above the diagonal). */
export function causalMask(g: Graph, t: Dim, dtype: DType = 'float32'): Var {
  return where(causalAllowed(g, t), g.scalar(0, dtype), g.scalar(MASK_MIN, dtype));
}

/**
 * Additive padding mask [B, 1, 1, T] from an HF-style attention_mask [B, T] (1 or true keeps a
 * key position, 0 drops it). Broadcasts against scores [B, H, T, T].
 */
export function paddingMask(attentionMask: Var, dtype: DType = 'float32'): Var {
  const g = attentionMask.graph;
  const keep = attentionMask.dtype === 'bool' ? attentionMask : equal(attentionMask, 1);
  return unsqueeze(where(keep, g.scalar(0, dtype), g.scalar(MASK_MIN, dtype)), [1, 2]);
}

/**
 * Additive block-diagonal causal mask [B, 1, T, T] for packed sequences: a token attends to an
 * earlier (or the same) token only when both carry the same segment id, so packed examples
 * never see each other. Give padding its own segment id (e.g. -1).
 */
export function segmentMask(segmentIds: Var, dtype: DType = 'float32', causal = true): Var {
  const g = segmentIds.graph;
  if (segmentIds.rank !== 2)
    throw new ShapeError('segment_mask', `segment ids must be [B, T], got ${segmentIds}`);
  const same = equal(unsqueeze(segmentIds, [2]), unsqueeze(segmentIds, [1])); // [B, T(q), T(k)]
  const allowed = causal ? and(same, causalAllowed(g, segmentIds.shape[1]!)) : same;
  return unsqueeze(where(allowed, g.scalar(0, dtype), g.scalar(MASK_MIN, dtype)), [1]);
}

/**
 * RoPE tables (Su et al. 2021, eq. 34) in the HF "rotate_half" layout: for position p and
 * i < Dh/2, angle = p·θ^(−2i/Dh), repeated for both halves. Returns cos and sin [P, Dh].
 */
export function ropeTables(
  positions: number,
  headDim: number,
  theta = 10000,
): { cos: Float32Array; sin: Float32Array } {
  if (headDim % 2 !== 0) throw new ShapeError('rope', `head dim must be even, got ${headDim}`);
  const half = headDim / 2;
  const cos = new Float32Array(positions * headDim);
  const sin = new Float32Array(positions * headDim);
  for (let p = 0; p < positions; p++)
    for (let i = 0; i < half; i++) {
      const a = p * theta ** ((-2 * i) / headDim);
      cos[p * headDim + i] = cos[p * headDim + i + half] = Math.cos(a);
      sin[p * headDim + i] = sin[p * headDim + i + half] = Math.sin(a);
    }
  return { cos, sin };
}

/** How rotate_half is computed: Split/Concat with a signed sin table, or a MatMul. */
export type RotateMode = 'slice' | 'matmul';

/** [x2, x1]: the two halves of the last dim swapped (its own inverse). */
function swapHalves(x: Var): Var {
  const half = (x.shape[x.rank - 1] as number) / 2;
  const [x1, x2] = split(x, -1, [half, half]) as [Var, Var];
  return concat([x2, x1], -1);
}

/** rotate_half as x·P, P the signed permutation with P[j+h, j] = −1, P[j, j+h] = 1 (or Pᵀ). */
function rotateHalfMatmul(x: Var, transpose: boolean): Var {
  const dh = x.shape[x.rank - 1] as number;
  const half = dh / 2;
  const p = new Float64Array(dh * dh);
  for (let j = 0; j < half; j++) {
    p[(j + half) * dh + j] = transpose ? 1 : -1;
    p[j * dh + j + half] = transpose ? -1 : 1;
  }
  return x.matmul(x.graph.constant(p, [dh, dh], x.dtype));
}

/**
 * Apply rotary embeddings to x [B, H, T, Dh] with cos/sin broadcastable to it (e.g. [T, Dh]
 * or [B, 1, T, Dh] gathered by position ids): x·cos + rotate_half(x)·sin, where
 * rotate_half(x) = [−x2, x1]. The 'slice' form folds the sign into the (small) sin table,
 * rotate_half(x)·sin = swap(x)·[−sin1, sin2], so it is one Split + Concat per pass; the map is
 * linear and its adjoint is dy·cos + swap(dy·[−sin1, sin2]).
 */
export function rope(x: Var, cos: Var, sin: Var, mode: RotateMode = 'slice'): Var {
  const dh = x.shape[x.rank - 1];
  if (typeof dh !== 'number' || dh % 2 !== 0)
    throw new ShapeError('rope', `head dim must be static and even, got ${fmtShape(x.shape)}`);
  for (const t of [cos, sin])
    if (!dimEq(t.shape[t.rank - 1]!, dh))
      throw new ShapeError(
        'rope',
        `table ${fmtShape(t.shape)} does not match x ${fmtShape(x.shape)}`,
      );
  const c = cast(cos, x.dtype);
  const s = cast(sin, x.dtype);
  const half = dh / 2;
  return x.graph.composite('rope', [x], () => {
    if (mode === 'matmul') {
      const y = add(mul(x, c), mul(rotateHalfMatmul(x, false), s));
      return {
        outputs: [y],
        vjp: ([dy]) => [add(mul(dy!, c), rotateHalfMatmul(mul(dy!, s), true))],
      };
    }
    const [s1, s2] = split(s, -1, [half, half]) as [Var, Var];
    const signed = concat([neg(s1), s2], -1);
    const y = add(mul(x, c), mul(swapHalves(x), signed));
    return {
      outputs: [y],
      vjp: ([dy]) => [add(mul(dy!, c), swapHalves(mul(dy!, signed)))],
    };
  })[0] as Var;
}

/**
 * Repeat key/value heads for grouped-query attention: [B, Hkv, S, Dh] → [B, Hkv·rep, S, Dh]
 * (head h uses kv head ⌊h/rep⌋, as in HF's repeat_kv).
 */
export function repeatKv(x: Var, rep: number): Var {
  if (rep === 1) return x;
  const [b, h, s, d] = x.shape as [Dim, Dim, Dim, Dim];
  const e = expand(unsqueeze(x, [2]), [b, h, rep, s, d]);
  return reshape(e, [b, typeof h === 'number' ? h * rep : `${rep}*${h}`, s, d]);
}

/** Attention-probability dropout: rate, seed scalar (int64 / uint32) and a per-call-site salt. */
export interface AttentionDropout {
  p: number;
  seed: Var;
  salt: number;
}

/** Adjoint of repeatKv: sum the gradients of each group of repeated heads. */
function repeatKvAdjoint(dx: Var, like: Var, rep: number): Var {
  if (rep === 1) return dx;
  const [b, h, s, d] = like.shape as [Dim, Dim, Dim, Dim];
  return reduceSum(reshape(dx, [b, h, rep, s, d]), [2]);
}

/**
 * Scaled dot-product attention: softmax(q·kᵀ·scale + mask)·v. q [B, H, T, Dh],
 * k and v [B, Hkv, S, Dh] with H a multiple of Hkv (grouped-query heads are repeated);
 * mask additive, broadcastable to [B, H, T, S].
 *
 * Backward (hand-written): with P the probabilities and O the output, dV = Pᵀ·dO,
 * dP = dO·Vᵀ and dS = P ⊙ (dP − rowsum(dO ⊙ O)), because rowsum(dP ⊙ P) = rowsum(dO ⊙ O)
 * (FlashAttention, Dao et al. 2022, eq. in §3.1 / Alg. 2 line 19). The row sum is taken over
 * [B, H, T, Dh] instead of [B, H, T, S], saving two passes over the score matrix.
 *
 * With `dropout` (attention-probability dropout: GPT-2's attn_pdrop, LLaMA's attention_dropout)
 * O = (M ⊙ P / (1−p))·V for a seeded keep mask M over [B, H, T, S] (nn.ts hashUniform, so a
 * recomputed block draws the same mask). Then dV = (M ⊙ P / (1−p))ᵀ·dO and dP = M ⊙ (dO·Vᵀ) / (1−p),
 * and the identity above still holds: rowsum(dP ⊙ P) = rowsum((dO·Vᵀ) ⊙ M ⊙ P / (1−p)) = rowsum(dO ⊙ O).
 * @default scale 1/√Dh
 */
export function attention(
  q: Var,
  k: Var,
  v: Var,
  mask?: Var,
  scale?: number,
  dropout?: AttentionDropout,
): Var {
  if (q.rank !== 4 || k.rank !== 4 || v.rank !== 4)
    throw new ShapeError('attention', `q, k, v must be [B, H, T, Dh], got ${q}, ${k}, ${v}`);
  const rep = dimDiv(q.shape[1]!, k.shape[1]!);
  if (typeof rep !== 'number')
    throw new ShapeError(
      'attention',
      `query heads ${q.shape[1]} are not a multiple of kv heads ${k.shape[1]}`,
    );
  const alpha = scale ?? 1 / Math.sqrt(q.shape[3] as number);
  const rate = dropout?.p ?? 0;
  if (!(rate >= 0 && rate < 1))
    throw new ShapeError('attention', `dropout p must be in [0, 1), got ${rate}`);
  return q.graph.composite('attention', [q, k, v], () => {
    const kk = repeatKv(k, rep); // [B,H,S,Dh]
    const vv = repeatKv(v, rep);
    const scores = q.matmul(kk, { transB: true, alpha }); // [B,H,T,S]
    const p = softmax(mask ? add(scores, cast(mask, q.dtype)) : scores, -1);
    // Inverted dropout on the probabilities; `drop` applies the same mask and scale to dP.
    const keep =
      dropout && rate > 0
        ? greaterOrEqual(hashUniform(p, dropout.seed, dropout.salt), rate)
        : undefined;
    const drop = (x: Var): Var => (keep ? where(keep, mul(x, 1 / (1 - rate)), 0) : x);
    const pd = drop(p); // [B,H,T,S]
    const o = pd.matmul(vv); // [B,H,T,Dh]
    return {
      outputs: [o],
      vjp: ([dO], need) => {
        const dv = need[2] ? repeatKvAdjoint(pd.matmul(dO!, { transA: true }), v, rep) : undefined;
        if (!need[0] && !need[1]) return [undefined, undefined, dv];
        const dp = drop(dO!.matmul(vv, { transB: true })); // [B,H,T,S]
        const rowDot = reduceSum(mul(dO!, o), [-1], true); // [B,H,T,1]
        const ds = mul(p, sub(dp, rowDot));
        const dq = need[0] ? ds.matmul(kk, { alpha }) : undefined;
        const dk = need[1]
          ? repeatKvAdjoint(ds.matmul(q, { transA: true, alpha }), k, rep)
          : undefined;
        return [dq, dk, dv];
      },
    };
  })[0] as Var;
}
