// ROUGE-L with the tokenisation and arithmetic of Google's rouge_score (so scores are bitwise
// equal), and RougeLIndex: the Self-Instruct near-duplicate filter made fast. The index interns
// tokens once, uses an inverted index to visit only pool entries that share a token, skips
// entries whose multiset-intersection bound on the LCS cannot change the decision, and computes
// the survivors' LCS bit-parallel (Allison & Dix 1986; Hyyrö 2004). Decisions equal brute force.
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
 * rouge_score's default tokenizer: Python lower() (full Unicode case mapping), runs of
 * characters outside [a-z0-9] become separators, then optional stemming of tokens > 3 chars.
 */
export function rougeTokenize(text: string, opts: RougeOptions = {}): string[] {
  const parts = text.toLowerCase().split(/[^a-z0-9]+/);
  const out: string[] = [];
  for (const p of parts) {
    if (p === '') continue;
    out.push(opts.stemmer && p.length > 3 ? stem(p) : p);
  }
  return out;
}

/** F-measure in rouge_score's operation order (2·p·r / (p + r), 0 when p + r = 0). */
function scoreFromLcs(lcs: number, targetLen: number, predLen: number): RougeScore {
  if (targetLen === 0 || predLen === 0) return { precision: 0, recall: 0, fmeasure: 0 };
  const precision = lcs / predLen;
  const recall = lcs / targetLen;
  const fmeasure = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, fmeasure };
}

/** Classic O(n·m) LCS length (the reference the fast path is checked against). */
export function lcsLength(a: readonly unknown[], b: readonly unknown[]): number {
  if (a.length === 0 || b.length === 0) return 0;
  let prev = new Uint32Array(b.length + 1);
  let cur = new Uint32Array(b.length + 1);
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      cur[j] = a[i - 1] === b[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, cur[j - 1]!);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length]!;
}

export function rougeLFromTokens(
  target: readonly string[],
  prediction: readonly string[],
): RougeScore {
  return scoreFromLcs(lcsLength(target, prediction), target.length, prediction.length);
}

/** rouge_score's scorer.score(target, prediction)['rougeL']. */
export function rougeL(target: string, prediction: string, opts: RougeOptions = {}): RougeScore {
  return rougeLFromTokens(rougeTokenize(target, opts), rougeTokenize(prediction, opts));
}

export interface BestMatch {
  /** Highest F-measure over the pool (0 for an empty pool). */
  score: number;
  /** Pool index of the first entry reaching it (-1 for an empty pool). */
  index: number;
  /** Pool entries sharing the highest score. */
  nAtMax: number;
}

/** Brute force: score the query (as target) against every pool entry (as prediction). */
export function bruteForceBest(
  query: string,
  pool: readonly string[],
  opts: RougeOptions = {},
): BestMatch {
  let score = 0;
  let index = -1;
  let nAtMax = 0;
  pool.forEach((p, i) => {
    const f = rougeL(query, p, opts).fmeasure;
    if (index < 0 || f > score) {
      score = f;
      index = i;
      nAtMax = 1;
    } else if (f === score) nAtMax++;
  });
  return { score, index, nAtMax };
}

// ---------------------------------------------------------------------------------------------

/** Bit-parallel LCS of `pred` against a target whose per-token match masks are given. */
function lcsBitParallel(
  masks: Map<number, Uint32Array>,
  words: number,
  targetLen: number,
  pred: Int32Array,
  v: Uint32Array,
): number {
  v.fill(0xffffffff);
  const lastBits = targetLen % 32;
  if (lastBits !== 0) v[words - 1] = 2 ** lastBits - 1;
  for (let k = 0; k < pred.length; k++) {
    const m = masks.get(pred[k]!);
    if (!m) continue;
    // V' = (V + (V & M)) | (V & ~M), with the addition carried across 32-bit words.
    let carry = 0;
    for (let w = 0; w < words; w++) {
      const vw = v[w]!;
      const u = vw & m[w]!;
      const sum = vw + u + carry;
      carry = sum > 0xffffffff ? 1 : 0;
      v[w] = ((sum >>> 0) | (vw & ~u)) >>> 0;
    }
  }
  if (lastBits !== 0) v[words - 1]! &= 2 ** lastBits - 1;
  let ones = 0;
  for (let w = 0; w < words; w++) {
    let x = v[w]!;
    x -= (x >>> 1) & 0x55555555;
    x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
    ones += Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
  }
  return targetLen - ones;
}

export interface RougeLIndexOptions extends RougeOptions {
  /** Near-duplicate threshold: a query exceeds it when some entry scores strictly above. @default 0.7 */
  threshold?: number;
}

/**
 * A growing pool of texts for near-duplicate checks with exactly rouge_score's decisions.
 * @example
 * const idx = new RougeLIndex({ threshold: 0.7 });
 * for (const s of seeds) idx.add(s);
 * if (!idx.exceeds(candidate)) idx.add(candidate);
 */
