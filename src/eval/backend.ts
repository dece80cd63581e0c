// What the evaluation harness needs from a model: log-likelihoods of continuations (multiple
// choice) and greedy generation until a stop string. The endpoint backend implements both over
// any OpenAI-compatible server (completions with echo + logprobs for log-likelihood); local
// instructkit models implement the same interface in models-aware code.
import type { CompletionResponse, LlmClient } from '../synth/client.ts';
import { ConfigError, EndpointError, InstructkitError } from '../util/errors.ts';
import { pyRstrip } from '../util/pystr.ts';

export interface LoglikelihoodRequest {
  context: string;
  continuation: string;
}

export interface LoglikelihoodResult {
  /** Sum of log-probabilities of the continuation's tokens given the context. */
  logprob: number;
  /** Whether every continuation token is the model's argmax (lm-eval's is_greedy). */
  isGreedy: boolean;
}

export interface GenerationRequest {
  context: string;
  until: readonly string[];
  maxTokens: number;
  temperature?: number;
}

export interface LmBackend {
  readonly name: string;
  readonly supportsLoglikelihood: boolean;
  loglikelihood(reqs: readonly LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]>;
  /** Total log-likelihood of each whole text (lm-eval's loglikelihood_rolling), when supported. */
  loglikelihoodRolling?(texts: readonly string[]): Promise<number[]>;
  generate(reqs: readonly GenerationRequest[]): Promise<string[]>;
}

/** Raised when a task needs log-probs and the backend cannot give them. */
export class CapabilityError extends InstructkitError {
  constructor(message: string, hint?: string) {
    super('E_CAPABILITY', message, { hint });
  }
}

/**
 * lm-eval's _encode_pair: trailing whitespace of the context (Python's context.rstrip(), so
 * Python's whitespace set) moves to the front of the continuation, so "Answer:" + " A" is
 * scored the same however the pieces were split.
 */
export function splitPair(context: string, continuation: string): [string, string] {
  const kept = pyRstrip(context);
  return kept.length === context.length
    ? [context, continuation]
    : [kept, context.slice(kept.length) + continuation];
}

/**
 * Token ids of a (context, continuation) request as lm-eval's HFLM builds them
 * (lm_eval/api/model.py _encode_pair, lm_eval/models/huggingface.py loglikelihood): an empty
 * context is the prefix token (BOS, else EOS) and the continuation encoded alone; otherwise the
 * pieces from splitPair are encoded together and the whole is cut after as many tokens as the
 * context alone encodes to: a token that spans the boundary lands on whichever side that count
 * puts it, and the continuation's ids are those the model sees after the real context.
 * Unlike lm-eval, a context that is whitespace only (it encodes to nothing once its whitespace
 * moves) also gets the prefix token, so the first continuation token is scored.
 */
export function encodePair(
  encode: (text: string) => number[],
  context: string,
  continuation: string,
  prefixToken: number | null,
): { context: number[]; continuation: number[] } {
  const prefix = (): number[] => {
    if (prefixToken === null)
      throw new ConfigError(
        `an empty context needs a BOS or EOS token to condition on (continuation ${JSON.stringify(continuation.slice(0, 40))})`,
        { field: 'tokenizer' },
      );
    return [prefixToken];
  };
  if (context === '') return { context: prefix(), continuation: encode(continuation) };
  const [ctx, cont] = splitPair(context, continuation);
  const whole = encode(ctx + cont);
  const ctxEnc = encode(ctx);
  const contEnc = whole.slice(ctxEnc.length);
  return { context: ctxEnc.length > 0 ? ctxEnc : prefix(), continuation: contEnc };
}

/**
 * lm-eval's rolling windows for loglikelihood_rolling (lm_eval/utils.py
 * get_rolling_token_windows with context_len 1, then make_disjoint_window): the first window
 * predicts the first min(maxLength, n) tokens after the prefix token; each later one predicts up
 * to maxLength further tokens, conditioned on the earlier tokens that fit, so every window is at
 * most maxLength + 1 tokens and every token is predicted exactly once.
 */
