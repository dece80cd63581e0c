// What the evaluation harness needs from a model: log-likelihoods of continuations (multiple
// choice) and greedy generation until a stop string. The endpoint backend implements both over
// any OpenAI-compatible server (completions with echo + logprobs for log-likelihood); local
// instructkit models implement the same interface in models-aware code.
import type { CompletionResponse, LlmClient } from '../synth/client.ts';
import { EndpointError, InstructkitError } from '../util/errors.ts';

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
  generate(reqs: readonly GenerationRequest[]): Promise<string[]>;
}

/** Raised when a task needs log-probs and the backend cannot give them. */
export class CapabilityError extends InstructkitError {
  constructor(message: string, hint?: string) {
    super('E_CAPABILITY', message, { hint });
  }
}

/**
 * lm-eval's _encode_pair: trailing whitespace of the context moves to the front of the
 * continuation, so "Answer:" + " A" is scored the same however the pieces were split.
 */
export function splitPair(context: string, continuation: string): [string, string] {
  const ws = /\s*$/.exec(context)![0];
  return ws === ''
    ? [context, continuation]
    : [context.slice(0, context.length - ws.length), ws + continuation];
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
