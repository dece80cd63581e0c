// The host side of a batched KV cache: per layer, keys and values [B, Hkv, P, Dh] with every
// row's real tokens right-aligned (left padding, masked out of attention), plus the additive
// masks and position ids the decode graph needs. Rows can be appended (a prefill of joining
// sequences) and dropped (finished ones) between steps; the graph itself is graphs.ts's.
import { MASK_MIN } from '../engine/attention.ts';
import { type Tensor, tensor } from '../engine/runtime.ts';
import { ShapeError } from '../util/errors.ts';
import type { ModelSpec } from './config.ts';
import { DECODE_IO } from './graphs.ts';

/** Causal additive bias [B, 1, T, T] for unpadded rows (0 on and below the diagonal). */
export function causalBias(B: number, T: number): Float32Array {
  const bias = new Float32Array(B * T * T);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < T; i++)
      for (let j = i + 1; j < T; j++) bias[(b * T + i) * T + j] = MASK_MIN;
  return bias;
}

/** Feeds of a left-padded prefill batch (prompts right-aligned to the longest). */
export interface PrefillBatch {
  /** Padded length. */
  L: number;
  ids: Tensor<'int64'>;
  positions: Tensor<'int64'>;
  bias: Tensor<'float32'>;
}

/**
 * Inputs for prefilling prompts together: ids left-padded with `padId`, positions counting
 * real tokens only (HF: attention_mask.cumsum(-1) − 1, pads at 0), and a causal bias that
 * hides padding keys (a pad query sees only itself, so no row is fully masked).
 */
export function prefillBatch(prompts: readonly (readonly number[])[], padId: number): PrefillBatch {
  const B = prompts.length;
  const L = Math.max(...prompts.map((p) => p.length));
  if (!(L > 0)) throw new ShapeError('prefill', 'every prompt must have at least one token');
  const ids = new BigInt64Array(B * L);
  const pos = new BigInt64Array(B * L);
  const bias = new Float32Array(B * L * L).fill(MASK_MIN);
  prompts.forEach((p, b) => {
    const pad = L - p.length;
    for (let i = 0; i < L; i++) {
      const real = i >= pad;
      ids[b * L + i] = BigInt(real ? p[i - pad]! : padId);
      pos[b * L + i] = BigInt(real ? i - pad : 0);
      const row = (b * L + i) * L;
      if (!real) bias[row + i] = 0;
      else for (let j = pad; j <= i; j++) bias[row + j] = 0;
    }
  });
  return {
    L,
    ids: tensor('int64', [B, L], ids),
    positions: tensor('int64', [B, L], pos),
    bias: tensor('float32', [B, 1, L, L], bias),
  };
}

/** Keys and values of a batch of sequences, right-aligned in a shared padded length P. */
export class KvCache {
  readonly numLayers: number;
  readonly kvHeads: number;
  readonly headDim: number;
  /** Real (unpadded) cached tokens per row. */
  lengths: number[];
  /** Padded length P. */
  length: number;
  /** Per layer [B, Hkv, P, Dh]. */
  keys: Float32Array[];
  values: Float32Array[];

  private constructor(
    spec: ModelSpec,
    lengths: number[],
    P: number,
    k: Float32Array[],
    v: Float32Array[],
  ) {
    this.numLayers = spec.numLayers;
    this.kvHeads = spec.numKvHeads;
    this.headDim = spec.headDim;
    this.lengths = lengths;
    this.length = P;
    this.keys = k;
    this.values = v;
  }

  /** A cache of `rows` empty sequences (P = 0). */
  static empty(spec: ModelSpec, rows = 0): KvCache {
    const none = () => Array.from({ length: spec.numLayers }, () => new Float32Array(0));
    return new KvCache(spec, new Array<number>(rows).fill(0), 0, none(), none());
  }

  /**
   * The cache a run of the decode graph produced (its present.* outputs), for rows whose real
   * lengths are `lengths` out of the padded length of the outputs.
   */
  static fromPresent(spec: ModelSpec, out: Record<string, Tensor>, lengths: number[]): KvCache {
    const k: Float32Array[] = [];
    const v: Float32Array[] = [];
    for (let l = 0; l < spec.numLayers; l++) {
      k.push(out[DECODE_IO.presentKey(l)]!.data as Float32Array);
      v.push(out[DECODE_IO.presentValue(l)]!.data as Float32Array);
    }
    const P = out[DECODE_IO.presentKey(0)]!.shape[2]!;
    if (lengths.some((n) => n > P))
      throw new ShapeError('kv_cache', `a row is longer (${Math.max(...lengths)}) than P = ${P}`);
    return new KvCache(spec, lengths, P, k, v);
  }

