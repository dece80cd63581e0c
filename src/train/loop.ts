// The one training loop every trainer (SFT, reward model, DPO, ORPO, ...) runs on, as TRL's
// trainers share transformers' Trainer. A trainer brings three things: its zod config (TRL names,
// extending TRAINING_ARGUMENTS), a collator (records → the feeds of one micro-batch, with a weight
// and a token count) and a forward builder (graph → loss plus named metric outputs). The loop owns
// the rest: LoRA setup, the engine trainer in its worker, LR schedule, accumulation, averaged
// metrics in metrics.jsonl, eval, checkpoints with exact resume, and the final model / adapter.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { Graph } from '../engine/graph.ts';
import { type ParamSpec, ParamStore } from '../engine/params.ts';
import { createSession, type Session, type Tensor, tensor } from '../engine/runtime.ts';
import type { Feeds, Trainer } from '../engine/step.ts';
import { createTrainer } from '../engine/step.ts';
import type { ForwardBuilder } from '../engine/step-graph.ts';
import { createWorkerTrainer } from '../engine/worker.ts';
import type { ModelSpec } from '../models/config.ts';
import type { LoraSpec } from '../models/decoder.ts';
import { SafetensorsReader, writeSafetensors } from '../models/safetensors.ts';
import type { HostTensor } from '../models/tensor.ts';
import type { Tokenizer } from '../models/tokenizer.ts';
import { ConfigError, TrainingError } from '../util/errors.ts';
import { DurableJsonlAppender } from '../util/jsonl.ts';
import { hashString } from '../util/rng.ts';
import { epochBatches } from './data.ts';
import { type TrainProgress, trainProgress } from './progress.ts';

/**
 * transformers TrainingArguments / TRL keys every trainer shares. A trainer's config is
 * `z.strictObject({ ...TRAINING_ARGUMENTS, ...its own keys })`, overriding defaults that differ
 * (RewardConfig's learning_rate 1e-4, DPOConfig's 1e-6, ...).
 */
export const TRAINING_ARGUMENTS = {
  /** HF model directory to start from. */
  model_name_or_path: z.string(),
  train_file: z.string(),
  eval_file: z.string().optional(),
  output_dir: z.string(),
  learning_rate: z.number().positive().default(2e-5),
  num_train_epochs: z.number().positive().default(3),
  /** Overrides num_train_epochs when > 0. */
  max_steps: z.number().int().default(-1),
  per_device_train_batch_size: z.number().int().positive().default(8),
  gradient_accumulation_steps: z.number().int().positive().default(1),
  max_length: z.number().int().positive().default(1024),
  lr_scheduler_type: z
    .enum(['linear', 'cosine', 'constant', 'constant_with_warmup'])
    .default('linear'),
  warmup_steps: z.number().int().min(0).default(0),
  warmup_ratio: z.number().min(0).max(1).default(0),
  weight_decay: z.number().min(0).default(0),
  adam_beta1: z.number().min(0).max(1).default(0.9),
  adam_beta2: z.number().min(0).max(1).default(0.999),
  adam_epsilon: z.number().positive().default(1e-8),
  max_grad_norm: z.number().positive().default(1),
  logging_steps: z.number().int().positive().default(10),
  eval_steps: z.number().int().positive().optional(),
  save_steps: z.number().int().positive().optional(),
  /** Continue from the newest checkpoint-N in output_dir (true) or from a given checkpoint dir. */
  resume_from_checkpoint: z.union([z.boolean(), z.string()]).default(false),
  seed: z.number().int().default(42),
  use_peft: z.boolean().default(false),
  lora_r: z.number().int().positive().default(16),
  lora_alpha: z.number().positive().default(32),
  lora_dropout: z.number().min(0).max(1).default(0.05),
  lora_target_modules: z
    .array(z.string())
    .default(['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']),
  use_rslora: z.boolean().default(false),
  gradient_checkpointing: z.boolean().default(false),
  /** Run the engine in a worker thread (keeps the event loop free for progress output). */
  use_worker: z.boolean().default(true),
  /** What to do on a NaN/Inf loss: stop with an error naming the step, or skip the update. */
  nan_policy: z.enum(['error', 'skip']).default('error'),
  /** Print progress to stderr. */
  disable_tqdm: z.boolean().default(false),
};

