// GRPO (Shao et al. 2024, DeepSeekMath §4.1, arXiv:2402.03300) on the shared training loop:
// each step samples num_generations completions per prompt from the current policy, scores
// them with the reward sources, normalises rewards within each prompt's group into advantages
// (no value model), and takes a clipped-ratio policy step with an optional k3 KL to the
// reference. Config keys and defaults are TRL's GRPOConfig; token averaging follows TRL's
// loss_type (grpo: per sequence, then over sequences; dr_grpo: by B · max_completion_length,
// Liu et al. 2025 "Understanding R1-Zero-Like Training" §3.1; dapo: by the step's completion
// tokens, Yu et al. 2025 Eq. 8; bnpo: by each micro-batch's own completion tokens, micro-batches
// then averaged as gradient accumulation does).
import { z } from 'zod';
import { parseConfig } from '../data/config.ts';
import { ChatMessage } from '../data/records.ts';
import { applyChatTemplate } from '../data/templates/chat.ts';
import { detach } from '../engine/autodiff.ts';
import type { Var } from '../engine/graph.ts';
import {
  add,
  and,
  cast,
  div,
  equal,
  exp,
  greater,
  less,
  maximum,
  minimum,
  mul,
  neg,
  not,
  or,
  reduceMean,
  reduceSum,
  sub,
  unsqueeze,
} from '../engine/ops.ts';
import { tensor } from '../engine/runtime.ts';
import type { ForwardBuilder } from '../engine/step-graph.ts';
import type { ModelSpec } from '../models/config.ts';
import type { LoraSpec, Weights } from '../models/decoder.ts';
import { IGNORE_INDEX } from '../models/graphs.ts';
import { CausalLM } from '../models/lm.ts';
import type { HostTensor } from '../models/tensor.ts';
import type { Tokenizer } from '../models/tokenizer.ts';
import { ConfigError, DataError, TrainingError } from '../util/errors.ts';
import { readJsonl } from '../util/jsonl.ts';
import {
  type Collated,
  type LoopDeps,
  type LoopResult,
  type PrepareContext,
  runTraining,
  specialIds,
  TRAINING_ARGUMENTS,
} from './loop.ts';
import {
  loadRewardSources,
  REWARD_ARGUMENTS,
  type RewardInput,
  type RewardSource,
  scoreRewards,
} from './rewards.ts';
import {
  completionMetrics,
  type Rollout,
  rolloutFeeds,
  rolloutRow,
  sampleRollouts,
  TokenLogpRunner,
  tokenLogpInputs,
  tokenLogps,
} from './rollout.ts';

export const GRPO_LOSS_TYPES = ['grpo', 'dr_grpo', 'dapo', 'bnpo'] as const;
export type GrpoLossType = (typeof GRPO_LOSS_TYPES)[number];