  get rows(): number {
    return this.lengths.length;
  }

  /** past.{l}.key / past.{l}.value feeds [B, Hkv, P, Dh]. */
  pastFeeds(): Record<string, Tensor> {
    const shape = [this.rows, this.kvHeads, this.length, this.headDim];
    const f: Record<string, Tensor> = {};
    for (let l = 0; l < this.numLayers; l++) {
      f[DECODE_IO.pastKey(l)] = tensor('float32', shape, this.keys[l]!);
      f[DECODE_IO.pastValue(l)] = tensor('float32', shape, this.values[l]!);
    }
    return f;
  }

  /**
   * Feeds for one new token per row: position = the row's real length, and a bias [B, 1, 1,
   * P+1] hiding each row's left padding.
   */
  stepFeeds(next: readonly number[]): Record<string, Tensor> {
    const B = this.rows;
    const K = this.length + 1;
    const bias = new Float32Array(B * K);
    const pos = new BigInt64Array(B);
    for (let b = 0; b < B; b++) {
      const pad = this.length - this.lengths[b]!;
      bias.fill(MASK_MIN, b * K, b * K + pad);
      pos[b] = BigInt(this.lengths[b]!);
    }
    return {
      ...this.pastFeeds(),
      [DECODE_IO.ids]: tensor('int64', [B, 1], BigInt64Array.from(next.map(BigInt))),
      [DECODE_IO.positions]: tensor('int64', [B, 1], pos),
      [DECODE_IO.bias]: tensor('float32', [B, 1, 1, K], bias),
    };
  }

  /** Adopt a step's present.* outputs: one more token for every row. */
  advance(out: Record<string, Tensor>): void {
    for (let l = 0; l < this.numLayers; l++) {
      this.keys[l] = out[DECODE_IO.presentKey(l)]!.data as Float32Array;
      this.values[l] = out[DECODE_IO.presentValue(l)]!.data as Float32Array;
    }
    this.length += 1;
    this.lengths = this.lengths.map((n) => n + 1);
  }

  /** Copy rows `from` of `src` (padded length srcP) right-aligned into a new [n, Hkv, P, Dh]. */
  #gather(
    parts: { data: Float32Array; P: number; rows: readonly number[] }[],
    P: number,
  ): Float32Array {
    const { kvHeads: H, headDim: Dh } = this;
    const n = parts.reduce((s, p) => s + p.rows.length, 0);
    const dst = new Float32Array(n * H * P * Dh);
    let b = 0;
    for (const part of parts)
      for (const r of part.rows) {
        const keep = Math.min(P, part.P);
        for (let h = 0; h < H; h++) {
          const from = ((r * H + h) * part.P + (part.P - keep)) * Dh;
          dst.set(part.data.subarray(from, from + keep * Dh), ((b * H + h) * P + (P - keep)) * Dh);
        }
        b++;
      }
    return dst;
  }

  /** Append the rows of `other` (e.g. freshly prefilled sequences); padding is re-aligned. */
  append(other: KvCache): void {
    if (this.rows === 0) {
      this.lengths = [...other.lengths];
      this.length = other.length;
      this.keys = [...other.keys];
      this.values = [...other.values];
      return;
    }
    const P = Math.max(this.length, other.length);
    const mine = Array.from({ length: this.rows }, (_, i) => i);
    const theirs = Array.from({ length: other.rows }, (_, i) => i);
    for (let l = 0; l < this.numLayers; l++) {
      this.keys[l] = this.#gather(
        [
          { data: this.keys[l]!, P: this.length, rows: mine },
          { data: other.keys[l]!, P: other.length, rows: theirs },
        ],
        P,
      );
      this.values[l] = this.#gather(
        [
          { data: this.values[l]!, P: this.length, rows: mine },
          { data: other.values[l]!, P: other.length, rows: theirs },
        ],
        P,
      );
    }
    this.lengths = [...this.lengths, ...other.lengths];
    this.length = P;
  }

  /** Keep only `rows` (in that order); P shrinks to the longest kept row. */
  keep(rows: readonly number[]): void {
    const P = rows.length === 0 ? 0 : Math.max(...rows.map((r) => this.lengths[r]!));
    for (let l = 0; l < this.numLayers; l++) {
      this.keys[l] = this.#gather([{ data: this.keys[l]!, P: this.length, rows }], P);
      this.values[l] = this.#gather([{ data: this.values[l]!, P: this.length, rows }], P);
    }
    this.lengths = rows.map((r) => this.lengths[r]!);
    this.length = P;
  }
}
