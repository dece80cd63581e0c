// Reward-model training (TRL RewardTrainer / RewardConfig names) on K-way rankings, InstructGPT
// style: the K completions of one prompt are K rows of ONE batch element, and its loss is
//   −1/C(K,2) · Σ_{(w,l): rank_w < rank_l} log σ(r_w − r_l − margin)        (Ouyang et al. 2022, §3.5, eq. 1)
// over the ordered pairs with different ranks (ties give no pair but still count in C(K,2), so a
// tie is "no information", not a smaller batch element). Pairs are the K = 2 case, where this is
// TRL's −logσ(r_chosen − r_rejected − margin). center_rewards_coefficient adds, per pair and with
// the same weights, coef·(r_w + r_l)² (Eisenstein et al. 2023, arXiv:2312.09244 eq. 2; TRL).
// Everything else (LoRA, accumulation, logging, eval, checkpoints) is the shared loop's.
import { z } from 'zod';
import { describeZodError, parseConfig } from '../data/config.ts';
import { ChatMessage } from '../data/records.ts';
import type { Graph, Var } from '../engine/graph.ts';
import { add, cast, gather, greater, mul, neg, reduceMean, reduceSum, sub } from '../engine/ops.ts';
import { tensor } from '../engine/runtime.ts';
import type { ForwardBuilder } from '../engine/step-graph.ts';
import type { ModelSpec } from '../models/config.ts';
import { headForward, REWARD_HEAD } from '../models/heads.ts';
import type { LoraSpec } from '../models/lora.ts';
import { RewardModel } from '../models/reward.ts';
import { ConfigError, DataError, TrainingError } from '../util/errors.ts';
import { readJsonl } from '../util/jsonl.ts';
import { logSigmoid } from './dpo-loss.ts';
import {
  type Collated,
  type LoopDeps,
  runTraining,
  type StepLog,
  specialIds,
  TRAINING_ARGUMENTS,
} from './loop.ts';
import {
  loadTokenizedPreferences,
  type PreferenceSource,
  type TokenizedPreference,
  tokenizePreference,
} from './preference-tokenize.ts';

export const RewardConfig = z.strictObject({
  ...TRAINING_ARGUMENTS,
  /** Preference pairs or K-way rankings (data/preference.ts formats). */
  train_file: z.string(),
  /** TRL RewardConfig's default. */
  learning_rate: z.number().positive().default(1e-4),
  /**
   * Weight of the centring term coef·(r_w + r_l)², which keeps rewards near mean 0 (TRL; null
   * = off; "recommended value: 0.01").
   */
  center_rewards_coefficient: z.number().min(0).nullable().default(null),
});
export type RewardConfig = z.infer<typeof RewardConfig>;

/** Parses a RewardConfig; unknown keys and wrong types are ConfigErrors naming the field. */
export function parseRewardConfig(raw: unknown, file?: string): RewardConfig {
  return parseConfig(RewardConfig, raw, { file });
}

/** Input names of the reward forward. */
export const REWARD_INPUTS = {
  ids: 'input_ids',
  positions: 'position_ids',
  attentionMask: 'attention_mask',
  chosen: 'pair_chosen',
  rejected: 'pair_rejected',
  weight: 'pair_weight',
  margin: 'pair_margin',
} as const;

/** Metrics the reward forward outputs (TRL names): strict accuracy and mean margin over pairs. */
export const REWARD_METRICS = ['accuracy', 'margin'] as const;

/** The ordered pairs (better, worse) of a ranking: different ranks only (ties skipped). */
export function rankedPairs(ranks: readonly number[]): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0; i < ranks.length; i++)
    for (let j = 0; j < ranks.length; j++) if (ranks[i]! < ranks[j]!) out.push([i, j]);
  return out;
}

/**
 * The ranking loss on scores [N] (one per completion row) and P pairs given as row indices,
 * each with its weight (1/(C(K,2)·B): the mean over batch elements of eq. 1) and margin.
 * Returns the loss and TRL's metrics: accuracy (r_w > r_l, strict) and margin (r_w − r_l),
 * both means over pairs.
 */
export function rankingLoss(
  scores: Var,
  pairs: { chosen: Var; rejected: Var; weight: Var; margin: Var },
  centerCoef: number | null = null,
): { loss: Var; outputs: Record<(typeof REWARD_METRICS)[number], Var> } {
  const rw = gather(scores, pairs.chosen, 0); // [N] -> [P]
  const rl = gather(scores, pairs.rejected, 0); // [N] -> [P]
  const diff = sub(rw, rl);
  let per = neg(logSigmoid(sub(diff, pairs.margin)));
  if (centerCoef) {
    const s = add(rw, rl);
    per = add(per, mul(mul(s, s), centerCoef));
  }
  const loss = reduceSum(mul(per, pairs.weight));
  return {
    loss,
    outputs: {
      accuracy: reduceMean(cast(greater(rw, rl), scores.dtype)),
      margin: reduceMean(diff),
    },
  };
}