export const GrpoConfig = z
  .strictObject({
    ...TRAINING_ARGUMENTS,
    ...REWARD_ARGUMENTS,
    learning_rate: z.number().positive().default(1e-6),
    /** Completions per device per step (TRL): a multiple of num_generations. */
    per_device_train_batch_size: z.number().int().positive().default(8),
    num_generations: z.number().int().min(2).default(8),
    /** Prompts longer than this keep their last tokens (TRL truncates on the left). */
    max_prompt_length: z.number().int().positive().default(512),
    max_completion_length: z.number().int().positive().default(256),
    temperature: z.number().positive().default(1),
    top_p: z.number().gt(0).max(1).default(1),
    /** 0 = off (TRL's None). */
    top_k: z.number().int().min(0).default(0),
    /** Coefficient of the k3 KL to the reference; 0 loads no reference. */
    beta: z.number().min(0).default(0),
    epsilon: z.number().positive().default(0.2),
    /** Upper clip (DAPO's clip-higher). @default epsilon */
    epsilon_high: z.number().positive().optional(),
    /** Updates per generated batch (μ in the paper). */
    num_iterations: z.number().int().positive().default(1),
    loss_type: z.enum(GRPO_LOSS_TYPES).default('dapo'),
    /** Reward std that divides the advantages: the group's, the whole step's, or none (Dr. GRPO). */
    scale_rewards: z
      .union([z.enum(['group', 'batch', 'none']), z.boolean()])
      .default('group')
      .transform((v) => (v === true ? 'group' : v === false ? 'none' : v)),
    /** Drop completions that never reached EOS from the loss (DAPO's overlong filtering). */
    mask_truncated_completions: z.boolean().default(false),
    /** Record field with the prompt text. */
    prompt_field: z.string().default('prompt'),
    /** Rows the decoder runs together. @default all rows of a step */
    generation_batch_size: z.number().int().positive().optional(),
  })
  .superRefine((c, ctx) => {
    if (c.per_device_train_batch_size % c.num_generations !== 0)
      ctx.addIssue({
        code: 'custom',
        path: ['per_device_train_batch_size'],
        message: `${c.per_device_train_batch_size} is not a multiple of num_generations (${c.num_generations})`,
      });
    if (c.reward_weights && c.reward_weights.length !== c.reward_funcs.length)
      ctx.addIssue({
        code: 'custom',
        path: ['reward_weights'],
        message: `has ${c.reward_weights.length} weights for ${c.reward_funcs.length} reward functions`,
      });
    if (c.save_steps !== undefined && c.save_steps % c.num_iterations !== 0)
      ctx.addIssue({
        code: 'custom',
        path: ['save_steps'],
        message: `must be a multiple of num_iterations (${c.num_iterations}): a checkpoint inside an iteration block could not resume its rollouts`,
      });
  });
export type GrpoConfig = z.infer<typeof GrpoConfig>;

/** Parses a GRPO config; unknown keys and wrong types are ConfigErrors naming the field. */
export function parseGrpoConfig(raw: unknown, file?: string): GrpoConfig {
  return parseConfig(GrpoConfig, raw, { file });
}

/**
 * Group-normalised advantages (TRL GRPOTrainer): A = r − mean(group), divided by std + 1e-4 where
 * std is the group's (scale_rewards 'group'), the whole batch's ('batch') or 1 ('none'); std is
 * torch's unbiased one.
 */
export function grpoAdvantages(
  rewards: ArrayLike<number>,
  G: number,
  scale: 'group' | 'batch' | 'none',
): Float64Array {
  const n = rewards.length;
  if (n % G !== 0)
    throw new ConfigError(`${n} rewards are not groups of ${G}`, { field: 'num_generations' });
  const std = (xs: number[]): number => {
    const m = xs.reduce((s, x) => s + x, 0) / xs.length;
    return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / Math.max(1, xs.length - 1));
  };
  const all = Array.from(rewards);
  const batchStd = std(all);
  const out = new Float64Array(n);
  for (let p = 0; p < n / G; p++) {
    const grp = all.slice(p * G, p * G + G);
    const mean = grp.reduce((s, x) => s + x, 0) / G;
    const s = scale === 'group' ? std(grp) : batchStd;
    for (let g = 0; g < G; g++) {
      const a = grp[g]! - mean;
      out[p * G + g] = scale === 'none' ? a : a / (s + 1e-4);
    }
  }
  return out;
}

/** The logged metrics of a GRPO step (TRL names). */
export const GRPO_METRICS = [
  'reward',
  'reward_std',
  'frac_reward_zero_std',
  'kl',
  'clip_ratio/low_mean',
  'clip_ratio/high_mean',
  'clip_ratio/region_mean',
  'val/ratio',
  'completions/mean_length',
  'completions/min_length',
  'completions/max_length',
  'completions/clipped_ratio',
  'completions/mean_terminated_length',
] as const;

export interface GrpoForwardOptions {
  lora?: LoraSpec;
  recompute?: boolean;
  temperature: number;
  beta: number;
  epsilon: number;
  epsilonHigh: number;
  lossType: GrpoLossType;
  maxCompletionLength: number;
  /** old_logps is an input (num_iterations > 1); else the detached current log-probs (ratio 1). */
  oldLogpsInput: boolean;
}

