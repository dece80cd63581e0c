// RougeLIndex: the Self-Instruct near-duplicate filter (reject a candidate whose ROUGE-L F against
// any pool entry is > 0.7) with exactly rouge_score's decisions, fast. Texts are tokenised once
// and interned; a query visits only entries sharing a token, rarest token first, stops as soon as
// no unvisited entry can matter, and scores survivors with a bit-parallel LCS. Scoring itself
// (tokenizer, F order) is in rouge-core.ts.
import { ConfigError } from '../util/errors.ts';
import { fmeasureFromLcs, notText, popcount32, type RougeOptions } from './rouge-core.ts';
import { TokenVocab } from './rouge-vocab.ts';

// Module-local bindings for the two hot imported functions: under tsx every call through an
// imported binding goes via an export getter that V8 does not inline (about 15% of a query).
const FM = fmeasureFromLcs;
const POP = popcount32;

export interface RougeLIndexOptions extends RougeOptions {
  /** A query exceeds the threshold when some entry's F-measure is strictly above it. @default 0.7 */
  threshold?: number;
}

export interface BestMatch {
  /** Highest F-measure over the pool (0 for an empty pool). */
  score: number;
  /** Pool index of the first entry reaching it (-1 for an empty pool). */
  index: number;
  /** Number of pool entries sharing the highest score. */
  nAtMax: number;
}

/**
 * Bounds are compared with this relative slack so that float rounding can only make them looser:
 * a bound B holds for the exact F, and the computed F is within a few ulps of it, so skipping
 * only when B·(1 + SLACK) is at or below the cut-off never skips an entry rouge_score would count.
 */
const SLACK = 1e-9;

const grow = (a: Int32Array<ArrayBuffer>, need: number): Int32Array<ArrayBuffer> => {
  if (need <= a.length) return a;
  const b = new Int32Array(Math.max(need, a.length * 2));
  b.set(a);
  return b;
};

/**
 * A growing pool of texts answering "how similar is the closest entry?" exactly as a brute-force
 * loop over rouge_score's `scorer.score(query, entry)` would (query = target, entry = prediction).
 *
 * Why the pruning is exact: F = 2·LCS / (|q| + |e|), and LCS ≤ the number of query positions
 * whose token the entry contains. Query tokens are visited rarest first; an entry first met at a
 * token with R query positions left (that token's included) shares at most R positions, so
 * F ≤ 2·min(R, |e|) / (|q| + |e|), and every entry not yet met has F ≤ 2R / (|q| + R). The first
 * bound skips an entry without an LCS; the second ends the query (prefix filtering, as in
 * Bayardo et al. 2007 "Scaling up all pairs similarity search", with the length factor of
 * Xiao et al. 2008 "Efficient similarity joins for near duplicate detection").
 * @example
 * const idx = new RougeLIndex({ threshold: 0.7 });
 * for (const s of seeds) idx.add(s);
 * if (!idx.exceeds(candidate)) idx.add(candidate);
 */
export class RougeLIndex {
  readonly threshold: number;
  readonly stemmer: boolean;
  readonly #vocab = new TokenVocab();
  /** Per token id: the entries containing it, in insertion order. */
  readonly #postings: number[][] = [];
  /** Token ids of every entry, back to back; entry e is #toks[#start[e] .. #start[e] + #len[e]). */
  #toks = new Int32Array(4096);
  #used = 0;
  #start = new Int32Array(1024);
  #len = new Int32Array(1024);
  #size = 0;
  /** Per entry: the query epoch that last visited it. */
  #seen = new Int32Array(1024);
  #epoch = 0;
  /** Per token id: 1 + its slot among the current query's distinct tokens, 0 when absent. */
  #slot = new Int32Array(1024);
  /** Per slot: bit masks of the slot's positions in the query, `#words` 32-bit words each. */
  #masks = new Int32Array(64);
  /** Per slot: token id and multiplicity in the query; #order: slots rarest first (#df). */
  #slotIds = new Int32Array(64);
  #mult = new Int32Array(64);
  #order = new Int32Array(64);
  #df = new Int32Array(64);
  #distinct = 0;
  #known = 0;
  #v = new Int32Array(2);
  #words = 1;

