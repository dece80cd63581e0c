// Composites with hand-written backward: RMSNorm, LayerNorm, SwiGLU, softmax with an additive
// mask, and cross-entropy / per-token log-probs with ignore_index (no one-hot tensor). Each
// saves what its backward needs and emits fewer passes than differentiating its primitives.
import { ShapeError } from '../util/errors.ts';
import type { Attr, OpDef, Var } from './graph.ts';
import {
  add,
  cast,
  div,
  equal,
  full,
  gatherElements,
  logSoftmax,
  matmulTN,
  maximum,
  mul,
  neg,
  not,
  reciprocal,
  reduceMean,
  reduceSum,
  reshape,
  scatterElements,
  sigmoid,
  silu,
  softmax,
  sqrt,
  squeeze,
  sub,
  sumTo,
  unsqueeze,
  where,
} from './ops.ts';
import { needFloat } from './ops-core.ts';
import { dimEq, fmtShape } from './shape.ts';

// ---------------------------------------------------------------------------------------------
// Norm kernels: ORT's fused forward for float32 (one pass, saves the statistics), spelled-out
// primitives for float64 (the fused kernels stash statistics in float32 only).

interface NormAttrs {
  epsilon: number;
  /** 'rms': SimplifiedLayerNormalization (y, inv_std); 'ln': LayerNormalization (y, mean, inv_std). */
  kind: 'rms' | 'ln';
}

const NORM_KERNEL: OpDef<NormAttrs> = {
  name: 'norm_kernel',
  infer: ([x], a) => {
    const stat = [...x!.shape.slice(0, -1), 1];
    const outs = [{ dtype: x!.dtype, shape: x!.shape }];
    if (a.kind === 'ln') outs.push({ dtype: x!.dtype, shape: stat });
    outs.push({ dtype: x!.dtype, shape: stat });
    return outs;
  },
  emit(e, n) {
    const attrs: Record<string, Attr> = { axis: { i: -1 }, epsilon: { f: n.attrs.epsilon } };
    const op = n.attrs.kind === 'rms' ? 'SimplifiedLayerNormalization' : 'LayerNormalization';
    e.node(
      op,
      n.inputs.map((v) => e.name(v)),
      n.outputs.map((v) => e.name(v)),
      attrs,
    );
  },
};

function checkNorm(op: string, x: Var, w: Var, b?: Var): void {
  needFloat(op, x);
  const d = x.shape[x.rank - 1];
  for (const p of b ? [w, b] : [w])
    if (p.rank !== 1 || !dimEq(p.shape[0]!, d!) || p.dtype !== x.dtype)
      throw new ShapeError(op, `weight ${p} does not match input ${x} (want ${x.dtype}[${d}])`);
}

/**
 * RMSNorm over the last dim: x / sqrt(mean(x²) + eps) · weight (Zhang & Sennrich 2019, eq. 4).
 * Backward: dx = r·(g − x̂·mean(g·x̂)) with g = dy·w, x̂ = x·r, r = 1/rms; dw = Σ dy·x̂.
 */
export function rmsNorm(x: Var, weight: Var, eps = 1e-6): Var {
  checkNorm('rms_norm', x, weight);
  const g = x.graph;
  return g.composite('rms_norm', [x, weight], () => {
    let y: Var;
    let r: Var; // 1/rms, [..., 1]
    if (x.dtype === 'float32') {
      [y, r] = g.apply(NORM_KERNEL, [x, weight], { epsilon: eps, kind: 'rms' }) as [Var, Var];
    } else {
      r = reciprocal(sqrt(add(reduceMean(mul(x, x), [-1], true), eps)));
      y = mul(mul(x, r), weight);
    }
    return {
      outputs: [y],
      vjp: ([dy], need) => {
        const xhat = mul(x, r);
        let dx: Var | undefined;
        if (need[0]) {
          const gw = mul(dy!, weight);
          dx = mul(r, sub(gw, mul(xhat, reduceMean(mul(gw, xhat), [-1], true))));
        }
        return [dx, need[1] ? sumTo(mul(dy!, xhat), weight.shape) : undefined];
      },
    };
  })[0] as Var;
}

/**
 * LayerNorm over the last dim (Ba et al. 2016): (x − μ)/σ · weight + bias.
 * Backward: dx = r·(g − mean(g) − x̂·mean(g·x̂)), g = dy·w; dw = Σ dy·x̂; db = Σ dy.
 */
