// Step-level batching for serving: sequences join and leave a running batch between decode
// steps. A joining sequence is prefilled alone, then its keys/values are merged into the batch
// cache, left-padded to the batch's cache length (padding is masked); finished sequences are
// cut out. Each step decodes one token for every active sequence in one run of the decode graph.
import { MASK_MIN } from '../engine/attention.ts';
import { type Tensor, tensor } from '../engine/runtime.ts';
import { Rng } from '../util/rng.ts';
import type { CausalLM } from './lm.ts';
import { logSoftmaxRow, type SamplingParams, sampleToken } from './sampling.ts';

export interface SequenceOptions extends SamplingParams {
  maxNewTokens: number;
  stopTokenIds: ReadonlySet<number>;
  seed: number;
  /** Top alternatives to report per token. */
  topLogprobs?: number;
}

export interface StepToken {
  token: number;
  logprob: number;
  top?: { token: number; logprob: number }[];
}

/** One sequence in the batch. `onToken` returning true stops it (e.g. a stop string matched). */
export interface ActiveSequence {
  id: number;
  prompt: number[];
  tokens: number[];
  opts: SequenceOptions;
  done: boolean;
  finish: 'stop' | 'length' | 'cancelled';
  onToken: (t: StepToken) => boolean | undefined;
  rng: Rng;
  /** Real (unpadded) cache slots; the batch cache is left-padded up to P. */
  length: number;
  next: number;
}

export class BatchDecoder {
  readonly lm: CausalLM;
  readonly maxBatch: number;
  #rows: ActiveSequence[] = [];
  /** Per layer, key and value caches [B, Hkv, P, Dh]. */
  #k: Float32Array[] = [];
  #v: Float32Array[] = [];
  #P = 0;
  #nextId = 0;

  constructor(lm: CausalLM, maxBatch = 32) {
    this.lm = lm;
    this.maxBatch = maxBatch;
  }

  get size(): number {
    return this.#rows.length;
  }

  get full(): boolean {
    return this.#rows.length >= this.maxBatch;
  }

