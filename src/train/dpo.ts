// DPO (and, sharing everything but the loss and the reference, ORPO in orpo.ts) on the one
// training loop (loop.ts): DPOConfig's names and defaults (TRL), preference data tokenised by
// preference-tokenize.ts, pairs collated as 2P rows (chosen rows first, then rejected), and a
// forward that sums completion-token log-probs per row and applies dpo-loss.ts. The reference:
//  - precompute_ref_log_probs: one inference pass over the data before training (the base
//    weights, adapter left out), cached on disk keyed by model and data hash, fed as `ref_logps`;
//  - LoRA: the same weights with the adapter disabled, a second forward inside the step graph
//    over the frozen base (no second copy of the weights, no backward through it);
//  - full fine-tuning: a frozen copy of the initial weights (`ref.<name>` frozen parameters).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { parseConfig } from '../data/config.ts';
import { preferencePairs } from '../data/preference.ts';
import { segmentMask } from '../engine/attention.ts';
import { linearTokenLogProbs } from '../engine/composite.ts';
import { Graph, type Var } from '../engine/graph.ts';
import { cast, equal, not, reduceSum, squeeze } from '../engine/ops.ts';
import type { ParamSpec } from '../engine/params.ts';
import { createSession, type Tensor, tensor } from '../engine/runtime.ts';
import type { ForwardBuilder } from '../engine/step-graph.ts';
import type { ModelSpec } from '../models/config.ts';
import { decoderForward, type LoraSpec, lmHeadWeight, type Weights } from '../models/decoder.ts';
import { IGNORE_INDEX, TRAIN_INPUTS } from '../models/graphs.ts';
import { CausalLM } from '../models/lm.ts';
import { SafetensorsReader, writeSafetensors } from '../models/safetensors.ts';
import type { HostTensor } from '../models/tensor.ts';
import { ConfigError, TrainingError } from '../util/errors.ts';
import { newSkipReport, type SkipReport } from '../util/jsonl.ts';
import { batchFeeds, type PackedRow } from './data.ts';
import { DPO_LOSS_TYPES, dpoLoss, type LossOut, type PairLogps } from './dpo-loss.ts';
import {
  type LoopDeps,
  type LoopResult,
  runTraining,
  specialIds,
  TRAINING_ARGUMENTS,
  type TrainableModel,
  type TrainingArguments,
} from './loop.ts';
import {
  loadTokenizedPreferences,
  type PreferenceSource,
  type TokenizedPreference,
} from './preference-tokenize.ts';

/** Keys DPO and ORPO share beyond the training arguments (TRL names). */
export const PREFERENCE_ARGUMENTS = {
  ...TRAINING_ARGUMENTS,
  beta: z.number().positive().default(0.1),
  /** TRL disables dropout (model and adapter) so policy and reference see the same network. */
  disable_dropout: z.boolean().default(true),
  /** Count and list bad records (file:line) instead of stopping at the first. */
  skip_invalid: z.boolean().default(false),
};

const LossTypes = z
  .union([z.enum(DPO_LOSS_TYPES), z.array(z.enum(DPO_LOSS_TYPES)).min(1)])
  .transform((v) => (Array.isArray(v) ? v : [v]));

export const DpoConfig = z
  .strictObject({
    ...PREFERENCE_ARGUMENTS,
    learning_rate: z.number().positive().default(1e-6),
    loss_type: LossTypes.default(['sigmoid']),
    loss_weights: z.array(z.number()).optional(),
    label_smoothing: z.number().min(0).lt(0.5).default(0),
    precompute_ref_log_probs: z.boolean().default(false),
    /** Batch size of the reference pass. @default per_device_train_batch_size */
    precompute_ref_batch_size: z.number().int().positive().optional(),
    /** Where cached reference log-probs go. @default <output_dir>/ref_logps */
    ref_logps_cache_dir: z.string().optional(),
  })
  .superRefine((c, ctx) => {
    if (c.loss_weights && c.loss_weights.length !== c.loss_type.length)
      ctx.addIssue({
        code: 'custom',
        path: ['loss_weights'],
        message: `has ${c.loss_weights.length} weights for ${c.loss_type.length} loss types`,
      });
  });
export type DpoConfig = z.infer<typeof DpoConfig>;

/** Parses a DPO config; unknown keys and wrong types are ConfigErrors naming the field. */
export function parseDpoConfig(raw: unknown, file?: string): DpoConfig {
  return parseConfig(DpoConfig, raw, { file });
}