export function layerNorm(x: Var, weight: Var, bias?: Var, eps = 1e-5): Var {
  checkNorm('layer_norm', x, weight, bias);
  const g = x.graph;
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return g.composite('layer_norm', inputs, () => {
    let y: Var;
    let mu: Var;
    let r: Var;
    if (x.dtype === 'float32') {
      [y, mu, r] = g.apply(NORM_KERNEL, inputs, { epsilon: eps, kind: 'ln' }) as [Var, Var, Var];
    } else {
      mu = reduceMean(x, [-1], true);
      const xc = sub(x, mu);
      r = reciprocal(sqrt(add(reduceMean(mul(xc, xc), [-1], true), eps)));
      y = mul(mul(xc, r), weight);
      if (bias) y = add(y, bias);
    }
    return {
      outputs: [y],
      vjp: ([dy], need) => {
        const xhat = mul(sub(x, mu), r);
        let dx: Var | undefined;
        if (need[0]) {
          const gw = mul(dy!, weight);
          const inner = sub(gw, reduceMean(gw, [-1], true));
          dx = mul(r, sub(inner, mul(xhat, reduceMean(mul(gw, xhat), [-1], true))));
        }
        const dw = need[1] ? sumTo(mul(dy!, xhat), weight.shape) : undefined;
        const db = bias && need[2] ? sumTo(dy!, bias.shape) : undefined;
        return [dx, dw, db];
      },
    };
  })[0] as Var;
}

/**
 * SwiGLU gate (Shazeer 2020, eq. 6 without the projections): y = silu(gate) · up.
 * Backward: dup = dy·a with a = silu(gate); dgate = dy·up·(s + a·(1 − s)), s = σ(gate), which
 * is dy·(y + s·(up − y)) written with the output y: five passes over [.., F] instead of six.
 */
export function swiglu(gate: Var, up: Var): Var {
  if (!dimEq(gate.shape[gate.rank - 1]!, up.shape[up.rank - 1]!) || gate.rank !== up.rank)
    throw new ShapeError('swiglu', `gate ${fmtShape(gate.shape)} vs up ${fmtShape(up.shape)}`);
  return gate.graph.composite('swiglu', [gate, up], () => {
    const a = silu(gate);
    const y = mul(a, up);
    return {
      outputs: [y],
      vjp: ([dy], need) => {
        const dup = need[1] ? sumTo(mul(dy!, a), up.shape) : undefined;
        let dgate: Var | undefined;
        if (need[0]) {
          const s = sigmoid(gate);
          dgate = sumTo(mul(dy!, add(y, mul(s, sub(up, y)))), gate.shape);
        }
        return [dgate, dup];
      },
    };
  })[0] as Var;
}

/**
 * softmax(scores + mask) along the last dim; `mask` is additive (0 keeps, a large negative
 * value drops) and broadcasts to `scores`. Backward: ds = p·(dy − Σ dy·p); the mask gets none.
 */
export function maskedSoftmax(scores: Var, mask?: Var): Var {
  return scores.graph.composite('masked_softmax', [scores], () => {
    const p = softmax(mask ? add(scores, cast(mask, scores.dtype)) : scores, -1);
    return {
      outputs: [p],
      vjp: ([dy]) => [mul(p, sub(dy!, reduceSum(mul(dy!, p), [-1], true)))],
    };
  })[0] as Var;
}

/**
 * log p(target) for every position: logits [..., V], targets [...] (int64). Positions whose
 * target equals `ignoreIndex` give 0 and no gradient. Forward is LogSoftmax + GatherElements;
 * backward is ScatterElements(−p·d, t, +d, add), so no one-hot tensor is ever built.
 * DPO, reward models and PPO sum these per sequence.
 */
export function tokenLogProbs(logits: Var, targets: Var, ignoreIndex = -100): Var {
  needFloat('token_log_probs', logits);
  checkTargets('token_log_probs', logits.shape.slice(0, -1), targets);
  return logits.graph.composite('token_log_probs', [logits, targets], () => {
    const lp = logSoftmax(logits, -1);
    const valid = not(equal(targets, ignoreIndex));
    const safe = unsqueeze(where(valid, targets, 0), [-1]); // [..., 1]
    const picked = squeeze(gatherElements(lp, safe, -1), [-1]);
    const out = where(valid, picked, 0);
    return {
      outputs: [out],
      vjp: ([dy]) => {
        const d = unsqueeze(where(valid, dy!, 0), [-1]); // [..., 1]
        // softmax(logits) rather than exp(lp): ORT's Softmax kernel is ~10x faster than Exp.
        const dlogits = scatterElements(mul(softmax(logits, -1), neg(d)), safe, d, -1, 'add');
        return [dlogits, undefined];
      },
    };
  })[0] as Var;
}

