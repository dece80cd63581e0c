// Rollouts inside training (GRPO, PPO): completions sampled from the current policy with the
// batched KV-cache Decoder, and per-token log-probs computed by the same graph function the
// step graph uses, so the probability ratio of the first update is 1 by construction.
//
// How the weights reach the decoder: CausalLM feeds its host tensors to the decode session by
// reference (lm.ts weightFeeds wraps them, no copy per run), so once the loop has written the
// trainer's parameters into those tensors (loop.ts syncs lazily: only after an update, one copy
// of the trainable parameters out of the engine per iteration) the decoder samples from the
// current weights with its compiled session untouched.
import { segmentMask } from '../engine/attention.ts';
import { linearTokenLogProbs } from '../engine/composite.ts';
import { Graph, type Var } from '../engine/graph.ts';
import { mul } from '../engine/ops.ts';
import { createSession, type Session, type Tensor, tensor } from '../engine/runtime.ts';
import type { ModelSpec } from '../models/config.ts';
import { decoderForward, type LoraSpec, lmHeadWeight, type Weights } from '../models/decoder.ts';
import { type DecodeModel, Decoder } from '../models/decoding.ts';
import { IGNORE_INDEX, TRAIN_INPUTS } from '../models/graphs.ts';
import type { HostTensor } from '../models/tensor.ts';
import { ConfigError } from '../util/errors.ts';
import { batchFeeds, type PackedRow } from './data.ts';

/** Sampling settings of a rollout (TRL GRPOConfig / PPOConfig names). */
export interface RolloutOptions {
  /** Completions per prompt (GRPO's group size; 1 for PPO). */
  num_generations: number;
  max_completion_length: number;
  temperature: number;
  /**
   * 1 and 0 (off) by default: a truncated sampling distribution is not the policy whose
   * log-probs the loss uses, and the KL estimate goes negative (trl#925, #1005, #1161).
   */
  top_p?: number;
  top_k?: number;
  /** The id that ends a completion; it is appended to the completion when sampled. */
  eosId: number;
  /** Seed of this rollout: row r draws from `${seed}/${r}`. */
  seed: string;
  /** Rows decoded together. @default all rows */
  batch_size?: number;
}

/** One sampled completion. */
export interface Rollout {
  /** Index of the prompt in the batch (rows of one prompt are consecutive). */
  prompt: number;
  promptIds: readonly number[];
  /** Sampled ids, EOS included when it was sampled. */
  completion: number[];
  /** Text of the completion (EOS and special tokens left out). */
  text: string;
  /** Ended by EOS (false: cut at max_completion_length or the context). */
  eos: boolean;
  /** Sampler log-probs of the completion (without EOS); for diagnostics only. */
  samplerLogprobs: number[];
}

/**
 * num_generations completions of every prompt from the model's current weights, row-major by
 * prompt (rows g·… of prompt p are p·G .. p·G+G−1). Deterministic for a given seed.
 */
export async function sampleRollouts(
  model: DecodeModel,
  prompts: readonly (readonly number[])[],
  o: RolloutOptions,
): Promise<Rollout[]> {
  const G = o.num_generations;
  const rows = prompts.length * G;
  if (rows === 0) return [];
  const dec = new Decoder(model, { maxBatch: o.batch_size ?? rows });
  const seqs = prompts.flatMap((prompt, p) =>
    Array.from({ length: G }, (_, g) =>
      dec.add({
        prompt,
        max_new_tokens: o.max_completion_length,
        stop_token_ids: [o.eosId],
        seed: `${o.seed}/${p * G + g}`,
        temperature: o.temperature,
        top_p: o.top_p ?? 1,
        top_k: o.top_k ?? 0,
      }),
    ),
  );
  while (dec.busy) await dec.step();
  return seqs.map((s, r) => {
    const eos = s.finishReason === 'stop';
    return {
      prompt: Math.floor(r / G),
      promptIds: prompts[Math.floor(r / G)]!,
      completion: eos ? [...s.tokens, o.eosId] : [...s.tokens],
      text: s.text.text,
      eos,
      samplerLogprobs: [...s.logprobs],
    };
  });
}

/**
 * The training row of a rollout: prompt + completion, next-token targets on the completion's
 * tokens (the EOS included), none on the prompt. `mask` false drops every target (TRL's
 * mask_truncated_completions for a row that never ended).
 */
export function rolloutRow(r: Pick<Rollout, 'promptIds' | 'completion'>, mask = true): PackedRow {
  const ids = [...r.promptIds, ...r.completion];
  const P = r.promptIds.length;
  const targets = ids.map((_, i) =>
    mask && i + 1 >= P && i + 1 < ids.length ? ids[i + 1]! : IGNORE_INDEX,
  );
  return {
    ids,
    targets,
    positions: ids.map((_, i) => i),
    segments: ids.map(() => 0),
    lossTokens: mask ? r.completion.length : 0,
  };
}

