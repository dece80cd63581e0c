// The matmul op table entry: C = alpha · op(A) · op(B) over the last two dims with
// broadcasting batch dims. Emits MatMul, or com.microsoft FusedMatMul when a transpose or
// scale is folded in; the gradient is two more FusedMatMuls (ORT has no MatMulGrad kernel).
import { ShapeError } from '../util/errors.ts';
import type { OpDef, Var } from './graph.ts';
import { apply1, needFloat, sameDtype, sumTo } from './ops-core.ts';
import { reshape, transpose } from './ops-shape.ts';
import type { Dim } from './shape.ts';
import { broadcast, dimEq, fmtShape } from './shape.ts';

/** Options of `matmul`: transpose either operand's last two dims, scale the product. */
export interface MatMulOpts {
  /** Use A^T (last two dims). @default false */
  transA?: boolean;
  /** Use B^T (last two dims). @default false */
  transB?: boolean;
  /** Multiply the product by alpha. @default 1 */
  alpha?: number;
}

interface MatMulAttrs {
  transA: boolean;
  transB: boolean;
  alpha: number;
}

function mkn(a: Var, b: Var, t: MatMulAttrs): [Dim, Dim, Dim, Dim] {
  const ra = a.rank;
  const rb = b.rank;
  const m = a.shape[t.transA ? ra - 1 : ra - 2]!;
  const ka = a.shape[t.transA ? ra - 2 : ra - 1]!;
  const kb = b.shape[t.transB ? rb - 1 : rb - 2]!;
  const n = b.shape[t.transB ? rb - 2 : rb - 1]!;
  return [m, ka, kb, n];
}

const MATMUL: OpDef<MatMulAttrs> = {
  name: 'matmul',
  infer: ([a, b], t) => {
    const d = sameDtype('matmul', [a!, b!]);
    needFloat('matmul', a!);
    if (a!.rank < 2 || b!.rank < 2)
      throw new ShapeError(
        'matmul',
        `operands must have rank >= 2, got ${fmtShape(a!.shape)} and ${fmtShape(b!.shape)}`,
        {
          hint: 'unsqueeze vectors first',
        },
      );
    const [m, ka, kb, n] = mkn(a!, b!, t);
    if (!dimEq(ka, kb))
      throw new ShapeError(
        'matmul',
        `inner dims differ: ${fmtShape(a!.shape)}${t.transA ? 'ᵀ' : ''} · ${fmtShape(b!.shape)}${t.transB ? 'ᵀ' : ''} (${ka} vs ${kb})`,
      );
    const batch = broadcast('matmul', a!.shape.slice(0, -2), b!.shape.slice(0, -2));
    return [{ dtype: d, shape: [...batch, m, n] }];
  },
  emit(e, n) {
    const { transA, transB, alpha } = n.attrs;
    const ins = [e.name(n.inputs[0]!), e.name(n.inputs[1]!)];
    const out = [e.name(n.outputs[0]!)];
    if (!transA && !transB && alpha === 1) return e.node('MatMul', ins, out);
    e.node(
      'FusedMatMul',
      ins,
      out,
      { transA: { i: transA ? 1 : 0 }, transB: { i: transB ? 1 : 0 }, alpha: { f: alpha } },
      'com.microsoft',
    );
  },
  vjp: (n, [dy], need) => {
    const [a, b] = n.inputs as [Var, Var];
    const { transA, transB, alpha } = n.attrs;
    const g = dy!;
    let da: Var | undefined;
    let db: Var | undefined;
    // C = α·A'·B' with A' = op(A), B' = op(B): dA' = α·dC·B'ᵀ, dB' = α·A'ᵀ·dC.
    if (need[0]) {
      if (!transA) da = mm(g, b, false, !transB, alpha);
      else da = mm(b, g, transB, true, alpha); // dA = (dA')ᵀ = α·B'·dCᵀ
      da = sumTo(da, a.shape);
    }
    if (need[1]) {
      if (!transB) db = weightGrad(a, g, transA, alpha, b);
      else db = weightGradT(a, g, transA, alpha, b);
    }
    return [da, db];
  },
};

function mm(a: Var, b: Var, transA: boolean, transB: boolean, alpha: number): Var {
  return apply1(MATMUL, [a, b], { transA, transB, alpha });
}

/** dB for C = α·A'·B (B not transposed): α·A'ᵀ·dC, folding batch dims into rows when B is 2-D. */
function weightGrad(a: Var, g: Var, transA: boolean, alpha: number, b: Var): Var {
  if (b.rank === 2 && !transA) {
    // [.., M, K] and [.., M, N] flatten to [R, K], [R, N]: one GEMM instead of a batched one.
    const k = a.shape[a.rank - 1]!;
    const nn = g.shape[g.rank - 1]!;
    return matmulTN(reshape(a, [-1, k]), reshape(g, [-1, nn]), alpha);
  }
  return sumTo(mm(a, g, !transA, false, alpha), b.shape);
}

/** dB for C = α·A'·Bᵀ: dB = α·dCᵀ·A'. */
function weightGradT(a: Var, g: Var, transA: boolean, alpha: number, b: Var): Var {
  if (b.rank === 2 && !transA) {
    const k = a.shape[a.rank - 1]!;
    const nn = g.shape[g.rank - 1]!;
    return matmulTN(reshape(g, [-1, nn]), reshape(a, [-1, k]), alpha);
  }
  return sumTo(mm(g, a, true, transA, alpha), b.shape);
}

/**
 * α·aᵀ·b for 2-D a [R, M] and b [R, N] (a weight gradient: the sum runs over the rows of
 * both). MLAS's transposed-A GEMM runs 10-25 % slower than a plain one at these shapes, so the
 * product is a plain MatMul after an explicit Transpose of the cheaper side: aᵀ (R·M values
 * moved), or bᵀ and then the [N, M] result (R·N + M·N). The trainer's sessions keep ORT from
 * fusing the Transpose back (runtime.ts, TRAINING_DISABLED_OPTIMIZERS).
 */
export function matmulTN(a: Var, b: Var, alpha = 1): Var {
  const [r, m, n] = [a.shape[0], a.shape[1], b.shape[1]];
  if (a.rank !== 2 || b.rank !== 2 || typeof m !== 'number' || typeof n !== 'number')
    return mm(a, b, true, false, alpha);
  // A symbolic row count (batch × sequence) is taken as large.
  const cheaperA = typeof r === 'number' ? r * m <= r * n + m * n : m <= n;
  if (cheaperA) return mm(transpose(a, [1, 0]), b, false, false, alpha);
  return transpose(mm(transpose(b, [1, 0]), a, false, false, alpha), [1, 0]);
}

/** alpha · op(a) · op(b) over the last two dims; batch dims broadcast. */
export function matmul(a: Var, b: Var, opts: MatMulOpts = {}): Var {
  return mm(a, b, opts.transA ?? false, opts.transB ?? false, opts.alpha ?? 1);
}
