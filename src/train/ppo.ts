// PPO as in InstructGPT (Ouyang et al. 2022 §3.5, Eq. 2, App. C.4) with TRL's PPOConfig names
// (trl/experimental/ppo): per iteration, sample one completion per prompt from the current
// policy, score it (reward model / reward sources), compute old log-probs, reference log-probs
// and values, turn them into per-token rewards, GAE advantages and returns on the host
// (ppo-math.ts), then run num_ppo_epochs × num_mini_batches clipped updates (ppo-loss.ts), plus
// PPO-ptx's language-model loss on pretraining text when ptx_coef > 0. It runs on the shared
// loop: every optimizer step is one minibatch, prepared online by `prepare`.
//
// Policy and value model: two models, both trained in the same step graph with
// loss = policy + vf_coef · value (+ ptx). Not a shared trunk, because (1) InstructGPT and TRL
// initialise the value function from the reward model and the policy from the SFT model; those
// are different trunks, and one trunk cannot start as both; (2) with a shared trunk the value
// loss's gradient moves the policy's representation, so vf_coef would trade value accuracy
// against policy drift. The price is a second set of weights (the value model is a full copy of
// the reward model, or of the policy's decoder when no reward model is given).
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { parseConfig } from '../data/config.ts';
import type { ChatMessage } from '../data/records.ts';
import { segmentMask } from '../engine/attention.ts';
import { Graph, type Var } from '../engine/graph.ts';
import { add, cast, equal, not } from '../engine/ops.ts';
import type { ParamSpec } from '../engine/params.ts';
import { createSession, type Session, type Tensor, tensor } from '../engine/runtime.ts';
import type { ForwardBuilder } from '../engine/step-graph.ts';
import type { LoraSpec, Weights } from '../models/decoder.ts';
import { IGNORE_INDEX, TRAIN_INPUTS } from '../models/graphs.ts';
import { REWARD_HEAD, tokenHeadForward } from '../models/heads.ts';
import { CausalLM } from '../models/lm.ts';
import { RewardModel } from '../models/reward.ts';
import type { HostTensor } from '../models/tensor.ts';
import { ConfigError, DataError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import type { PackedRow } from './data.ts';
import { chatPromptRenderer, loadPrompts } from './grpo.ts';
import {
  type Collated,
  type LoopDeps,
  type LoopResult,
  type PrepareContext,
  runTraining,
  specialIds,
  TRAINING_ARGUMENTS,
  type TrainableModel,
} from './loop.ts';
import { ppoLoss, ptxLoss } from './ppo-loss.ts';
import { KlController, ppoTargets } from './ppo-math.ts';
import {
  loadRewardSources,
  modelReward,
  REWARD_ARGUMENTS,
  RewardFunc,
  type RewardSource,
  scoreRewards,
} from './rewards.ts';
import {
  completionMetrics,
  rolloutFeeds,
  rolloutRow,
  sampleRollouts,
  TokenLogpRunner,
  tokenLogpInputs,
  tokenLogps,
} from './rollout.ts';

export const PPOConfig = z.strictObject({
  ...TRAINING_ARGUMENTS,
  ...REWARD_ARGUMENTS,
  /** Extra reward sources (summed with reward_model_path's score, weights in order). */
  reward_funcs: z.array(RewardFunc).min(1).optional(),
  /** JSONL of prompts: {"prompt": "..."} (TRL's prompt-only data). */
  train_file: z.string(),
  /** TRL PPOConfig's default. */
  learning_rate: z.number().positive().default(3e-6),
  /** Updates over each rollout batch (TRL 4; InstructGPT App. C.4 used a single epoch). */
  num_ppo_epochs: z.number().int().positive().default(4),
  /** Minibatches per rollout batch; each is one optimizer step of per_device × accumulation rows. */
  num_mini_batches: z.number().int().positive().default(1),
  /** Episodes (completions) in the run. @default num_train_epochs × prompts */
  total_episodes: z.number().int().positive().optional(),
  /** β of the per-token KL penalty (TRL 0.05; InstructGPT 0.02). */
  kl_coef: z.number().min(0).default(0.05),
  kl_estimator: z.enum(['k1', 'k3']).default('k1'),
  /** Adapt β towards a target KL (Ziegler et al. 2019; older TRL adap_kl_ctrl / target / horizon). */
  adap_kl_ctrl: z.boolean().default(false),
  target: z.number().positive().default(6),
  horizon: z.number().positive().default(10000),
  cliprange: z.number().positive().default(0.2),
  vf_coef: z.number().min(0).default(0.1),
  cliprange_value: z.number().positive().default(0.2),
  gamma: z.number().min(0).max(1).default(1),
  lam: z.number().min(0).max(1).default(0.95),
  whiten_rewards: z.boolean().default(false),
  /** max_new_tokens of a rollout. */
  response_length: z.number().int().positive().default(53),
  temperature: z.number().positive().default(0.7),
  /** Completions end at EOS (the only stop token TRL's PPOConfig knows). */
  stop_token: z.literal('eos').default('eos'),
  /** The reference policy of the KL penalty. @default model_name_or_path (as loaded) */
  sft_model_path: z.string().optional(),
  /** A reward model directory (`rm train`): the score, and the value model's initialisation. */
  reward_model_path: z.string().optional(),
  /** The value model's start. @default reward_model_path, else the policy's decoder + a fresh head */
  value_model_path: z.string().optional(),
  /** Rows per forward of the rollout-time passes (old / reference log-probs, values). */
  local_rollout_forward_batch_size: z.number().int().positive().default(64),
  /** PPO-ptx: a plain text file of pretraining data (one document per line). */
  ptx_file: z.string().optional(),
  /** γ of PPO-ptx (InstructGPT 27.8); 0 = plain PPO. */
  ptx_coef: z.number().min(0).default(0),
  /** Pretraining rows (of max_length tokens) per micro-batch. @default per_device_train_batch_size */
  ptx_batch_size: z.number().int().positive().optional(),
});
export type PPOConfig = z.infer<typeof PPOConfig>;

/** Parses a PPOConfig; unknown keys and wrong types are ConfigErrors naming the field. */
export function parsePpoConfig(raw: unknown, file?: string): PPOConfig {
  const cfg = parseConfig(PPOConfig, raw, { file });
  if (!cfg.reward_model_path && !cfg.reward_funcs)
    throw new ConfigError('PPO needs a reward: set reward_model_path or reward_funcs', {
      file,
      field: 'reward_model_path',
    });
  // Keys of the shared TrainingArguments that PPO cannot honour are refused, not ignored.
  if (cfg.eval_file !== undefined)
    throw new ConfigError(
      'PPO has no eval pass over a file; score held-out prompts after training (scripts/ppo_heldout.ts)',
      { file, field: 'eval_file' },
    );
  if (cfg.max_steps > 0)
    throw new ConfigError('PPO counts its run in total_episodes, not max_steps', {
      file,
      field: 'max_steps',
    });
  if (cfg.ptx_coef > 0 && !cfg.ptx_file)
    throw new ConfigError('ptx_coef > 0 needs a ptx_file of pretraining text', {
      file,
      field: 'ptx_file',
    });
  return cfg;
}

/** Metrics logged per step (TRL names). */
export const PPO_METRICS = [
  'objective/kl',
  'objective/entropy',
  'objective/non_score_reward',
  'objective/scores',
  'objective/rlhf_reward',
  'objective/kl_coef',
  'policy/clipfrac_avg',
  'policy/approxkl_avg',
  'loss/policy_avg',
  'loss/value_avg',
  'val/clipfrac_avg',
  'val/ratio',
  'val/num_eos_tokens',
  'completions/mean_length',
] as const;

const VALUE_PREFIX = 'value_model.';
const ROLLOUT_FLOATS = ['old_logprobs', 'advantages', 'old_values', 'returns'] as const;
const PTX_INPUTS = TRAIN_INPUTS.map((n) => `ptx_${n}`);

/** Policy + value model as one trainable model for the loop (TRL's PolicyAndValueWrapper). */
export class PolicyAndValue implements TrainableModel {
  constructor(
    readonly policy: CausalLM,
    readonly value: RewardModel,
  ) {}
  get spec() {
    return this.policy.spec;
  }
  get tokenizer() {
    return this.policy.tokenizer;
  }
  get lora() {
    return this.policy.lora;
  }
  attachLora(lora: LoraSpec, seed: number): void {
    this.policy.attachLora(lora, seed);
  }
  allWeights(): [string, HostTensor][] {
    return [
      ...this.policy.allWeights(),
      ...this.value.allWeights().map(([n, t]): [string, HostTensor] => [VALUE_PREFIX + n, t]),
    ];
  }
  setWeights(values: ReadonlyMap<string, ArrayLike<number>>): void {
    const p = new Map<string, ArrayLike<number>>();
    const v = new Map<string, ArrayLike<number>>();
    for (const [n, d] of values)
      if (n.startsWith(VALUE_PREFIX)) v.set(n.slice(VALUE_PREFIX.length), d);
      else p.set(n, d);
    this.policy.setWeights(p);
    this.value.setWeights(v);
  }
  paramSpecs(opts: { lora?: boolean }): ParamSpec[] {
    return [
      ...this.policy.paramSpecs(opts),
      ...this.value.paramSpecs({}).map((s) => ({ ...s, name: VALUE_PREFIX + s.name })),
    ];
  }
  /** The policy as an HF causal LM in `dir`, the value model in `dir/value_model`. */
  async save(dir: string): Promise<unknown> {
    await this.policy.save(dir);
    return this.value.save(join(dir, 'value_model'));
  }
  async saveAdapter(dir: string, opts: { baseModel?: string | null }): Promise<void> {
    await this.policy.saveAdapter(dir, opts);
    await this.value.save(join(dir, 'value_model'));
  }
}

/** A prompt of the training file. */
export interface PpoPrompt {
  prompt: string;
  ids: number[];
  record: Record<string, unknown>;
  index: number;
}

/**
 * Reads prompt-only records (a string or, with a chat template, a conversational message list,
 * as GRPO reads them); a line without one, or whose prompt leaves no room for the response, is a
 * DataError naming file and line.
 */
export async function loadPpoPrompts(
  file: string,
  encode: (s: string) => number[],
  maxPromptTokens: number,
  renderChat?: (messages: ChatMessage[]) => string,
): Promise<PpoPrompt[]> {
  const out: PpoPrompt[] = [];
  for (const { text, record, line } of await loadPrompts(file, 'prompt', renderChat)) {
    const ids = encode(text);
    if (ids.length === 0)
      throw new DataError('the prompt encodes to no tokens', { file, line, field: 'prompt' });
    if (ids.length > maxPromptTokens)
      throw new DataError(
        `the prompt has ${ids.length} tokens; with response_length it exceeds max_length (room for ${maxPromptTokens})`,
        { file, line, field: 'prompt' },
        { hint: 'raise max_length or lower response_length' },
      );
    out.push({ prompt: text, ids, record, index: out.length });
  }
  return out;
}

/**
 * The PPO step graph: policy token log-probs (logits / temperature, as at rollout) and per-token
 * values on the same rows, the clipped losses, and PPO-ptx's LM loss on its own rows.
 */
export function ppoForward(
  policySpec: CausalLM['spec'],
  valueSpec: RewardModel['spec'],
  cfg: Pick<PPOConfig, 'cliprange' | 'cliprange_value' | 'vf_coef' | 'temperature' | 'ptx_coef'>,
  o: { lora?: LoraSpec; recompute: boolean },
): ForwardBuilder {
  return (g, params) => {
    const weight =
      (prefix: string): Weights =>
      (n) => {
        const v = params[prefix + n];
        if (!v) throw new ConfigError(`the model has no weight '${prefix + n}'`, { field: n });
        return v;
      };
    const inp = tokenLogpInputs(g);
    const dropoutSeed =
      o.lora && o.lora.dropout > 0 ? g.input('dropout_seed', 'int64', []) : undefined;
    const logprobs = tokenLogps(
      policySpec,
      weight(''),
      { ...inp, dropoutSeed },
      { lora: o.lora, recompute: o.recompute, temperature: cfg.temperature },
    );
    const values = tokenHeadForward(
      valueSpec,
      REWARD_HEAD,
      weight(VALUE_PREFIX),
      { ids: inp.ids, positions: inp.positions, bias: segmentMask(inp.segments) },
      { recompute: o.recompute },
    );
    const f = (n: string) => g.input(n, 'float32', ['B', 'T']);
    const mask = cast(not(equal(inp.targets, IGNORE_INDEX)), 'float32');
    const out = ppoLoss(
      {
        logprobs,
        oldLogprobs: f('old_logprobs'),
        advantages: f('advantages'),
        values,
        oldValues: f('old_values'),
        returns: f('returns'),
        mask,
      },
      { cliprange: cfg.cliprange, cliprangeValue: cfg.cliprange_value, vfCoef: cfg.vf_coef },
    );
    const outputs: Record<string, Var> = { ...out.metrics };
    let loss = out.loss;
    if (cfg.ptx_coef > 0) {
      const [ids, positions, segments, targets] = PTX_INPUTS.map((n) =>
        g.input(n, 'int64', ['P', 'S']),
      ) as [Var, Var, Var, Var];
      const lp = tokenLogps(
        policySpec,
        weight(''),
        { ids, positions, segments, targets, dropoutSeed },
        { lora: o.lora, recompute: o.recompute, temperature: 1 },
      );
      const l = ptxLoss(lp, cast(not(equal(targets, IGNORE_INDEX)), 'float32'), cfg.ptx_coef);
      outputs['loss/ptx_avg'] = l;
      loss = add(loss, l);
    }
    return { loss, outputs };
  };
}

/** Per-token values [B·T] of rows under a value model, compiled once (no gradient). */
class ValueRunner {
  #session: Promise<Session> | undefined;
  constructor(readonly value: RewardModel) {}
  async run(feeds: Record<string, Tensor>): Promise<Float32Array> {
    const ws = this.value.allWeights();
    this.#session ??= (() => {
      const g = new Graph({ name: 'ppo-values' });
      const params = new Map<string, Var>();
      for (const [n, t] of ws) params.set(n, g.input(n, 'float32', t.shape));
      const inp = tokenLogpInputs(g);
      g.output(
        'values',
        tokenHeadForward(this.value.spec, REWARD_HEAD, (n) => params.get(n)!, {
          ids: inp.ids,
          positions: inp.positions,
          bias: segmentMask(inp.segments),
        }),
      );
      return createSession(g);
    })();
    const s = await this.#session;
    const all: Record<string, Tensor> = {};
    for (const [n, t] of ws) all[n] = tensor('float32', t.shape, t.data);
    for (const n of TRAIN_INPUTS) all[n] = feeds[n]!;
    // `targets` is declared by tokenLogpInputs but unused by the value graph.
    return (await s.run(all, ['values'])).values!.data as Float32Array;
  }
  async release(): Promise<void> {
    if (this.#session) await (await this.#session).release();
  }
}