/** Options of the reward forward. */
export interface RewardForwardOptions {
  lora?: LoraSpec;
  recompute?: boolean;
  centerRewardsCoefficient?: number | null;
}

/**
 * The reward model's training forward: every completion row through the decoder and the
 * scalar head (heads.ts, read at the last attended token), then rankingLoss over the pairs.
 * Inputs REWARD_INPUTS ([N, T] rows; [P] pairs) plus `dropout_seed` with LoRA dropout.
 */
export function rewardForward(spec: ModelSpec, o: RewardForwardOptions = {}): ForwardBuilder {
  return (g: Graph, params) => {
    const w = (n: string): Var => {
      const v = params[n];
      if (!v) throw new ConfigError(`the model has no weight '${n}'`, { field: n });
      return v;
    };
    const I = REWARD_INPUTS;
    const ids = g.input(I.ids, 'int64', ['N', 'T']);
    const positions = g.input(I.positions, 'int64', ['N', 'T']);
    const attentionMask = g.input(I.attentionMask, 'int64', ['N', 'T']);
    const chosen = g.input(I.chosen, 'int64', ['P']);
    const rejected = g.input(I.rejected, 'int64', ['P']);
    const weight = g.input(I.weight, 'float32', ['P']);
    const margin = g.input(I.margin, 'float32', ['P']);
    const dropoutSeed =
      o.lora && o.lora.dropout > 0 ? g.input('dropout_seed', 'int64', []) : undefined;
    const scores = headForward(
      spec,
      REWARD_HEAD,
      w,
      { ids, positions, attentionMask, dropoutSeed },
      { lora: o.lora, recompute: o.recompute },
    ).reshape([-1]); // [N,1] -> [N]
    return rankingLoss(
      scores,
      { chosen, rejected, weight, margin },
      o.centerRewardsCoefficient ?? null,
    );
  };
}

/** Rounds a batch's length up to a multiple of this, so few distinct shapes are compiled. */
const LENGTH_BUCKET = 16;

/**
 * The pairs of a batch of ranked examples as flat arrays: row indices of the better and worse
 * completion (rows numbered across the batch, K per example), each pair's weight
 * 1/(C(K,2)·B) and margin.
 */
export function batchPairs(items: readonly { ranks: readonly number[]; margin?: number }[]): {
  chosen: number[];
  rejected: number[];
  weight: number[];
  margin: number[];
} {
  const out = {
    chosen: [] as number[],
    rejected: [] as number[],
    weight: [] as number[],
    margin: [] as number[],
  };
  const B = items.length;
  let base = 0;
  for (const ex of items) {
    const K = ex.ranks.length;
    for (const [i, j] of rankedPairs(ex.ranks)) {
      out.chosen.push(base + i);
      out.rejected.push(base + j);
      out.weight.push(1 / (((K * (K - 1)) / 2) * B));
      out.margin.push(ex.margin ?? 0);
    }
    base += K;
  }
  return out;
}

/**
 * Feeds of one micro-batch of ranked examples: the K completions of each (prompt + completion
 * ids) as K right-padded rows, and its untied pairs as row indices. The micro-batch weighs its
 * number of prompts (each one batch element).
 */
export function rewardCollate(
  items: readonly TokenizedPreference[],
  padId: number,
  maxLength: number,
): Collated {
  const rows = items.flatMap((ex) =>
    ex.completions.map((c) => [...ex.prompt, ...c].slice(0, maxLength)),
  );
  const { chosen, rejected, weight, margin } = batchPairs(items);
  const B = items.length;
  const longest = Math.max(1, ...rows.map((r) => r.length));
  const T = Math.min(maxLength, Math.ceil(longest / LENGTH_BUCKET) * LENGTH_BUCKET);
  const N = rows.length;
  const ids = new BigInt64Array(N * T).fill(BigInt(padId));
  const pos = new BigInt64Array(N * T);
  const mask = new BigInt64Array(N * T);
  let tokens = 0;
  rows.forEach((r, n) => {
    r.forEach((id, t) => {
      ids[n * T + t] = BigInt(id);
      pos[n * T + t] = BigInt(t);
      mask[n * T + t] = 1n;
    });
    tokens += r.length;
  });
  const P = chosen.length;
  return {
    feeds: {
      [REWARD_INPUTS.ids]: tensor('int64', [N, T], ids),
      [REWARD_INPUTS.positions]: tensor('int64', [N, T], pos),
      [REWARD_INPUTS.attentionMask]: tensor('int64', [N, T], mask),
      [REWARD_INPUTS.chosen]: tensor('int64', [P], BigInt64Array.from(chosen, BigInt)),
      [REWARD_INPUTS.rejected]: tensor('int64', [P], BigInt64Array.from(rejected, BigInt)),
      [REWARD_INPUTS.weight]: tensor('float32', [P], Float32Array.from(weight)),
      [REWARD_INPUTS.margin]: tensor('float32', [P], Float32Array.from(margin)),
    },
    weight: P === 0 ? 0 : B,
    tokens,
  };
}