const TrainingArgumentsSchema = z.strictObject(TRAINING_ARGUMENTS);
/** The parsed shared keys (what the loop reads from any trainer's config). */
export type TrainingArguments = z.infer<typeof TrainingArgumentsSchema>;

/** What the loop needs of a model: CausalLM, RewardModel, ... */
export interface TrainableModel {
  readonly spec: ModelSpec;
  readonly tokenizer: Tokenizer | null;
  readonly lora: { spec: LoraSpec; tensors: ReadonlyMap<string, HostTensor> } | null;
  attachLora(lora: LoraSpec, seed: number): void;
  allWeights(): [string, HostTensor][];
  setWeights(values: ReadonlyMap<string, ArrayLike<number>>): void;
  paramSpecs(opts: { lora?: boolean }): ParamSpec[];
  save(dir: string): Promise<unknown>;
  saveAdapter(dir: string, opts: { baseModel?: string | null }): Promise<void>;
}

/** One micro-batch from a collator. */
export interface Collated {
  feeds: Feeds;
  /**
   * This micro-batch's share of the step's gradient and of averaged metrics: tokens in the loss
   * (SFT), prompts (reward model), pairs (DPO). A step's micro-batches are weighted w / Σw.
   */
  weight: number;
  /** Tokens fed, for throughput. */
  tokens: number;
  /**
   * Metrics computed outside the graph (online trainers: rewards, completion lengths), logged
   * under the spec's metric names like forward outputs and averaged with the same weights.
   */
  metrics?: Record<string, number>;
}

/** What an online trainer's `prepare` gets each step. */
export interface PrepareContext<Item> {
  /** The step about to run (0-based global step). */
  step: number;
  /** Micro-batches per step (gradient_accumulation_steps). */
  accumulation: number;
  /** The items of micro-batch k (= step · accumulation + j), from the seeded epoch order. */
  microBatch(k: number): Item[];
  /**
   * Brings the trainer's current parameters into the model's weights: one copy out of the
   * engine, and only when an update (or a resume) happened since the last one.
   */
  sync(): Promise<void>;
}

/** How the forward is built: for training, or for evaluation (no dropout, no backward). */
export interface ForwardOptions {
  lora?: LoraSpec;
  recompute: boolean;
  /** False for evaluation: the builder must leave every dropout off. */
  training: boolean;
}

/** One logged line of metrics.jsonl (TRL / transformers names). */
export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  grad_norm: number;
  learning_rate: number;
  tokens_per_s: number;
  eval_loss?: number;
  /** The trainer's metrics (window means) and their eval_ twins. */
  [metric: string]: number | undefined;
}

/** Hooks for tests and callers. */
export interface LoopDeps {
  /** Called after every logged step. */
  onLog?: (log: StepLog) => void;
  /** Stop after this many steps (the rest of the run is as configured); for tests. */
  stopAfter?: number;
}

/** A trainer plugged into the loop. */
export interface LoopSpec<M extends TrainableModel, Item> {
  /** Trainer name: graph name and `<name>_config.json`. */
  name: string;
  cfg: TrainingArguments;
  /** The full config as written to `<name>_config.json`. */
  config: unknown;
  model: M;
  train: readonly Item[];
  eval?: readonly Item[];
  collate: (items: readonly Item[]) => Collated;
  forward: (o: ForwardOptions) => ForwardBuilder;
  /**
   * Online data (GRPO, PPO): the step's micro-batches built from the current weights, instead
   * of collating the step's items. Must be a function of (seed, step) and the weights, so a
   * resumed run repeats it exactly.
   */
  prepare?: (ctx: PrepareContext<Item>) => Promise<Collated[]>;
  /** Forward outputs (scalars) averaged over micro-batches and logged under their names. */
  metrics?: readonly string[];
  deps?: LoopDeps;
}

