// Deduplication of a record stream, keeping the first occurrence: exact (on normalised text)
// and near-duplicate (MinHash signatures + LSH banding, Broder 1997; Leskovec et al., Mining of
// Massive Datasets, ch. 3.4). Memory grows with the records kept, never with the records removed
// (bench/dedup-memory.ts measures both, as heap bytes after GC). Per kept record: exact holds its
// normalised text (a hash match is verified on the text) and a map entry, about 1.3-2 bytes per
// character; near holds `bands` LSH bucket entries (about 50 bytes each) plus the shingle set or
// the signature (see `verify`): about 1.5 KB for a 100-character record at the defaults.
// (dedupFile adds 4 bytes per input record, removed or not, for its report's line numbers.)
import { z } from 'zod';
import { hashString, Rng } from '../util/rng.ts';
import { parseConfig } from './config.ts';
import type { RecordKind } from './records.ts';
import { fmix32, hash53, normalizeText, recordText } from './text.ts';

/**
 * Defaults: character 5-grams of the normalised text (instruction data is short, and a
 * one-word edit in a 10-word instruction changes most word 3-grams but few character
 * 5-grams); 120 permutations in 20 bands of 6 rows. Two texts of Jaccard similarity s become
 * LSH candidates with probability 1 - (1 - s^6)^20: 0.27 at s = 0.5, 0.62 at 0.6, 0.92 at 0.7,
 * 0.998 at 0.8. The S-curve's midpoint (1/b)^(1/r) = (1/20)^(1/6) ~ 0.61 is set on purpose
 * below the decision threshold 0.7, so that pairs at the threshold are rarely missed; each
 * candidate is then checked (verify):
 * - 'exact' (default): the true Jaccard of the two shingle sets, so the threshold is sharp (a
 *   pair at 0.69 is kept, one at 0.71 removed once LSH proposes it). Costs 4 bytes per distinct
 *   shingle of every kept record (about 4 x its text length) plus ~150 bytes of array overhead.
 * - 'estimate': the fraction of equal signature entries (standard error sqrt(s(1-s)/120) ~ 0.04
 *   at s = 0.7), a fixed 480-byte signature per kept record, whatever its length. Either way
 *   the bucket entries (~1 KB per kept record at 20 bands) dominate for short texts.
 */
export const DedupConfig = z
  .strictObject({
    mode: z.enum(['exact', 'near', 'both']).default('both'),
    /** Record fields compared (default: all text fields of the kind, see TEXT_FIELDS). */
    fields: z.array(z.string()).min(1).optional(),
    shingleUnit: z.enum(['char', 'word']).default('char'),
    shingleSize: z.number().int().positive().default(5),
    numPerm: z.number().int().positive().default(120),
    bands: z.number().int().positive().default(20),
    /** Estimated Jaccard similarity at or above which a candidate counts as a near duplicate. */
    threshold: z.number().gt(0).max(1).default(0.7),
    verify: z.enum(['exact', 'estimate']).default('exact'),
    seed: z.number().int().default(0),
  })
  .superRefine((c, ctx) => {
    if (c.numPerm % c.bands !== 0)
      ctx.addIssue({
        code: 'custom',
        path: ['bands'],
        message: `bands (${c.bands}) must divide numPerm (${c.numPerm})`,
      });
  });
export type DedupConfig = z.infer<typeof DedupConfig>;
export type DedupConfigInput = z.input<typeof DedupConfig>;

/** The Jaccard similarity at the midpoint of the LSH S-curve: (1/bands)^(1/rows). */
export function lshThreshold(bands: number, rows: number): number {
  return (1 / bands) ** (1 / rows);
}

/** Probability that two texts of Jaccard similarity s share at least one LSH band. */
export function lshCandidateProbability(s: number, bands: number, rows: number): number {
  return 1 - (1 - s ** rows) ** bands;
}

/** 32-bit hashes of the shingles of the normalised text: a set, as a sorted array. */
export function shingles(text: string, unit: 'char' | 'word', size: number): Uint32Array {
  const norm = normalizeText(text);
  if (norm === '') return new Uint32Array(0);
  const out = new Set<number>();
  if (unit === 'char') {
    if (norm.length <= size) out.add(fmix32(hashString(norm)));
    else
      for (let i = 0; i + size <= norm.length; i++)
        out.add(fmix32(hashString(norm.slice(i, i + size))));
  } else {
    const w = norm.split(' ');
    if (w.length <= size) out.add(fmix32(hashString(w.join(' '))));
    else
      for (let i = 0; i + size <= w.length; i++)
        out.add(fmix32(hashString(w.slice(i, i + size).join(' '))));
  }
  return Uint32Array.from(out).sort();
}