  constructor(opts: RougeLIndexOptions = {}) {
    const t = opts.threshold ?? 0.7;
    if (typeof t !== 'number' || Number.isNaN(t)) {
      const hint = 'Self-Instruct uses 0.7 (reject when ROUGE-L F > 0.7)';
      throw new ConfigError(
        `threshold must be a number, got ${t}`,
        { field: 'threshold' },
        { hint },
      );
    }
    this.threshold = t;
    this.stemmer = opts.stemmer ?? false;
  }

  /** Number of entries in the pool. */
  get size(): number {
    return this.#size;
  }

  /** Adds a text to the pool and returns its index (0, 1, 2, … in call order). */
  add(text: string): number {
    const vocab = this.#vocab;
    const n = vocab.scan(text, this.stemmer, true);
    const ids = vocab.ids;
    const e = this.#size++;
    if (e >= this.#start.length) {
      this.#start = grow(this.#start, e + 1);
      this.#len = grow(this.#len, e + 1);
      this.#seen = grow(this.#seen, e + 1);
    }
    while (this.#postings.length < vocab.size) this.#postings.push([]);
    if (vocab.size > this.#slot.length) this.#slot = grow(this.#slot, vocab.size);
    this.#toks = grow(this.#toks, this.#used + n);
    this.#start[e] = this.#used;
    this.#len[e] = n;
    for (let i = 0; i < n; i++) {
      const id = ids[i]!;
      this.#toks[this.#used++] = id;
      const list = this.#postings[id]!;
      // An entry is listed once per distinct token; a repeat within it is the list's last item.
      if (list.length === 0 || list[list.length - 1] !== e) list.push(e);
    }
    return e;
  }

  /**
   * Highest F-measure with the query as target and each entry as prediction, the first entry
   * reaching it, and how many entries reach it. Entries sharing no token score 0, so a query with
   * no known token ties all entries at 0 (index 0).
   */
  best(query: string): BestMatch {
    if (typeof query !== 'string') throw notText(query);
    const n = this.#size;
    if (n === 0) return { score: 0, index: -1, nAtMax: 0 };
    const nq = this.#prepare(query);
    let score = 0;
    let index = 0;
    let nAtMax = 0;
    const seen = this.#seen;
    const len = this.#len;
    const epoch = this.#epoch;
    let remaining = this.#known;
    for (let k = 0; k < this.#distinct; k++) {
      // Unvisited entries share at most `remaining` positions: stop once they cannot tie.
      if (score > 0 && ((2 * remaining) / (nq + remaining)) * (1 + SLACK) < score) break;
      const slot = this.#order[k]!;
      const list = this.#postings[this.#slotIds[slot]!]!;
      for (let j = 0; j < list.length; j++) {
        const e = list[j]!;
        if (seen[e] === epoch) continue;
        seen[e] = epoch;
        const p = len[e]!;
        const ub = (2 * Math.min(remaining, p)) / (nq + p);
        if (ub * (1 + SLACK) < score) continue;
        const f = FM(this.#lcs(e), nq, p);
        if (f > score) {
          score = f;
          index = e;
          nAtMax = 1;
        } else if (f === score) {
          nAtMax++;
          if (e < index) index = e;
        }
      }
      remaining -= this.#mult[slot]!;
    }
    this.#release();
    return score === 0 ? { score: 0, index: 0, nAtMax: n } : { score, index, nAtMax };
  }

  /** True when some entry's F-measure (query as target) is strictly above the threshold. */
  exceeds(query: string): boolean {
    if (typeof query !== 'string') throw notText(query);
    const t = this.threshold;
    if (this.#size === 0) return false;
    if (t < 0) return true; // every score, 0 included, is above a negative threshold
    const nq = this.#prepare(query);
    const seen = this.#seen;
    const len = this.#len;
    const epoch = this.#epoch;
    let remaining = this.#known;
    let hit = false;
    for (let k = 0; k < this.#distinct && !hit; k++) {
      // Unvisited entries share at most `remaining` positions (prefix filtering).
      if (((2 * remaining) / (nq + remaining)) * (1 + SLACK) <= t) break;
      const slot = this.#order[k]!;
      const list = this.#postings[this.#slotIds[slot]!]!;
      for (let j = 0; j < list.length; j++) {
        const e = list[j]!;
        if (seen[e] === epoch) continue;
        seen[e] = epoch;
        const p = len[e]!;
        const ub = (2 * Math.min(remaining, p)) / (nq + p);
        if (ub * (1 + SLACK) <= t) continue;
        if (FM(this.#lcs(e), nq, p) > t) {
          hit = true;
          break;
        }
      }
      remaining -= this.#mult[slot]!;
    }
    this.#release();
    return hit;
  }

  /**
   * Tokenises a query and loads its distinct known tokens into slots 0..d-1: position bit masks
   * (#words 32-bit words per slot), multiplicities, and #order, the slots sorted rarest first.
   * Starts a new visit epoch. Returns the query's token count; #release must follow.
   */
  #prepare(query: string): number {
    const nq = this.#vocab.scan(query, this.stemmer, false);
    const qids = this.#vocab.ids;
    const words = nq === 0 ? 1 : (nq + 31) >>> 5;
    this.#words = words;
    if (this.#v.length < words) this.#v = new Int32Array(words);
    if (this.#slotIds.length < nq) {
      this.#slotIds = new Int32Array(nq);
      this.#mult = new Int32Array(nq);
      this.#order = new Int32Array(nq);
      this.#df = new Int32Array(nq);
    }
    if (this.#masks.length < (nq + 1) * words) this.#masks = new Int32Array((nq + 1) * words);
    const slotOf = this.#slot;
    const masks = this.#masks;
    const slotIds = this.#slotIds;
    const mult = this.#mult;
    let d = 0;
    let known = 0;
    for (let i = 0; i < nq; i++) {
      const id = qids[i]!;
      if (id < 0) continue;
      known++;
      let s = slotOf[id]! - 1;
      if (s < 0) {
        s = d++;
        slotOf[id] = s + 1;
        slotIds[s] = id;
        mult[s] = 0;
        if (words === 1) masks[s] = 0;
        else masks.fill(0, s * words, (s + 1) * words);
      }
      mult[s]!++;
      masks[s * words + (i >>> 5)]! |= 1 << (i & 31);
    }
    // Slots by increasing posting-list length (insertion sort: a query has few tokens).
    const order = this.#order;
    const dfs = this.#df;
    const postings = this.#postings;
    for (let s = 0; s < d; s++) {
      const df = postings[slotIds[s]!]!.length;
      let k = s;
      while (k > 0 && dfs[k - 1]! > df) {
        order[k] = order[k - 1]!;
        dfs[k] = dfs[k - 1]!;
        k--;
      }
      order[k] = s;
      dfs[k] = df;
    }
    this.#distinct = d;
    this.#known = known;
    if (++this.#epoch === 0x3fffffff) {
      this.#seen.fill(0);
      this.#epoch = 1;
    }
    return nq;
  }

  /** Clears the per-token slot marks set by #prepare. */
  #release(): void {
    for (let s = 0; s < this.#distinct; s++) this.#slot[this.#slotIds[s]!] = 0;
    this.#distinct = 0;
  }

  /**
   * LCS of the current query (as bit masks) with entry e, bit-parallel: V starts all ones and
   * for each entry token with mask M, V ← (V + (V & M)) | (V & ~M); the LCS is the number of
   * zero bits (Allison & Dix 1986; Hyyrö 2004, "Bit-parallel LCS-length computation revisited").
   * Bits above the query length have M = 0 and stay 1, so no final masking is needed.
   */
  #lcs(e: number): number {
    const toks = this.#toks;
    const slot = this.#slot;
    const masks = this.#masks;
    const from = this.#start[e]!;
    const to = from + this.#len[e]!;
    const words = this.#words;
    if (words === 1) {
      let v = -1;
      for (let k = from; k < to; k++) {
        const s = slot[toks[k]!]!;
        if (s === 0) continue;
        const m = masks[s - 1]!;
        v = (v + (v & m)) | (v & ~m);
      }
      return 32 - POP(v);
    }
    const v = this.#v;
    v.fill(-1, 0, words);
    for (let k = from; k < to; k++) {
      const s = slot[toks[k]!]!;
      if (s === 0) continue;
      const base = (s - 1) * words;
      let carry = 0;
      for (let w = 0; w < words; w++) {
        const vw = v[w]! >>> 0;
        const mw = masks[base + w]!;
        const sum = vw + ((vw & mw) >>> 0) + carry;
        carry = sum > 0xffffffff ? 1 : 0;
        v[w] = sum | (vw & ~mw);
      }
    }
    let ones = 0;
    for (let w = 0; w < words; w++) ones += POP(v[w]!);
    return 32 * words - ones;
  }
}