/** One training pair: shared prompt ids, chosen and rejected completion ids (EOS-ended). */
export interface PreferencePair {
  prompt: number[];
  chosen: number[];
  rejected: number[];
  /** Reference log-probs, when precomputed. */
  refChosen?: number;
  refRejected?: number;
}

/** Every untied pair of every example (a K-way ranking gives its C(K,2) less ties). */
export function toPairs(examples: readonly TokenizedPreference[]): PreferencePair[] {
  return examples.flatMap((e) =>
    preferencePairs({ prompt: '', completions: e.completions.map(() => ''), ranks: e.ranks }).map(
      ({ chosen, rejected }) => ({
        prompt: e.prompt,
        chosen: e.completions[chosen]!,
        rejected: e.completions[rejected]!,
      }),
    ),
  );
}

/** A row of prompt + completion, loss targets on the completion tokens only. */
function pairRow(prompt: readonly number[], completion: readonly number[]): PackedRow {
  const ids = [...prompt, ...completion];
  const targets = ids.map((_, i) =>
    i + 1 >= prompt.length && i + 1 < ids.length ? ids[i + 1]! : IGNORE_INDEX,
  );
  return {
    ids,
    targets,
    positions: ids.map((_, i) => i),
    segments: ids.map(() => 0),
    lossTokens: completion.length,
  };
}

/**
 * Feeds of P pairs: the TRAIN_INPUTS as [2, P, T] (chosen rows, then rejected rows), and
 * `ref_logps` [2, P] when every pair has reference log-probs. Weight = P.
 */
export function collatePairs(
  pairs: readonly PreferencePair[],
  padId: number,
  maxLength: number,
): { feeds: Record<string, Tensor>; weight: number; tokens: number } {
  const rows = [
    ...pairs.map((p) => pairRow(p.prompt, p.chosen)),
    ...pairs.map((p) => pairRow(p.prompt, p.rejected)),
  ];
  const b = batchFeeds(rows, padId, maxLength);
  const feeds: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(b.feeds))
    feeds[k] = tensor('int64', [2, pairs.length, v.shape[1]!], v.data as BigInt64Array);
  if (pairs.length > 0 && pairs.every((p) => p.refChosen !== undefined)) {
    const ref = new Float32Array(2 * pairs.length);
    pairs.forEach((p, i) => {
      ref[i] = p.refChosen!;
      ref[pairs.length + i] = p.refRejected!;
    });
    feeds.ref_logps = tensor('float32', [2, pairs.length], ref);
  }
  return { feeds, weight: pairs.length, tokens: b.tokens };
}

/** How the reference log-probs enter the step graph. */
export type ReferenceMode = 'cached' | 'adapter_disabled' | 'frozen_copy' | 'none';

/** Prefix of the frozen reference copy's parameters (full fine-tuning). */
export const REF_PREFIX = 'ref.';

export interface PreferenceForwardOptions {
  lora?: LoraSpec;
  recompute?: boolean;
  reference: ReferenceMode;
  loss: (p: PairLogps, ref: { chosen: Var; rejected: Var } | undefined) => LossOut;
}

/** Sum of target log-probs per row [R] of one decoder pass over rows [R, T]. */
function rowLogps(
  spec: ModelSpec,
  w: Weights,
  inp: { ids: Var; positions: Var; segments: Var; targets: Var; dropoutSeed?: Var },
  o: { lora?: LoraSpec; recompute?: boolean },
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
  const h = out.hidden.reshape([-1, spec.hiddenSize]); // [R,T,D] -> [R·T,D]
  const t = inp.targets.reshape([-1]); // [R,T] -> [R·T]
  const lp = linearTokenLogProbs(h, lmHeadWeight(spec, w), t, IGNORE_INDEX); // [R·T]
  return reduceSum(lp.reshape(inp.ids.shape), [1]); // [R,T] -> [R]
}

/** [2·P] → chosen [P], rejected [P] (the collator's row order). */
function halves(x: Var): [Var, Var] {
  const two = x.reshape([2, 'P']); // [2·P] -> [2,P]
  return [squeeze(two.slice(0, 0, 1), [0]), squeeze(two.slice(0, 1, 2), [0])];
}

/** Graph inputs of a preference step: the TRAIN_INPUTS as [2, P, T] (chosen, rejected). */
export const PAIR_INPUT_SHAPE = [2, 'P', 'T'] as const;