export interface LoopResult {
  steps: number;
  finalLoss: number;
  evalLoss?: number;
  /** The last eval's metrics (eval_loss, eval_<metric>). */
  evalMetrics?: Record<string, number>;
  logs: StepLog[];
  outputDir: string;
}

/** The LoRA spec of a config (attaching a fresh adapter unless the model came with one). */
export function setupLora(model: TrainableModel, cfg: TrainingArguments): LoraSpec | undefined {
  if (!cfg.use_peft) return undefined;
  if (!model.lora)
    model.attachLora(
      {
        r: cfg.lora_r,
        alpha: cfg.lora_alpha,
        dropout: cfg.lora_dropout,
        targets: new Set(cfg.lora_target_modules),
        rslora: cfg.use_rslora,
      },
      cfg.seed,
    );
  // An adapter the model came with (e.g. loaded from a PEFT directory) is the one trained.
  return model.lora!.spec;
}

/** EOS and pad ids every trainer needs; a tokenizer without EOS is a ConfigError. */
export function specialIds(
  model: TrainableModel,
  cfg: TrainingArguments,
): { tok: Tokenizer; eosId: number; padId: number } {
  const tok = model.tokenizer;
  if (!tok)
    throw new ConfigError(`${cfg.model_name_or_path} has no tokenizer`, {
      field: 'model_name_or_path',
    });
  const eosId =
    tok.eos?.id ?? (typeof model.spec.eosTokenId === 'number' ? model.spec.eosTokenId : undefined);
  if (eosId === undefined)
    throw new ConfigError(
      'the tokenizer has no EOS token; training needs one to learn where to stop',
      { field: 'eos_token' },
    );
  if (cfg.max_length > model.spec.maxPositions) {
    throw new ConfigError(
      `max_length ${cfg.max_length} exceeds the model's context of ${model.spec.maxPositions}`,
      { field: 'max_length' },
    );
  }
  return { tok, eosId, padId: tok.pad?.id ?? eosId };
}

function latestCheckpoint(dir: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const steps = readdirSync(dir)
    .map((n) => /^checkpoint-(\d+)$/.exec(n))
    .filter(
      (m): m is RegExpExecArray => m !== null && existsSync(join(dir, m[0], 'trainer_state.json')),
    )
    .map((m) => Number(m[1]));
  if (steps.length === 0) return undefined;
  return join(dir, `checkpoint-${Math.max(...steps)}`);
}

/** Copies the trainer's parameters into the model's weights (and adapter). */
async function syncWeights(trainer: Trainer, model: TrainableModel): Promise<void> {
  const store = await trainer.readParams();
  const values = new Map<string, Float32Array>();
  for (const v of store.layout.views) values.set(v.name, store.get(v.name));
  model.setWeights(values);
}

const scalarOf = (t: Tensor | undefined): number => {
  if (!t) return Number.NaN;
  const d = t.data as ArrayLike<number>;
  let s = 0;
  for (let i = 0; i < d.length; i++) s += Number(d[i]);
  return s / Math.max(1, d.length);
};

/** Evaluates a forward on the model's current weights; the session is compiled once. */
export interface Evaluator<Item> {
  /**
   * Loss and metrics over `items`, without backward or dropout, each batch weighted by its
   * collated weight (batches of weight 0 are skipped).
   */
  run(items: readonly Item[]): Promise<Record<string, number>>;
  release(): Promise<void>;
}

