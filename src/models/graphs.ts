// The graph variants every other stage runs on a model, all on decoder.ts's skeleton:
// (a) the training forward (packed examples with block-diagonal masks, targets aligned by the
// data stage, ignore_index −100 → mean loss, optional token log-probs);
// (b) scoring (log p of given next tokens, greedy agreement, top-k alternatives);
// (c) the cached decode step (past keys/values in, last-position logits and present out);
// plus all-position logits for tests. Sessions and weights are lm.ts's, batching decoding.ts's.
import { causalAllowed, MASK_MIN, segmentMask } from '../engine/attention.ts';
import { linearCrossEntropy, linearTokenLogProbs } from '../engine/composite.ts';
import type { Graph, Var } from '../engine/graph.ts';
import {
  and,
  cast,
  equal,
  gatherElements,
  logSoftmax,
  squeeze,
  unsqueeze,
  where,
} from '../engine/ops.ts';
import type { ForwardBuilder } from '../engine/step-graph.ts';
import { ConfigError } from '../util/errors.ts';
import type { ModelSpec } from './config.ts';
import { decoderForward, type KvPair, lmHeadWeight, type Weights } from './decoder.ts';
import { topK } from './graph-ops.ts';
import type { LoraSpec } from './lora.ts';

/** Options of the training forward. */
export interface TrainingForwardOptions {
  /** Adapter drawn into the projections (its dropout needs the `dropout_seed` input). */
  lora?: LoraSpec;
  /** Recompute block activations in the backward pass. @default false */
  recompute?: boolean;
  /** Also output `token_logprobs` [B, T] (0 where ignored). @default false */
  tokenLogprobs?: boolean;
  /** Apply the spec's embedding, residual and attention dropout (needs `dropout_seed`). @default false */
  modelDropout?: boolean;
}

/** ignore_index of the loss (torch / HF). */
export const IGNORE_INDEX = -100;

/**
 * Graph inputs of the training forward, all [B, T] int64: token ids, positions (restarting
 * per packed example), segment ids (block-diagonal causal attention; give padding its own id)
 * and next-token targets aligned with the inputs (−100 where no loss is taken; train/data.ts
 * never lets a target cross an example boundary).
 */
export const TRAIN_INPUTS = ['input_ids', 'position_ids', 'segment_ids', 'targets'] as const;

/** Additive bias [B, 1, T, T]: causal, keys dropped where attention_mask [B, T] is 0. */
export function paddedCausalBias(attentionMask: Var): Var {
  const g = attentionMask.graph;
  const keep = unsqueeze(equal(attentionMask, 1), [1]); // [B,T] -> [B,1,T(k)]
  const allowed = and(keep, causalAllowed(g, attentionMask.shape[1]!)); // [B,T(q),T(k)]
  return unsqueeze(where(allowed, g.scalar(0), g.scalar(MASK_MIN)), [1]); // [B,1,T,T]
}

/** Whether the training forward of `spec` with `opts` has a `dropout_seed` input to feed. */
export function trainingNeedsDropoutSeed(spec: ModelSpec, opts: TrainingForwardOptions): boolean {
  return (
    (opts.lora !== undefined && opts.lora.dropout > 0) ||
    (opts.modelDropout === true &&
      Math.max(spec.embdDropout, spec.residDropout, spec.attentionDropout) > 0)
  );
}

/**
 * The training forward as an engine ForwardBuilder (for createTrainer / planTrainer), on the
 * TRAIN_INPUTS plus `dropout_seed` (int64 scalar) when a dropout is on. The loss is the mean
 * next-token cross-entropy over non-ignored targets; `token_logprobs` optionally.
 */
export function trainingForward(
  spec: ModelSpec,
  opts: TrainingForwardOptions = {},
): ForwardBuilder {
  return (g, params) => {
    const w: Weights = (n) => {
      const v = params[n];
      if (!v) throw new ConfigError(`the model has no weight '${n}'`, { field: n });
      return v;
    };
    const [ids, positions, segments, targets] = TRAIN_INPUTS.map((n) =>
      g.input(n, 'int64', ['B', 'T']),
    ) as [Var, Var, Var, Var];
    const dropoutSeed = trainingNeedsDropoutSeed(spec, opts)
      ? g.input('dropout_seed', 'int64', [])
      : undefined;
    const out = decoderForward(
      spec,
      w,
      { ids, positions, bias: segmentMask(segments), dropoutSeed },
      { lora: opts.lora, recompute: opts.recompute, modelDropout: opts.modelDropout },
    );
    const h = out.hidden.reshape([-1, spec.hiddenSize]); // [B,T,D] -> [B·T,D]
    const t = targets.reshape([-1]); // [B,T] -> [B·T]
    const head = lmHeadWeight(spec, w);
    const loss = linearCrossEntropy(h, head, t, { ignoreIndex: IGNORE_INDEX });
    const outputs: Record<string, Var> = {};
    if (opts.tokenLogprobs)
      outputs.token_logprobs = linearTokenLogProbs(h, head, t, IGNORE_INDEX).reshape(['B', 'T']); // [B·T] -> [B,T]
    return { loss, outputs };
  };
}

