// Byte-level BPE trainer (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with
// Subword Units", Alg. 1, on GPT-2's byte alphabet). Words are counted once; pair counts are then
// updated incrementally around each merge (only the words containing the merged pair are
// touched), and the next pair comes from a max-heap with lazy invalidation. Ties go to the pair
// of smaller token ids, so the same corpus always gives the same merges. Encoding is bpe.ts.
import { ConfigError } from '../util/errors.ts';
import { BYTE_TO_UNICODE, ByteLevelBpe, byteLevel, pretokenize, type SpecialToken } from './bpe.ts';

/** The special tokens of the built-in tiny model's tokenizer, in id order (ids 0..3). */
export const DEFAULT_SPECIAL_TOKENS: readonly string[] = [
  '<|endoftext|>',
  '<|im_start|>',
  '<|im_end|>',
  '<pad>',
];

/** Options for trainBpe. */
export interface BpeTrainOptions {
  /** Final vocabulary size, counting special tokens and the 256 byte tokens. */
  vocabSize: number;
  /** Special tokens, given ids 0..n-1 and never split. @default DEFAULT_SPECIAL_TOKENS */
  specialTokens?: readonly string[];
  /** Stop early when the best pair occurs fewer times than this. @default 2 */
  minFrequency?: number;
}

// Pair key: left id · 2^21 + right id (ids < 2^21, key < 2^42: exact in a double).
const SHIFT = 2 ** 21;

/** Max-heap of (count, key), larger count first, then smaller key. */
class PairHeap {
  readonly #c: number[] = [];
  readonly #k: number[] = [];
  get size(): number {
    return this.#c.length;
  }
  #above(i: number, j: number): boolean {
    return this.#c[i] > this.#c[j] || (this.#c[i] === this.#c[j] && this.#k[i] < this.#k[j]);
  }
  #swap(i: number, j: number): void {
    [this.#c[i], this.#c[j]] = [this.#c[j], this.#c[i]];
    [this.#k[i], this.#k[j]] = [this.#k[j], this.#k[i]];
  }
  push(count: number, key: number): void {
    this.#c.push(count);
    this.#k.push(key);
    let i = this.#c.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#above(i, p)) break;
      this.#swap(i, p);
      i = p;
    }
  }
  pop(): [number, number] {
    const top: [number, number] = [this.#c[0], this.#k[0]];
    const lc = this.#c.pop()!;
    const lk = this.#k.pop()!;
    if (this.#c.length > 0) {
      this.#c[0] = lc;
      this.#k[0] = lk;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.#c.length && this.#above(l, m)) m = l;
        if (r < this.#c.length && this.#above(r, m)) m = r;
        if (m === i) break;
        this.#swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

/** Count pre-tokens over a corpus, with special tokens cut out of the text first. */
function countWords(texts: Iterable<string>, specials: readonly string[]): Map<string, number> {
  const counts = new Map<string, number>();
  const alts = [...specials]
    .sort((a, b) => b.length - a.length)
    .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  const splitter = alts.length > 0 ? new RegExp(alts.join('|'), 'g') : null;
  for (const text of texts) {
    const chunks = splitter === null ? [text] : text.split(splitter);
    for (const chunk of chunks)
      for (const w of pretokenize(chunk)) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  return counts;
}

/**
 * Learn a byte-level BPE vocabulary from texts.
 * @example const bpe = trainBpe(lines, { vocabSize: 2048 }); writeFile('tokenizer.json', JSON.stringify(bpe.toTokenizerJson()))
 */
export function trainBpe(texts: Iterable<string>, opts: BpeTrainOptions): ByteLevelBpe {
  const specials = opts.specialTokens ?? DEFAULT_SPECIAL_TOKENS;
  const minFreq = opts.minFrequency ?? 2;
  if (new Set(specials).size !== specials.length)
    throw new ConfigError('special tokens must be distinct', { field: 'specialTokens' });
  const base = specials.length + 256;
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < base || opts.vocabSize >= SHIFT)
    throw new ConfigError(`vocabSize must be an integer in [${base}, ${SHIFT})`, {
      field: 'vocabSize',
    });

  const strs: string[] = [...specials, ...BYTE_TO_UNICODE];
  const idOf = new Map(strs.map((s, i) => [s, i]));
  const merges: [string, string][] = [];

  const wordCounts = countWords(texts, specials);
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [w, c] of wordCounts) {
    words.push(Array.from(byteLevel(w), (ch) => idOf.get(ch)!));
    freq.push(c);
  }

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  const addPair = (key: number, delta: number, wi: number) => {
    const c = (pairCount.get(key) ?? 0) + delta;
    pairCount.set(key, c);
    if (delta > 0) {
      const list = pairWords.get(key);
      if (list === undefined) pairWords.set(key, [wi]);
      else if (list[list.length - 1] !== wi) list.push(wi);
    }
  };
  for (let wi = 0; wi < words.length; wi++) {
    const w = words[wi];
    for (let i = 0; i + 1 < w.length; i++) addPair(w[i] * SHIFT + w[i + 1], freq[wi], wi);
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  const stamp = new Int32Array(words.length).fill(-1);
  while (strs.length < opts.vocabSize && heap.size > 0) {
    const [c, key] = heap.pop();
    if (pairCount.get(key) !== c) continue; // stale entry
    if (c < minFreq) break;
    const a = Math.floor(key / SHIFT);
    const b = key - a * SHIFT;
    const merged = strs[a] + strs[b];
    merges.push([strs[a], strs[b]]);
    // Two merge paths can spell the same token; it keeps its first id.
    let id = idOf.get(merged);
    if (id === undefined) {
      id = strs.length;
      strs.push(merged);
      idOf.set(merged, id);
    }
    const changed = new Set<number>();
    const step = merges.length;
    for (const wi of pairWords.get(key) ?? []) {
      if (stamp[wi] === step) continue;
      stamp[wi] = step;
      const w = words[wi];
      const f = freq[wi];
      const out: number[] = [];
      for (let i = 0; i < w.length; i++) {
        if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
          // x a b y → x N y: drop (x,a), (a,b), (b,y); add (x,N), (N,y).
          if (out.length > 0) {
            const x = out[out.length - 1];
            addPair(x * SHIFT + a, -f, wi);
            addPair(x * SHIFT + id, f, wi);
            changed.add(x * SHIFT + a).add(x * SHIFT + id);
          }
          if (i + 2 < w.length) {
            const y = w[i + 2];
            addPair(b * SHIFT + y, -f, wi);
            addPair(id * SHIFT + y, f, wi);
            changed.add(b * SHIFT + y).add(id * SHIFT + y);
          }
          addPair(key, -f, wi);
          out.push(id);
          i++;
        } else out.push(w[i]);
      }
      words[wi] = out;
    }
    pairCount.delete(key);
    pairWords.delete(key);
    changed.delete(key);
    for (const k of changed) {
      const n = pairCount.get(k) ?? 0;
      if (n > 0) heap.push(n, k);
      else {
        pairCount.delete(k);
        pairWords.delete(k);
      }
    }
  }
  const specialTokens: SpecialToken[] = specials.map((content, id) => ({ id, content }));
  return new ByteLevelBpe({ vocab: strs, merges, specialTokens });
}
