// Scoring functions: Super-NaturalInstructions exact match and ROUGE-L (the official script's
// normalisation and max over references), SQuAD-style token F1, multiple-choice accuracy from
// log-likelihoods (acc, acc_norm by character length, acc_bytes, as lm-evaluation-harness
// reports them), and a seeded (paired) bootstrap for confidence intervals.
import { rougeL } from '../data/rouge.ts';
import { pyCollapseSpace, pyLower, pyRound } from '../util/pystr.ts';
import { Rng } from '../util/rng.ts';

/** Python's string.punctuation. */
const PUNCT = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

/**
 * Super-NI's normalize_answer: lower-case, delete ASCII punctuation, collapse whitespace.
 * Unlike SQuAD's version it keeps articles.
 */
export function normalizeAnswer(s: string): string {
  let out = '';
  for (const ch of pyLower(s)) if (!PUNCT.has(ch)) out += ch;
  // ' '.join(text.split()): Python's whitespace set, not JavaScript's \s (U+FEFF, U+001C..F).
  return pyCollapseSpace(out);
}

export function exactMatch(prediction: string, reference: string): boolean {
  return normalizeAnswer(prediction) === normalizeAnswer(reference);
}

/** Max of a metric over several references, as the official script does. */
export function maxOverReferences<T extends number | boolean>(
  metric: (prediction: string, reference: string) => T,
  prediction: string,
  references: readonly string[],
): T {
  let best: T | undefined;
  for (const r of references) {
    const v = metric(prediction, r);
    if (best === undefined || Number(v) > Number(best)) best = v;
  }
  if (best === undefined) throw new RangeError('maxOverReferences: no references');
  return best;
}

/** ROUGE-L F-measure with the Porter stemmer (target = reference), as Super-NI scores. */
export function rougeLStemmed(prediction: string, reference: string): number {
  return rougeL(reference, prediction, { stemmer: true }).fmeasure;
}

/** SQuAD-style token F1 over whitespace tokens of the normalised strings. */
export function tokenF1(prediction: string, reference: string): number {
  const p = normalizeAnswer(prediction).split(' ').filter(Boolean);
  const r = normalizeAnswer(reference).split(' ').filter(Boolean);
  if (p.length === 0 || r.length === 0) return p.length === r.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const t of r) counts.set(t, (counts.get(t) ?? 0) + 1);
  let common = 0;
  for (const t of p) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      common++;
      counts.set(t, c - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / p.length;
  const recall = common / r.length;
  return (2 * precision * recall) / (precision + recall);
}

/** Python's round(x, 4) (half to even on the exact value), as the official script rounds. */
export function round4(x: number): number {
  return pyRound(x, 4);
}

/**
 * A Super-NI aggregate as compute_metrics computes it: per-example scores summed in order,
 * round(100.0 * total / n, 4). The order matters at the last bit, which matters at a tie.
 */
export function superNiAggregate(scores: readonly (number | boolean)[]): number {
  if (scores.length === 0) throw new RangeError('superNiAggregate: no scores');
  let total = 0;
  for (const s of scores) total += Number(s);
  return round4((100.0 * total) / scores.length);
}

/**
 * Super-NI's compute_metrics: exact match and ROUGE-L, each the max over an example's
 * references, aggregated as superNiAggregate (percentages, 4 decimals, half to even).
 */
export function superNiMetrics(
  predictions: readonly string[],
  references: readonly (readonly string[])[],
): { exact_match: number; rougeL: number } {
  if (predictions.length !== references.length)
    throw new RangeError(
      `# of predictions ${predictions.length} doesn't match # of references ${references.length}`,
    );
  const em = predictions.map((p, i) => maxOverReferences(exactMatch, p, references[i]!));
  const rl = predictions.map((p, i) => maxOverReferences(rougeLStemmed, p, references[i]!));
  return { exact_match: superNiAggregate(em), rougeL: superNiAggregate(rl) };
}

/** Super-NI's compute_grouped_metrics: superNiMetrics per group, keyed `${metric}_for_${group}`. */
export function superNiGroupedMetrics(
  predictions: readonly string[],
  references: readonly (readonly string[])[],
  groups: readonly string[],
): Record<string, number> {
  if (groups.length !== predictions.length)
    throw new RangeError(`${groups.length} groups for ${predictions.length} predictions`);
  const by = new Map<string, number[]>();
  groups.forEach((g, i) => {
    const idx = by.get(g) ?? [];
    idx.push(i);
    by.set(g, idx);
  });
  const out: Record<string, number> = {};
  for (const [g, idx] of by) {
    const m = superNiMetrics(
      idx.map((i) => predictions[i]!),
      idx.map((i) => references[i]!),
    );
    out[`exact_match_for_${g}`] = m.exact_match;
    out[`rougeL_for_${g}`] = m.rougeL;
  }
  return out;
}

export interface MultipleChoiceScores {
  acc: number;
  acc_norm: number;
  acc_bytes: number;
  /** Index chosen by raw log-likelihood. */
  pred: number;
  pred_norm: number;
}

/**
 * Scores one multiple-choice item from per-choice log-likelihoods: argmax of the raw values
 * (acc), of values divided by the choice's character length (acc_norm), and by its UTF-8 byte
 * length (acc_bytes). Ties go to the first choice, as numpy's argmax does.
 */
export function scoreMultipleChoice(
  lls: readonly number[],
  choices: readonly string[],
  gold: number,
): MultipleChoiceScores {
  const argmax = (xs: number[]): number => xs.reduce((best, x, i) => (x > xs[best]! ? i : best), 0);
  const pred = argmax([...lls]);
  const predNorm = argmax(lls.map((l, i) => l / [...choices[i]!].length));
  const predBytes = argmax(lls.map((l, i) => l / Buffer.byteLength(choices[i]!, 'utf8')));
  return {
    acc: Number(pred === gold),
    acc_norm: Number(predNorm === gold),
    acc_bytes: Number(predBytes === gold),
    pred,
    pred_norm: predNorm,
  };
}

export interface Interval {
  mean: number;
  low: number;
  high: number;
}

/** Percentile bootstrap of the mean of `values` (resamples examples with replacement). */
export function bootstrapMean(
  values: readonly number[],
  opts: { resamples?: number; level?: number; seed?: number } = {},
): Interval {
  return pairedBootstrap(values, undefined, opts);
}

/**
 * Percentile bootstrap of mean(a) − mean(b) over paired examples (the same resampled indices
 * for both), or of mean(a) when b is absent. @default resamples 1000, level 0.95, seed 0
 */
export function pairedBootstrap(
  a: readonly number[],
  b: readonly number[] | undefined,
  opts: { resamples?: number; level?: number; seed?: number } = {},
): Interval {
  if (b && b.length !== a.length)
    throw new RangeError(`paired bootstrap: ${a.length} vs ${b.length} values`);
  const n = a.length;
  const mean = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);
  const point = b ? mean(a) - mean(b) : mean(a);
  if (n === 0) return { mean: Number.NaN, low: Number.NaN, high: Number.NaN };
  const resamples = opts.resamples ?? 1000;
  const level = opts.level ?? 0.95;
  const rng = new Rng(opts.seed ?? 0);
  const stats = new Float64Array(resamples);
  for (let r = 0; r < resamples; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) {
      const j = rng.int(n);
      s += b ? a[j]! - b[j]! : a[j]!;
    }
    stats[r] = s / n;
  }
  stats.sort();
  const q = (p: number) => stats[Math.min(resamples - 1, Math.max(0, Math.floor(p * resamples)))]!;
  return { mean: point, low: q((1 - level) / 2), high: q(1 - (1 - level) / 2) };
}
