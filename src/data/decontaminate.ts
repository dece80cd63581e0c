// N-gram decontamination: removes training records that share a word n-gram (default 13, on
// normalised text, as in GPT-3's contamination study and OPT-IML's leakage check) with any eval
// set, and reports each removal with the eval set, eval record and the n-gram that matched.
// The eval n-grams are held in memory as 53-bit hashes; the training set streams.
import { z } from 'zod';
import { hashString } from '../util/rng.ts';
import { parseConfig } from './config.ts';
import type { RecordKind } from './records.ts';
import { fmix32, normalizedWords, recordText } from './text.ts';

export const DecontaminateConfig = z.strictObject({
  /** n-gram length in words. */
  n: z.number().int().positive().default(13),
  /**
   * Eval texts shorter than n words but with at least minN words are matched as a whole (one
   * gram of their own length); shorter ones are ignored and counted. Default n: texts under n
   * words cannot contaminate.
   */
  minN: z.number().int().positive().optional(),
  /** Training-record fields to scan (default all text fields of the kind). */
  fields: z.array(z.string()).min(1).optional(),
  /** Eval-record fields to index (default all text fields of each eval set's kind). */
  evalFields: z.array(z.string()).min(1).optional(),
});
export type DecontaminateConfig = z.infer<typeof DecontaminateConfig>;
export type DecontaminateConfigInput = z.input<typeof DecontaminateConfig>;

/** One evaluation set to protect. */
export interface EvalSet {
  name: string;
  kind: RecordKind;
  records: Iterable<unknown> | AsyncIterable<unknown>;
}

/** Hash of words[start .. start+len) from per-word hashes: two 32-bit lanes -> 53 bits. */
function windowHash(ha: Uint32Array, hb: Uint32Array, start: number, len: number): number {
  let a = 0x3c6ef372 ^ len;
  let b = 0xa54ff53a + len;
  for (let i = start; i < start + len; i++) {
    a = fmix32(Math.imul(a, 0x01000193) ^ ha[i]!);
    b = fmix32(Math.imul(b ^ hb[i]!, 0x5bd1e995));
  }
  return (a & 0x1fffff) * 4294967296 + b;
}

function wordHashes(words: string[]): [Uint32Array, Uint32Array] {
  const ha = new Uint32Array(words.length);
  const hb = new Uint32Array(words.length);
  for (let i = 0; i < words.length; i++) {
    ha[i] = hashString(words[i]!);
    hb[i] = hashString(words[i]!, 0x9747b28c);
  }
  return [ha, hb];
}

/** The n-grams of the eval sets, as hashes pointing at the first eval record holding them. */
export class EvalNgramIndex {
  readonly config: DecontaminateConfig;
  readonly setNames: string[] = [];
  /** hash -> setIndex * 2^32 + record index. */
  readonly #grams = new Map<number, number>();
  /** Gram lengths present (n, plus whole-text lengths of short eval texts). */
  readonly lengths = new Set<number>();
  /** Eval records per set, and those too short to index. */
  readonly evalRecords: number[] = [];
  readonly tooShort: number[] = [];

  constructor(config: DecontaminateConfigInput = {}) {
    this.config = parseConfig(DecontaminateConfig, config);
    this.lengths.add(this.config.n);
  }

  get size(): number {
    return this.#grams.size;
  }

