// Training data for causal LMs: tokenise prompt/completion pairs (or plain text) with a loss
// mask, pack them into fixed-length rows (best-fit decreasing) with positions that restart and
// segment ids that isolate examples, and cut epochs of shuffled micro-batches. Everything is
// deterministic for a seed, so a resumed run sees exactly the batches an uninterrupted one would.
import { tensor } from '../engine/runtime.ts';
import type { Feeds } from '../engine/step.ts';
import type { Tokenizer } from '../models/tokenizer.ts';
import { TrainingError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';

/** One tokenised example: ids, and which tokens carry loss (1) or not (0). */
export interface TokenizedExample {
  ids: number[];
  lossMask: number[];
}

export interface TokenizeOptions {
  /** Loss on completion tokens only (TRL completion_only_loss). @default true */
  completionOnly?: boolean;
  /** EOS id appended to every example and always in the loss. */
  eosId: number;
}

/**
 * Prompt and completion are tokenised separately and concatenated, so the loss boundary falls
 * exactly between them; the EOS token closes the example and is always in the loss.
 * @throws TrainingError when the completion is empty (nothing to learn but EOS).
 */
export function tokenizePair(
  tok: Tokenizer,
  prompt: string,
  completion: string,
  o: TokenizeOptions,
): TokenizedExample {
  const p = prompt === '' ? [] : tok.encode(prompt, { addSpecialTokens: false });
  const c = tok.encode(completion, { addSpecialTokens: false });
  if (c.length === 0)
    throw new TrainingError(`empty completion for prompt ${JSON.stringify(prompt.slice(0, 60))}`);
  const only = o.completionOnly ?? true;
  return {
    ids: [...p, ...c, o.eosId],
    lossMask: [...p.map(() => (only ? 0 : 1)), ...c.map(() => 1), 1],
  };
}

/** Plain text for language-model pretraining: loss on every token, EOS appended. */
export function tokenizeText(tok: Tokenizer, text: string, eosId: number): TokenizedExample {
  const ids = [...tok.encode(text, { addSpecialTokens: false }), eosId];
  return { ids, lossMask: ids.map(() => 1) };
}

/** A row of one or more examples. */
export interface PackedRow {
  ids: number[];
  /** Next-token target per position (−100 where no loss). */
  targets: number[];
  positions: number[];
  segments: number[];
  /** Tokens carrying loss. */
  lossTokens: number;
}

/** Appends an example to a row: targets predict the next token of the same example only. */
function appendExample(row: PackedRow, ex: TokenizedExample, segment: number): void {
  const n = ex.ids.length;
  for (let i = 0; i < n; i++) {
    row.ids.push(ex.ids[i]!);
    const t = i + 1 < n && ex.lossMask[i + 1] === 1 ? ex.ids[i + 1]! : -100;
    row.targets.push(t);
    if (t !== -100) row.lossTokens++;
    row.positions.push(i);
    row.segments.push(segment);
  }
}

const emptyRow = (): PackedRow => ({
  ids: [],
  targets: [],
  positions: [],
  segments: [],
  lossTokens: 0,
});

export interface PackResult {
  rows: PackedRow[];
  /** Examples cut to max_length (their tail was dropped). */
  truncated: number;
  /** Examples dropped because no token was left in the loss. */
  dropped: number;
}

/**
 * Packs examples into rows of at most maxLength tokens with best-fit decreasing (each example,
 * longest first, goes to the fullest row it fits in), or one example per row when not packing.
 * Examples longer than maxLength keep their start (TRL truncation_mode keep_start).
 */
export function packExamples(
  examples: readonly TokenizedExample[],
  maxLength: number,
  packing: boolean,
): PackResult {
  let truncated = 0;
  let dropped = 0;
  const fitted: TokenizedExample[] = [];
  for (const ex of examples) {
    let e = ex;
    if (e.ids.length > maxLength) {
      truncated++;
      e = { ids: e.ids.slice(0, maxLength), lossMask: e.lossMask.slice(0, maxLength) };
    }
    if (e.lossMask.slice(1).every((m) => m === 0)) {
      dropped++;
      continue;
    }
    fitted.push(e);
  }
  if (!packing) {
    return {
      rows: fitted.map((e) => {
        const r = emptyRow();
        appendExample(r, e, 0);
        return r;
      }),
      truncated,
      dropped,
    };
  }
  const order = fitted
    .map((_, i) => i)
    .sort((a, b) => fitted[b]!.ids.length - fitted[a]!.ids.length || a - b);
  const rows: PackedRow[] = [];
  const counts: number[] = [];
  for (const i of order) {
    const e = fitted[i]!;
    let best = -1;
    for (let r = 0; r < rows.length; r++) {
      const free = maxLength - rows[r]!.ids.length;
      if (free >= e.ids.length && (best < 0 || free < maxLength - rows[best]!.ids.length)) best = r;
    }
    if (best < 0) {
      rows.push(emptyRow());
      counts.push(0);
      best = rows.length - 1;
    }
    appendExample(rows[best]!, e, counts[best]!);
    counts[best]!++;
  }
  return { rows, truncated, dropped };
}

/** Rounds a batch's length up to a multiple of this, so few distinct shapes are compiled. */
const LENGTH_BUCKET = 16;

/** Feeds of one micro-batch of rows, right-padded (padding: its own segment, no loss). */
export function batchFeeds(
  rows: readonly PackedRow[],
  padId: number,
  maxLength: number,
): { feeds: Feeds; lossTokens: number; tokens: number } {
  const longest = Math.max(...rows.map((r) => r.ids.length));
  const T = Math.min(maxLength, Math.ceil(longest / LENGTH_BUCKET) * LENGTH_BUCKET);
  const B = rows.length;
  const ids = new BigInt64Array(B * T).fill(BigInt(padId));
  const pos = new BigInt64Array(B * T);
  const seg = new BigInt64Array(B * T).fill(-1n);
  const tgt = new BigInt64Array(B * T).fill(-100n);
  let lossTokens = 0;
  let tokens = 0;
  rows.forEach((r, b) => {
    for (let i = 0; i < r.ids.length; i++) {
      ids[b * T + i] = BigInt(r.ids[i]!);
      pos[b * T + i] = BigInt(r.positions[i]!);
      seg[b * T + i] = BigInt(r.segments[i]!);
      tgt[b * T + i] = BigInt(r.targets[i]!);
    }
    lossTokens += r.lossTokens;
    tokens += r.ids.length;
  });
  return {
    feeds: {
      input_ids: tensor('int64', [B, T], ids),
      position_ids: tensor('int64', [B, T], pos),
      segment_ids: tensor('int64', [B, T], seg),
      targets: tensor('int64', [B, T], tgt),
    },
    lossTokens,
    tokens,
  };
}

/** The micro-batches of one epoch: rows (or any training items) shuffled with (seed, epoch), cut into groups. */
export function epochBatches<T = PackedRow>(
  rows: readonly T[],
  batchSize: number,
  seed: number,
  epoch: number,
): T[][] {
  const order = new Rng(`${seed}/epoch/${epoch}`).shuffle(rows.map((_, i) => i));
  const out: T[][] = [];
  for (let i = 0; i < order.length; i += batchSize)
    out.push(order.slice(i, i + batchSize).map((k) => rows[k]!));
  return out;
}