  /** Prefills a prompt alone and adds it to the batch; its first token is sampled here. */
  async add(
    prompt: number[],
    opts: SequenceOptions,
    onToken: ActiveSequence['onToken'],
  ): Promise<ActiveSequence> {
    const { numLayers, numKvHeads: Hkv, headDim: Dh, vocabSize: V } = this.lm.spec;
    const L = prompt.length;
    const session = await this.lm.decodeSession();
    const past: Record<string, Tensor> = {};
    for (let l = 0; l < numLayers; l++) {
      past[`past.${l}.key`] = tensor('float32', [1, Hkv, 0, Dh], new Float32Array(0));
      past[`past.${l}.value`] = tensor('float32', [1, Hkv, 0, Dh], new Float32Array(0));
    }
    const bias = new Float32Array(L * L);
    for (let i = 0; i < L; i++) for (let j = 0; j < L; j++) bias[i * L + j] = j <= i ? 0 : MASK_MIN;
    const out = await session.run({
      ...this.lm.weightFeeds(),
      ...past,
      input_ids: tensor('int64', [1, L], BigInt64Array.from(prompt.map(BigInt))),
      position_ids: tensor('int64', [1, L], BigInt64Array.from(prompt.map((_, i) => BigInt(i)))),
      attn_bias: tensor('float32', [1, 1, L, L], bias),
    });
    const row: ActiveSequence = {
      id: this.#nextId++,
      prompt,
      tokens: [],
      opts,
      done: false,
      finish: 'length',
      onToken,
      rng: new Rng(opts.seed),
      length: L,
      next: 0,
    };
    // Merge the new cache into the batch cache: everything left-padded to the longer length.
    const P = Math.max(this.#P, L);
    const B = this.#rows.length;
    for (let l = 0; l < numLayers; l++) {
      for (const [which, arr] of [
        ['key', this.#k],
        ['value', this.#v],
      ] as const) {
        const mine = out[`present.${l}.${which}`]!.data as Float32Array; // [1,Hkv,L,Dh]
        const merged = new Float32Array((B + 1) * Hkv * P * Dh);
        const old = arr[l];
        for (let b = 0; b < B; b++)
          for (let h = 0; h < Hkv; h++)
            merged.set(
              old!.subarray((b * Hkv + h) * this.#P * Dh, ((b * Hkv + h) * this.#P + this.#P) * Dh),
              ((b * Hkv + h) * P + (P - this.#P)) * Dh,
            );
        for (let h = 0; h < Hkv; h++)
          merged.set(
            mine.subarray(h * L * Dh, (h + 1) * L * Dh),
            ((B * Hkv + h) * P + (P - L)) * Dh,
          );
        arr[l] = merged;
      }
    }
    this.#P = P;
    this.#rows.push(row);
    this.#accept(row, (out.logits!.data as Float32Array).slice(0, V));
    return row;
  }

  /** Samples from a row's logits, reports the token, and marks the row done when it ends. */
  #accept(row: ActiveSequence, logits: Float32Array): void {
    const lsm = logSoftmaxRow(logits);
    const t = sampleToken(logits, row.opts, row.rng, [...row.prompt, ...row.tokens]);
    row.next = t;
    if (row.opts.stopTokenIds.has(t)) {
      row.done = true;
      row.finish = 'stop';
      return;
    }
    row.tokens.push(t);
    const top = row.opts.topLogprobs
      ? Array.from(lsm.keys())
          .sort((a, b) => lsm[b]! - lsm[a]!)
          .slice(0, row.opts.topLogprobs)
          .map((token) => ({ token, logprob: lsm[token]! }))
      : undefined;
    if (row.onToken({ token: t, logprob: lsm[t]!, ...(top ? { top } : {}) })) {
      row.done = true;
      row.finish = 'stop';
    } else if (row.tokens.length >= row.opts.maxNewTokens) row.done = true;
  }

  /** Marks a sequence for removal (e.g. its client disconnected). */
  cancel(row: ActiveSequence): void {
    if (!row.done) {
      row.done = true;
      row.finish = 'cancelled';
    }
  }

  /** Drops finished rows from the batch and its cache; returns them. */
  #evict(): ActiveSequence[] {
    const gone = this.#rows.filter((r) => r.done);
    if (gone.length === 0) return gone;
    const keep = this.#rows.map((r, i) => (r.done ? -1 : i)).filter((i) => i >= 0);
    const { numLayers, numKvHeads: Hkv, headDim: Dh } = this.lm.spec;
    const newP = keep.length === 0 ? 0 : Math.max(...keep.map((i) => this.#rows[i]!.length));
    for (let l = 0; l < numLayers; l++) {
      for (const arr of [this.#k, this.#v]) {
        const src = arr[l]!;
        const dst = new Float32Array(keep.length * Hkv * newP * Dh);
        keep.forEach((i, b) => {
          for (let h = 0; h < Hkv; h++) {
            const from = (i * Hkv + h) * this.#P + (this.#P - newP);
            dst.set(src.subarray(from * Dh, (from + newP) * Dh), (b * Hkv + h) * newP * Dh);
          }
        });
        arr[l] = dst;
      }
    }
    this.#rows = keep.map((i) => this.#rows[i]!);
    this.#P = newP;
    return gone;
  }

  /** One decode step for every active row; returns the rows that finished. */
  async step(): Promise<ActiveSequence[]> {
    const finished = this.#evict();
    const B = this.#rows.length;
    if (B === 0) return finished;
    const { numLayers, numKvHeads: Hkv, headDim: Dh, vocabSize: V, maxPositions } = this.lm.spec;
    const K = this.#P + 1;
    const ids = new BigInt64Array(B);
    const pos = new BigInt64Array(B);
    const bias = new Float32Array(B * K);
    this.#rows.forEach((r, b) => {
      ids[b] = BigInt(r.next);
      pos[b] = BigInt(r.length);
      for (let j = 0; j < K; j++) bias[b * K + j] = j < this.#P - r.length ? MASK_MIN : 0;
    });
    const feeds: Record<string, Tensor> = {
      ...this.lm.weightFeeds(),
      input_ids: tensor('int64', [B, 1], ids),
      position_ids: tensor('int64', [B, 1], pos),
      attn_bias: tensor('float32', [B, 1, 1, K], bias),
    };
    for (let l = 0; l < numLayers; l++) {
      feeds[`past.${l}.key`] = tensor('float32', [B, Hkv, this.#P, Dh], this.#k[l]!);
      feeds[`past.${l}.value`] = tensor('float32', [B, Hkv, this.#P, Dh], this.#v[l]!);
    }
    const out = await (await this.lm.decodeSession()).run(feeds);
    for (let l = 0; l < numLayers; l++) {
      this.#k[l] = out[`present.${l}.key`]!.data as Float32Array;
      this.#v[l] = out[`present.${l}.value`]!.data as Float32Array;
    }
    this.#P = K;
    const logits = out.logits!.data as Float32Array;
    this.#rows.forEach((r, b) => {
      r.length += 1;
      this.#accept(r, logits.slice(b * V, (b + 1) * V));
      if (!r.done && r.length + 1 >= maxPositions) r.done = true;
    });
    return [...finished, ...this.#evict()];
  }
}