export interface RewardDeps extends LoopDeps {
  /** A model in memory (instead of loading model_name_or_path). */
  model?: RewardModel;
  /** In-memory preference records or examples (instead of train_file / eval_file). */
  train?: PreferenceSource;
  eval?: PreferenceSource;
}

export interface RewardResult {
  steps: number;
  finalLoss: number;
  /** The last eval: eval_loss, eval_accuracy, eval_margin. */
  evalMetrics?: Record<string, number>;
  logs: StepLog[];
  outputDir: string;
  model: RewardModel;
  /** Examples with a completion cut to max_length. */
  truncated: number;
  trainExamples: number;
}

/**
 * Trains a reward model from a causal LM (fresh head) or a saved reward model and writes it to
 * output_dir as an HF *ForSequenceClassification directory (or a PEFT adapter with the head in
 * modules_to_save).
 * @example await trainReward(parseRewardConfig({ model_name_or_path: 'runs/demo/tuned', train_file: 'prefs.jsonl', output_dir: 'out/rm' }));
 */
export async function trainReward(cfg: RewardConfig, deps: RewardDeps = {}): Promise<RewardResult> {
  const rm = deps.model ?? (await RewardModel.fromPretrained(cfg.model_name_or_path, cfg.seed));
  const { tok, eosId, padId } = specialIds(rm, cfg);
  const tokOpts = { eosId, maxLength: cfg.max_length, chatTemplate: tok.chatTemplate ?? null };
  const train = await loadTokenizedPreferences(deps.train ?? cfg.train_file, tok, tokOpts);
  if (train.examples.length === 0) throw new TrainingError('no preference examples to train on');
  const evalSrc = deps.eval ?? cfg.eval_file;
  const evalEx = evalSrc ? (await loadTokenizedPreferences(evalSrc, tok, tokOpts)).examples : [];
  const r = await runTraining({
    name: 'reward',
    cfg,
    config: cfg,
    model: rm,
    train: train.examples,
    eval: evalEx,
    collate: (items) => rewardCollate(items, padId, cfg.max_length),
    forward: (o) =>
      rewardForward(rm.spec, { ...o, centerRewardsCoefficient: cfg.center_rewards_coefficient }),
    metrics: REWARD_METRICS,
    deps,
  });
  rm.invalidate();
  return {
    steps: r.steps,
    finalLoss: r.finalLoss,
    ...(r.evalMetrics ? { evalMetrics: r.evalMetrics } : {}),
    logs: r.logs,
    outputDir: r.outputDir,
    model: rm,
    truncated: train.truncated,
    trainExamples: train.examples.length,
  };
}

/** Pairwise accuracy of a reward model on preference data, as `rm eval` reports it. */
export interface RewardEvalResult {
  /** Untied ordered pairs compared. */
  pairs: number;
  /** Share with r_w > r_l (strict, as TRL's accuracy). */
  accuracy: number;
  /** Mean r_w − r_l. */
  margin: number;
  /** The ranking loss (eq. 1, averaged over examples). */
  loss: number;
  examples: number;
}

/**
 * Scores every completion of every example once and compares each untied pair: the held-out
 * check of a trained reward model (InstructGPT §4.1 reports this accuracy).
 */