/** Jaccard similarity of two sorted shingle sets. */
export function sortedJaccard(a: Uint32Array, b: Uint32Array): number {
  let i = 0;
  let j = 0;
  let inter = 0;
  while (i < a.length && j < b.length) {
    if (a[i]! === b[j]!) {
      inter++;
      i++;
      j++;
    } else if (a[i]! < b[j]!) i++;
    else j++;
  }
  const union = a.length + b.length - inter;
  return union === 0 ? 1 : inter / union;
}

/** Exact Jaccard similarity of two texts' shingle sets (for tests and reports). */
export function shingleJaccard(
  a: string,
  b: string,
  unit: 'char' | 'word' = 'char',
  size = 5,
): number {
  return sortedJaccard(shingles(a, unit, size), shingles(b, unit, size));
}

/**
 * MinHash with `numPerm` seeded hash functions h_i(x) = fmix32(x XOR s_i): fmix32 is a bijection
 * on 32-bit values, so each h_i permutes the shingle-hash space, and the seeds s_i come from Rng.
 */
export class MinHasher {
  readonly numPerm: number;
  readonly #seeds: Uint32Array;
  constructor(numPerm: number, seed: number) {
    this.numPerm = numPerm;
    const rng = new Rng(`minhash:${seed}`);
    this.#seeds = Uint32Array.from({ length: numPerm }, () => rng.nextU32());
  }
  /** Signature: for each hash function, the minimum over the shingles. */
  signature(sh: Uint32Array): Uint32Array {
    const sig = new Uint32Array(this.numPerm).fill(0xffffffff);
    const seeds = this.#seeds;
    for (let j = 0; j < sh.length; j++) {
      const x = sh[j]!;
      for (let i = 0; i < sig.length; i++) {
        const h = fmix32(x ^ seeds[i]!);
        if (h < sig[i]!) sig[i] = h;
      }
    }
    return sig;
  }
}

/** Fraction of equal entries: an unbiased estimate of the Jaccard similarity. */
export function estimateJaccard(a: Uint32Array, b: Uint32Array, bOffset = 0): number {
  let eq = 0;
  for (let i = 0; i < a.length; i++) if (a[i] === b[bOffset + i]) eq++;
  return eq / a.length;
}

/** Why a record was removed. */
export interface DuplicateDecision {
  /** 0-based index of the removed record in the input stream. */
  index: number;
  kind: 'exact' | 'near';
  /** Index of the kept record it duplicates. */
  duplicateOf: number;
  /** Jaccard similarity, exact or estimated per config.verify (near duplicates). */
  similarity?: number;
}

/**
 * Streaming deduplicator: call check() on each record's text in order; it returns the
 * decision when the text duplicates an earlier kept one, else remembers it and returns undefined.
 */
export class Deduper {
  readonly config: DedupConfig;
  readonly rows: number;
  readonly #hash: (normalised: string) => number;
  /** Exact mode: 53-bit hash of the normalised text -> slot(s) in #exactTexts / #exactIndex. */
  #exact = new Map<number, number | number[]>();
  #exactTexts: string[] = [];
  #exactIndex: number[] = [];
  #kept = 0;
  #hasher: MinHasher;
  #buckets: Map<number, number | number[]>[];
  #sigs = new Uint32Array(0);
  #sets: Uint32Array[] = [];
  #keptIndex: number[] = [];

  /**
   * @param opts.hash the exact-mode hash of the normalised text (default hash53); replaceable so
   *   tests can force collisions.
   */
  constructor(config: DedupConfigInput = {}, opts: { hash?: (normalised: string) => number } = {}) {
    this.config = parseConfig(DedupConfig, config);
    this.#hash = opts.hash ?? hash53;
    this.rows = this.config.numPerm / this.config.bands;
    this.#hasher = new MinHasher(this.config.numPerm, this.config.seed);
    this.#buckets = Array.from({ length: this.config.bands }, () => new Map());
  }

  /** Records kept so far. */
  get kept(): number {
    return this.#kept;
  }