/**
 * The GRPO step graph on TRAIN_INPUTS [B, T] plus `advantages` [B], `ref_logps` [B, T] (beta > 0)
 * and `old_logps` [B, T] (num_iterations > 1). Per token (TRL): r = exp(logπ − logπ_old),
 * ℓ = −min(r·A, clip(r, 1−ε, 1+ε_high)·A) + β·(e^{ref−logπ} − (ref − logπ) − 1) (k3, Schulman
 * 2020 "Approximating KL divergence"), then averaged over completion tokens as loss_type says.
 */
export function grpoForward(spec: ModelSpec, o: GrpoForwardOptions): ForwardBuilder {
  return (g, params) => {
    const w: Weights = (n) => {
      const v = params[n];
      if (!v) throw new ConfigError(`the model has no weight '${n}'`, { field: n });
      return v;
    };
    const inp = tokenLogpInputs(g);
    if (o.lora !== undefined && o.lora.dropout > 0)
      inp.dropoutSeed = g.input('dropout_seed', 'int64', []);
    const lp = tokenLogps(spec, w, inp, {
      lora: o.lora,
      recompute: o.recompute,
      temperature: o.temperature,
    }); // [B,T]
    const mask = cast(not(equal(inp.targets, IGNORE_INDEX)), 'float32'); // [B,T]
    const adv = g.input('advantages', 'float32', ['B']);
    const old = o.oldLogpsInput ? g.input('old_logps', 'float32', ['B', 'T']) : detach(lp);
    const ref = o.beta > 0 ? g.input('ref_logps', 'float32', ['B', 'T']) : undefined;
    return grpoLoss({ logps: lp, old, ref, mask, advantages: adv }, o);
  };
}

/**
 * A micro-batch's weight in its step (the loop weighs micro-batches w / Σw). dapo normalises by
 * the whole step's completion tokens, so each micro-batch's token mean counts by its tokens; the
 * other types average micro-batches by their rows (equal for equal micro-batches), as TRL's
 * gradient accumulation does for bnpo's per-micro-batch token mean.
 */
export function grpoBatchWeight(lossType: GrpoLossType, rows: number, lossTokens: number): number {
  return lossType === 'dapo' ? lossTokens : rows;
}

/**
 * The GRPO loss of per-token log-probs [B, T] (policy, old, reference), completion mask [B, T]
 * and advantages [B], with its metrics.
 */
export function grpoLoss(
  x: { logps: Var; old: Var; ref?: Var; mask: Var; advantages: Var },
  o: Pick<
    GrpoForwardOptions,
    'beta' | 'epsilon' | 'epsilonHigh' | 'lossType' | 'maxCompletionLength'
  >,
): { loss: Var; outputs: Record<string, Var> } {
  const g = x.logps.graph;
  const { logps: lp, old, mask } = x;
  const adv = unsqueeze(x.advantages, [1]); // [B] -> [B,1]
  const ratio = exp(sub(lp, old)); // [B,T]
  const clipped = minimum(maximum(ratio, 1 - o.epsilon), 1 + o.epsilonHigh);
  let perToken = neg(minimum(mul(ratio, adv), mul(clipped, adv))); // [B,T]
  const tokens = maximum(reduceSum(mask), 1); // scalar
  const maskedMean = (v: Var): Var => div(reduceSum(mul(v, mask)), tokens);
  const outputs: Record<string, Var> = {};
  if (o.beta > 0 && x.ref) {
    const d = sub(x.ref, lp);
    const kl = sub(sub(exp(d), d), 1); // k3 ≥ 0
    perToken = add(perToken, mul(kl, o.beta));
    outputs.kl = detach(maskedMean(kl));
  } else outputs.kl = g.scalar(0);
  const masked = mul(perToken, mask); // [B,T]
  let loss: Var;
  if (o.lossType === 'grpo') {
    const rowTokens = maximum(reduceSum(mask, [1]), 1); // [B]
    loss = reduceMean(div(reduceSum(masked, [1]), rowTokens));
  } else if (o.lossType === 'dr_grpo') {
    loss = div(reduceMean(reduceSum(masked, [1])), o.maxCompletionLength);
  } else loss = div(reduceSum(masked), tokens);
  const f = (b: Var) => cast(b, 'float32');
  const low = and(less(ratio, 1 - o.epsilon), less(adv, 0));
  const high = and(greater(ratio, 1 + o.epsilonHigh), greater(adv, 0));
  outputs['clip_ratio/low_mean'] = detach(maskedMean(f(low)));
  outputs['clip_ratio/high_mean'] = detach(maskedMean(f(high)));
  outputs['clip_ratio/region_mean'] = detach(maskedMean(f(or(low, high))));
  outputs['val/ratio'] = detach(maskedMean(ratio));
  return { loss, outputs };
}

