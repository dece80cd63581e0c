// generate(): text or token prompts → continuations, on top of the step-level Decoder (KV
// cache, left-padded batched prefill, sequences finishing independently, more prompts than
// the batch joining as others finish). Sampling controls, stop strings / ids, per-token
// log-probs with top alternatives, and a streaming callback per token. Also lastLogits, a
// cache-free forward of one sequence for checks against other runtimes.
import { type Tensor, tensor } from '../engine/runtime.ts';
import { ConfigError } from '../util/errors.ts';
import { type DecodeModel, Decoder, type FinishReason, type TokenEvent } from './decoding.ts';
import { DECODE_IO } from './graphs.ts';
import { causalBias } from './kv-cache.ts';
import type { SamplingParams } from './sampling.ts';

export interface GenerateOptions extends SamplingParams {
  /** @default 64 */
  max_new_tokens?: number;
  /** Stop strings: generation ends before the first one, which is not returned. */
  stop?: readonly string[];
  /** Token ids that end a row (not returned). @default the tokenizer's / config's EOS ids */
  stop_token_ids?: readonly number[];
  /** Seed of the sampling streams (row i draws from stream `${seed}/${i}`). @default 0 */
  seed?: number;
  /** Number of top alternatives to report per generated token (0 = none). */
  top_logprobs?: number;
  /** Leave special tokens out of the text. @default true */
  skip_special_tokens?: boolean;
  /** Rows decoded together; further prompts join as rows finish. @default 32 */
  batch_size?: number;
  /**
   * Called with each new piece of a row's text (never a partial character or a possible stop
   * prefix); a row's pieces concatenate to its final text.
   */
  onText?: (row: number, delta: string) => void;
  /** Called for every generated token of a row. */
  onToken?: (row: number, event: TokenEvent) => void;
}

export interface GenerationResult {
  text: string;
  tokens: number[];
  /** log p of each returned token under the model (before penalties and temperature). */
  logprobs: number[];
  topLogprobs?: { token: number; logprob: number }[][];
  finishReason: Exclude<FinishReason, 'cancelled'>;
  promptTokens: number;
}

/**
 * Continuations of `prompts` (text, encoded with the model's tokenizer, or token ids).
 * @example
 * const [r] = await generate(model, ['Question: 2+2?\nAnswer:'], { max_new_tokens: 8, stop: ['\n'] });
 */
export async function generate(
  model: DecodeModel,
  prompts: readonly (string | readonly number[])[],
  opts: GenerateOptions = {},
): Promise<GenerationResult[]> {
  const tok = model.tokenizer;
  const encoded = prompts.map((p) => {
    if (typeof p !== 'string') return [...p];
    if (!tok) throw new ConfigError('text prompts need a tokenizer', { field: 'tokenizer' });
    return tok.encode(p);
  });
  const dec = new Decoder(model, { maxBatch: opts.batch_size ?? 32 });
  const seqs = encoded.map((prompt, i) =>
    dec.add({
      prompt,
      max_new_tokens: opts.max_new_tokens,
      stop: opts.stop,
      stop_token_ids: opts.stop_token_ids,
      seed: `${opts.seed ?? 0}/${i}`,
      top_logprobs: opts.top_logprobs,
      skip_special_tokens: opts.skip_special_tokens,
      temperature: opts.temperature,
      top_k: opts.top_k,
      top_p: opts.top_p,
      repetition_penalty: opts.repetition_penalty,
      presence_penalty: opts.presence_penalty,
      frequency_penalty: opts.frequency_penalty,
      logit_bias: opts.logit_bias,
    }),
  );
  const row = new Map(seqs.map((s, i) => [s.id, i]));
  while (dec.busy) {
    for (const ev of await dec.step()) {
      const i = row.get(ev.seq.id)!;
      if (ev.token >= 0) opts.onToken?.(i, ev);
      if (ev.text !== '') opts.onText?.(i, ev.text);
    }
  }
  return seqs.map((s, i) => ({
    text: s.text.text,
    tokens: s.tokens,
    logprobs: s.logprobs,
    ...((opts.top_logprobs ?? 0) > 0 ? { topLogprobs: s.top } : {}),
    finishReason: s.finishReason === 'stop' ? 'stop' : 'length',
    promptTokens: encoded[i]!.length,
  }));
}

/**
 * Last-position logits of one token sequence, computed without a cache (a prefill run of the
 * decode graph); for checks against other runtimes and for scoring one next token.
 */
export async function lastLogits(
  model: DecodeModel,
  ids: readonly number[],
): Promise<Float32Array> {
  const S = ids.length;
  if (S === 0) throw new ConfigError('lastLogits needs at least one token', { field: 'ids' });
  const { numLayers, numKvHeads: Hkv, headDim: Dh } = model.spec;
  const feeds: Record<string, Tensor> = { ...model.weightFeeds() };
  for (let l = 0; l < numLayers; l++) {
    feeds[DECODE_IO.pastKey(l)] = tensor('float32', [1, Hkv, 0, Dh], new Float32Array(0));
    feeds[DECODE_IO.pastValue(l)] = tensor('float32', [1, Hkv, 0, Dh], new Float32Array(0));
  }
  feeds[DECODE_IO.ids] = tensor('int64', [1, S], BigInt64Array.from(ids.map(BigInt)));
  feeds[DECODE_IO.positions] = tensor(
    'int64',
    [1, S],
    BigInt64Array.from(ids.map((_, i) => BigInt(i))),
  );
  feeds[DECODE_IO.bias] = tensor('float32', [1, 1, S, S], causalBias(1, S));
  const out = await (await model.decodeSession()).run(feeds);
  return out[DECODE_IO.logits]!.data as Float32Array;
}
