// The evaluation backend for instructkit models in memory: generation through the cached,
// batched decoder, and log-likelihoods from the scoring graph (per-token log-probs of the
// continuation and whether each token is the argmax), batched with right padding.
import { MASK_MIN } from '../engine/attention.ts';
import { tensor } from '../engine/runtime.ts';
import { generate } from '../models/generate.ts';
import type { CausalLM } from '../models/lm.ts';
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
    const session = await lm.scoreSession();
    const weights = lm.weightFeeds();
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
    const out: LoglikelihoodResult[] = [];
    for (let i = 0; i < items.length; i += this.#batch) {
      const part = items.slice(i, i + this.#batch);
      const T = Math.max(...part.map((p) => p.ids.length - 1));
      const B = part.length;
      const ids = new BigInt64Array(B * T);
      const pos = new BigInt64Array(B * T);
      const tgt = new BigInt64Array(B * T);
      const bias = new Float32Array(B * T * T).fill(MASK_MIN);
      part.forEach((p, b) => {
        const len = p.ids.length - 1;
        for (let t = 0; t < T; t++) {
          ids[b * T + t] = BigInt(t < len ? p.ids[t]! : 0);
          pos[b * T + t] = BigInt(t < len ? t : 0);
          tgt[b * T + t] = BigInt(t < len ? p.ids[t + 1]! : 0);
          for (let j = 0; j <= t; j++) if (j < len || j === t) bias[(b * T + t) * T + j] = 0;
        }
      });
      const res = await session.run({
        ...weights,
        input_ids: tensor('int64', [B, T], ids),
        position_ids: tensor('int64', [B, T], pos),
        targets: tensor('int64', [B, T], tgt),
        attn_bias: tensor('float32', [B, 1, T, T], bias),
      });
      const lp = res.logprobs!.data as Float32Array;
      const greedy = res.is_greedy!.data as BigInt64Array;
      part.forEach((p, b) => {
        const len = p.ids.length - 1;
        let sum = 0;
        let all = true;
        for (let t = len - p.n; t < len; t++) {
          sum += lp[b * T + t]!;
          if (greedy[b * T + t] !== 1n) all = false;
        }
        out.push({ logprob: sum, isGreedy: all });
      });
    }
    return out;
  }
}
