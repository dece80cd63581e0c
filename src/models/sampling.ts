// Next-token selection from one row of logits. Logit processors first, in vLLM's order: an
// additive logit_bias (OpenAI), the repetition penalty (CTRL, Keskar et al. 2019: positive
// logits divided by the penalty, negative ones multiplied, over every token of prompt and
// output), then OpenAI's presence and frequency penalties over the generated tokens. Then the
// warpers with transformers' semantics: temperature, top-k (ties with the k-th value kept) and
// top-p (nucleus, Holtzman et al. 2020: the smallest set of most likely tokens whose mass
// reaches p), then a seeded draw. Temperature 0 is greedy.
import { ConfigError } from '../util/errors.ts';
import type { Rng } from '../util/rng.ts';

export interface SamplingParams {
  /** 0 (default) picks the argmax; > 0 samples from softmax(logits / temperature). */
  temperature?: number;
  /** Keep the k most likely tokens (and any tied with the k-th); 0 = off. */
  top_k?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches top_p; 1 = off. */
  top_p?: number;
  /** > 1 discourages tokens already in the prompt or output; 1 = off. */
  repetition_penalty?: number;
  /** OpenAI: subtracted once from the logit of every token generated so far, in [-2, 2]. */
  presence_penalty?: number;
  /** OpenAI: subtracted per occurrence from the logit of tokens generated so far, in [-2, 2]. */
  frequency_penalty?: number;
  /** OpenAI: token id → bias added to its logit, in [-100, 100]. JSON keys are strings. */
  logit_bias?: Readonly<Record<string, number>> | ReadonlyMap<number, number>;
}

/** What a sequence has seen, for the penalties: prompt + output tokens, and output counts. */
export interface TokenHistory {
  /** Every token of prompt and output (repetition_penalty). */
  seen?: Iterable<number>;
  /** How often each token was generated (presence_penalty, frequency_penalty). */
  counts?: ReadonlyMap<number, number>;
}

/** Throws a ConfigError naming the first out-of-range sampling parameter. */
export function checkSampling(p: SamplingParams): void {
  const bad = (field: string, msg: string) => new ConfigError(msg, { field });
  const t = p.temperature ?? 0;
  if (!(t >= 0 && Number.isFinite(t)))
    throw bad('temperature', `temperature must be >= 0, got ${p.temperature}`);
  const k = p.top_k ?? 0;
  if (!(Number.isInteger(k) && k >= 0))
    throw bad('top_k', `top_k must be a non-negative integer, got ${p.top_k}`);
  const tp = p.top_p ?? 1;
  if (!(tp > 0 && tp <= 1)) throw bad('top_p', `top_p must be in (0, 1], got ${p.top_p}`);
  const r = p.repetition_penalty ?? 1;
  if (!(r > 0 && Number.isFinite(r)))
    throw bad('repetition_penalty', `repetition_penalty must be > 0, got ${p.repetition_penalty}`);
  for (const f of ['presence_penalty', 'frequency_penalty'] as const) {
    const v = p[f] ?? 0;
    if (!(v >= -2 && v <= 2)) throw bad(f, `${f} must be in [-2, 2], got ${p[f]}`);
  }
  logitBiasEntries(p.logit_bias);
}

/**
 * The logit_bias entries as [token, bias] pairs, checked: ids must be non-negative integers
 * (below `vocabSize` when given) and biases in [-100, 100], as OpenAI requires.
 */
export function logitBiasEntries(
  bias: SamplingParams['logit_bias'],
  vocabSize?: number,
): [number, number][] {
  if (bias === undefined || bias === null) return [];
  const raw: [string | number, number][] =
    bias instanceof Map ? [...bias] : Object.entries(bias as Record<string, number>);
  return raw.map(([k, v]) => {
    const id = typeof k === 'number' ? k : /^\d+$/.test(k) ? Number(k) : Number.NaN;
    if (!Number.isSafeInteger(id) || (vocabSize !== undefined && id >= vocabSize))
      throw new ConfigError(
        `logit_bias key '${k}' is not a token id${vocabSize !== undefined ? ` in [0, ${vocabSize})` : ''}`,
        { field: `logit_bias.${k}` },
      );
    if (!(typeof v === 'number' && v >= -100 && v <= 100))
      throw new ConfigError(`logit_bias for token ${k} must be in [-100, 100], got ${v}`, {
        field: `logit_bias.${k}`,
      });
    return [id, v];
  });
}

/** Adds logit_bias entries in place. */
export function applyLogitBias(logits: Float32Array, entries: readonly [number, number][]): void {
  for (const [t, b] of entries) logits[t] = logits[t]! + b;
}

/**
 * OpenAI's presence and frequency penalties in place: logit[j] −= frequency · c[j] +
 * presence · (c[j] > 0), with c[j] the number of times j was generated so far.
 */
export function applyPresenceFrequency(
  logits: Float32Array,
  counts: ReadonlyMap<number, number>,
  presence: number,
  frequency: number,
): void {
  if (presence === 0 && frequency === 0) return;
  for (const [t, c] of counts) if (c > 0) logits[t] = logits[t]! - (frequency * c + presence);
}

/**
 * Every logit processor in place, in order: logit_bias, repetition penalty, presence and
 * frequency penalties. `biasEntries` can be passed pre-parsed (logitBiasEntries) per sequence.
 */