/** Input names of the inference graphs, shared by the decode loop, scoring and the server. */
export const DECODE_IO = {
  ids: 'input_ids',
  positions: 'position_ids',
  bias: 'attn_bias',
  targets: 'targets',
  logits: 'logits',
  pastKey: (l: number) => `past.${l}.key`,
  pastValue: (l: number) => `past.${l}.value`,
  presentKey: (l: number) => `present.${l}.key`,
  presentValue: (l: number) => `present.${l}.value`,
} as const;

/** Inference graph options: the adapter (unmerged) the projections carry. */
export interface InferenceGraphOptions {
  lora?: LoraSpec;
}

/**
 * Cached decoding: S new tokens [B, S] after P cached ones. Inputs input_ids, position_ids
 * [B, S], attn_bias [B, 1, S, P+S], past.{l}.key/value [B, Hkv, P, Dh] (P may be 0: prefill);
 * outputs logits [B, V] of the last new token and present.{l}.key/value [B, Hkv, P+S, Dh].
 */
export function buildDecodeGraph(
  g: Graph,
  spec: ModelSpec,
  w: Weights,
  opts: InferenceGraphOptions = {},
): void {
  const { numKvHeads: Hkv, headDim: Dh } = spec;
  const ids = g.input(DECODE_IO.ids, 'int64', ['B', 'S']);
  const positions = g.input(DECODE_IO.positions, 'int64', ['B', 'S']);
  const bias = g.input(DECODE_IO.bias, 'float32', ['B', 1, 'S', 'P+S']);
  const past: KvPair[] = [];
  for (let l = 0; l < spec.numLayers; l++)
    past.push({
      k: g.input(DECODE_IO.pastKey(l), 'float32', ['B', Hkv, 'P', Dh]),
      v: g.input(DECODE_IO.pastValue(l), 'float32', ['B', Hkv, 'P', Dh]),
    });
  const out = decoderForward(spec, w, { ids, positions, bias, past }, { lora: opts.lora });
  const last = squeeze(out.hidden.slice(1, -1), [1]); // [B,S,D] -> [B,1,D] -> [B,D]
  g.output(DECODE_IO.logits, last.matmul(lmHeadWeight(spec, w), { transB: true })); // [B,D] -> [B,V]
  out.present.forEach((kv, l) => {
    g.output(DECODE_IO.presentKey(l), kv.k);
    g.output(DECODE_IO.presentValue(l), kv.v);
  });
}

/**
 * Scoring: for input_ids [B, T] with attn_bias [B, 1, T, T] and targets [B, T] (the token
 * that follows each position), outputs logprobs [B, T] = log p(targets[t] | ids[..t]),
 * is_greedy [B, T] (1 where targets[t] is the argmax, lowest id on ties, as lm-eval's
 * is_greedy), argmax and max_logprob [B, T]; with topK > 0 also top_ids / top_logprobs [B, T, k].
 */
export function buildScoreGraph(
  g: Graph,
  spec: ModelSpec,
  w: Weights,
  opts: InferenceGraphOptions & { topK?: number } = {},
): void {
  const ids = g.input(DECODE_IO.ids, 'int64', ['B', 'T']);
  const positions = g.input(DECODE_IO.positions, 'int64', ['B', 'T']);
  const bias = g.input(DECODE_IO.bias, 'float32', ['B', 1, 'T', 'T']);
  const targets = g.input(DECODE_IO.targets, 'int64', ['B', 'T']);
  const out = decoderForward(spec, w, { ids, positions, bias }, { lora: opts.lora });
  const logits = out.hidden.matmul(lmHeadWeight(spec, w), { transB: true }); // [B,T,D] -> [B,T,V]
  const lp = logSoftmax(logits, -1); // [B,T,V]
  const picked = squeeze(gatherElements(lp, unsqueeze(targets, [-1]), -1), [-1]); // [B,T,1] -> [B,T]
  const best = topK(lp, Math.max(1, opts.topK ?? 0)); // [B,T,k]
  const argmax = squeeze(best.indices.slice(-1, 0, 1), [-1]); // [B,T,1] -> [B,T]
  g.output('logprobs', picked);
  g.output('is_greedy', cast(equal(argmax, targets), 'int64'));
  g.output('argmax', argmax);
  g.output('max_logprob', squeeze(best.values.slice(-1, 0, 1), [-1]));
  if ((opts.topK ?? 0) > 0) {
    g.output('top_ids', best.indices);
    g.output('top_logprobs', best.values);
  }
}

/** All-position logits [B, T, V] for input_ids / position_ids [B, T] and attn_bias [B, 1, T, T]. */
export function buildLogitsGraph(
  g: Graph,
  spec: ModelSpec,
  w: Weights,
  opts: InferenceGraphOptions = {},
): void {
  const ids = g.input(DECODE_IO.ids, 'int64', ['B', 'T']);
  const positions = g.input(DECODE_IO.positions, 'int64', ['B', 'T']);
  const bias = g.input(DECODE_IO.bias, 'float32', ['B', 1, 'T', 'T']);
  const out = decoderForward(spec, w, { ids, positions, bias }, { lora: opts.lora });
  g.output(DECODE_IO.logits, out.hidden.matmul(lmHeadWeight(spec, w), { transB: true })); // [B,T,D] -> [B,T,V]
}
