// PPO's host-side arithmetic on rollout data (no graph, no gradient): per-token rewards with the
// KL penalty, GAE, masked whitening and the adaptive KL coefficient. Everything here is a
// function of arrays [B, T] stored row-major (B completions × T completion positions) and a
// mask that is 1 on the completion's real tokens (its EOS included) and 0 on the padding after
// them. Formulas as TRL's PPOTrainer computes them (trl/experimental/ppo/ppo_trainer.py; see
// ../shared/reference/alignment_anchors.md §2) except where a comment says why not.
import { ConfigError } from '../util/errors.ts';

/** Per-token arrays of one rollout batch: B rows of T completion positions. */
export interface TokenGrid {
  readonly B: number;
  readonly T: number;
  /** 1 on real completion tokens (EOS included), 0 after them; [B*T]. */
  readonly mask: ArrayLike<number>;
}

/** TRL PPOConfig.kl_estimator. */
export type KlEstimator = 'k1' | 'k3';

/**
 * Per-token KL estimate from log π and log π_ref (Schulman, "Approximating KL divergence",
 * 2020): k1 = log π − log π_ref (unbiased, can be negative per token), k3 = (r − 1) − log r with
 * r = π_ref / π (unbiased, never negative, lower variance). TRL: logr = ref − logprobs;
 * kl = −logr (k1) or expm1(logr) − logr (k3).
 */
export function klPerToken(logprob: number, refLogprob: number, estimator: KlEstimator): number {
  const logr = refLogprob - logprob;
  return estimator === 'k1' ? -logr : Math.expm1(logr) - logr;
}

/** Index of each row's last real token (−1 for a row without any). */
export function lastTokenIndex(g: TokenGrid): Int32Array {
  const out = new Int32Array(g.B).fill(-1);
  for (let b = 0; b < g.B; b++)
    for (let t = 0; t < g.T; t++) if (g.mask[b * g.T + t]! > 0) out[b] = t;
  return out;
}

export interface ShapedRewards {
  /** r_t = −kl_coef · kl_t, plus the score at the row's last real token; 0 on padding. [B*T] */
  rewards: Float64Array;
  /** kl_t (estimator as asked); 0 on padding. [B*T] */
  kl: Float64Array;
  /** −kl_coef · kl_t; 0 on padding. [B*T] */
  nonScore: Float64Array;
}

/**
 * InstructGPT Eq. 2 as a per-token reward (Ouyang et al. 2022 §3.5: "a per-token KL penalty
 * from the SFT model at each token"; Ziegler et al. 2019 Eq. 2): r_t = −β·kl_t at every
 * completion token, and the sequence score r_θ(x, y) added at the last real token. TRL adds
 * the score at `sequence_length + 1`, which is the first padding position whenever the
 * completion is shorter than the response length (huggingface/trl#3750): the reward then lands
 * on a token the value loss masks. Here it lands on the last real token (the EOS when there is
 * one), so every score is seen. A row without real tokens is an error (a rollout always has
 * at least one sampled token).
 */
export function shapeRewards(
  g: TokenGrid,
  p: {
    logprobs: ArrayLike<number>;
    refLogprobs: ArrayLike<number>;
    scores: ArrayLike<number>;
    klCoef: number;
    estimator: KlEstimator;
  },
): ShapedRewards {
  const n = g.B * g.T;
  const rewards = new Float64Array(n);
  const kl = new Float64Array(n);
  const nonScore = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (!(g.mask[i]! > 0)) continue;
    kl[i] = klPerToken(p.logprobs[i]!, p.refLogprobs[i]!, p.estimator);
    nonScore[i] = -p.klCoef * kl[i]!;
    rewards[i] = nonScore[i]!;
  }
  const last = lastTokenIndex(g);
  for (let b = 0; b < g.B; b++) {
    if (last[b]! < 0)
      throw new ConfigError(`rollout row ${b} has no completion token to put its score on`, {
        field: 'response_length',
      });
    rewards[b * g.T + last[b]!]! += p.scores[b]!;
  }
  return { rewards, kl, nonScore };
}

/**
 * Generalised advantage estimation (Schulman et al. 2016, Eq. 16) backwards over each row's
 * completion tokens: δ_t = r_t + γ·V_{t+1} − V_t, A_t = δ_t + γλ·A_{t+1}, returns R_t = A_t + V_t.
 * The state after the last real token is terminal (V = 0 there, as TRL masks values past the
 * end to 0); padding positions get A = R = 0. InstructGPT App. C.4: "No discount is applied
 * when estimating the generalized advantage" (γ = 1).
 */
