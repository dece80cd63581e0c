// Text generation with a KV cache: a batch of prompts is left-padded, prefilled in one run of the
// decode graph, then extended one token per step with the cached keys/values. Rows finish
// independently on a stop token, a stop string or max_new_tokens. Reports per-token log-probs
// (and top alternatives) and streams text deltas that never split a character or a stop string.
import { MASK_MIN } from '../engine/attention.ts';
import { type Tensor, tensor } from '../engine/runtime.ts';
import { ConfigError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import type { CausalLM } from './lm.ts';
import { logSoftmaxRow, type SamplingParams, sampleToken } from './sampling.ts';

export interface GenerateOptions extends SamplingParams {
  /** @default 64 */
  max_new_tokens?: number;
  /** Stop strings: generation ends before the first one, which is not returned. */
  stop?: readonly string[];
  /** Token ids that end a row (default: the tokenizer's / config's EOS). Not returned. */
  stop_token_ids?: readonly number[];
  /** Seed of the sampling RNG (each row draws from its own stream). @default 0 */
  seed?: number;
  /** Number of top alternatives to report per generated token (0 = none). */
  top_logprobs?: number;
  /** Called for each new piece of text of a row. */
  onText?: (row: number, delta: string) => void;
}

export interface GenerationResult {
  text: string;
  tokens: number[];
  /** log p of each returned token under the model (before sampling transforms). */
  logprobs: number[];
  topLogprobs?: { token: number; logprob: number }[][];
  finishReason: 'stop' | 'length';
  promptTokens: number;
}

function stopIds(lm: CausalLM, opts: GenerateOptions): Set<number> {
  if (opts.stop_token_ids) return new Set(opts.stop_token_ids);
  const ids = new Set<number>();
  const eos = lm.spec.eosTokenId;
  if (typeof eos === 'number') ids.add(eos);
  else if (Array.isArray(eos)) for (const e of eos) ids.add(e);
  if (lm.tokenizer?.eos) ids.add(lm.tokenizer.eos.id);
  return ids;
}

/** Text that is safe to emit: no trailing partial character, no possible stop-string prefix. */
export function stableLength(text: string, stops: readonly string[]): number {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0xfffd) end--;
  for (const s of stops) {
    for (let k = Math.min(s.length - 1, end); k > 0; k--) {
      if (text.endsWith(s.slice(0, k), end)) {
        end -= k;
        break;
      }
    }
  }
  return Math.max(0, end);
}

interface Row {
  prompt: number[];
  pad: number;
  tokens: number[];
  logprobs: number[];
  top: { token: number; logprob: number }[][];
  text: string;
  emitted: number;
  done: boolean;
  finish: 'stop' | 'length';
  rng: Rng;
}

/**
 * Generates continuations of `prompts` (text, or token ids) in one batch.
 * @example const [r] = await generate(lm, ['Question: 2+2?\nAnswer:'], { max_new_tokens: 8 });
 */
