// The arithmetic core of ROUGE-L as Google's rouge_score computes it: its default tokenizer, the
// LCS-based precision / recall / F-measure in the same IEEE operation order (so scores are
// bitwise equal), and a plain dynamic-programming LCS. The near-duplicate index lives in
// rouge-index.ts; src/data/rouge.ts is the public entry point that re-exports both.
import { DataError } from '../util/errors.ts';
import { porterStem } from './porter.ts';

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

export interface RougeOptions {
  /** Porter-stem tokens longer than 3 characters (rouge_score use_stemmer=True). */
  stemmer?: boolean;
}

const stemCache = new Map<string, string>();
function stem(tok: string): string {
  let s = stemCache.get(tok);
  if (s === undefined) {
    s = porterStem(tok);
    if (stemCache.size > 200_000) stemCache.clear();
    stemCache.set(tok, s);
  }
  return s;
}

/**
 * rouge_score's default tokenizer: Python `str.lower()`, every run of characters outside
 * [a-z0-9] is a separator, and with `stemmer` tokens longer than 3 characters are Porter-stemmed.
 * Only three kinds of character lower-case into [a-z0-9]: ASCII letters and digits, U+212A
 * KELVIN SIGN (→ 'k') and U+0130 'İ' (→ 'i' + U+0307, whose combining dot then ends the
 * token); this was checked over every code point against Python 3.11 and Node's ICU, so a
 * character scan gives exactly `re.split` of the lowered text without lowering it whole.
 */
export function rougeTokenize(text: string, opts: RougeOptions = {}): string[] {
  if (typeof text !== 'string') throw notText(text);
  const out: string[] = [];
  const n = text.length;
  let start = -1;
  let mixed = false;
  for (let i = 0; i <= n; i++) {
    const c = i < n ? text.charCodeAt(i) : 32;
    if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57)) {
      if (start < 0) start = i;
    } else if ((c >= 65 && c <= 90) || c === 0x212a) {
      if (start < 0) start = i;
      mixed = true;
    } else if (c === 0x130) {
      const head = start < 0 ? '' : text.slice(start, i);
      out.push(`${mixed ? head.toLowerCase() : head}i`);
      start = -1;
      mixed = false;
    } else if (start >= 0) {
      const tok = text.slice(start, i);
      out.push(mixed ? tok.toLowerCase() : tok);
      start = -1;
      mixed = false;
    }
  }
  if (opts.stemmer === true) {
    for (let i = 0; i < out.length; i++) if (out[i]!.length > 3) out[i] = stem(out[i]!);
  }
  return out;
}

/** The error for a ROUGE input that is not a string (undefined, a number, a record...). */
export function notText(value: unknown): DataError {
  return new DataError(
    `ROUGE-L scores strings, got ${value === null ? 'null' : typeof value}`,
    { field: 'text' },
    { hint: 'pass the instruction or answer text itself, not a record or a missing field' },
  );
}

/**
 * F-measure from an LCS length, in rouge_score's order: p = lcs / |prediction|,
 * r = lcs / |target|, f = 2 * p * r / (p + r) left to right, 0 when p + r = 0 or a side is
 * empty. The order matters: 0.7 and 0.7000000000000001 fall on opposite sides of the
 * Self-Instruct threshold.
 */
export function fmeasureFromLcs(lcs: number, targetLen: number, predictionLen: number): number {
  if (targetLen === 0 || predictionLen === 0) return 0;
  const p = lcs / predictionLen;
  const r = lcs / targetLen;
  return p + r > 0 ? (2 * p * r) / (p + r) : 0;
}

/** Precision, recall and F-measure from an LCS length (same operations as fmeasureFromLcs). */
export function rougeLFromLcs(lcs: number, targetLen: number, predictionLen: number): RougeScore {
  if (targetLen === 0 || predictionLen === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const precision = lcs / predictionLen;
  const recall = lcs / targetLen;
  const fmeasure = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, fmeasure };
}

/** Classic O(n·m) LCS length by dynamic programming (the reference for the fast kernels). */
export function lcsLength<T>(a: readonly T[], b: readonly T[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  let prev = new Uint32Array(b.length + 1);
  let cur = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    const ai = a[i - 1];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = ai === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

/** Number of set bits in a 32-bit integer. */
export function popcount32(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}