export class RougeLIndex {
  readonly threshold: number;
  readonly #stemmer: boolean;
  readonly #ids = new Map<string, number>();
  readonly #entries: Int32Array[] = [];
  /** token id → flat [entry, count, entry, count, ...] of entries containing it. */
  readonly #postings: number[][] = [];

  constructor(opts: RougeLIndexOptions = {}) {
    this.threshold = opts.threshold ?? 0.7;
    this.#stemmer = opts.stemmer ?? false;
  }

  get size(): number {
    return this.#entries.length;
  }

  #intern(text: string, create: boolean): Int32Array {
    const toks = rougeTokenize(text, { stemmer: this.#stemmer });
    const out = new Int32Array(toks.length);
    toks.forEach((t, i) => {
      let id = this.#ids.get(t);
      if (id === undefined) {
        if (create) {
          id = this.#ids.size;
          this.#ids.set(t, id);
          this.#postings.push([]);
        } else id = -1 - i; // unseen token: matches nothing in the pool
      }
      out[i] = id;
    });
    return out;
  }

  /** Adds a text to the pool; returns its index. */
  add(text: string): number {
    const toks = this.#intern(text, true);
    const idx = this.#entries.length;
    this.#entries.push(toks);
    const counts = new Map<number, number>();
    for (const t of toks) counts.set(t, (counts.get(t) ?? 0) + 1);
    for (const [t, c] of counts) this.#postings[t]!.push(idx, c);
    return idx;
  }

  /** Query tokens, per-token masks over them, and the multiset intersection with each entry. */
  #prepare(query: string) {
    const q = this.#intern(query, false);
    const words = Math.max(1, Math.ceil(q.length / 32));
    const masks = new Map<number, Uint32Array>();
    const qCounts = new Map<number, number>();
    q.forEach((t, i) => {
      let m = masks.get(t);
      if (!m) {
        m = new Uint32Array(words);
        masks.set(t, m);
      }
      m[i >>> 5]! |= 1 << (i & 31);
      qCounts.set(t, (qCounts.get(t) ?? 0) + 1);
    });
    const inter = new Map<number, number>();
    for (const [t, qc] of qCounts) {
      if (t < 0) continue;
      const post = this.#postings[t]!;
      for (let k = 0; k < post.length; k += 2) {
        const e = post[k]!;
        inter.set(e, (inter.get(e) ?? 0) + Math.min(qc, post[k + 1]!));
      }
    }
    return { q, words, masks, inter };
  }

  /** Query as target, each entry as prediction; exact max, first index on ties, tie count. */
  best(query: string): BestMatch {
    const n = this.#entries.length;
    if (n === 0) return { score: 0, index: -1, nAtMax: 0 };
    const { q, words, masks, inter } = this.#prepare(query);
    if (q.length === 0 || inter.size === 0) return { score: 0, index: 0, nAtMax: n };
    // Visit entries by decreasing upper bound; stop once the bound drops below the best score.
    const cands = [...inter].map(([e, i]) => ({
      e,
      bound: scoreFromLcs(i, q.length, this.#entries[e]!.length).fmeasure,
    }));
    cands.sort((x, y) => y.bound - x.bound || x.e - y.e);
    const v = new Uint32Array(words);
    let score = 0;
    let index = -1;
    let nAtMax = 0;
    for (const c of cands) {
      if (index >= 0 && c.bound < score) break;
      const p = this.#entries[c.e]!;
      const f = scoreFromLcs(
        lcsBitParallel(masks, words, q.length, p, v),
        q.length,
        p.length,
      ).fmeasure;
      if (index < 0 || f > score) {
        score = f;
        index = c.e;
        nAtMax = 1;
      } else if (f === score) {
        nAtMax++;
        if (c.e < index) index = c.e;
      }
    }
    if (score === 0) return { score: 0, index: 0, nAtMax: n };
    return { score, index, nAtMax };
  }

  /** True when some pool entry's F-measure is strictly above the threshold. */
  exceeds(query: string): boolean {
    if (this.#entries.length === 0) return false;
    const { q, words, masks, inter } = this.#prepare(query);
    if (q.length === 0) return false;
    const v = new Uint32Array(words);
    for (const [e, i] of inter) {
      const p = this.#entries[e]!;
      // F grows with the LCS, and the LCS is at most the multiset intersection: when even that
      // bound is not above the threshold, this entry cannot be.
      if (scoreFromLcs(i, q.length, p.length).fmeasure <= this.threshold) continue;
      const f = scoreFromLcs(
        lcsBitParallel(masks, words, q.length, p, v),
        q.length,
        p.length,
      ).fmeasure;
      if (f > this.threshold) return true;
    }
    return false;
  }
}
