// PPO's clipped policy and value losses as graph functions of per-token log-probabilities and
// values, so they are tested on their own (against torch, test/train/ppo-loss.test.ts) and the
// trainer only adds the forwards that produce them. Formulas as TRL's PPOTrainer
// (trl/experimental/ppo/ppo_trainer.py), ../shared/reference/alignment_anchors.md §2.
import type { Var } from '../engine/graph.ts';
import {
  add,
  cast,
  div,
  exp,
  greater,
  maximum,
  minimum,
  mul,
  neg,
  reduceSum,
  sub,
} from '../engine/ops.ts';

/** One minibatch's per-token tensors [B, T]; old* and advantages/returns are rollout data. */
export interface PpoTokens {
  /** log π_θ of the sampled tokens under the weights being trained (differentiable). */
  logprobs: Var;
  /** log π_θold of the same tokens at rollout time. */
  oldLogprobs: Var;
  /** Whitened GAE advantages. */
  advantages: Var;
  /** V_θ at each token (differentiable). */
  values: Var;
  /** V_θold at rollout time. */
  oldValues: Var;
  /** GAE returns A + V_old. */
  returns: Var;
  /** 1 on real completion tokens, 0 on padding (float). */
  mask: Var;
}

export interface PpoLossOptions {
  /** ε of the clipped surrogate. TRL 0.2. */
  cliprange: number;
  /** ε_v of the clipped value loss. TRL 0.2. */
  cliprangeValue: number;
  /** Weight of the value loss. TRL 0.1. */
  vfCoef: number;
}

export interface PpoLossOut {
  /** pg_loss + vf_coef · vf_loss. */
  loss: Var;
  pgLoss: Var;
  vfLoss: Var;
  /** TRL's names; no gradient is wanted through them. */
  metrics: Record<string, Var>;
}

/** Mean of x over mask = 1 (x and mask [B, T]). */
export function maskedMeanVar(x: Var, mask: Var): Var {
  return div(reduceSum(mul(x, mask)), reduceSum(mask));
}

/**
 * Clipped surrogate (Schulman et al. 2017, Eq. 7) as a loss, per token:
 *   max(−A·ρ, −A·clip(ρ, 1 − ε, 1 + ε)),  ρ = exp(log π_θ − log π_old),
 * and the clipped value loss (as in OpenAI baselines / TRL):
 *   ½·max((V − R)², (clip(V, V_old − ε_v, V_old + ε_v) − R)²),
 * each averaged over real tokens of the minibatch; loss = pg + vf_coef·vf. Policy and value
 * share one scalar so one backward through one step graph trains both (the value model's own
 * weights get only the vf term's gradient, the policy's only the pg term's).
 */
export function ppoLoss(x: PpoTokens, o: PpoLossOptions): PpoLossOut {
  const m = x.mask;
  const diff = sub(x.logprobs, x.oldLogprobs);
  const ratio = exp(diff);
  const clipped = minimum(maximum(ratio, 1 - o.cliprange), 1 + o.cliprange);
  const pg1 = mul(neg(x.advantages), ratio);
  const pg2 = mul(neg(x.advantages), clipped);
  const pgLoss = maskedMeanVar(maximum(pg1, pg2), m);

  const vClipped = minimum(
    maximum(x.values, sub(x.oldValues, o.cliprangeValue)),
    add(x.oldValues, o.cliprangeValue),
  );
  const e1 = sub(x.values, x.returns);
  const e2 = sub(vClipped, x.returns);
  const vf1 = mul(e1, e1);
  const vf2 = mul(e2, e2);
  const vfLoss = mul(maskedMeanVar(maximum(vf1, vf2), m), 0.5);

  const loss = add(pgLoss, mul(vfLoss, o.vfCoef));
  const f = (v: Var) => cast(v, ratio.dtype);
  return {
    loss,
    pgLoss,
    vfLoss,
    metrics: {
      'loss/policy_avg': pgLoss,
      'loss/value_avg': vfLoss,
      'policy/clipfrac_avg': maskedMeanVar(f(greater(pg2, pg1)), m),
      // TRL averages ½(Δlog π)² over every position (padding included, where Δ is 0); over
      // real tokens it does not depend on how much padding the batch happens to have.
      'policy/approxkl_avg': mul(maskedMeanVar(mul(diff, diff), m), 0.5),
      'val/clipfrac_avg': maskedMeanVar(f(greater(vf2, vf1)), m),
      'val/ratio': maskedMeanVar(ratio, m),
    },
  };
}

/**
 * PPO-ptx (Ouyang et al. 2022, Eq. 2): the objective gains γ·E_{x∼D_pretrain}[log π(x)], so the
 * loss gains −γ·(mean log-prob per pretraining token). `lmLogprobs` [B, T] are the log-probs
 * of the pretraining tokens, `lmMask` 1 where a token is predicted.
 */
export function ptxLoss(lmLogprobs: Var, lmMask: Var, ptxCoef: number): Var {
  return mul(neg(maskedMeanVar(lmLogprobs, lmMask)), ptxCoef);
}