  /** Adds one eval set, streaming its records. */
  async add(set: EvalSet): Promise<void> {
    const s = this.setNames.length;
    this.setNames.push(set.name);
    this.evalRecords.push(0);
    this.tooShort.push(0);
    const { n } = this.config;
    const minN = this.config.minN ?? n;
    let idx = 0;
    for await (const r of set.records) {
      const words = normalizedWords(recordText(r, set.kind, this.config.evalFields));
      const [ha, hb] = wordHashes(words);
      const tag = s * 4294967296 + idx;
      if (words.length >= n) {
        for (let i = 0; i + n <= words.length; i++) {
          const h = windowHash(ha, hb, i, n);
          if (!this.#grams.has(h)) this.#grams.set(h, tag);
        }
      } else if (words.length >= minN) {
        this.lengths.add(words.length);
        const h = windowHash(ha, hb, 0, words.length);
        if (!this.#grams.has(h)) this.#grams.set(h, tag);
      } else {
        this.tooShort[s]!++;
      }
      idx++;
    }
    this.evalRecords[s] = idx;
  }

  /** Every eval n-gram found in `text`: the first match in full, plus the sets hit and a count. */
  match(
    text: string,
  ):
    | { evalSet: string; evalIndex: number; ngram: string; evalSets: string[]; matches: number }
    | undefined {
    const words = normalizedWords(text);
    if (words.length === 0) return undefined;
    const [ha, hb] = wordHashes(words);
    let first: { tag: number; start: number; len: number } | undefined;
    const sets = new Set<number>();
    let matches = 0;
    for (const len of this.lengths) {
      for (let i = 0; i + len <= words.length; i++) {
        const tag = this.#grams.get(windowHash(ha, hb, i, len));
        if (tag === undefined) continue;
        matches++;
        sets.add(Math.floor(tag / 4294967296));
        if (!first) first = { tag, start: i, len };
      }
    }
    if (!first) return undefined;
    const setIdx = Math.floor(first.tag / 4294967296);
    return {
      evalSet: this.setNames[setIdx]!,
      evalIndex: first.tag - setIdx * 4294967296,
      ngram: words.slice(first.start, first.start + first.len).join(' '),
      evalSets: [...sets].sort((a, b) => a - b).map((i) => this.setNames[i]!),
      matches,
    };
  }
}

/** Builds the index over all eval sets. */
export async function buildEvalIndex(
  sets: EvalSet[],
  config: DecontaminateConfigInput = {},
): Promise<EvalNgramIndex> {
  const index = new EvalNgramIndex(config);
  for (const s of sets) await index.add(s);
  return index;
}

/** One removed training record. */
export interface ContaminationEntry {
  /** 0-based index of the training record. */
  index: number;
  /** The first eval set it collided with, and that set's record index. */
  evalSet: string;
  evalIndex: number;
  /** The first matching n-gram, in normalised words. */
  ngram: string;
  /** All eval sets it collided with. */
  evalSets: string[];
  /** Number of matching n-gram positions. */
  matches: number;
}

export interface DecontaminationReport {
  total: number;
  kept: number;
  removed: number;
  /** Removals by first colliding eval set. */
  removedBySet: Record<string, number>;
}

/**
 * Streams training records, yielding those that share no n-gram with the eval sets. Each
 * removal goes to `onRemoved` (for the report file) and is counted in `report`.
 * @example
 * const idx = await buildEvalIndex([{ name: 'test', kind: 'task', records: readRecords('test.jsonl') }]);
 * await writeRecords('clean.jsonl', decontaminate(readRecords('train.jsonl'), 'instruction', idx));
 */
export async function* decontaminate<T>(
  train: Iterable<T> | AsyncIterable<T>,
  kind: RecordKind,
  index: EvalNgramIndex,
  hooks: {
    report?: DecontaminationReport;
    onRemoved?: (e: ContaminationEntry, record: T) => void | Promise<void>;
    /** Maps a stream item to the record to compare (default: the item itself). */
    recordOf?: (item: T) => unknown;
  } = {},
): AsyncGenerator<T> {
  const report = hooks.report ?? { total: 0, kept: 0, removed: 0, removedBySet: {} };
  let i = 0;
  for await (const r of train) {
    const rec = hooks.recordOf ? hooks.recordOf(r) : r;
    const m = index.match(recordText(rec, kind, index.config.fields));
    report.total++;
    if (m) {
      report.removed++;
      report.removedBySet[m.evalSet] = (report.removedBySet[m.evalSet] ?? 0) + 1;
      await hooks.onRemoved?.({ index: i, ...m }, r);
    } else {
      report.kept++;
      yield r;
    }
    i++;
  }
}