/**
 * The step graph of a preference trainer: policy log-probs per completion, the reference's (as
 * `reference` says), and `loss`. Outputs the loss's metrics.
 */
export function preferenceForward(spec: ModelSpec, o: PreferenceForwardOptions): ForwardBuilder {
  return (g, params) => {
    const w: Weights = (n) => {
      const v = params[n];
      if (!v) throw new ConfigError(`the model has no weight '${n}'`, { field: n });
      return v;
    };
    // Declared [2, P, T] so the pair dim P is bound by the feeds and the rows split exactly.
    const [ids, positions, segments, targets] = TRAIN_INPUTS.map((n) =>
      g.input(n, 'int64', PAIR_INPUT_SHAPE).reshape([-1, 'T']),
    ) as [Var, Var, Var, Var];
    const dropoutSeed =
      o.lora !== undefined && o.lora.dropout > 0 ? g.input('dropout_seed', 'int64', []) : undefined;
    const inp = { ids, positions, segments, targets, dropoutSeed };
    const policy = rowLogps(spec, w, inp, { lora: o.lora, recompute: o.recompute });
    const counts = reduceSum(cast(not(equal(targets, IGNORE_INDEX)), 'float32'), [1]); // [B]
    const [chosen, rejected] = halves(policy);
    const [chosenTokens, rejectedTokens] = halves(counts);
    let ref: Var | undefined;
    if (o.reference === 'cached') ref = g.input('ref_logps', 'float32', [2, 'P']).reshape([-1]);
    else if (o.reference === 'adapter_disabled') {
      // The frozen base alone: no adapter branch, so no trainable input and no backward.
      ref = rowLogps(spec, w, { ...inp, dropoutSeed: undefined }, {});
    } else if (o.reference === 'frozen_copy')
      ref = rowLogps(spec, (n) => w(`${REF_PREFIX}${n}`), { ...inp, dropoutSeed: undefined }, {});
    const refPair = ref ? halves(ref) : undefined;
    const out = o.loss(
      { chosen, rejected, chosenTokens, rejectedTokens },
      refPair ? { chosen: refPair[0], rejected: refPair[1] } : undefined,
    );
    return { loss: out.loss, outputs: out.metrics };
  };
}

/**
 * A CausalLM plus a frozen copy of its initial weights (`ref.<name>`), for full fine-tuning
 * against a reference. The copy is a parameter of the step graph, never trained or saved.
 */
export class WithFrozenReference implements TrainableModel {
  readonly #ref: [string, HostTensor][];
  constructor(readonly lm: CausalLM) {
    this.#ref = [...lm.weights].map(([n, t]) => [
      `${REF_PREFIX}${n}`,
      { shape: t.shape, data: t.data.slice() },
    ]);
  }
  get spec() {
    return this.lm.spec;
  }
  get tokenizer() {
    return this.lm.tokenizer;
  }
  get lora() {
    return this.lm.lora;
  }
  attachLora(lora: LoraSpec, seed: number): void {
    this.lm.attachLora(lora, seed);
  }
  allWeights(): [string, HostTensor][] {
    return [...this.lm.allWeights(), ...this.#ref];
  }
  setWeights(values: ReadonlyMap<string, ArrayLike<number>>): void {
    this.lm.setWeights(new Map([...values].filter(([n]) => !n.startsWith(REF_PREFIX))));
  }
  paramSpecs(opts: { lora?: boolean }): ParamSpec[] {
    return [
      ...this.lm.paramSpecs(opts),
      ...this.#ref.map(([name, t]) => ({
        name,
        shape: t.shape,
        init: { kind: 'data' as const, data: t.data },
        frozen: true,
      })),
    ];
  }
  save(dir: string): Promise<unknown> {
    return this.lm.save(dir);
  }
  saveAdapter(dir: string, opts: { baseModel?: string | null }): Promise<void> {
    return this.lm.saveAdapter(dir, opts);
  }
}

// ---- reference log-probs, precomputed -------------------------------------------------------

function hashFloats(h: ReturnType<typeof createHash>, a: Float32Array): void {
  h.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
}

/** SHA-256 of the reference weights (the base; an adapter is not part of the reference). */
export function modelHash(lm: CausalLM): string {
  const h = createHash('sha256');
  h.update(JSON.stringify(lm.spec));
  for (const [n, t] of [...lm.weights].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    h.update(n);
    hashFloats(h, t.data);
  }
  return h.digest('hex');
}

