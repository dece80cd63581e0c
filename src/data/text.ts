// Text normalisation, word splitting, record text extraction and 53-bit hashing shared by
// dedup, decontamination and the split leak check. Normalisation is for matching only; it never
// changes the records that are written out.
import { hashString } from '../util/rng.ts';
import type { RecordKind } from './records.ts';

const PUNCT = /[\p{P}\p{S}]+/gu;
const SPACE = /\s+/gu;

/**
 * Matching form of a text: Unicode NFKC, lower case, punctuation and symbols turned into
 * spaces, runs of whitespace collapsed to one space, trimmed.
 * @example normalizeText('  Hello,   WORLD!! ') === 'hello world'
 */
export function normalizeText(s: string): string {
  return s.normalize('NFKC').toLowerCase().replace(PUNCT, ' ').replace(SPACE, ' ').trim();
}

/** Words of the normalised text. */
export function normalizedWords(s: string): string[] {
  const n = normalizeText(s);
  return n === '' ? [] : n.split(' ');
}

/** murmur3's 32-bit finaliser: a bijection on 32-bit integers with good avalanche. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A 53-bit hash of a string (two independent 32-bit FNV-1a hashes, mixed), safe as a Map key. */
export function hash53(s: string): number {
  const a = fmix32(hashString(s));
  const b = fmix32(hashString(s, 0x9747b28c));
  return (a & 0x1fffff) * 4294967296 + b;
}

/** Field names whose text a record of each kind is matched on, in order. */
export const TEXT_FIELDS: Record<RecordKind, readonly string[]> = {
  instruction: ['instruction', 'input', 'output'],
  prompt_completion: ['prompt', 'completion'],
  chat: ['messages'],
  preference: ['prompt', 'chosen', 'rejected'],
  ranking: ['prompt', 'completions'],
  task: ['input', 'target'],
};

/**
 * The text of a record used for matching: the chosen fields (default TEXT_FIELDS[kind]) joined
 * by newlines. Chat messages contribute their contents; string arrays their elements.
 */
export function recordText(record: unknown, kind: RecordKind, fields?: readonly string[]): string {
  const o = record as Record<string, unknown>;
  const parts: string[] = [];
  for (const f of fields ?? TEXT_FIELDS[kind]) {
    const v = o[f];
    if (typeof v === 'string') parts.push(v);
    else if (Array.isArray(v)) {
      for (const x of v) {
        if (typeof x === 'string') parts.push(x);
        else if (
          x &&
          typeof x === 'object' &&
          typeof (x as { content?: unknown }).content === 'string'
        )
          parts.push((x as { content: string }).content);
      }
    }
  }
  return parts.join('\n');
}