/** Pretraining rows for PPO-ptx: documents (lines) + EOS, concatenated, cut into rows. */
export function ptxRows(
  text: string,
  encode: (s: string) => number[],
  eosId: number,
  rowLength: number,
): PackedRow[] {
  const stream: number[] = [];
  for (const line of text.split('\n')) if (line.trim() !== '') stream.push(...encode(line), eosId);
  const rows: PackedRow[] = [];
  for (let i = 0; i + 2 <= stream.length; i += rowLength) {
    const ids = stream.slice(i, i + rowLength);
    rows.push({
      ids,
      targets: ids.map((_, j) => (j + 1 < ids.length ? ids[j + 1]! : IGNORE_INDEX)),
      positions: ids.map((_, j) => j),
      segments: ids.map(() => 0),
      lossTokens: ids.length - 1,
    });
  }
  return rows;
}

/** One iteration's rollout data on the host (grid [B, T] of prompt + completion rows). */
interface Batch {
  iteration: number;
  rows: PackedRow[];
  T: number;
  oldLogprobs: Float32Array;
  values: Float32Array;
  advantages: Float64Array;
  returns: Float64Array;
  metrics: Record<string, number>;
}

export interface PpoResult extends LoopResult {
  iterations: number;
  episodes: number;
}

/**
 * PPO training (`instructkit ppo`). Writes the policy to output_dir (its value model to
 * output_dir/value_model), metrics.jsonl with TRL's names, and checkpoints at iteration
 * boundaries (save_steps must be a multiple of the updates per iteration, so a resumed run
 * samples its next rollout from exactly the weights the uninterrupted run did).
 */