/** One prompt of the training set. */
export interface GrpoPrompt {
  ids: number[];
  text: string;
  record: Record<string, unknown>;
  /** 1-based line in train_file (or index + 1 of an in-memory record). */
  line: number;
}

/**
 * Renders a conversational prompt as the model will see it at generation time (transformers'
 * apply_chat_template with add_generation_prompt), or undefined without a chat template.
 */
export function chatPromptRenderer(
  tok: Tokenizer,
): ((messages: ChatMessage[]) => string) | undefined {
  const template = tok.chatTemplate;
  if (!template) return undefined;
  return (m) =>
    applyChatTemplate(template, m, {
      addGenerationPrompt: true,
      bosToken: tok.bos?.token ?? null,
      eosToken: tok.eos?.token ?? null,
    });
}

/**
 * Prompt-only records, as TRL reads them: standard ({prompt: string}) or conversational
 * ({prompt: [{role, content}, ...]}), the latter rendered by `renderChat` (the model's chat
 * template with the generation prompt). A record without either is a DataError at its line.
 */
export async function loadPrompts(
  source: string | readonly Record<string, unknown>[],
  field: string,
  renderChat?: (messages: ChatMessage[]) => string,
): Promise<{ line: number; text: string; record: Record<string, unknown> }[]> {
  const out: { line: number; text: string; record: Record<string, unknown> }[] = [];
  const file = typeof source === 'string' ? source : undefined;
  const add = (value: unknown, line: number) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      throw new DataError('a GRPO record is a JSON object', { file, line });
    const rec = value as Record<string, unknown>;
    const p = rec[field];
    if (Array.isArray(p)) {
      const msgs = z.array(ChatMessage).min(1).safeParse(p);
      if (!msgs.success) {
        const issue = msgs.error.issues[0]!;
        throw new DataError(
          `a conversational prompt is a non-empty list of {role, content} messages: ${issue.message} at ${[field, ...issue.path].join('.')}`,
          { file, line, field },
        );
      }
      if (!renderChat)
        throw new DataError('a conversational prompt needs a tokenizer with a chat_template', {
          file,
          line,
          field: 'chat_template',
        });
      out.push({ line, text: renderChat(msgs.data), record: rec });
      return;
    }
    if (typeof p !== 'string' || p === '')
      throw new DataError(`no non-empty string or message list '${field}'`, { file, line, field });
    out.push({ line, text: p, record: rec });
  };
  if (typeof source === 'string') for await (const l of readJsonl(source)) add(l.value, l.line);
  else for (const [i, r] of source.entries()) add(r, i + 1);
  return out;
}

export interface GrpoDeps extends LoopDeps {
  /** A policy already in memory (else model_name_or_path is loaded). */
  model?: CausalLM;
  /** Records instead of train_file. */
  train?: readonly Record<string, unknown>[];
  /** Reward sources instead of reward_funcs (tests, callers with code rewards). */
  rewards?: readonly RewardSource[];
  /** Directory that relative reward module paths resolve from. @default cwd */
  baseDir?: string;
  /** Time spent per generated batch (ms), for bench/rl-step. */
  onTiming?: (t: {
    step: number;
    sync: number;
    rollout: number;
    scoring: number;
    reference: number;
    old: number;
  }) => void;
  /** Every generated batch (for tests and inspection). */
  onRollouts?: (step: number, rollouts: readonly Rollout[], rewards: Float64Array) => void;
}

export interface GrpoResult extends LoopResult {
  model: CausalLM;
}