export async function generate(
  lm: CausalLM,
  prompts: readonly (string | readonly number[])[],
  opts: GenerateOptions = {},
): Promise<GenerationResult[]> {
  if (prompts.length === 0) return [];
  const tok = lm.tokenizer;
  const maxNew = opts.max_new_tokens ?? 64;
  const stops = opts.stop ?? [];
  const endIds = stopIds(lm, opts);
  const encoded = prompts.map((p) => {
    if (typeof p !== 'string') return [...p];
    if (!tok) throw new ConfigError('text prompts need a tokenizer', { field: 'tokenizer' });
    return tok.encode(p);
  });
  const L = Math.max(...encoded.map((e) => e.length));
  if (L === 0) throw new ConfigError('empty prompt', { field: 'prompt' });
  if (L + maxNew > lm.spec.maxPositions) {
    throw new ConfigError(
      `prompt (${L} tokens) + max_new_tokens (${maxNew}) exceeds the context of ${lm.spec.maxPositions}`,
      {
        field: 'max_new_tokens',
      },
    );
  }
  const B = encoded.length;
  const padId = lm.tokenizer?.pad?.id ?? 0;
  const rows: Row[] = encoded.map((e, b) => ({
    prompt: e,
    pad: L - e.length,
    tokens: [],
    logprobs: [],
    top: [],
    text: '',
    emitted: 0,
    done: maxNew === 0,
    finish: 'length',
    rng: new Rng(`${opts.seed ?? 0}/${b}`),
  }));
  const session = await lm.decodeSession();
  const weights = lm.weightFeeds();
  const { numLayers, numKvHeads: Hkv, headDim: Dh, vocabSize: V } = lm.spec;
  let past: Record<string, Tensor> = {};
  for (let l = 0; l < numLayers; l++) {
    past[`past.${l}.key`] = tensor('float32', [B, Hkv, 0, Dh], new Float32Array(0));
    past[`past.${l}.value`] = tensor('float32', [B, Hkv, 0, Dh], new Float32Array(0));
  }
  // Prefill: the whole left-padded prompt, causal within each row, pads masked as keys.
  let ids = new BigInt64Array(B * L);
  let pos = new BigInt64Array(B * L);
  let bias = new Float32Array(B * L * L);
  rows.forEach((r, b) => {
    for (let i = 0; i < L; i++) {
      const real = i >= r.pad;
      ids[b * L + i] = BigInt(real ? r.prompt[i - r.pad]! : padId);
      pos[b * L + i] = BigInt(real ? i - r.pad : 0);
      for (let j = 0; j < L; j++) {
        const ok = j <= i && (j >= r.pad || j === i);
        bias[(b * L + i) * L + j] = ok ? 0 : MASK_MIN;
      }
    }
  });
  let S = L;
  let K = L;
  for (let step = 0; step < maxNew && rows.some((r) => !r.done); step++) {
    const out = await session.run({
      ...weights,
      ...past,
      input_ids: tensor('int64', [B, S], ids),
      position_ids: tensor('int64', [B, S], pos),
      attn_bias: tensor('float32', [B, 1, S, K], bias),
    });
    const logits = out.logits!.data as Float32Array;
    const next = new BigInt64Array(B);
    rows.forEach((r, b) => {
      const row = logits.slice(b * V, (b + 1) * V);
      if (r.done) {
        next[b] = BigInt(padId);
        return;
      }
      const lsm = logSoftmaxRow(row);
      const t = sampleToken(row, opts, r.rng, [...r.prompt, ...r.tokens]);
      if (endIds.has(t)) {
        r.done = true;
        r.finish = 'stop';
        next[b] = BigInt(t);
        return;
      }
      r.tokens.push(t);
      r.logprobs.push(lsm[t]!);
      if (opts.top_logprobs) {
        const order = Array.from(lsm.keys()).sort((x, y) => lsm[y]! - lsm[x]!);
        r.top.push(
          order.slice(0, opts.top_logprobs).map((token) => ({ token, logprob: lsm[token]! })),
        );
      }
      next[b] = BigInt(t);
      if (tok) {
        r.text = tok.decode(r.tokens, { skipSpecialTokens: false });
        let cut = -1;
        for (const s of stops) {
          const i = s === '' ? -1 : r.text.indexOf(s);
          if (i >= 0 && (cut < 0 || i < cut)) cut = i;
        }
        if (cut >= 0) {
          r.text = r.text.slice(0, cut);
          r.done = true;
          r.finish = 'stop';
        }
        const stable = r.done ? r.text.length : stableLength(r.text, stops);
        if (stable > r.emitted) {
          opts.onText?.(b, r.text.slice(r.emitted, stable));
          r.emitted = stable;
        }
      }
      if (r.tokens.length >= maxNew) r.done = true;
    });
    past = {};
    for (let l = 0; l < numLayers; l++) {
      past[`past.${l}.key`] = out[`present.${l}.key`]!;
      past[`past.${l}.value`] = out[`present.${l}.value`]!;
    }
    // Next step: one token per row at the next position; every real key stays visible.
    K += 1;
    S = 1;
    ids = next;
    pos = new BigInt64Array(B);
    bias = new Float32Array(B * K);
    rows.forEach((r, b) => {
      pos[b] = BigInt(L - r.pad + step);
      for (let j = 0; j < K; j++) bias[b * K + j] = j < r.pad ? MASK_MIN : 0;
    });
  }
  return rows.map((r) => {
    if (tok && r.emitted < r.text.length) opts.onText?.(rows.indexOf(r), r.text.slice(r.emitted));
    return {
      text: tok ? r.text : '',
      tokens: r.tokens,
      logprobs: r.logprobs,
      ...(opts.top_logprobs ? { topLogprobs: r.top } : {}),
      finishReason: r.finish,
      promptTokens: r.prompt.length,
    };
  });
}

/**
 * Last-position logits of a token sequence, recomputed without a cache (one prefill run of the
 * decode graph); for checks against other runtimes and for scoring one next token.
 */
export async function lastLogits(lm: CausalLM, ids: readonly number[]): Promise<Float32Array> {
  const s = await lm.decodeSession();
  const S = ids.length;
  const { numLayers, numKvHeads, headDim } = lm.spec;
  const past: Record<string, Tensor> = {};
  for (let l = 0; l < numLayers; l++) {
    for (const kv of ['key', 'value'])
      past[`past.${l}.${kv}`] = tensor('float32', [1, numKvHeads, 0, headDim], new Float32Array(0));
  }
  const bias = new Float32Array(S * S);
  for (let i = 0; i < S; i++) for (let j = 0; j < S; j++) bias[i * S + j] = j <= i ? 0 : MASK_MIN;
  const out = await s.run({
    ...lm.weightFeeds(),
    ...past,
    input_ids: tensor('int64', [1, S], BigInt64Array.from(ids.map(BigInt))),
    position_ids: tensor('int64', [1, S], BigInt64Array.from(ids.map((_, i) => BigInt(i)))),
    attn_bias: tensor('float32', [1, 1, S, S], bias),
  });
  return out.logits!.data as Float32Array;
}