/** SHA-256 of the pairs' token ids (and the length they were cut to). */
export function pairsHash(pairs: readonly PreferencePair[], maxLength: number): string {
  const h = createHash('sha256');
  h.update(`max_length=${maxLength}\n`);
  for (const p of pairs)
    h.update(`${p.prompt.join(',')}|${p.chosen.join(',')}|${p.rejected.join(',')}\n`);
  return h.digest('hex');
}

/**
 * Summed completion log-probs of every pair under the reference (the model's base weights, its
 * adapter left out), in batches of `batchSize` pairs.
 */
export async function referenceLogps(
  lm: CausalLM,
  pairs: readonly PreferencePair[],
  o: { batchSize: number; padId: number; maxLength: number },
): Promise<{ chosen: Float32Array; rejected: Float32Array }> {
  const g = new Graph({ name: 'ref-logps' });
  const params: Record<string, Var> = {};
  for (const [n, t] of lm.weights) params[n] = g.input(n, 'float32', t.shape);
  const [ids, positions, segments, targets] = TRAIN_INPUTS.map((n) =>
    g.input(n, 'int64', PAIR_INPUT_SHAPE).reshape([-1, 'T']),
  ) as [Var, Var, Var, Var];
  g.output(
    'logps',
    rowLogps(lm.spec, (n) => params[n]!, { ids, positions, segments, targets }, {}),
  );
  const s = await createSession(g, lm.sessionOptions);
  const weights: Record<string, Tensor> = {};
  for (const [n, t] of lm.weights) weights[n] = tensor('float32', t.shape, t.data);
  const chosen = new Float32Array(pairs.length);
  const rejected = new Float32Array(pairs.length);
  try {
    for (let i = 0; i < pairs.length; i += o.batchSize) {
      const batch = pairs.slice(i, i + o.batchSize).map((p) => ({ ...p, refChosen: undefined }));
      const b = collatePairs(batch, o.padId, o.maxLength);
      const r = (await s.run({ ...weights, ...b.feeds }, ['logps'])).logps!.data as Float32Array;
      for (let j = 0; j < batch.length; j++) {
        chosen[i + j] = r[j]!;
        rejected[i + j] = r[batch.length + j]!;
      }
    }
  } finally {
    await s.release();
  }
  return { chosen, rejected };
}

/**
 * Sets refChosen / refRejected on every pair, from `<dir>/<model hash>-<data hash>.safetensors`
 * when present (a re-run on the same model and data computes nothing), else computed and
 * written there (atomically). Returns the file and whether it was reused.
 */
export async function attachReferenceLogps(
  lm: CausalLM,
  pairs: PreferencePair[],
  o: { batchSize: number; padId: number; maxLength: number; cacheDir: string },
): Promise<{ file: string; cached: boolean }> {
  const file = join(
    o.cacheDir,
    `${modelHash(lm).slice(0, 16)}-${pairsHash(pairs, o.maxLength).slice(0, 16)}.safetensors`,
  );
  let ref: { chosen: Float32Array; rejected: Float32Array };
  let cached = false;
  if (existsSync(file)) {
    const r = await SafetensorsReader.open(file);
    try {
      ref = { chosen: (await r.read('chosen')).data, rejected: (await r.read('rejected')).data };
    } finally {
      r.close();
    }
    if (ref.chosen.length !== pairs.length)
      throw new TrainingError(
        `${file} holds ${ref.chosen.length} reference log-probs for ${pairs.length} pairs`,
      );
    cached = true;
  } else {
    ref = await referenceLogps(lm, pairs, o);
    mkdirSync(o.cacheDir, { recursive: true });
    const tmp = `${file}.tmp`;
    await writeSafetensors(tmp, [
      ['chosen', { shape: [pairs.length], data: ref.chosen }],
      ['rejected', { shape: [pairs.length], data: ref.rejected }],
    ]);
    renameSync(tmp, file);
  }
  pairs.forEach((p, i) => {
    p.refChosen = ref.chosen[i]!;
    p.refRejected = ref.rejected[i]!;
  });
  return { file, cached };
}

// ---- the trainer -----------------------------------------------------------------------------

/** DPO's logged metrics (TRL names). */
export const DPO_METRICS = [
  'rewards/chosen',
  'rewards/rejected',
  'rewards/accuracies',
  'rewards/margins',
  'logps/chosen',
  'logps/rejected',
] as const;