export function evaluator<Item>(
  model: TrainableModel,
  forward: ForwardBuilder,
  collate: (items: readonly Item[]) => Collated,
  batchSize: number,
  metrics: readonly string[] = [],
): Evaluator<Item> {
  let session: Promise<Session> | undefined;
  const compile = (): Promise<Session> => {
    const g = new Graph({ name: 'eval' });
    const params: Record<string, ReturnType<Graph['input']>> = {};
    for (const [name, t] of model.allWeights()) params[name] = g.input(name, 'float32', t.shape);
    const r = forward(g, params);
    g.output('loss', r.loss);
    for (const m of metrics) {
      const v = r.outputs?.[m];
      if (!v) throw new ConfigError(`the forward has no output '${m}'`, { field: m });
      g.output(m, v);
    }
    return createSession(g);
  };
  const names = ['loss', ...metrics];
  return {
    async run(items) {
      session ??= compile();
      const s = await session;
      const weights: Record<string, Tensor> = {};
      for (const [name, t] of model.allWeights())
        weights[name] = tensor('float32', t.shape, t.data);
      const total = new Map<string, number>(names.map((n) => [n, 0]));
      let count = 0;
      for (let i = 0; i < items.length; i += batchSize) {
        const b = collate(items.slice(i, i + batchSize));
        if (b.weight === 0) continue;
        const out = await s.run({ ...weights, ...b.feeds }, names);
        for (const n of names) total.set(n, total.get(n)! + scalarOf(out[n]) * b.weight);
        count += b.weight;
      }
      return Object.fromEntries(
        names.map((n) => [n, count === 0 ? Number.NaN : total.get(n)! / count]),
      );
    },
    async release() {
      if (session) await (await session).release();
    },
  };
}

/**
 * Runs a trainer: builds the engine trainer over the model's parameters (LoRA set up from the
 * config), resumes from a checkpoint when asked, steps through shuffled epochs of micro-batches
 * with accumulation, logs window means, evaluates, checkpoints, and saves the final model (or
 * adapter) to output_dir when the run reaches its last step.
 */