export function gae(
  g: TokenGrid,
  rewards: ArrayLike<number>,
  values: ArrayLike<number>,
  gamma: number,
  lam: number,
): { advantages: Float64Array; returns: Float64Array } {
  const advantages = new Float64Array(g.B * g.T);
  const returns = new Float64Array(g.B * g.T);
  for (let b = 0; b < g.B; b++) {
    let next = 0;
    let lastGae = 0;
    for (let t = g.T - 1; t >= 0; t--) {
      const i = b * g.T + t;
      if (!(g.mask[i]! > 0)) {
        next = 0;
        lastGae = 0;
        continue;
      }
      const delta = rewards[i]! + gamma * next - values[i]!;
      lastGae = delta + gamma * lam * lastGae;
      advantages[i] = lastGae;
      returns[i] = lastGae + values[i]!;
      next = values[i]!;
    }
  }
  return { advantages, returns };
}

/** Mean over mask = 1. */
export function maskedMean(x: ArrayLike<number>, mask: ArrayLike<number>): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < x.length; i++)
    if (mask[i]! > 0) {
      s += x[i]!;
      n++;
    }
  return n === 0 ? 0 : s / n;
}

/** Unbiased variance over mask = 1 (TRL masked_var with Bessel's correction). */
export function maskedVar(x: ArrayLike<number>, mask: ArrayLike<number>): number {
  const m = maskedMean(x, mask);
  let s = 0;
  let n = 0;
  for (let i = 0; i < x.length; i++)
    if (mask[i]! > 0) {
      s += (x[i]! - m) ** 2;
      n++;
    }
  return n < 2 ? 0 : s / (n - 1);
}

/**
 * (x − mean)/sqrt(var + 1e-8) over mask = 1, 0 elsewhere; shiftMean false adds the mean back
 * (TRL masked_whiten; whiten_rewards uses shift_mean=False so the sign of the reward stays).
 */
export function maskedWhiten(
  x: ArrayLike<number>,
  mask: ArrayLike<number>,
  shiftMean = true,
): Float64Array {
  const m = maskedMean(x, mask);
  const inv = 1 / Math.sqrt(maskedVar(x, mask) + 1e-8);
  const out = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++)
    if (mask[i]! > 0) out[i] = (x[i]! - m) * inv + (shiftMean ? 0 : m);
  return out;
}

/**
 * Adaptive KL coefficient (Ziegler et al. 2019 §2.2, TRL's AdaptiveKLController): after each
 * batch of n episodes, e = clip(KL/target − 1, −0.2, 0.2) and β ← β·(1 + e·n/horizon). The KL
 * is the per-sequence mean (objective/kl). A fixed controller never changes β.
 */
export class KlController {
  constructor(
    public value: number,
    private readonly adaptive?: { target: number; horizon: number },
  ) {}
  update(currentKl: number, nSteps: number): void {
    if (!this.adaptive) return;
    const e = Math.min(0.2, Math.max(-0.2, currentKl / this.adaptive.target - 1));
    this.value *= 1 + (e * nSteps) / this.adaptive.horizon;
  }
}

/**
 * Everything the update needs from one rollout batch, computed on the host: rewards with the KL
 * penalty, GAE advantages (whitened over real tokens, as TRL always does) and returns, and the
 * per-batch objective metrics under TRL's names (sums over a completion's tokens, means over
 * completions).
 */
export function ppoTargets(
  g: TokenGrid,
  p: {
    logprobs: ArrayLike<number>;
    refLogprobs: ArrayLike<number>;
    values: ArrayLike<number>;
    scores: ArrayLike<number>;
    klCoef: number;
    estimator: KlEstimator;
    gamma: number;
    lam: number;
    whitenRewards: boolean;
  },
): {
  advantages: Float64Array;
  returns: Float64Array;
  rewards: Float64Array;
  metrics: Record<string, number>;
} {
  const shaped = shapeRewards(g, p);
  const rewards = p.whitenRewards ? maskedWhiten(shaped.rewards, g.mask, false) : shaped.rewards;
  const { advantages, returns } = gae(g, rewards, p.values, p.gamma, p.lam);
  const rowSum = (x: ArrayLike<number>): number => {
    let s = 0;
    for (let i = 0; i < g.B * g.T; i++) if (g.mask[i]! > 0) s += x[i]!;
    return s / g.B;
  };
  const negLogp = Float64Array.from({ length: g.B * g.T }, (_, i) => -p.logprobs[i]!);
  let score = 0;
  for (let b = 0; b < g.B; b++) score += p.scores[b]!;
  score /= g.B;
  const nonScore = rowSum(shaped.nonScore);
  return {
    advantages: maskedWhiten(advantages, g.mask, true),
    returns,
    rewards,
    metrics: {
      'objective/kl': rowSum(shaped.kl),
      // TRL's mean_entropy: −log π of the sampled tokens summed over the completion.
      'objective/entropy': rowSum(negLogp),
      'objective/non_score_reward': nonScore,
      'objective/scores': score,
      'objective/rlhf_reward': score + nonScore,
    },
  };
}