/**
 * log p(target) of an output projection, fused: logits = h·Wᵀ with h [..., D], W [V, D]
 * (HF lm_head layout), targets [...]. Same values as tokenLogProbs(linear(h, W), targets), but
 * the backward never scales the [..., V] matrix: with G = softmax − onehot and d the per-token
 * upstream gradient, dh = −d ⊙ (G·W) and dW = −Gᵀ·(d ⊙ h), so the scaling happens on the
 * [..., D] side. That is one fewer pass over the largest tensor of a language model step.
 */
export function linearTokenLogProbs(h: Var, weight: Var, targets: Var, ignoreIndex = -100): Var {
  needFloat('linear_token_log_probs', h);
  const d = h.shape[h.rank - 1]!;
  if (weight.rank !== 2 || !dimEq(weight.shape[1]!, d) || weight.dtype !== h.dtype)
    throw new ShapeError(
      'linear_token_log_probs',
      `weight ${weight} does not fit hidden ${h} (want ${h.dtype}[V, ${d}])`,
    );
  checkTargets('linear_token_log_probs', h.shape.slice(0, -1), targets);
  return h.graph.composite('linear_token_log_probs', [h, weight, targets], () => {
    const logits = h.matmul(weight, { transB: true }); // [..., V]
    const valid = not(equal(targets, ignoreIndex));
    const safe = unsqueeze(where(valid, targets, 0), [-1]); // [..., 1]
    const lp = logSoftmax(logits, -1);
    const out = where(valid, squeeze(gatherElements(lp, safe, -1), [-1]), 0);
    return {
      outputs: [out],
      vjp: ([dy], need) => {
        const nd = unsqueeze(neg(where(valid, dy!, 0)), [-1]); // −d, [..., 1]
        const minusOne = full(h.graph, safe.shape, -1, h.dtype);
        const gm = scatterElements(softmax(logits, -1), safe, minusOne, -1, 'add'); // P − onehot
        const dh = need[0] ? mul(gm.matmul(weight), nd) : undefined;
        let dw: Var | undefined;
        if (need[1]) {
          const v = weight.shape[0]!;
          const hs = mul(h, nd);
          dw = matmulTN(reshape(gm, [-1, v]), reshape(hs, [-1, d])); // [V, D]
        }
        return [dh, dw, undefined];
      },
    };
  })[0] as Var;
}

function checkTargets(op: string, lead: Var['shape'], targets: Var): void {
  if (targets.dtype !== 'int64') throw new ShapeError(op, `targets must be int64, got ${targets}`);
  if (lead.length !== targets.rank || lead.some((x, i) => !dimEq(x, targets.shape[i]!)))
    throw new ShapeError(
      op,
      `inputs ${fmtShape(lead)}[...] do not match targets ${fmtShape(targets.shape)}`,
      {
        hint: 'logits are [..., V] (hidden [..., D]) and targets [...]',
      },
    );
}

/** How cross-entropy reduces over positions. */
export type Reduction = 'mean' | 'sum' | 'none';

function reduceNll(lp: Var, targets: Var, ignore: number, reduction: Reduction): Var {
  const nll = neg(lp);
  if (reduction === 'none') return nll;
  const total = reduceSum(nll);
  if (reduction === 'sum') return total;
  const count = reduceSum(cast(not(equal(targets, ignore)), lp.dtype));
  return div(total, maximum(count, 1));
}

/**
 * Cross-entropy of logits [..., V] against int64 targets [...] with ignore_index (torch
 * semantics: 'mean' divides by the number of non-ignored targets; 'none' returns per-position
 * losses with 0 at ignored positions).
 */
export function crossEntropy(
  logits: Var,
  targets: Var,
  opts: { ignoreIndex?: number; reduction?: Reduction } = {},
): Var {
  const ignore = opts.ignoreIndex ?? -100;
  return reduceNll(
    tokenLogProbs(logits, targets, ignore),
    targets,
    ignore,
    opts.reduction ?? 'mean',
  );
}

/**
 * Cross-entropy of an output projection h·Wᵀ (see linearTokenLogProbs), the cheaper way to
 * compute a language-model loss from the final hidden states.
 */
export function linearCrossEntropy(
  h: Var,
  weight: Var,
  targets: Var,
  opts: { ignoreIndex?: number; reduction?: Reduction } = {},
): Var {
  const ignore = opts.ignoreIndex ?? -100;
  const lp = linearTokenLogProbs(h, weight, targets, ignore);
  return reduceNll(lp, targets, ignore, opts.reduction ?? 'mean');
}