/** TRAIN_INPUTS [B, T] of rollout rows (right-padded; padding has no target, so no reward or loss lands on a pad). */
export function rolloutFeeds(
  rows: readonly PackedRow[],
  padId: number,
  maxLength: number,
): { feeds: Record<string, Tensor>; T: number; tokens: number } {
  const longest = Math.max(...rows.map((r) => r.ids.length));
  if (longest > maxLength)
    throw new ConfigError(
      `a prompt + completion of ${longest} tokens exceeds max_length ${maxLength}`,
      { field: 'max_length' },
      { hint: 'raise max_length or lower max_prompt_length / max_completion_length' },
    );
  const b = batchFeeds(rows, padId, maxLength);
  return { feeds: b.feeds, T: b.feeds.input_ids!.shape[1] as number, tokens: b.tokens };
}

/** Graph inputs of a token log-prob forward. */
export interface TokenLogpInputs {
  ids: Var;
  positions: Var;
  segments: Var;
  targets: Var;
  dropoutSeed?: Var;
}

/**
 * log π(target | prefix) per position [B, T] (0 where the target is ignored), with logits
 * divided by `temperature` as TRL's _get_per_token_logps does (the sampling distribution).
 * One function for the step graph and the inference passes (old / reference log-probs), so
 * both compute the same numbers.
 */
export function tokenLogps(
  spec: ModelSpec,
  w: Weights,
  inp: TokenLogpInputs,
  o: { lora?: LoraSpec; recompute?: boolean; temperature: number },
): Var {
  const out = decoderForward(
    spec,
    w,
    {
      ids: inp.ids,
      positions: inp.positions,
      bias: segmentMask(inp.segments),
      dropoutSeed: inp.dropoutSeed,
    },
    { lora: o.lora, recompute: o.recompute },
  );
  let h = out.hidden.reshape([-1, spec.hiddenSize]); // [B,T,D] -> [B·T,D]
  // logits / τ = (h / τ) · Wᵀ: scaling the hidden state keeps the fused head.
  if (o.temperature !== 1) h = mul(h, 1 / o.temperature);
  const t = inp.targets.reshape([-1]); // [B,T] -> [B·T]
  return linearTokenLogProbs(h, lmHeadWeight(spec, w), t, IGNORE_INDEX).reshape(inp.ids.shape); // [B·T] -> [B,T]
}

/** The TRAIN_INPUTS of a graph as [B, T] int64 inputs. */
export function tokenLogpInputs(g: Graph): TokenLogpInputs {
  const [ids, positions, segments, targets] = TRAIN_INPUTS.map((n) =>
    g.input(n, 'int64', ['B', 'T']),
  ) as [Var, Var, Var, Var];
  return { ids, positions, segments, targets };
}

/**
 * An inference session of tokenLogps over a set of weights (the policy with its adapter, or the
 * reference: the base without it / a frozen copy), compiled once; run() feeds the host tensors
 * by reference.
 */
export class TokenLogpRunner {
  #session: Promise<Session> | undefined;
  constructor(
    readonly spec: ModelSpec,
    readonly weights: () => readonly [string, HostTensor][],
    readonly o: { lora?: LoraSpec; temperature: number },
  ) {}

  async run(feeds: Record<string, Tensor>): Promise<Float32Array> {
    const ws = this.weights();
    this.#session ??= (() => {
      const g = new Graph({ name: 'token-logps' });
      const params = new Map<string, Var>();
      for (const [n, t] of ws) params.set(n, g.input(n, 'float32', t.shape));
      const w: Weights = (n) => {
        const v = params.get(n);
        if (!v) throw new ConfigError(`the model has no weight '${n}'`, { field: n });
        return v;
      };
      g.output(
        'logps',
        tokenLogps(this.spec, w, tokenLogpInputs(g), {
          lora: this.o.lora ? { ...this.o.lora, dropout: 0 } : undefined,
          temperature: this.o.temperature,
        }),
      );
      return createSession(g);
    })();
    const s = await this.#session;
    const all: Record<string, Tensor> = {};
    for (const [n, t] of ws) all[n] = tensor('float32', t.shape, t.data);
    for (const n of TRAIN_INPUTS) all[n] = feeds[n]!;
    return (await s.run(all, ['logps'])).logps!.data as Float32Array;
  }

  async release(): Promise<void> {
    if (this.#session) await (await this.#session).release();
    this.#session = undefined;
  }
}

/** Summary of a rollout batch with TRL's metric names (completions/…). */
export function completionMetrics(rs: readonly Rollout[]): Record<string, number> {
  const len = rs.map((r) => r.completion.length);
  const term = rs.filter((r) => r.eos).map((r) => r.completion.length);
  const mean = (a: number[]) => (a.length ? a.reduce((s, x) => s + x, 0) / a.length : 0);
  return {
    'completions/mean_length': mean(len),
    'completions/min_length': len.length ? Math.min(...len) : 0,
    'completions/max_length': len.length ? Math.max(...len) : 0,
    'completions/clipped_ratio': rs.length ? rs.filter((r) => !r.eos).length / rs.length : 0,
    'completions/mean_terminated_length': mean(term),
  };
}