export function rollingWindows(
  tokens: readonly number[],
  prefixToken: number,
  maxLength: number,
): { context: number[]; continuation: number[] }[] {
  if (!Number.isInteger(maxLength) || maxLength < 1)
    throw new RangeError(`rolling windows need maxLength >= 1, got ${maxLength}`);
  const out: { context: number[]; continuation: number[] }[] = [];
  if (tokens.length === 0) return out;
  const disjoint = (a: number[], b: number[]) => ({
    context: a.slice(0, a.length - (b.length - 1)),
    continuation: b,
  });
  const predLen = maxLength; // max_seq_len - context_len + 1 with context_len = 1
  const first = Math.min(maxLength, tokens.length);
  out.push(disjoint([prefixToken, ...tokens.slice(0, first - 1)], tokens.slice(0, first)));
  let predicted = first;
  while (predicted < tokens.length) {
    const winPred = Math.min(tokens.length - predicted, predLen);
    const end = predicted + winPred;
    out.push(
      disjoint(tokens.slice(end - maxLength - 1, end - 1), tokens.slice(end - winPred, end)),
    );
    predicted += winPred;
  }
  return out;
}

/** Cuts generated text at the first stop string. */
export function cutAtStop(text: string, until: readonly string[]): string {
  let end = text.length;
  for (const u of until) {
    if (u === '') continue;
    const i = text.indexOf(u);
    if (i >= 0 && i < end) end = i;
  }
  return text.slice(0, end);
}

export interface EndpointBackendOptions {
  /** Requests sent at once (the client also limits concurrency). @default 16 */
  batchSize?: number;
}

/** Evaluation over an OpenAI-compatible endpoint through LlmClient. */
export class EndpointBackend implements LmBackend {
  readonly name: string;
  readonly supportsLoglikelihood = true;
  readonly #client: LlmClient;
  readonly #batch: number;

  constructor(client: LlmClient, opts: EndpointBackendOptions = {}) {
    this.#client = client;
    this.name = `endpoint:${client.config.model}`;
    this.#batch = opts.batchSize ?? 16;
  }

  async #mapBatched<T, R>(items: readonly T[], f: (x: T) => Promise<R>): Promise<R[]> {
    const out: R[] = new Array(items.length);
    for (let i = 0; i < items.length; i += this.#batch) {
      const part = await Promise.all(items.slice(i, i + this.#batch).map(f));
      part.forEach((r, k) => {
        out[i + k] = r;
      });
    }
    return out;
  }

  loglikelihood(reqs: readonly LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]> {
    return this.#mapBatched(reqs, async ({ context, continuation }) => {
      const [ctx, cont] = splitPair(context, continuation);
      let res: CompletionResponse;
      try {
        res = await this.#client.complete({
          prompt: ctx + cont,
          max_tokens: 0,
          echo: true,
          logprobs: 1,
          temperature: 0,
        });
      } catch (e) {
        if (
          e instanceof EndpointError &&
          e.status !== undefined &&
          e.status >= 400 &&
          e.status < 500
        ) {
          throw new CapabilityError(
            `${this.name}: the server refused an echo + logprobs completion (HTTP ${e.status}); it cannot score multiple-choice tasks`,
            'use a server that supports completions with echo and logprobs, or a generate_until task',
          );
        }
        throw e;
      }
      const lp = res.choices[0]?.logprobs;
      if (!lp || !Array.isArray(lp.token_logprobs) || !Array.isArray(lp.text_offset)) {
        throw new CapabilityError(
          `${this.name}: the response has no echoed token logprobs with text_offset; cannot compute log-likelihoods`,
          'use a server that supports completions with echo and logprobs, or a generate_until task',
        );
      }
      let logprob = 0;
      let isGreedy = true;
      let counted = 0;
      for (let i = 0; i < lp.tokens.length; i++) {
        const start = lp.text_offset[i]!;
        const end = start + lp.tokens[i]!.length;
        // A token counts toward the continuation when it ends inside it.
        if (end <= ctx.length) continue;
        const v = lp.token_logprobs[i];
        if (v === null || v === undefined) continue;
        logprob += v;
        counted++;
        const top = lp.top_logprobs?.[i];
        if (top) {
          const best = Object.entries(top).reduce((a, b) => (b[1] > a[1] ? b : a));
          if (best[0] !== lp.tokens[i] && best[1] > v) isGreedy = false;
        }
      }
      if (counted === 0)
        throw new CapabilityError(`${this.name}: no continuation tokens were echoed for '${cont}'`);
      return { logprob, isGreedy };
    });
  }

  generate(reqs: readonly GenerationRequest[]): Promise<string[]> {
    return this.#mapBatched(reqs, async (r) => {
      const res = await this.#client.complete({
        prompt: r.context,
        max_tokens: r.maxTokens,
        temperature: r.temperature ?? 0,
        ...(r.until.length > 0 ? { stop: r.until.slice(0, 4) } : {}),
      });
      return cutAtStop(res.choices[0]?.text ?? '', r.until);
    });
  }
}