export interface PreferenceDeps extends LoopDeps {
  /** A model already in memory (instead of loading model_name_or_path). */
  model?: CausalLM;
  /** In-memory preference records or examples (instead of train_file / eval_file). */
  train?: PreferenceSource;
  eval?: PreferenceSource;
}

export interface PreferenceResult extends LoopResult {
  model: CausalLM;
  /** Training pairs (a ranking contributes each untied pair). */
  pairs: number;
  /** Records skipped under skip_invalid, with their locations. */
  skipped: SkipReport;
  /** Completions cut to fit max_length. */
  truncated: number;
  reference: ReferenceMode;
  /** The reference log-probs file (precompute_ref_log_probs) and whether it was reused. */
  refCache?: { file: string; cached: boolean };
}

/** Loads model and data for a preference trainer (DPO, ORPO). */
export async function preparePreferenceRun(
  cfg: TrainingArguments & { skip_invalid: boolean; disable_dropout: boolean },
  deps: PreferenceDeps,
): Promise<{
  lm: CausalLM;
  padId: number;
  train: PreferencePair[];
  eval: PreferencePair[];
  skipped: SkipReport;
  truncated: number;
  loopCfg: TrainingArguments;
}> {
  const lm = deps.model ?? (await CausalLM.load(cfg.model_name_or_path));
  const { tok, eosId, padId } = specialIds(lm, cfg);
  const skipped = newSkipReport();
  let truncated = 0;
  const load = async (src: PreferenceSource) => {
    const r = await loadTokenizedPreferences(src, tok, {
      eosId,
      maxLength: cfg.max_length,
      chatTemplate: tok.chatTemplate,
      skipInvalid: cfg.skip_invalid,
      report: skipped,
    });
    truncated += r.truncated;
    return toPairs(r.examples);
  };
  const train = await load(deps.train ?? cfg.train_file);
  if (train.length === 0) throw new TrainingError('no preference pairs to train on');
  const evalSrc = deps.eval ?? cfg.eval_file;
  const evalPairs = evalSrc ? await load(evalSrc) : [];
  // TRL's disable_dropout: the adapter's dropout too, so policy and reference differ only by
  // the weights.
  const loopCfg = cfg.disable_dropout ? { ...cfg, lora_dropout: 0 } : cfg;
  return { lm, padId, train, eval: evalPairs, skipped, truncated, loopCfg };
}

/**
 * Direct Preference Optimization (Rafailov et al. 2023) on the shared loop.
 * @example await trainDpo(parseDpoConfig({ model_name_or_path: 'sft', train_file: 'prefs.jsonl', output_dir: 'dpo', use_peft: true }));
 */
export async function trainDpo(
  cfg: DpoConfig,
  deps: PreferenceDeps = {},
): Promise<PreferenceResult> {
  const run = await preparePreferenceRun(cfg, deps);
  const { lm, padId } = run;
  const reference: ReferenceMode = cfg.precompute_ref_log_probs
    ? 'cached'
    : cfg.use_peft
      ? 'adapter_disabled'
      : 'frozen_copy';
  let refCache: { file: string; cached: boolean } | undefined;
  if (reference === 'cached') {
    const o = {
      batchSize: cfg.precompute_ref_batch_size ?? cfg.per_device_train_batch_size,
      padId,
      maxLength: cfg.max_length,
      cacheDir: cfg.ref_logps_cache_dir ?? join(cfg.output_dir, 'ref_logps'),
    };
    refCache = await attachReferenceLogps(lm, run.train, o);
    if (run.eval.length > 0) await attachReferenceLogps(lm, run.eval, o);
  }
  const model: TrainableModel = reference === 'frozen_copy' ? new WithFrozenReference(lm) : lm;
  const r = await runTraining({
    name: 'dpo',
    cfg: run.loopCfg,
    config: cfg,
    model,
    train: run.train,
    eval: run.eval,
    collate: (pairs) => collatePairs(pairs, padId, cfg.max_length),
    forward: (o) =>
      preferenceForward(lm.spec, {
        ...o,
        reference,
        loss: (p, ref) =>
          dpoLoss(p, ref!, {
            beta: cfg.beta,
            lossTypes: cfg.loss_type,
            lossWeights: cfg.loss_weights,
            labelSmoothing: cfg.label_smoothing,
          }),
      }),
    metrics: DPO_METRICS,
    deps,
  });
  return {
    ...r,
    model: lm,
    pairs: run.train.length,
    skipped: run.skipped,
    truncated: run.truncated,
    reference,
    ...(refCache ? { refCache } : {}),
  };
}
