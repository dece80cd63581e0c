// Next-token selection from one row of logits, with HF semantics: repetition penalty (CTRL,
// Keskar et al. 2019: divide positive logits by the penalty, multiply negative ones), temperature,
// top-k, top-p (nucleus, Holtzman et al. 2020), then a seeded draw; greedy when temperature is 0.
import type { Rng } from '../util/rng.ts';

export interface SamplingParams {
  /** 0 (default) picks the argmax. */
  temperature?: number;
  /** Keep the k most likely tokens (0 = off). */
  top_k?: number;
  /** Keep the smallest set of tokens whose probability reaches top_p (1 = off). */
  top_p?: number;
  /** > 1 discourages tokens already in the sequence (1 = off). */
  repetition_penalty?: number;
}

/** Applies the repetition penalty in place to the tokens seen so far. */
export function applyRepetitionPenalty(
  logits: Float32Array,
  seen: Iterable<number>,
  penalty: number,
): void {
  if (penalty === 1) return;
  for (const t of new Set(seen)) {
    const x = logits[t]!;
    logits[t] = x > 0 ? x / penalty : x * penalty;
  }
}

export function argmax(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i]! > xs[best]!) best = i;
  return best;
}

/** log-softmax of a logits row (float64 accumulation). */
export function logSoftmaxRow(logits: ArrayLike<number>): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const lse = max + Math.log(sum);
  const out = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - lse;
  return out;
}

/**
 * Picks the next token from `logits` (modified in place by the penalty). Returns the token.
 * Ties in greedy mode go to the lowest id, as torch.argmax does.
 */
export function sampleToken(
  logits: Float32Array,
  p: SamplingParams,
  rng: Rng,
  seen: Iterable<number> = [],
): number {
  applyRepetitionPenalty(logits, seen, p.repetition_penalty ?? 1);
  const temperature = p.temperature ?? 0;
  if (temperature <= 0) return argmax(logits);
  const n = logits.length;
  const idx = Array.from({ length: n }, (_, i) => i);
  idx.sort((a, b) => logits[b]! - logits[a]! || a - b);
  let keep = n;
  const k = p.top_k ?? 0;
  if (k > 0) keep = Math.min(keep, k);
  const scaled = new Float64Array(keep);
  const top = logits[idx[0]!]! / temperature;
  let sum = 0;
  for (let i = 0; i < keep; i++) {
    scaled[i] = Math.exp(logits[idx[i]!]! / temperature - top);
    sum += scaled[i]!;
  }
  const topP = p.top_p ?? 1;
  if (topP < 1) {
    let cum = 0;
    let cut = keep;
    for (let i = 0; i < keep; i++) {
      cum += scaled[i]! / sum;
      if (cum >= topP) {
        cut = i + 1;
        break;
      }
    }
    keep = Math.max(1, cut);
    sum = 0;
    for (let i = 0; i < keep; i++) sum += scaled[i]!;
  }
  let r = rng.float() * sum;
  for (let i = 0; i < keep; i++) {
    r -= scaled[i]!;
    if (r < 0) return idx[i]!;
  }
  return idx[keep - 1]!;
}