export async function runTraining<M extends TrainableModel, Item>(
  spec: LoopSpec<M, Item>,
): Promise<LoopResult> {
  const { cfg, model, deps = {} } = spec;
  const metricNames = spec.metrics ?? [];
  const lora = setupLora(model, cfg);
  if (spec.train.length === 0) throw new TrainingError('no training examples');
  const evalItems = spec.eval ?? [];
  const accum = cfg.gradient_accumulation_steps;
  const batchesPerEpoch = Math.ceil(spec.train.length / cfg.per_device_train_batch_size);
  const stepsPerEpoch = Math.max(1, Math.floor(batchesPerEpoch / accum));
  const totalSteps =
    cfg.max_steps > 0 ? cfg.max_steps : Math.ceil(cfg.num_train_epochs * stepsPerEpoch);
  const epochCache = new Map<number, Item[][]>();
  const microBatch = (k: number): Item[] => {
    const epoch = Math.floor(k / (stepsPerEpoch * accum));
    let batches = epochCache.get(epoch);
    if (!batches) {
      epochCache.clear();
      batches = epochBatches(spec.train, cfg.per_device_train_batch_size, cfg.seed, epoch);
      epochCache.set(epoch, batches);
    }
    return batches[k % (stepsPerEpoch * accum)]!;
  };

  // ---- engine ------------------------------------------------------------------------------
  const params = ParamStore.create(model.paramSpecs({ lora: cfg.use_peft }), { seed: cfg.seed });
  const options = {
    build: spec.forward({ lora, recompute: cfg.gradient_checkpointing, training: true }),
    params,
    optimizer: {
      type: 'adamw' as const,
      learning_rate: cfg.learning_rate,
      betas: [cfg.adam_beta1, cfg.adam_beta2] as [number, number],
      eps: cfg.adam_epsilon,
      weight_decay: cfg.weight_decay,
    },
    max_grad_norm: cfg.max_grad_norm,
    schedule: {
      type: cfg.lr_scheduler_type,
      ...(cfg.warmup_steps > 0
        ? { warmup_steps: cfg.warmup_steps }
        : { warmup_ratio: cfg.warmup_ratio }),
    },
    totalSteps,
    accumulation: accum,
    nonFinite: cfg.nan_policy,
    name: spec.name,
  };
  const trainer: Trainer = cfg.use_worker
    ? await createWorkerTrainer(options)
    : await createTrainer(options);
  const needsSeed = trainer.plan.dataInputs.some((d) => d.name === 'dropout_seed');
  mkdirSync(cfg.output_dir, { recursive: true });
  writeFileSync(
    join(cfg.output_dir, `${spec.name}_config.json`),
    `${JSON.stringify(spec.config, null, 2)}\n`,
  );
  const evalRun = evaluator(
    model,
    spec.forward({
      lora: lora ? { ...lora, dropout: 0 } : undefined,
      recompute: false,
      training: false,
    }),
    spec.collate,
    cfg.per_device_train_batch_size,
    metricNames,
  );

  // ---- resume ------------------------------------------------------------------------------
  let start = 0;
  // The model's weights lag the trainer's parameters after an update or a load.
  let stale = false;
  const sync = async (): Promise<void> => {
    if (!stale) return;
    await syncWeights(trainer, model);
    stale = false;
  };
  const resumeDir =
    cfg.resume_from_checkpoint === true
      ? latestCheckpoint(cfg.output_dir)
      : cfg.resume_from_checkpoint || undefined;
  if (resumeDir) {
    const st = JSON.parse(readFileSync(join(resumeDir, 'trainer_state.json'), 'utf8')) as {
      global_step: number;
      skipped: number;
    };
    const reader = await SafetensorsReader.open(join(resumeDir, 'optimizer.safetensors'));
    const slots: Record<string, Float32Array> = {};
    for (const name of reader.names())
      if (name !== 'params') slots[name] = (await reader.read(name)).data;
    const p = (await reader.read('params')).data;
    reader.close();
    await trainer.load({ step: st.global_step, skipped: st.skipped, params: p, slots });
    start = st.global_step;
    stale = true;
  }

  // ---- loop --------------------------------------------------------------------------------
  const metricsPath = join(cfg.output_dir, 'metrics.jsonl');
  keepMetricsUpTo(metricsPath, start);
  const metricsLog = new DurableJsonlAppender(metricsPath);
  const logs: StepLog[] = [];
  const bar: TrainProgress = trainProgress({
    total: totalSteps,
    start,
    enabled: !cfg.disable_tqdm,
  });
  const freshWindow = () => ({
    loss: 0,
    n: 0,
    tokens: 0,
    t0: performance.now(),
    m: new Map<string, number>(metricNames.map((k) => [k, 0])),
  });
  let window = freshWindow();
  let last: StepLog | undefined;
  let evalLast: Record<string, number> | undefined;
  const stopAt =
    deps.stopAfter !== undefined ? Math.min(totalSteps, start + deps.stopAfter) : totalSteps;
  try {
    for (let step = start; step < stopAt; step++) {
      const prepared = spec.prepare
        ? await spec.prepare({ step, accumulation: accum, microBatch, sync })
        : undefined;
      if (prepared && prepared.length !== accum)
        throw new TrainingError(`prepare gave ${prepared.length} micro-batches for ${accum}`, step);
      const micro = Array.from({ length: accum }, (_, j) => {
        const k = step * accum + j;
        const b = prepared ? prepared[j]! : spec.collate(microBatch(k));
        // Dropout masks (LoRA's, the model's) are a function of this seed: reproducible,
        // different every micro-batch. Fed whenever the trainer's forward declared the input.
        if (needsSeed)
          b.feeds = {
            ...b.feeds,
            dropout_seed: tensor(
              'int64',
              [],
              BigInt64Array.of(BigInt(hashString(`${cfg.seed}/dropout/${k}`))),
            ),
          };
        return b;
      });
      const totalWeight = micro.reduce((s, m) => s + m.weight, 0);
      const weights = micro.map((m) => m.weight / Math.max(1, totalWeight));
      const r = await trainer.step(
        micro.map((m) => m.feeds),
        { weights },
      );
      stale = true;
      window.loss += r.loss;
      window.n++;
      window.tokens += micro.reduce((s, m) => s + m.tokens, 0);
      for (const name of metricNames) {
        // Per micro-batch metrics, weighted as the gradient is.
        let v = 0;
        r.microOutputs.forEach((o, i) => {
          const x = o[name] ? scalarOf(o[name]) : (micro[i]!.metrics?.[name] ?? Number.NaN);
          v += (accum === 1 ? 1 : weights[i]!) * x;
        });
        window.m.set(name, window.m.get(name)! + v);
      }
      const done = step + 1;
      const elapsed = (performance.now() - window.t0) / 1000;
      bar.update(done, { loss: r.loss, tokensPerS: window.tokens / Math.max(1e-3, elapsed) });
      const isLog = done % cfg.logging_steps === 0 || done === totalSteps;
      const isEval =
        evalItems.length > 0 &&
        ((cfg.eval_steps !== undefined && done % cfg.eval_steps === 0) || done === totalSteps);
      if (isEval) {
        await sync();
        const e = await evalRun.run(evalItems);
        evalLast = Object.fromEntries(Object.entries(e).map(([k, v]) => [`eval_${k}`, v]));
      }
      if (isLog || isEval) {
        last = {
          step: done,
          epoch: done / stepsPerEpoch,
          loss: window.loss / window.n,
          grad_norm: r.gradNorm,
          learning_rate: r.lr,
          tokens_per_s: window.tokens / Math.max(1e-3, elapsed),
          ...Object.fromEntries(metricNames.map((k) => [k, window.m.get(k)! / window.n])),
          ...(isEval ? evalLast : {}),
        };
        logs.push(last);
        metricsLog.append(last);
        deps.onLog?.(last);
        window = freshWindow();
      }
      if (cfg.save_steps !== undefined && done % cfg.save_steps === 0 && done < totalSteps) {
        await saveTrainerCheckpoint(trainer, join(cfg.output_dir, `checkpoint-${done}`));
      }
    }
    await sync();
  } finally {
    bar.stop();
    metricsLog.close();
    await trainer.release();
    await evalRun.release();
  }
  if (stopAt === totalSteps) {
    if (model.lora) await model.saveAdapter(cfg.output_dir, { baseModel: cfg.model_name_or_path });
    else await model.save(cfg.output_dir);
  }
  return {
    steps: stopAt,
    finalLoss: last?.loss ?? Number.NaN,
    ...(evalLast !== undefined ? { evalLoss: evalLast.eval_loss, evalMetrics: evalLast } : {}),
    logs,
    outputDir: cfg.output_dir,
  };
}

