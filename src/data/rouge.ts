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
  const out: string[] = [];
  for (const p of text.toLowerCase().split(/[^a-z0-9]+/)) {
    if (p !== '') out.push(opts.stemmer && p.length > 3 ? stem(p) : p);
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

/** Entry lengths are bucketed up to this; longer entries share the last bucket. */
const LEN_BUCKETS = 512;

interface Query {
  toks: Int32Array;
  words: number;
  /** Per token id, the bit mask of its positions in the query (built on first use). */
  masks: Map<number, Uint32Array> | undefined;
  counts: Map<number, number>;
}

/**
 * A growing pool of texts for near-duplicate checks with exactly rouge_score's decisions.
 * F = 2·LCS / (|query| + |entry|), and LCS <= the token-multiset intersection I, which gives
 * three exact filters for `exceeds`: an entry-length window, prefix filtering (an entry reaching
 * the required overlap must share one of the query's rarest tokens), and the bound F(I).
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
  /** Per entry: distinct token ids and their counts, interleaved. */
  readonly #bags: Int32Array[] = [];
  /** token id → entries containing it, in insertion order. */
  readonly #postings: number[][] = [];
  /** (token id, entry length) → entries, for length-aware prefix filtering. */
  readonly #byLength = new Map<number, number[]>();
  #stamp = new Int32Array(1024);
  #acc = new Int32Array(1024);
  #epoch = 0;

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
    const bag = new Int32Array(counts.size * 2);
    let k = 0;
    const lenKey = Math.min(toks.length, LEN_BUCKETS - 1);
    for (const [t, c] of counts) {
      bag[k++] = t;
      bag[k++] = c;
      this.#postings[t]!.push(idx);
      const key = t * LEN_BUCKETS + lenKey;
      let list = this.#byLength.get(key);
      if (!list) {
        list = [];
        this.#byLength.set(key, list);
      }
      list.push(idx);
    }
    this.#bags.push(bag);
    if (idx >= this.#stamp.length) {
      const grow = (a: Int32Array) => {
        const b = new Int32Array(a.length * 2);
        b.set(a);
        return b;
      };
      this.#stamp = grow(this.#stamp);
      this.#acc = grow(this.#acc);
    }
    return idx;
  }

  #query(text: string): Query {
    const toks = this.#intern(text, false);
    const words = Math.max(1, Math.ceil(toks.length / 32));
    const counts = new Map<number, number>();
    for (const t of toks) counts.set(t, (counts.get(t) ?? 0) + 1);
    return { toks, words, masks: undefined, counts };
  }

  /** Multiset intersection of the query with entry e. */
  #overlap(q: Query, e: number): number {
    const bag = this.#bags[e]!;
    let inter = 0;
    for (let k = 0; k < bag.length; k += 2) {
      const qc = q.counts.get(bag[k]!);
      if (qc !== undefined) inter += Math.min(qc, bag[k + 1]!);
    }
    return inter;
  }

  #exactF(q: Query, e: number, v: Uint32Array): number {
    if (!q.masks) {
      const masks = new Map<number, Uint32Array>();
      q.toks.forEach((t, i) => {
        let m = masks.get(t);
        if (!m) {
          m = new Uint32Array(q.words);
          masks.set(t, m);
        }
        m[i >>> 5]! |= 1 << (i & 31);
      });
      q.masks = masks;
    }
    const p = this.#entries[e]!;
    return scoreFromLcs(
      lcsBitParallel(q.masks, q.words, q.toks.length, p, v),
      q.toks.length,
      p.length,
    ).fmeasure;
  }

  /** Query as target, each entry as prediction; exact max, first index on ties, tie count. */
  best(query: string): BestMatch {
    const n = this.#entries.length;
    if (n === 0) return { score: 0, index: -1, nAtMax: 0 };
    const q = this.#query(query);
    const nq = q.toks.length;
    if (nq === 0) return { score: 0, index: 0, nAtMax: n };
    // Every entry sharing a token, with its intersection accumulated in a stamped array.
    const epoch = ++this.#epoch;
    const touched: number[] = [];
    for (const [t, qc] of q.counts) {
      if (t < 0) continue;
      for (const e of this.#postings[t]!) {
        if (this.#stamp[e] !== epoch) {
          this.#stamp[e] = epoch;
          this.#acc[e] = 0;
          touched.push(e);
        }
        const bag = this.#bags[e]!;
        for (let k = 0; k < bag.length; k += 2) {
          if (bag[k] === t) {
            this.#acc[e]! += Math.min(qc, bag[k + 1]!);
            break;
          }
        }
      }
    }
    if (touched.length === 0) return { score: 0, index: 0, nAtMax: n };
    // Visit entries by decreasing bound; stop once the bound drops below the best score.
    const bound = (e: number) => scoreFromLcs(this.#acc[e]!, nq, this.#entries[e]!.length).fmeasure;
    const cands = touched.map((e) => ({ e, b: bound(e) })).sort((x, y) => y.b - x.b || x.e - y.e);
    const v = new Uint32Array(q.words);
    let score = 0;
    let index = -1;
    let nAtMax = 0;
    for (const c of cands) {
      if (index >= 0 && c.b < score) break;
      const f = this.#exactF(q, c.e, v);
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
    const t = this.threshold;
    const q = this.#query(query);
    const nq = q.toks.length;
    if (nq === 0) return false;
    // F > t needs 2·|P| / (nq + |P|) > t and 2·nq / (nq + |P|) > t: a window on entry lengths
    // (widened by one each side, so float rounding can only make it looser).
    const minP = Math.max(1, Math.floor((t * nq) / (2 - t)));
    const maxP = t > 0 ? Math.ceil((nq * (2 - t)) / t) : Number.POSITIVE_INFINITY;
    const df = (tok: number) => (tok < 0 ? 0 : this.#postings[tok]!.length);
    const order = Array.from(q.toks).sort((a, b) => df(a) - df(b) || a - b);
    const epoch = ++this.#epoch;
    const v = new Uint32Array(q.words);
    // For entries of length L, F > t needs an intersection I > t·(nq + L) / 2, so a qualifying
    // entry shares one of the first nq − need + 1 query tokens ordered rarest first (prefix
    // filtering; `need` is rounded down, which only widens the prefix).
    const top = Math.min(maxP, LEN_BUCKETS - 1);
    for (let len = minP; len <= top; len++) {
      const need = Math.max(1, Math.floor((t * (nq + (len === LEN_BUCKETS - 1 ? minP : len))) / 2));
      const k = nq - need + 1;
      if (k <= 0) continue;
      for (let i = 0; i < k; i++) {
        const tok = order[i]!;
        if (tok < 0 || (i > 0 && order[i - 1] === tok)) continue;
        const list = this.#byLength.get(tok * LEN_BUCKETS + len);
        if (!list) continue;
        for (const e of list) {
          if (this.#stamp[e] === epoch) continue;
          this.#stamp[e] = epoch;
          const plen = this.#entries[e]!.length;
          if (plen < minP || plen > maxP) continue;
          // F grows with the LCS, and LCS <= I: when F(I) is not above t, neither is F(LCS).
          if (scoreFromLcs(this.#overlap(q, e), nq, plen).fmeasure <= t) continue;
          if (this.#exactF(q, e, v) > t) return true;
        }
      }
    }
    return false;
  }
}
