// Step-level batched decoding with a KV cache: requests queue up, and every step() first
// prefills the waiting ones together (left-padded; each gets its first token) and then decodes
// one token for every sequence already running, in one run of the decode graph. Sequences
// finish independently (stop id, stop string, max_new_tokens, context end, cancel) and leave
// the batch; new ones join between steps. Every sequence gets exactly one event with its
// finishReason, whenever its cancel arrived (queued, during a prefill, during a decode run).
// generate() and the server's worker are both built on this.
import type { Session, Tensor } from '../engine/runtime.ts';
import { ConfigError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import type { ModelSpec } from './config.ts';
import { DECODE_IO } from './graphs.ts';
import { KvCache, prefillBatch } from './kv-cache.ts';
import {
  applyLogitProcessors,
  checkSampling,
  logitBiasEntries,
  logSoftmaxRow,
  pickToken,
  type SamplingParams,
  topLogprobs,
} from './sampling.ts';
import { TextStream } from './text-stream.ts';
import type { Tokenizer } from './tokenizer.ts';

/** What decoding needs from a model (CausalLM provides it). */
export interface DecodeModel {
  readonly spec: ModelSpec;
  readonly tokenizer: Tokenizer | null;
  decodeSession(): Promise<Session>;
  weightFeeds(): Record<string, Tensor>;
}

/** One generation request. */
export interface DecodeRequest extends SamplingParams {
  /** Prompt token ids (at least one). */
  prompt: readonly number[];
  /** @default 64 */
  max_new_tokens?: number;
  /** Stop strings (need a tokenizer); the text ends before the first, which is not returned. */
  stop?: readonly string[];
  /** Token ids that end the sequence (not returned). @default the model's EOS ids */
  stop_token_ids?: readonly number[];
  /** Seed of this sequence's sampling stream. @default 0 */
  seed?: number | string;
  /** Alternatives to report per token (top_logprobs). @default 0 */
  top_logprobs?: number;
  /** Leave special tokens out of the text. @default true */
  skip_special_tokens?: boolean;
}

/** Why a sequence ended. */
export type FinishReason = 'stop' | 'length' | 'cancelled';

/** A sequence in the decoder (read-only for callers). */
export interface Sequence {
  readonly id: number;
  readonly request: DecodeRequest;
  /** Generated tokens (stop ids excluded). */
  readonly tokens: number[];
  /** log p of each generated token under the model (before penalties and temperature). */
  readonly logprobs: number[];
  /** Top alternatives per generated token when requested. */
  readonly top: { token: number; logprob: number }[][];
  /** Detokenized output (cut before a stop string). */
  readonly text: TextStream;
  /** Set once the sequence has ended. */
  finishReason: FinishReason | null;
}

/** One token produced for a sequence in a step. */
export interface TokenEvent {
  seq: Sequence;
  /** The token, or -1 when the sequence ended without one (stop id, cancel). */
  token: number;
  logprob: number;
  top?: { token: number; logprob: number }[];
  /** Text that became safe to show with this event (may be ''). */
  text: string;
  /** Set when the sequence ended with this event. */
  finishReason: FinishReason | null;
}

interface Slot {
  seq: Sequence;
  rng: Rng;
  /** Prompt and output tokens (repetition_penalty). */
  seen: Set<number>;
  /** Output token counts (presence_penalty, frequency_penalty). */
  counts: Map<number, number>;
  bias: [number, number][];
  stopIds: ReadonlySet<number>;
  maxNew: number;
  /** The sampled token to feed next. */
  next: number;
  /** The event carrying finishReason was returned. */
  reported: boolean;
}

/** The EOS ids of a model: the config's eos_token_id(s) and the tokenizer's eos. */
export function eosIds(m: Pick<DecodeModel, 'spec' | 'tokenizer'>): number[] {
  const ids = new Set<number>();
  const e = m.spec.eosTokenId;
  if (typeof e === 'number') ids.add(e);
  else if (Array.isArray(e)) for (const x of e) ids.add(x);
  if (m.tokenizer?.eos) ids.add(m.tokenizer.eos.id);
  return [...ids];
}

/**
 * A running batch. Add requests any time; each step() advances every sequence by one token.
 * @example
 * const dec = new Decoder(model, { maxBatch: 32 });
 * const s = dec.add({ prompt: ids, max_new_tokens: 16 });
 * while (dec.busy) for (const ev of await dec.step()) process.stdout.write(ev.text);
 */
export class Decoder {
  readonly model: DecodeModel;
  readonly maxBatch: number;
  #queue: Slot[] = [];
  #running: Slot[] = [];
  #cache: KvCache;
  #nextId = 0;
  #padId: number;

  constructor(model: DecodeModel, opts: { maxBatch?: number } = {}) {
    this.model = model;
    this.maxBatch = opts.maxBatch ?? 32;
    if (!(Number.isInteger(this.maxBatch) && this.maxBatch >= 1))
      throw new ConfigError(`maxBatch must be a positive integer, got ${opts.maxBatch}`, {
        field: 'batch_size',
      });
    this.#cache = KvCache.empty(model.spec);
    this.#padId = model.tokenizer?.pad?.id ?? model.spec.padTokenId ?? 0;
  }

  /** Sequences waiting, or running and not yet reported finished. */
  get busy(): boolean {
    return this.#queue.length > 0 || this.#running.some((s) => !s.reported);
  }

  /** Number of sequences in the running batch. */
  get size(): number {
    return this.#running.length;
  }

  /** Number of sequences waiting to join. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Queue a request; it joins the batch at the next step with room. Bad requests throw here. */
  add(req: DecodeRequest): Sequence {
    checkSampling(req);
    const maxNew = req.max_new_tokens ?? 64;
    const ctx = this.model.spec.maxPositions;
    if (!Number.isInteger(maxNew) || maxNew < 0)
      throw new ConfigError(`max_new_tokens must be a non-negative integer, got ${maxNew}`, {
        field: 'max_new_tokens',
      });
    if (req.prompt.length === 0) throw new ConfigError('the prompt is empty', { field: 'prompt' });
    if (req.prompt.length + maxNew > ctx)
      throw new ConfigError(
        `prompt (${req.prompt.length} tokens) + max_new_tokens (${maxNew}) exceeds the context of ${ctx}`,
        { field: 'max_new_tokens' },
      );
    const V = this.model.spec.vocabSize;
    if (req.prompt.some((t) => !Number.isInteger(t) || t < 0 || t >= V))
      throw new ConfigError(`prompt token ids must be in [0, ${V})`, { field: 'prompt' });
    if ((req.stop?.length ?? 0) > 0 && !this.model.tokenizer)
      throw new ConfigError('stop strings need a tokenizer', { field: 'stop' });
    const bias = logitBiasEntries(req.logit_bias, V);
    const seq: Sequence = {
      id: this.#nextId++,
      request: req,
      tokens: [],
      logprobs: [],
      top: [],
      text: new TextStream(this.model.tokenizer, {
        stop: req.stop,
        skipSpecialTokens: req.skip_special_tokens,
      }),
      finishReason: maxNew === 0 ? 'length' : null,
    };
    this.#queue.push({
      seq,
      rng: new Rng(req.seed ?? 0),
      seen: new Set(req.prompt),
      counts: new Map(),
      bias,
      stopIds: new Set(req.stop_token_ids ?? eosIds(this.model)),
      maxNew,
      next: -1,
      reported: false,
    });
    return seq;
  }

  /**
   * End a sequence early (e.g. its client went away). Honoured wherever it is: a queued one
   * never runs; one inside a running step gets no token from that step. Its 'cancelled'
   * event comes from the current or the next step().
   */
  cancel(seq: Sequence): void {
    if (seq.finishReason === null) seq.finishReason = 'cancelled';
  }

  /**
   * Admit waiting sequences (prefill, first token each), then decode one token for every
   * sequence that was already running. Returns the events of this step in batch order.
   */
  async step(): Promise<TokenEvent[]> {
    const events: TokenEvent[] = [];
    this.#evict(events);
    // Sequences finished before they ran (max_new_tokens 0, cancelled while queued).
    for (const s of this.#queue) if (s.seq.finishReason !== null) events.push(this.#end(s));
    this.#queue = this.#queue.filter((q) => q.seq.finishReason === null);
    const running = [...this.#running];
    const room = this.maxBatch - this.#running.length;
    const joining = this.#queue.splice(0, Math.max(0, room));
    if (running.length === 0 && joining.length === 0) return events;
    const session = await this.model.decodeSession();
    if (running.length > 0) {
      const out = await session.run({
        ...this.model.weightFeeds(),
        ...this.#cache.stepFeeds(running.map((s) => s.next)),
      });
      this.#cache.advance(out);
      const logits = out[DECODE_IO.logits]!.data as Float32Array;
      const V = this.model.spec.vocabSize;
      running.forEach((s, b) => {
        events.push(this.#accept(s, logits.subarray(b * V, (b + 1) * V)));
      });
    }
    if (joining.length > 0) await this.#prefill(session, joining, events);
    return events;
  }

  async #prefill(session: Session, joining: Slot[], events: TokenEvent[]): Promise<void> {
    const { spec } = this.model;
    const prompts = joining.map((s) => s.seq.request.prompt);
    const p = prefillBatch(prompts, this.#padId);
    const empty = KvCache.empty(spec, joining.length);
    const out = await session.run({
      ...this.model.weightFeeds(),
      ...empty.pastFeeds(),
      [DECODE_IO.ids]: p.ids,
      [DECODE_IO.positions]: p.positions,
      [DECODE_IO.bias]: p.bias,
    });
    this.#cache.append(
      KvCache.fromPresent(
        spec,
        out,
        prompts.map((q) => q.length),
      ),
    );
    this.#running.push(...joining);
    const logits = out[DECODE_IO.logits]!.data as Float32Array;
    const V = spec.vocabSize;
    joining.forEach((s, b) => {
      events.push(this.#accept(s, logits.subarray(b * V, (b + 1) * V)));
    });
  }

  /** Sample a token for a sequence, record it and say whether the sequence ended. */
  #accept(s: Slot, row: Float32Array): TokenEvent {
    const seq = s.seq;
    // Cancelled while this step's run was in flight: the token computed for it is dropped.
    if (seq.finishReason !== null) return this.#end(s);
    const logits = Float32Array.from(row);
    const lsm = logSoftmaxRow(logits);
    const k = seq.request.top_logprobs ?? 0;
    const top = k > 0 ? topLogprobs(lsm, k) : undefined;
    applyLogitProcessors(logits, seq.request, { seen: s.seen, counts: s.counts }, s.bias);
    const t = pickToken(logits, seq.request, s.rng);
    if (s.stopIds.has(t)) {
      seq.finishReason = 'stop';
      return this.#end(s, lsm[t]!, top);
    }
    s.next = t;
    s.seen.add(t);
    s.counts.set(t, (s.counts.get(t) ?? 0) + 1);
    seq.tokens.push(t);
    seq.logprobs.push(lsm[t]!);
    if (top) seq.top.push(top);
    const text = seq.text.push(t);
    if (seq.text.stopped) seq.finishReason = 'stop';
    else if (seq.tokens.length >= s.maxNew) seq.finishReason = 'length';
    else if (seq.request.prompt.length + seq.tokens.length >= this.model.spec.maxPositions)
      seq.finishReason = 'length';
    if (seq.finishReason === null) return this.#event(s, t, lsm[t]!, top, null, text);
    s.reported = true;
    return this.#event(s, t, lsm[t]!, top, seq.finishReason, text + seq.text.finish());
  }

  /** The one event that reports a sequence's end without a new token (stop id, cancel, ...). */
  #end(s: Slot, logprob = 0, top?: { token: number; logprob: number }[]): TokenEvent {
    s.reported = true;
    return this.#event(s, -1, logprob, top, s.seq.finishReason, s.seq.text.finish());
  }

  #event(
    s: Slot,
    token: number,
    logprob: number,
    top: { token: number; logprob: number }[] | undefined,
    finishReason: FinishReason | null,
    text = '',
  ): TokenEvent {
    return { seq: s.seq, token, logprob, ...(top ? { top } : {}), text, finishReason };
  }

  /** Drop finished sequences from the batch and the cache (reporting ends not yet reported). */
  #evict(events: TokenEvent[]): void {
    const keep: number[] = [];
    this.#running.forEach((s, i) => {
      if (s.seq.finishReason === null) keep.push(i);
      else if (!s.reported) events.push(this.#end(s));
    });
    if (keep.length === this.#running.length) return;
    this.#cache.keep(keep);
    this.#running = keep.map((i) => this.#running[i]!);
  }
}