/**
 * A fresh run starts a new metrics log; a resumed one keeps the lines up to the step it resumes
 * from (a killed run may have logged past its last checkpoint), so the file reads as one run.
 */
function keepMetricsUpTo(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => {
      if (step === 0 || l.trim() === '') return false;
      try {
        const logged = (JSON.parse(l) as { step?: unknown }).step;
        return typeof logged === 'number' && logged <= step;
      } catch {
        return false; // a line torn by the kill
      }
    });
  writeFileSync(path, kept.map((l) => `${l}\n`).join(''));
}

/** Writes optimizer state and trainer_state.json; the directory appears complete or not at all. */
async function saveTrainerCheckpoint(trainer: Trainer, dir: string): Promise<void> {
  const tmp = `${dir}.tmp`;
  mkdirSync(tmp, { recursive: true });
  const st = await trainer.state();
  const tensors: [string, { shape: number[]; data: Float32Array }][] = [
    ['params', { shape: [st.params.length], data: st.params }],
  ];
  for (const [k, v] of Object.entries(st.slots)) tensors.push([k, { shape: [v.length], data: v }]);
  await writeSafetensors(join(tmp, 'optimizer.safetensors'), tensors);
  writeFileSync(
    join(tmp, 'trainer_state.json'),
    `${JSON.stringify({ global_step: st.step, skipped: st.skipped }, null, 2)}\n`,
  );
  const { renameSync, rmSync } = await import('node:fs');
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
}
