// The evaluation backend for instructkit models in memory: generation through the cached,
// batched decoder, and log-likelihoods from the scoring graph (per-token log-probs of the
// continuation and whether each token is the argmax), batched with right padding.
import { generate } from '../models/generate.ts';
import type { CausalLM } from '../models/lm.ts';
import { scoreSequences } from '../models/scoring.ts';
import { ConfigError } from '../util/errors.ts';
import {
  encodePair,
  type GenerationRequest,
  type LmBackend,
  type LoglikelihoodRequest,
  type LoglikelihoodResult,
  rollingWindows,
} from './backend.ts';

export class LocalBackend implements LmBackend {
  readonly name: string;
  readonly supportsLoglikelihood = true;
  readonly #lm: CausalLM;
  readonly #batch: number;

  constructor(lm: CausalLM, opts: { name?: string; batchSize?: number } = {}) {
    if (!lm.tokenizer)
      throw new ConfigError('local evaluation needs a model with a tokenizer', {
        field: 'tokenizer',
      });
    this.#lm = lm;
    this.name = opts.name ?? `local:${lm.spec.modelType}`;
    this.#batch = opts.batchSize ?? 32;
  }

  async generate(reqs: readonly GenerationRequest[]): Promise<string[]> {
    const out: string[] = new Array(reqs.length);
    // Batch requests that share their stopping rules and length.
    const groups = new Map<string, number[]>();
    reqs.forEach((r, i) => {
      const k = JSON.stringify([r.until, r.maxTokens, r.temperature ?? 0]);
      const g = groups.get(k) ?? [];
      g.push(i);
      groups.set(k, g);
    });
    for (const idx of groups.values()) {
      for (let i = 0; i < idx.length; i += this.#batch) {
        const part = idx.slice(i, i + this.#batch);
        const r0 = reqs[part[0]!]!;
        const res = await generate(
          this.#lm,
          part.map((k) => reqs[k]!.context),
          { max_new_tokens: r0.maxTokens, temperature: r0.temperature ?? 0, stop: r0.until },
        );
        res.forEach((g, j) => {
          out[part[j]!] = g.text;
        });
      }
    }
    return out;
  }

  /** lm-eval's prefix token for an empty context: BOS, else EOS. */
  #prefixToken(): number | null {
    const tok = this.#lm.tokenizer!;
    return tok.bos?.id ?? tok.eos?.id ?? null;
  }

  /**
   * Scores (context ids, continuation ids) pairs as lm-eval's _loglikelihood_tokens does: the
   * last maxPositions + 1 tokens of context + continuation are the input, and the continuation's
   * log-probs (all of them, or those left after truncation) are summed.
   */
  async #score(pairs: { context: number[]; continuation: number[] }[]) {
    const lm = this.#lm;
    const items = pairs.map((p) => {
      const ids = [...p.context, ...p.continuation].slice(-lm.spec.maxPositions - 1);
      return { ids, n: Math.min(p.continuation.length, ids.length - 1) };
    });
    const scored = items.filter((p) => p.n > 0);
    if (scored.length === 0) return items.map(() => ({ logprob: 0, isGreedy: true }));
    const scores = await scoreSequences(
      lm,
      scored.map((p) => p.ids),
      { batchSize: this.#batch },
    );
    let k = 0;
    return items.map((p): LoglikelihoodResult => {
      // A continuation that encodes to no tokens of its own (the context's last token absorbed
      // it) scores 0 and counts as greedy, as in lm-eval.
      if (p.n === 0) return { logprob: 0, isGreedy: true };
      const s = scores[k++]!;
      // Entry t scores token t + 1: the continuation is the last n entries.
      const from = s.logprobs.length - p.n;
      return {
        logprob: s.logprobs.slice(from).reduce((a, b) => a + b, 0),
        isGreedy: s.isGreedy.slice(from).every(Boolean),
      };
    });
  }

  async loglikelihood(reqs: readonly LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]> {
    const tok = this.#lm.tokenizer!;
    const encode = (t: string) => tok.encode(t, { addSpecialTokens: false });
    const pairs = reqs.map((r) => {
      if (r.continuation === '')
        throw new ConfigError(
          `empty continuation for context ${JSON.stringify(r.context.slice(-40))}`,
          { field: 'continuation' },
        );
      return encodePair(encode, r.context, r.continuation, this.#prefixToken());
    });
    return this.#score(pairs);
  }

  /**
   * lm-eval's loglikelihood_rolling: the text's tokens in disjoint windows of the model's
   * context (rollingWindows), every token scored once, the first after the prefix token.
   */
  async loglikelihoodRolling(texts: readonly string[]): Promise<number[]> {
    const tok = this.#lm.tokenizer!;
    const prefix = this.#prefixToken();
    if (prefix === null)
      throw new ConfigError('rolling log-likelihood needs a BOS or EOS token as prefix', {
        field: 'tokenizer',
      });
    const windows = texts.map((t) =>
      rollingWindows(
        tok.encode(t, { addSpecialTokens: false }),
        prefix,
        this.#lm.spec.maxPositions,
      ),
    );
    const scores = await this.#score(windows.flat());
    let k = 0;
    return windows.map((w) => {
      let total = 0;
      for (let i = 0; i < w.length; i++) total += scores[k++]!.logprob;
      return total;
    });
  }
}