  /** Records whose text (exact) and shingle set or signature (near) are held: only kept ones. */
  get stored(): { exact: number; near: number } {
    return { exact: this.#exactTexts.length, near: this.#keptIndex.length };
  }

  check(text: string, index: number): DuplicateDecision | undefined {
    const { mode } = this.config;
    let norm = '';
    let key = 0;
    if (mode !== 'near') {
      norm = normalizeText(text);
      key = this.#hash(norm);
      const hit = this.#exact.get(key);
      // A hash match is only a candidate: the text decides, so a collision never removes a record.
      if (hit !== undefined)
        for (const slot of typeof hit === 'number' ? [hit] : hit)
          if (this.#exactTexts[slot] === norm)
            return { index, kind: 'exact', duplicateOf: this.#exactIndex[slot]! };
    }
    // The exact entry is added only once the record is known to be kept: a record removed as a
    // near duplicate must not become the target of a later exact copy of it (that copy is then
    // found as a near duplicate of the same kept record), and removed records cost no memory.
    const keepExact = (): undefined => {
      this.#kept++;
      if (mode === 'near') return undefined;
      const slot = this.#exactTexts.length;
      this.#exactTexts.push(norm);
      this.#exactIndex.push(index);
      const prev = this.#exact.get(key);
      if (prev === undefined) this.#exact.set(key, slot);
      else if (typeof prev === 'number') this.#exact.set(key, [prev, slot]);
      else prev.push(slot);
      return undefined;
    };
    if (mode === 'exact') return keepExact();
    const sh = shingles(text, this.config.shingleUnit, this.config.shingleSize);
    if (sh.length === 0) return keepExact();
    const sig = this.#hasher.signature(sh);
    const n = this.config.numPerm;
    const keys = new Array<number>(this.config.bands);
    let best = -1;
    let bestSim = 0;
    const tried = new Set<number>();
    for (let b = 0; b < this.config.bands; b++) {
      let h1 = 0x811c9dc5 ^ b;
      let h2 = 0x9747b28c + b;
      for (let r = b * this.rows; r < (b + 1) * this.rows; r++) {
        h1 = fmix32(h1 ^ sig[r]!);
        h2 = fmix32(Math.imul(h2, 31) ^ sig[r]!);
      }
      const key = (h1 & 0x1fffff) * 4294967296 + h2;
      keys[b] = key;
      const hit = this.#buckets[b]!.get(key);
      if (hit === undefined) continue;
      for (const k of typeof hit === 'number' ? [hit] : hit) {
        if (tried.has(k)) continue;
        tried.add(k);
        const sim =
          this.config.verify === 'exact'
            ? sortedJaccard(sh, this.#sets[k]!)
            : estimateJaccard(sig, this.#sigs, k * n);
        if (sim > bestSim) {
          bestSim = sim;
          best = k;
        }
      }
    }
    if (best >= 0 && bestSim >= this.config.threshold)
      return { index, kind: 'near', duplicateOf: this.#keptIndex[best]!, similarity: bestSim };
    // Keep: store the signature and enter it in every band's bucket.
    const k = this.#keptIndex.length;
    this.#keptIndex.push(index);
    if (this.config.verify === 'exact') this.#sets.push(sh);
    else {
      if ((k + 1) * n > this.#sigs.length) {
        const grown = new Uint32Array(Math.max(1024 * n, this.#sigs.length * 2));
        grown.set(this.#sigs);
        this.#sigs = grown;
      }
      this.#sigs.set(sig, k * n);
    }
    for (let b = 0; b < this.config.bands; b++) {
      const m = this.#buckets[b]!;
      const prev = m.get(keys[b]!);
      if (prev === undefined) m.set(keys[b]!, k);
      else if (typeof prev === 'number') m.set(keys[b]!, [prev, k]);
      else prev.push(k);
    }
    return keepExact();
  }
}

/** Counts and decisions of one dedup run. */
export interface DedupReport {
  total: number;
  kept: number;
  removedExact: number;
  removedNear: number;
}

/**
 * Streams `records`, yielding those that are not duplicates of an earlier kept record.
 * Each removal is passed to `onRemoved` (for a report file) and counted in `report`.
 */
export async function* dedupRecords<T>(
  records: Iterable<T> | AsyncIterable<T>,
  kind: RecordKind,
  config: DedupConfigInput = {},
  hooks: {
    report?: DedupReport;
    onRemoved?: (d: DuplicateDecision, record: T) => void | Promise<void>;
    /** Maps a stream item to the record to compare (default: the item itself). */
    recordOf?: (item: T) => unknown;
  } = {},
): AsyncGenerator<T> {
  const d = new Deduper(config);
  const report = hooks.report ?? { total: 0, kept: 0, removedExact: 0, removedNear: 0 };
  let index = 0;
  for await (const r of records) {
    const rec = hooks.recordOf ? hooks.recordOf(r) : r;
    const decision = d.check(recordText(rec, kind, d.config.fields), index++);
    report.total++;
    if (decision) {
      if (decision.kind === 'exact') report.removedExact++;
      else report.removedNear++;
      await hooks.onRemoved?.(decision, r);
      continue;
    }
    report.kept++;
    yield r;
  }
}
