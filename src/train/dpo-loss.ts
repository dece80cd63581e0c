// The DPO-family losses as graph functions of per-sequence log-probabilities, so they are
// tested on their own (against torch, test/train/dpo-loss.test.ts) and the trainers only add
// the model forward that produces the log-probs. Formulas as TRL implements them
// (trl/trainer/dpo_trainer.py, trl/experimental/orpo), see ../shared/reference/alignment_anchors.md §2-3.
import type { Var } from '../engine/graph.ts';
import {
  add,
  cast,
  div,
  exp,
  greater,
  less,
  log,
  minimum,
  mul,
  neg,
  reduceMean,
  reduceSum,
  relu,
  sub,
  where,
} from '../engine/ops.ts';

/** DPOConfig.loss_type values implemented here. */
export const DPO_LOSS_TYPES = ['sigmoid', 'ipo', 'hinge', 'robust', 'sft'] as const;
export type DpoLossType = (typeof DPO_LOSS_TYPES)[number];

/** Per-pair terms [P]: summed completion log-probs and completion token counts. */
export interface PairLogps {
  chosen: Var;
  rejected: Var;
  chosenTokens: Var;
  rejectedTokens: Var;
}

/**
 * log σ(x) without overflow: x·[x<0] − log(1 + e^−|x|). |x| is taken as where(x ≥ 0, x, −x) so
 * its gradient at 0 is 1 and the sum's gradient there is σ(−0) = ½, as it should be.
 */
export function logSigmoid(x: Var): Var {
  const neg0 = where(less(x, 0), x, 0);
  const ax = where(less(x, 0), neg(x), x);
  return sub(neg0, log(add(exp(neg(ax)), 1)));
}

export interface DpoLossOptions {
  beta: number;
  lossTypes: readonly DpoLossType[];
  /** One weight per loss type (TRL loss_weights). @default 1 each */
  lossWeights?: readonly number[];
  /** ε of cDPO / robust DPO (TRL label_smoothing). @default 0 */
  labelSmoothing?: number;
}

/** The scalar loss and TRL's logged metrics (means over pairs, no gradient wanted). */
export interface LossOut {
  loss: Var;
  metrics: Record<string, Var>;
}

/**
 * DPO (Rafailov et al. 2023, Eq. 7) and variants on policy and reference log-probs [P]:
 * Δ = (π_c − ref_c) − (π_r − ref_r);
 * sigmoid: −(1−ε)·logσ(βΔ) − ε·logσ(−βΔ) (cDPO label smoothing);
 * hinge: relu(1 − βΔ) (SLiC); ipo: (Δ̄ − 1/(2β))² with Δ̄ from log-ratios divided by
 * completion length (TRL length-normalises IPO, "confirmed with the IPO authors"; Azar et al.
 * 2023 Eq. 17 with τ = β); robust: [−(1−ε)·logσ(βΔ) + ε·logσ(−βΔ)]/(1−2ε) (Chowdhury et al.
 * 2024); sft: NLL of the chosen completions, per token over the batch.
 * Each is a mean over pairs; loss_weights combine several (e.g. MPO, or RPO's sigmoid + sft).
 */
export function dpoLoss(
  p: PairLogps,
  ref: { chosen: Var; rejected: Var },
  o: DpoLossOptions,
): LossOut {
  const { beta } = o;
  const eps = o.labelSmoothing ?? 0;
  const cRatio = sub(p.chosen, ref.chosen); // [P]
  const rRatio = sub(p.rejected, ref.rejected); // [P]
  const delta = sub(cRatio, rRatio); // [P]
  const bd = mul(delta, beta);
  const terms: Var[] = [];
  for (const [i, t] of o.lossTypes.entries()) {
    let l: Var;
    if (t === 'sigmoid') {
      l = neg(logSigmoid(bd));
      if (eps > 0) l = sub(mul(l, 1 - eps), mul(logSigmoid(neg(bd)), eps));
      l = reduceMean(l);
    } else if (t === 'hinge') l = reduceMean(relu(sub(1, bd)));
    else if (t === 'ipo') {
      const d = sub(div(cRatio, p.chosenTokens), div(rRatio, p.rejectedTokens));
      const e = sub(d, 1 / (2 * beta));
      l = reduceMean(mul(e, e));
    } else if (t === 'robust') {
      const a = add(mul(neg(logSigmoid(bd)), 1 - eps), mul(logSigmoid(neg(bd)), eps));
      l = reduceMean(div(a, 1 - 2 * eps));
    } else l = div(neg(reduceSum(p.chosen)), reduceSum(p.chosenTokens));
    const w = o.lossWeights?.[i] ?? 1;
    terms.push(w === 1 ? l : mul(l, w));
  }
  const loss = terms.reduce((a, b) => add(a, b));
  const rc = mul(cRatio, beta);
  const rr = mul(rRatio, beta);
  return {
    loss,
    metrics: {
      'rewards/chosen': reduceMean(rc),
      'rewards/rejected': reduceMean(rr),
      'rewards/accuracies': reduceMean(cast(greater(rc, rr), rc.dtype)),
      'rewards/margins': reduceMean(sub(rc, rr)),
      'logps/chosen': reduceMean(p.chosen),
      'logps/rejected': reduceMean(p.rejected),
    },
  };
}

/** log(1 − eˣ) for x < 0; x is capped just below 0 so a certain completion stays finite. */
function log1mexp(x: Var): Var {
  return log(sub(1, exp(minimum(x, -1e-6))));
}

/**
 * ORPO (Hong et al. 2024, Eq. 6-7), reference-free, as TRL computes it: log-probs averaged
 * over completion tokens, log_odds = (lp_c − lp_r) − (log(1−e^lp_c) − log(1−e^lp_r)),
 * loss = NLL(chosen) − β·mean(logσ(log_odds)), NLL per chosen token over the batch.
 */
export function orpoLoss(p: PairLogps, o: { beta: number }): LossOut {
  const lc = div(p.chosen, p.chosenTokens); // [P]
  const lr = div(p.rejected, p.rejectedTokens);
  const logOdds = sub(sub(lc, lr), sub(log1mexp(lc), log1mexp(lr)));
  const ratio = logSigmoid(logOdds);
  const nll = div(neg(reduceSum(p.chosen)), reduceSum(p.chosenTokens));
  const loss = sub(nll, mul(reduceMean(ratio), o.beta));
  const rc = mul(lc, o.beta);
  const rr = mul(lr, o.beta);
  return {
    loss,
    metrics: {
      'rewards/chosen': reduceMean(rc),
      'rewards/rejected': reduceMean(rr),
      'rewards/accuracies': reduceMean(cast(greater(rc, rr), rc.dtype)),
      'rewards/margins': reduceMean(sub(rc, rr)),
      'logps/chosen': reduceMean(lc),
      'logps/rejected': reduceMean(lr),
      nll_loss: nll,
      log_odds_ratio: reduceMean(ratio),
      log_odds_chosen: reduceMean(logOdds),
    },
  };
}
