// The evaluation backend for instructkit models in memory: generation through the cached,
// batched decoder, and log-likelihoods from the scoring graph (per-token log-probs of the
// continuation and whether each token is the argmax), batched with right padding.
import { generate } from '../models/generate.ts';
import type { CausalLM } from '../models/lm.ts';
import { scoreSequences } from '../models/scoring.ts';
import { ConfigError } from '../util/errors.ts';
import {
  type GenerationRequest,
  type LmBackend,
  type LoglikelihoodRequest,
  type LoglikelihoodResult,
  splitPair,
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

  async loglikelihood(reqs: readonly LoglikelihoodRequest[]): Promise<LoglikelihoodResult[]> {
    const lm = this.#lm;
    const tok = lm.tokenizer!;
    const items = reqs.map((r) => {
      const [ctx, cont] = splitPair(r.context, r.continuation);
      const c = tok.encode(ctx, { addSpecialTokens: false });
      const k = tok.encode(cont, { addSpecialTokens: false });
      if (k.length === 0)
        throw new ConfigError(`empty continuation for context ${JSON.stringify(ctx.slice(-40))}`, {
          field: 'continuation',
        });
      // Keep the most recent context when the pair is longer than the model's window.
      const ids = [...c, ...k].slice(-lm.spec.maxPositions - 1);
      return { ids, n: k.length };
    });
    const scores = await scoreSequences(
      lm,
      items.map((p) => p.ids),
      { batchSize: this.#batch },
    );
    const out: LoglikelihoodResult[] = items.map((p, i) => {
      const s = scores[i]!;
      // Entry t scores token t + 1: the continuation is the last n entries.
      const from = Math.max(0, s.logprobs.length - p.n);
      return {
        logprob: s.logprobs.slice(from).reduce((a, b) => a + b, 0),
        isGreedy: s.isGreedy.slice(from).every(Boolean),
      };
    });
    return out;
  }
}
