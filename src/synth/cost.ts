// Token usage and cost accounting for a run. Prices are per million tokens, per model, as
// providers publish them; requests answered from the cache are counted separately as savings.
import { z } from 'zod';

export const ModelPrice = z.strictObject({
  /** USD per 1M prompt (input) tokens. */
  prompt_per_1m: z.number().nonnegative(),
  /** USD per 1M completion (output) tokens. */
  completion_per_1m: z.number().nonnegative(),
});
export type ModelPrice = z.infer<typeof ModelPrice>;

export interface UsageTotals {
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost_usd: number;
}

export interface UsageReport {
  /** Requests that went over the network. */
  network: UsageTotals;
  /** Requests answered from the cache (tokens and cost not spent again). */
  cached: UsageTotals;
  /** Retries made (429, 5xx, timeouts, malformed bodies). */
  retries: number;
  /** Per model, network usage only. */
  by_model: Record<string, UsageTotals>;
}

const zero = (): UsageTotals => ({
  requests: 0,
  prompt_tokens: 0,
  completion_tokens: 0,
  cost_usd: 0,
});

export class UsageMeter {
  readonly #prices: Readonly<Record<string, ModelPrice>>;
  #network = zero();
  #cached = zero();
  #retries = 0;
  #byModel = new Map<string, UsageTotals>();

  constructor(prices: Readonly<Record<string, ModelPrice>> = {}) {
    this.#prices = prices;
  }

  cost(model: string, prompt: number, completion: number): number {
    const p = this.#prices[model];
    if (!p) return 0;
    return (prompt * p.prompt_per_1m + completion * p.completion_per_1m) / 1e6;
  }

  record(
    model: string,
    usage: { prompt_tokens?: number; completion_tokens?: number } | undefined,
    cached: boolean,
  ): void {
    const prompt = usage?.prompt_tokens ?? 0;
    const completion = usage?.completion_tokens ?? 0;
    const cost = this.cost(model, prompt, completion);
    const add = (t: UsageTotals): void => {
      t.requests++;
      t.prompt_tokens += prompt;
      t.completion_tokens += completion;
      t.cost_usd += cost;
    };
    if (cached) {
      add(this.#cached);
      return;
    }
    add(this.#network);
    let m = this.#byModel.get(model);
    if (!m) {
      m = zero();
      this.#byModel.set(model, m);
    }
    add(m);
  }

  retry(): void {
    this.#retries++;
  }

  report(): UsageReport {
    return {
      network: { ...this.#network },
      cached: { ...this.#cached },
      retries: this.#retries,
      by_model: Object.fromEntries([...this.#byModel].map(([k, v]) => [k, { ...v }])),
    };
  }
}