export async function evaluateReward(
  rm: RewardModel,
  source: PreferenceSource,
  o: { maxLength?: number; batchSize?: number } = {},
): Promise<RewardEvalResult> {
  const tok = rm.tokenizer;
  if (!tok) throw new ConfigError('the reward model has no tokenizer', { field: 'model' });
  const eosId = tok.eos?.id ?? rm.spec.eosTokenId;
  if (typeof eosId !== 'number')
    throw new ConfigError('the tokenizer has no EOS token', { field: 'eos_token' });
  const maxLength = o.maxLength ?? rm.spec.maxPositions;
  const { examples } = await loadTokenizedPreferences(source, tok, {
    eosId,
    maxLength,
    chatTemplate: tok.chatTemplate ?? null,
  });
  let pairs = 0;
  let right = 0;
  let margin = 0;
  let loss = 0;
  const rows = examples.flatMap((ex) => ex.completions.map((c) => [...ex.prompt, ...c]));
  const scores = await rm.score(rows, { batchSize: o.batchSize ?? 8 });
  let at = 0;
  for (const ex of examples) {
    const s = scores.slice(at, at + ex.completions.length);
    at += ex.completions.length;
    const K = ex.completions.length;
    let l = 0;
    for (const [i, j] of rankedPairs(ex.ranks)) {
      const d = s[i]! - s[j]!;
      pairs++;
      if (d > 0) right++;
      margin += d;
      const x = d - (ex.margin ?? 0);
      l += x >= 0 ? Math.log1p(Math.exp(-x)) : -x + Math.log1p(Math.exp(x));
    }
    loss += l / ((K * (K - 1)) / 2);
  }
  return {
    pairs,
    accuracy: pairs === 0 ? Number.NaN : right / pairs,
    margin: pairs === 0 ? Number.NaN : margin / pairs,
    loss: examples.length === 0 ? Number.NaN : loss / examples.length,
    examples: examples.length,
  };
}

/** A {prompt, completion} record to score: text, or messages (rendered by the chat template). */
const ScoreRecord = z.looseObject({
  prompt: z.union([z.string(), z.array(ChatMessage).min(1)]),
  completion: z.union([z.string().min(1), z.array(ChatMessage).min(1)]),
});

/**
 * Reads a JSONL file of {prompt, completion} records (other keys are kept) and tokenises them
 * as training does: prompt and completion apart, EOS at the end.
 * @throws DataError naming file, line and field for a record that is not one.
 */
async function readScoreRecords(
  rm: RewardModel,
  path: string,
  maxLength: number,
): Promise<{ records: Record<string, unknown>[]; rows: number[][] }> {
  const tok = rm.tokenizer;
  if (!tok) throw new ConfigError('the reward model has no tokenizer', { field: 'model' });
  const eosId = tok.eos?.id ?? rm.spec.eosTokenId;
  if (typeof eosId !== 'number')
    throw new ConfigError('the tokenizer has no EOS token', { field: 'eos_token' });
  const records: Record<string, unknown>[] = [];
  const rows: number[][] = [];
  for await (const l of readJsonl(path)) {
    const loc = { file: path, line: l.line };
    const r = ScoreRecord.safeParse(l.value);
    if (!r.success) {
      const { field, message } = describeZodError(r.error);
      throw new DataError(message, { ...loc, field });
    }
    const t = tokenizePreference(
      tok,
      {
        prompt: r.data.prompt,
        completions: [r.data.completion],
        ranks: [0],
        where: `${path}:${l.line}`,
      },
      { eosId, maxLength, chatTemplate: tok.chatTemplate ?? null },
    );
    records.push(l.value as Record<string, unknown>);
    rows.push([...t.prompt, ...t.completions[0]!]);
  }
  return { records, rows };
}

/**
 * Rewards of the {prompt, completion} records of a JSONL file (`rm score`), in file order, each
 * record returned with a `reward` key added.
 */
export async function scoreFile(
  rm: RewardModel,
  path: string,
  o: { maxLength?: number; batchSize?: number } = {},
): Promise<(Record<string, unknown> & { reward: number })[]> {
  const { records, rows } = await readScoreRecords(rm, path, o.maxLength ?? rm.spec.maxPositions);
  const rewards = await rm.score(rows, { batchSize: o.batchSize ?? 8 });
  return records.map((r, i) => ({ ...r, reward: rewards[i]! }));
}

/**
 * Sets the reward model's bias so the reference completions of `path` (demonstrations) score
 * mean 0, as InstructGPT did before RL (§3.5). Returns the new bias and the mean before.
 */
export async function normalizeReward(
  rm: RewardModel,
  path: string,
  o: { maxLength?: number; batchSize?: number } = {},
): Promise<{ bias: number; meanBefore: number; records: number }> {
  const { rows } = await readScoreRecords(rm, path, o.maxLength ?? rm.spec.maxPositions);
  if (rows.length === 0)
    throw new DataError('no reference completions to normalise on', { file: path });
  const scores = await rm.score(rows, { batchSize: o.batchSize ?? 8 });
  let mean = 0;
  for (const s of scores) mean += s / scores.length;
  rm.bias -= mean;
  return { bias: rm.bias, meanBefore: mean, records: rows.length };
}