/**
 * Trains a policy with GRPO and writes it (or its adapter) to output_dir.
 * @example await trainGrpo(parseGrpoConfig({ model_name_or_path: 'runs/demo/tuned', train_file: 'prompts.jsonl', output_dir: 'out/grpo', reward_funcs: [{ type: 'exact_match' }] }));
 */
export async function trainGrpo(cfg: GrpoConfig, deps: GrpoDeps = {}): Promise<GrpoResult> {
  const lm = deps.model ?? (await CausalLM.load(cfg.model_name_or_path));
  // GRPOConfig has no max_length: a row is at most max_prompt_length + max_completion_length.
  const maxLength = cfg.max_prompt_length + cfg.max_completion_length;
  const { tok, eosId, padId } = specialIds(lm, {
    ...cfg,
    max_length: Math.min(maxLength, lm.spec.maxPositions),
  });
  const G = cfg.num_generations;
  const ctx = lm.spec.maxPositions;
  if (cfg.max_prompt_length + cfg.max_completion_length > ctx)
    throw new ConfigError(
      `max_prompt_length ${cfg.max_prompt_length} + max_completion_length ${cfg.max_completion_length} exceeds the model's context of ${ctx}`,
      { field: 'max_completion_length' },
    );
  const records = await loadPrompts(
    deps.train ?? cfg.train_file,
    cfg.prompt_field,
    chatPromptRenderer(tok),
  );
  if (records.length === 0) throw new TrainingError('no prompts to train on');
  const prompts: GrpoPrompt[] = records.map((r) => {
    const ids = tok.encode(r.text, { addSpecialTokens: false });
    return { ...r, ids: ids.slice(Math.max(0, ids.length - cfg.max_prompt_length)) };
  });
  const sources = deps.rewards ?? (await loadRewardSources(cfg.reward_funcs, deps.baseDir));
  const epsHigh = cfg.epsilon_high ?? cfg.epsilon;
  const it = cfg.num_iterations;

  // The reference (beta > 0): the base without the adapter under LoRA, else a frozen copy of
  // the starting weights, run as an inference pass whose log-probs feed the step.
  let refWeights: (() => readonly [string, HostTensor][]) | undefined;
  if (cfg.beta > 0) {
    if (cfg.use_peft) refWeights = () => [...lm.weights];
    else {
      const frozen: [string, HostTensor][] = [...lm.weights].map(([n, t]) => [
        n,
        { shape: t.shape, data: t.data.slice() },
      ]);
      refWeights = () => frozen;
    }
  }
  const refRunner = refWeights
    ? new TokenLogpRunner(lm.spec, refWeights, { temperature: cfg.temperature })
    : undefined;
  let oldRunner: TokenLogpRunner | undefined;

  let cache: { block: number; batches: Collated[] } | undefined;
  const prepare = async (c: PrepareContext<GrpoPrompt>): Promise<Collated[]> => {
    const block = Math.floor(c.step / it);
    if (cache?.block === block) return cache.batches;
    const t0 = performance.now();
    await c.sync();
    const t1 = performance.now();
    const items = Array.from({ length: c.accumulation }, (_, j) =>
      c.microBatch(block * c.accumulation + j),
    );
    const flat = items.flat();
    const rollouts = await sampleRollouts(
      lm,
      flat.map((p) => p.ids),
      {
        num_generations: G,
        max_completion_length: cfg.max_completion_length,
        temperature: cfg.temperature,
        top_p: cfg.top_p,
        top_k: cfg.top_k,
        eosId,
        seed: `${cfg.seed}/rollout/${block}`,
        batch_size: cfg.generation_batch_size,
      },
    );
    const t2 = performance.now();
    const inputs: RewardInput[] = rollouts.map((r) => {
      const p = flat[r.prompt]!;
      return { prompt: p.text, completion: r.text, record: p.record, index: p.line, eos: r.eos };
    });
    const scored = await scoreRewards(sources, inputs, {
      weights: cfg.reward_weights,
      missing_eos_penalty: cfg.missing_eos_penalty,
    });
    const t3 = performance.now();
    const adv = grpoAdvantages(scored.total, G, cfg.scale_rewards);
    deps.onRollouts?.(c.step, rollouts, scored.total);
    // Step-level reward metrics, the same in every micro-batch (TRL logs them per generation).
    const groupStds = Array.from({ length: rollouts.length / G }, (_, p) => {
      const grp = Array.from(scored.total.slice(p * G, p * G + G));
      const m = grp.reduce((s, x) => s + x, 0) / G;
      return Math.sqrt(grp.reduce((s, x) => s + (x - m) ** 2, 0) / Math.max(1, G - 1));
    });
    const stepMetrics: Record<string, number> = {
      reward: scored.total.reduce((s, x) => s + x, 0) / scored.total.length,
      reward_std: groupStds.reduce((s, x) => s + x, 0) / groupStds.length,
      frac_reward_zero_std: groupStds.filter((s) => s === 0).length / groupStds.length,
      ...completionMetrics(rollouts),
    };
    for (const s of sources) {
      const arr = scored.bySource.get(s.name)!;
      stepMetrics[`rewards/${s.id ?? s.name}/mean`] = arr.reduce((t, x) => t + x, 0) / arr.length;
    }
    let tRef = 0;
    let tOld = 0;
    const batches: Collated[] = [];
    let row = 0;
    for (const group of items) {
      const rs = rollouts.slice(row, row + group.length * G);
      const a = adv.slice(row, row + group.length * G);
      row += group.length * G;
      const rows = rs.map((r) => rolloutRow(r, !(cfg.mask_truncated_completions && !r.eos)));
      const { feeds, tokens } = rolloutFeeds(rows, padId, maxLength);
      feeds.advantages = tensor('float32', [rs.length], Float32Array.from(a));
      if (refRunner) {
        const s = performance.now();
        feeds.ref_logps = tensor('float32', feeds.input_ids!.shape, await refRunner.run(feeds));
        tRef += performance.now() - s;
      }
      if (it > 1) {
        const s = performance.now();
        oldRunner ??= new TokenLogpRunner(lm.spec, () => lm.allWeights(), {
          lora: lm.lora?.spec,
          temperature: cfg.temperature,
        });
        feeds.old_logps = tensor('float32', feeds.input_ids!.shape, await oldRunner.run(feeds));
        tOld += performance.now() - s;
      }
      const lossTokens = rows.reduce((s, r) => s + r.lossTokens, 0);
      batches.push({
        feeds,
        weight: grpoBatchWeight(cfg.loss_type, rs.length, lossTokens),
        tokens,
        metrics: stepMetrics,
      });
    }
    deps.onTiming?.({
      step: c.step,
      sync: t1 - t0,
      rollout: t2 - t1,
      scoring: t3 - t2,
      reference: tRef,
      old: tOld,
    });
    cache = { block, batches };
    return batches;
  };

  const promptsPerBatch = cfg.per_device_train_batch_size / G;
  const rewardNames = sources.map((s) => `rewards/${s.id ?? s.name}/mean`);
  try {
    const r = await runTraining({
      name: 'grpo',
      // The loop batches prompts; an epoch covers every prompt once per iteration block, and each
      // block of num_iterations steps reuses one generation (TRL's RepeatSampler).
      cfg: {
        ...cfg,
        per_device_train_batch_size: promptsPerBatch,
        max_length: maxLength,
        num_train_epochs: cfg.num_train_epochs * it,
      },
      config: cfg,
      model: lm,
      train: prompts,
      collate: () => {
        throw new TrainingError('GRPO batches come from prepare');
      },
      prepare,
      forward: (o) =>
        grpoForward(lm.spec, {
          ...o,
          temperature: cfg.temperature,
          beta: cfg.beta,
          epsilon: cfg.epsilon,
          epsilonHigh: epsHigh,
          lossType: cfg.loss_type,
          maxCompletionLength: cfg.max_completion_length,
          oldLogpsInput: it > 1,
        }),
      metrics: [...GRPO_METRICS, ...rewardNames],
      deps,
    });
    return { ...r, model: lm };
  } finally {
    await refRunner?.release();
    await oldRunner?.release();
    for (const s of sources) await s.close?.();
  }
}
