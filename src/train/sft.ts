// Supervised fine-tuning (and, with the loss on every token, language-model pretraining) of an
// instructkit CausalLM: config → model (+ optional LoRA) → tokenised, packed data → one engine
// trainer (forward, loss, backward, clip, AdamW in one graph, in a worker thread) → loop with
// logging, eval loss, checkpoints and exact resume → final model (and PEFT adapter) on disk.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { parseConfig } from '../data/config.ts';
import { ParamStore } from '../engine/params.ts';
import { tensor } from '../engine/runtime.ts';
import type { Trainer } from '../engine/step.ts';
import { createTrainer } from '../engine/step.ts';
import { createWorkerTrainer } from '../engine/worker.ts';
import type { LoraSpec } from '../models/decoder.ts';
import { trainingNeedsDropoutSeed } from '../models/graphs.ts';
import { CausalLM } from '../models/lm.ts';
import { SafetensorsReader, writeSafetensors } from '../models/safetensors.ts';
import { ConfigError, TrainingError } from '../util/errors.ts';
import { DurableJsonlAppender } from '../util/jsonl.ts';
import { hashString } from '../util/rng.ts';
import {
  batchFeeds,
  epochBatches,
  type PackedRow,
  packExamples,
  type TokenizedExample,
} from './data.ts';
import { evalLoss } from './eval-loss.ts';
import {
  type ExampleSource,
  instructionFormat,
  loadExamples,
  tryInstructionFormat,
} from './examples.ts';
import { type TrainProgress, trainProgress } from './progress.ts';

export const SftConfig = z.strictObject({
  /** HF model directory to start from. */
  model_name_or_path: z.string(),
  /** Training data: JSONL / JSON / Parquet (prompt/completion, instruction, chat, task, {text}) or .txt. */
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
  packing: z.boolean().default(false),
  /**
   * How {instruction, input, output} records are rendered: 'alpaca' (ALPACA_LAYOUT prompt),
   * 'chat' (through the model's chat template), or a Jinja template of the prompt over
   * instruction and input, e.g. "{{ instruction }}{% if input %}\n\n{{ input }}{% endif %}\nAnswer:".
   * The output is the completion.
   */
  instruction_template: z
    .string()
    .min(1)
    .default('alpaca')
    .superRefine((v, ctx) => {
      const r = tryInstructionFormat(v);
      if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: r });
    }),
  /** Loss on completion / assistant tokens only; false trains on every token (pretraining). */
  completion_only_loss: z.boolean().default(true),
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
  /**
   * Train with the model's own dropout rates from its config.json (GPT-2's embd_pdrop /
   * resid_pdrop / attn_pdrop, LLaMA / Qwen's attention_dropout), as transformers does in
   * train mode. Masks are seeded per micro-batch from `seed`; evaluation never drops.
   */
  model_dropout: z.boolean().default(false),
  /** Run the engine in a worker thread (keeps the event loop free for progress output). */
  use_worker: z.boolean().default(true),
  /** What to do on a NaN/Inf loss: stop with an error naming the step, or skip the update. */
  nan_policy: z.enum(['error', 'skip']).default('error'),
  /** Print progress to stderr. */
  disable_tqdm: z.boolean().default(false),
});
export type SftConfig = z.infer<typeof SftConfig>;

/** Parses an SFT config; unknown keys and wrong types are ConfigErrors naming the field. */
export function parseSftConfig(raw: unknown, file?: string): SftConfig {
  return parseConfig(SftConfig, raw, { file });
}

export interface StepLog {
  step: number;
  epoch: number;
  loss: number;
  grad_norm: number;
  learning_rate: number;
  tokens_per_s: number;
  eval_loss?: number;
}

export interface SftResult {
  steps: number;
  finalLoss: number;
  evalLoss?: number;
  logs: StepLog[];
  outputDir: string;
  model: CausalLM;
  truncated: number;
  trainRows: number;
}