export function applyLogitProcessors(
  logits: Float32Array,
  p: SamplingParams,
  history: TokenHistory = {},
  biasEntries: readonly [number, number][] = logitBiasEntries(p.logit_bias),
): void {
  applyLogitBias(logits, biasEntries);
  applyRepetitionPenalty(logits, history.seen ?? [], p.repetition_penalty ?? 1);
  if (history.counts)
    applyPresenceFrequency(
      logits,
      history.counts,
      p.presence_penalty ?? 0,
      p.frequency_penalty ?? 0,
    );
}

/** Applies the repetition penalty in place to every token seen so far (each once). */
export function applyRepetitionPenalty(
  logits: Float32Array,
  seen: Iterable<number>,
  penalty: number,
): void {
  if (penalty === 1) return;
  for (const t of seen instanceof Set ? seen : new Set(seen)) {
    const x = logits[t]!;
    logits[t] = x < 0 ? x * penalty : x / penalty;
  }
}

/** Index of the largest value (the lowest index on ties, as torch.argmax). */
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
 * The k largest entries, descending (lower index first on ties), in O(n log k) with a
 * bounded min-heap rather than a full sort.
 */
export function topEntries(xs: ArrayLike<number>, k: number): { index: number; value: number }[] {
  const n = Math.min(k, xs.length);
  if (n <= 0) return [];
  // heap[0] is the worst kept entry: smallest value, and on equal values the larger index.
  const heap: number[] = [];
  const worse = (a: number, b: number) => xs[a]! < xs[b]! || (xs[a] === xs[b] && a > b);
  const down = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && worse(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && worse(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let i = 0; i < xs.length; i++) {
    if (heap.length < n) {
      heap.push(i);
      for (let c = heap.length - 1; c > 0; ) {
        const p = (c - 1) >> 1;
        if (!worse(heap[c]!, heap[p]!)) break;
        [heap[c], heap[p]] = [heap[p]!, heap[c]!];
        c = p;
      }
    } else if (worse(heap[0]!, i)) {
      heap[0] = i;
      down(0);
    }
  }
  return heap
    .sort((a, b) => (worse(a, b) ? 1 : worse(b, a) ? -1 : 0))
    .map((index) => ({ index, value: xs[index]! }));
}

/** The k most likely tokens of a log-softmax row, as {token, logprob}, most likely first. */
export function topLogprobs(
  logprobs: ArrayLike<number>,
  k: number,
): { token: number; logprob: number }[] {
  return topEntries(logprobs, k).map((e) => ({ token: e.index, logprob: e.value }));
}

/** Candidate tokens and their unnormalised weights after temperature, top-k and top-p. */
export interface TokenDistribution {
  ids: number[];
  weights: number[];
}

/**
 * The distribution a sampled token is drawn from (temperature > 0), after the repetition
 * penalty has been applied: softmax(logits / T) restricted by top-k, then top-p.
 */
export function nextTokenDistribution(logits: Float32Array, p: SamplingParams): TokenDistribution {
  const temperature = p.temperature ?? 0;
  if (!(temperature > 0))
    throw new ConfigError('sampling needs temperature > 0', { field: 'temperature' });
  const n = logits.length;
  // Top-k first (temperature does not change the order): keep values >= the k-th largest.
  const k = p.top_k ?? 0;
  let floor = Number.NEGATIVE_INFINITY;
  if (k > 0 && k < n) floor = topEntries(logits, k)[k - 1]!.value;
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
  let ids: number[] = [];
  let weights: number[] = [];
  let sum = 0;
  for (let i = 0; i < n; i++) {
    if (logits[i]! < floor) continue;
    const e = Math.exp((logits[i]! - max) / temperature);
    ids.push(i);
    weights.push(e);
    sum += e;
  }
  const topP = p.top_p ?? 1;
  if (topP < 1) {
    // Every token with probability <= (1 − p)/n lies in the removed tail (the tail below it
    // has at most n such tokens), so only the others need sorting.
    const cut = ((1 - topP) / n) * sum;
    const cand = ids.map((id, j) => ({ id, w: weights[j]! })).filter((c) => c.w > cut);
    cand.sort((a, b) => b.w - a.w || a.id - b.id);
    let cum = 0;
    let keep = 0;
    while (keep < cand.length && cum < topP * sum) cum += cand[keep++]!.w;
    keep = Math.max(1, keep);
    ids = cand.slice(0, keep).map((c) => c.id);
    weights = cand.slice(0, keep).map((c) => c.w);
  }
  return { ids, weights };
}

/**
 * Picks the next token from `logits` (modified in place by the logit processors). `seen` is
 * prompt + output (repetition penalty); `counts` the generated tokens' counts.
 * @example const t = sampleToken(row, { temperature: 0.8, top_p: 0.95 }, new Rng(seed), seen);
 */
export function sampleToken(
  logits: Float32Array,
  p: SamplingParams,
  rng: Rng,
  seen: Iterable<number> = [],
  counts?: ReadonlyMap<number, number>,
): number {
  applyLogitProcessors(logits, p, { seen, counts });
  return pickToken(logits, p, rng);
}

/** The warpers and the draw on already-processed logits: argmax at temperature 0. */
export function pickToken(logits: Float32Array, p: SamplingParams, rng: Rng): number {
  if ((p.temperature ?? 0) <= 0) return argmax(logits);
  const { ids, weights } = nextTokenDistribution(logits, p);
  let r = rng.float() * weights.reduce((a, b) => a + b, 0);
  for (let j = 0; j < ids.length; j++) {
    r -= weights[j]!;
    if (r < 0) return ids[j]!;
  }
  return ids[ids.length - 1]!;
}