export async function trainPpo(cfg: PPOConfig, deps: LoopDeps = {}): Promise<PpoResult> {
  const policy = await CausalLM.load(cfg.model_name_or_path);
  const valuePath = cfg.value_model_path ?? cfg.reward_model_path;
  const value = valuePath
    ? await RewardModel.load(valuePath)
    : RewardModel.fromCausalLM(policy, cfg.seed);
  if (value.lora) value.mergeAdapter();
  const model = new PolicyAndValue(policy, value);
  const { tok, eosId, padId } = specialIds(model, cfg);
  if (cfg.response_length >= cfg.max_length)
    throw new ConfigError(
      `response_length ${cfg.response_length} leaves no room for a prompt in max_length ${cfg.max_length}`,
      { field: 'response_length' },
    );
  const prompts = await loadPpoPrompts(
    cfg.train_file,
    (s) => tok.encode(s),
    cfg.max_length - cfg.response_length,
    chatPromptRenderer(tok),
  );
  if (prompts.length === 0) throw new DataError('no prompts', { file: cfg.train_file });

  // ---- schedule: iterations of rollout + E × M updates ---------------------------------------
  const accum = cfg.gradient_accumulation_steps;
  const perMini = cfg.per_device_train_batch_size * accum;
  const batchSize = perMini * cfg.num_mini_batches;
  const episodes = cfg.total_episodes ?? Math.ceil(cfg.num_train_epochs * prompts.length);
  const iterations = Math.max(1, Math.ceil(episodes / batchSize));
  const updatesPerIteration = cfg.num_ppo_epochs * cfg.num_mini_batches;
  if (cfg.save_steps !== undefined && cfg.save_steps % updatesPerIteration !== 0)
    throw new ConfigError(
      `save_steps ${cfg.save_steps} is not a multiple of the ${updatesPerIteration} updates of one PPO iteration (num_ppo_epochs × num_mini_batches)`,
      { field: 'save_steps' },
      { hint: 'a checkpoint mid-iteration could not resume the same rollout' },
    );

  // ---- reference, reward, PPO-ptx ------------------------------------------------------------
  // The reference: sft_model_path, or the starting policy. Under LoRA it is the base with the
  // adapter disabled (no copy); otherwise a frozen copy of the starting weights.
  const refWeights: [string, HostTensor][] = cfg.sft_model_path
    ? (await CausalLM.load(cfg.sft_model_path)).allWeights()
    : cfg.use_peft
      ? [...policy.weights]
      : policy.allWeights().map(([n, t]) => [n, { shape: t.shape, data: t.data.slice() }]);
  const sources: RewardSource[] = [];
  if (cfg.reward_model_path) sources.push(await modelReward(resolve(cfg.reward_model_path)));
  if (cfg.reward_funcs)
    sources.push(...(await loadRewardSources(cfg.reward_funcs, dirname(resolve(cfg.train_file)))));
  const ptx =
    cfg.ptx_coef > 0 && cfg.ptx_file
      ? ptxRows(readFileSync(cfg.ptx_file, 'utf8'), (s) => tok.encode(s), eosId, cfg.max_length)
      : [];
  if (cfg.ptx_coef > 0 && ptx.length === 0)
    throw new DataError('no pretraining text (need at least two tokens)', {
      file: cfg.ptx_file,
    });
  const ptxPerMicro = cfg.ptx_batch_size ?? cfg.per_device_train_batch_size;
  const ptxOrder = new Rng(`${cfg.seed}/ptx`).shuffle(ptx.map((_, i) => i));

  // β per iteration, kept beside the checkpoints so an adaptive β resumes where it was.
  const klPath = join(cfg.output_dir, 'ppo_kl_coef.json');
  const klHistory: number[] =
    cfg.resume_from_checkpoint && existsSync(klPath)
      ? (JSON.parse(readFileSync(klPath, 'utf8')) as number[])
      : [];
  const kl = new KlController(
    cfg.kl_coef,
    cfg.adap_kl_ctrl ? { target: cfg.target, horizon: cfg.horizon } : undefined,
  );

  let runners: { old: TokenLogpRunner; ref: TokenLogpRunner; values: ValueRunner } | undefined;
  let batch: Batch | undefined;
  let order: { pass: number; idx: number[] } | undefined;

  const rollout = async (it: number, ctx: PrepareContext<PpoPrompt>): Promise<Batch> => {
    await ctx.sync();
    runners ??= {
      old: new TokenLogpRunner(policy.spec, () => policy.allWeights(), {
        lora: policy.lora?.spec,
        temperature: cfg.temperature,
      }),
      ref: new TokenLogpRunner(policy.spec, () => refWeights, { temperature: cfg.temperature }),
      values: new ValueRunner(value),
    };
    // The iteration's prompts: episodes it·batch .. (it+1)·batch − 1 of a stream of seeded
    // shuffles of the prompt set (one shuffle per pass), so every iteration has a full batch
    // whatever the number of prompts.
    const items = Array.from({ length: batchSize }, (_, j) => {
      const e = it * batchSize + j;
      const pass = Math.floor(e / prompts.length);
      if (order?.pass !== pass)
        order = {
          pass,
          idx: new Rng(`${cfg.seed}/prompts/${pass}`).shuffle(prompts.map((_, i) => i)),
        };
      return prompts[order.idx[e % prompts.length]!]!;
    });
    const rs = await sampleRollouts(
      policy,
      items.map((p) => p.ids),
      {
        num_generations: 1,
        max_completion_length: cfg.response_length,
        temperature: cfg.temperature,
        eosId,
        seed: `${cfg.seed}/ppo/${it}`,
      },
    );
    const rows = rs.map((r) => rolloutRow(r));
    const { feeds, T } = rolloutFeeds(rows, padId, cfg.max_length);
    const B = rows.length;
    const chunk = async (f: (x: Record<string, Tensor>) => Promise<Float32Array>) => {
      const out = new Float32Array(B * T);
      const n = cfg.local_rollout_forward_batch_size;
      for (let b = 0; b < B; b += n) {
        const sub = Object.fromEntries(
          TRAIN_INPUTS.map((name) => {
            const t = feeds[name]!;
            const d = (t.data as BigInt64Array).subarray(b * T, Math.min(B, b + n) * T);
            return [name, tensor('int64', [d.length / T, T], d)];
          }),
        );
        out.set(await f(sub), b * T);
      }
      return out;
    };
    const oldLogprobs = await chunk((x) => runners!.old.run(x));
    const refLogprobs = await chunk((x) => runners!.ref.run(x));
    const values = await chunk((x) => runners!.values.run(x));
    const scored = await scoreRewards(
      sources,
      rs.map((r, i) => ({
        prompt: items[i]!.prompt,
        completion: r.text,
        record: items[i]!.record,
        index: items[i]!.index,
        eos: r.eos,
      })),
      { weights: cfg.reward_weights, missing_eos_penalty: cfg.missing_eos_penalty },
    );
    const tgt = feeds.targets!.data as BigInt64Array;
    const mask = Float64Array.from(tgt, (t) => (t === BigInt(IGNORE_INDEX) ? 0 : 1));
    kl.value = klHistory[it] ?? kl.value;
    klHistory[it] = kl.value;
    const t = ppoTargets(
      { B, T, mask },
      {
        logprobs: oldLogprobs,
        refLogprobs,
        values,
        scores: scored.total,
        klCoef: kl.value,
        estimator: cfg.kl_estimator,
        gamma: cfg.gamma,
        lam: cfg.lam,
        whitenRewards: cfg.whiten_rewards,
      },
    );
    const comp = completionMetrics(rs);
    const metrics = {
      ...t.metrics,
      'objective/kl_coef': kl.value,
      'val/num_eos_tokens': rs.filter((r) => r.eos).length,
      'completions/mean_length': comp['completions/mean_length']!,
    };
    kl.update(t.metrics['objective/kl']!, B);
    klHistory[it + 1] = kl.value;
    writeFileSync(`${klPath}.tmp`, JSON.stringify(klHistory));
    renameSync(`${klPath}.tmp`, klPath);
    return {
      iteration: it,
      rows,
      T,
      oldLogprobs,
      values,
      advantages: t.advantages,
      returns: t.returns,
      metrics,
    };
  };

  const microFeeds = (b: Batch, rowIdx: readonly number[], k: number): Collated => {
    const rows = rowIdx.map((i) => b.rows[i]!);
    const { feeds, T, tokens } = rolloutFeeds(rows, padId, cfg.max_length);
    const src: Record<(typeof ROLLOUT_FLOATS)[number], ArrayLike<number>> = {
      old_logprobs: b.oldLogprobs,
      advantages: b.advantages,
      old_values: b.values,
      returns: b.returns,
    };
    const out: Record<string, Tensor> = { ...feeds };
    for (const name of ROLLOUT_FLOATS) {
      const d = new Float32Array(rows.length * T);
      rowIdx.forEach((i, r) => {
        for (let t = 0; t < T; t++) d[r * T + t] = src[name][i * b.T + t]!;
      });
      out[name] = tensor('float32', [rows.length, T], d);
    }
    if (ptx.length > 0) {
      const p = Array.from(
        { length: ptxPerMicro },
        (_, j) => ptx[ptxOrder[(k * ptxPerMicro + j) % ptx.length]!]!,
      );
      const pf = rolloutFeeds(p, padId, cfg.max_length).feeds;
      TRAIN_INPUTS.forEach((n, i) => {
        out[PTX_INPUTS[i]!] = pf[n]!;
      });
    }
    const lossTokens = rows.reduce((s, r) => s + r.lossTokens, 0);
    return { feeds: out, weight: lossTokens, tokens, metrics: b.metrics };
  };

  const prepare = async (ctx: PrepareContext<PpoPrompt>): Promise<Collated[]> => {
    const it = Math.floor(ctx.step / updatesPerIteration);
    if (batch?.iteration !== it) batch = await rollout(it, ctx);
    const u = ctx.step % updatesPerIteration;
    const epoch = Math.floor(u / cfg.num_mini_batches);
    const mini = u % cfg.num_mini_batches;
    // TRL shuffles the batch afresh for every PPO epoch.
    const perm = new Rng(`${cfg.seed}/ppo/${it}/epoch/${epoch}`).shuffle(
      batch.rows.map((_, i) => i),
    );
    const b = batch;
    return Array.from({ length: accum }, (_, j) => {
      const start = mini * perMini + j * cfg.per_device_train_batch_size;
      const idx = perm.slice(start, start + cfg.per_device_train_batch_size);
      return microFeeds(b, idx, ctx.step * accum + j);
    });
  };

  try {
    const r = await runTraining({
      name: 'ppo',
      cfg: { ...cfg, max_steps: iterations * updatesPerIteration },
      config: cfg,
      model,
      train: prompts,
      collate: () => {
        throw new ConfigError('PPO batches are prepared online', { field: 'train_file' });
      },
      prepare,
      forward: (o) => ppoForward(policy.spec, value.spec, cfg, o),
      metrics: [...PPO_METRICS, ...(cfg.ptx_coef > 0 ? ['loss/ptx_avg'] : [])],
      deps,
    });
    return { ...r, iterations, episodes: iterations * batchSize };
  } finally {
    if (runners) {
      await runners.old.release();
      await runners.ref.release();
      await runners.values.release();
    }
    for (const s of sources) await s.close?.();
  }
}