export interface SftDeps {
  /** A model already in memory (instead of loading model_name_or_path). */
  model?: CausalLM;
  /** In-memory examples (instead of reading train_file / eval_file). */
  train?: ExampleSource;
  eval?: ExampleSource;
  /** Called after every logged step. */
  onLog?: (log: StepLog) => void;
  /** Stop after this many steps (the rest of the run is as configured); for tests. */
  stopAfter?: number;
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
async function syncWeights(trainer: Trainer, lm: CausalLM): Promise<void> {
  const store = await trainer.readParams();
  const values = new Map<string, Float32Array>();
  for (const v of store.layout.views) values.set(v.name, store.get(v.name));
  lm.setWeights(values);
}

async function saveModel(lm: CausalLM, dir: string, cfg: SftConfig): Promise<void> {
  if (lm.lora) {
    await lm.saveAdapter(dir, { baseModel: cfg.model_name_or_path });
    return;
  }
  await lm.save(dir);
}

/**
 * Runs SFT (or pretraining, with completion_only_loss false) and returns the trained model.
 * @example await trainSft(parseSftConfig({ model_name_or_path: 'tiny', train_file: 'sft.jsonl', output_dir: 'out' }));
 */
export async function trainSft(cfg: SftConfig, deps: SftDeps = {}): Promise<SftResult> {
  const lm = deps.model ?? (await CausalLM.load(cfg.model_name_or_path));
  const tok = lm.tokenizer;
  if (!tok)
    throw new ConfigError(`${cfg.model_name_or_path} has no tokenizer`, {
      field: 'model_name_or_path',
    });
  const eosId =
    tok.eos?.id ?? (typeof lm.spec.eosTokenId === 'number' ? lm.spec.eosTokenId : undefined);
  if (eosId === undefined)
    throw new ConfigError(
      'the tokenizer has no EOS token; training needs one to learn where to stop',
      { field: 'eos_token' },
    );
  const padId = tok.pad?.id ?? eosId;
  if (cfg.max_length > lm.spec.maxPositions) {
    throw new ConfigError(
      `max_length ${cfg.max_length} exceeds the model's context of ${lm.spec.maxPositions}`,
      { field: 'max_length' },
    );
  }

  let lora: LoraSpec | undefined;
  if (cfg.use_peft) {
    lora = {
      r: cfg.lora_r,
      alpha: cfg.lora_alpha,
      dropout: cfg.lora_dropout,
      targets: new Set(cfg.lora_target_modules),
      rslora: cfg.use_rslora,
    };
    if (!lm.lora) lm.attachLora(lora, cfg.seed);
    // An adapter the model came with (e.g. loaded from a PEFT directory) is the one trained.
    lora = lm.lora!.spec;
  }

  // ---- data --------------------------------------------------------------------------------
  const tokOpts = {
    completionOnly: cfg.completion_only_loss,
    eosId,
    instructionFormat: instructionFormat(cfg.instruction_template),
  };
  const trainEx: TokenizedExample[] = await loadExamples(
    deps.train ?? cfg.train_file,
    tok,
    tokOpts,
    lm.tokenizer?.chatTemplate ?? null,
  );
  const packed = packExamples(trainEx, cfg.max_length, cfg.packing);
  if (packed.rows.length === 0)
    throw new TrainingError('no training examples left after tokenisation');
  const evalSrc = deps.eval ?? cfg.eval_file;
  const evalRows: PackedRow[] = evalSrc
    ? packExamples(
        await loadExamples(evalSrc, tok, tokOpts, lm.tokenizer?.chatTemplate ?? null),
        cfg.max_length,
        cfg.packing,
      ).rows
    : [];
  const batchesPerEpoch = Math.ceil(packed.rows.length / cfg.per_device_train_batch_size);
  const stepsPerEpoch = Math.max(1, Math.floor(batchesPerEpoch / cfg.gradient_accumulation_steps));
  const totalSteps =
    cfg.max_steps > 0 ? cfg.max_steps : Math.ceil(cfg.num_train_epochs * stepsPerEpoch);
  const epochCache = new Map<number, PackedRow[][]>();
  const microBatch = (k: number): PackedRow[] => {
    const epoch = Math.floor(k / (stepsPerEpoch * cfg.gradient_accumulation_steps));
    let batches = epochCache.get(epoch);
    if (!batches) {
      epochCache.clear();
      batches = epochBatches(packed.rows, cfg.per_device_train_batch_size, cfg.seed, epoch);
      epochCache.set(epoch, batches);
    }
    return batches[k % (stepsPerEpoch * cfg.gradient_accumulation_steps)]!;
  };

  // ---- engine ------------------------------------------------------------------------------
  const params = ParamStore.create(lm.paramSpecs({ lora: cfg.use_peft }), { seed: cfg.seed });
  const needsSeed = trainingNeedsDropoutSeed(lm.spec, { lora, modelDropout: cfg.model_dropout });
  const options = {
    build: lm.trainingBuilder({
      lora,
      recompute: cfg.gradient_checkpointing,
      modelDropout: cfg.model_dropout,
    }),
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
    accumulation: cfg.gradient_accumulation_steps,
    nonFinite: cfg.nan_policy,
    name: 'sft',
  };
  const trainer: Trainer = cfg.use_worker
    ? await createWorkerTrainer(options)
    : await createTrainer(options);
  mkdirSync(cfg.output_dir, { recursive: true });
  writeFileSync(join(cfg.output_dir, 'sft_config.json'), `${JSON.stringify(cfg, null, 2)}\n`);

  // ---- resume ------------------------------------------------------------------------------
  let start = 0;
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
  }

  // ---- loop --------------------------------------------------------------------------------
  const metricsPath = join(cfg.output_dir, 'metrics.jsonl');
  keepMetricsUpTo(metricsPath, start);
  const metrics = new DurableJsonlAppender(metricsPath);
  const logs: StepLog[] = [];
  const bar: TrainProgress = trainProgress({
    total: totalSteps,
    start,
    enabled: !cfg.disable_tqdm,
  });
  let window = { loss: 0, n: 0, tokens: 0, t0: performance.now() };
  let last: StepLog | undefined;
  let evalLast: number | undefined;
  const stopAt =
    deps.stopAfter !== undefined ? Math.min(totalSteps, start + deps.stopAfter) : totalSteps;
  try {
    for (let step = start; step < stopAt; step++) {
      const micro = Array.from({ length: cfg.gradient_accumulation_steps }, (_, j) => {
        const k = step * cfg.gradient_accumulation_steps + j;
        const b = batchFeeds(microBatch(k), padId, cfg.max_length);
        // Dropout masks (LoRA's, the model's) are a function of this seed: reproducible,
        // different every micro-batch.
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
      const lossTokens = micro.reduce((s, m) => s + m.lossTokens, 0);
      const weights = micro.map((m) => m.lossTokens / Math.max(1, lossTokens));
      const r = await trainer.step(
        micro.map((m) => m.feeds),
        { weights },
      );
      window.loss += r.loss;
      window.n++;
      window.tokens += micro.reduce((s, m) => s + m.tokens, 0);
      const done = step + 1;
      const elapsed = (performance.now() - window.t0) / 1000;
      bar.update(done, { loss: r.loss, tokensPerS: window.tokens / Math.max(1e-3, elapsed) });
      const isLog = done % cfg.logging_steps === 0 || done === totalSteps;
      const isEval =
        evalRows.length > 0 &&
        ((cfg.eval_steps !== undefined && done % cfg.eval_steps === 0) || done === totalSteps);
      if (isEval) {
        await syncWeights(trainer, lm);
        evalLast = await evalLoss(lm, evalRows, {
          batchSize: cfg.per_device_train_batch_size,
          padId,
          maxLength: cfg.max_length,
          lora,
        });
      }
      if (isLog || isEval) {
        last = {
          step: done,
          epoch: done / stepsPerEpoch,
          loss: window.loss / window.n,
          grad_norm: r.gradNorm,
          learning_rate: r.lr,
          tokens_per_s: window.tokens / Math.max(1e-3, elapsed),
          ...(isEval ? { eval_loss: evalLast } : {}),
        };
        logs.push(last);
        metrics.append(last);
        deps.onLog?.(last);
        window = { loss: 0, n: 0, tokens: 0, t0: performance.now() };
      }
      if (cfg.save_steps !== undefined && done % cfg.save_steps === 0 && done < totalSteps) {
        await saveTrainerCheckpoint(trainer, join(cfg.output_dir, `checkpoint-${done}`));
      }
    }
    await syncWeights(trainer, lm);
  } finally {
    bar.stop();
    metrics.close();
    await trainer.release();
  }
  if (stopAt === totalSteps) await saveModel(lm, cfg.output_dir, cfg);
  return {
    steps: stopAt,
    finalLoss: last?.loss ?? Number.NaN,
    ...(evalLast !== undefined ? { evalLoss: evalLast } : {}),
    logs,
    outputDir: cfg.output_dir,
    model: lm,
    truncated: packed.truncated,
    trainRows: packed.rows.length,
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
