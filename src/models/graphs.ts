// The graph variants every other stage runs on a model, all on decoder.ts's skeleton:
// (a) the training forward (packed examples with block-diagonal masks, or padded rows; HF
// labels shifted in-graph with ignore_index −100 → mean loss, token log-probs, token count);
// (b) scoring (log p of given next tokens, greedy agreement, top-k alternatives);
// (c) the cached decode step (past keys/values in, last-position logits and present out);
// plus all-position logits for tests. Sessions, weights and batching are model.ts's job.
import { causalAllowed, MASK_MIN, segmentMask } from '../engine/attention.ts';
import { linearCrossEntropy, linearTokenLogProbs } from '../engine/composite.ts';
import type { Graph, Var } from '../engine/graph.ts';
import {
  add,
  and,
  arange,
  cast,
  dimValue,
  equal,
  gather,
  gatherElements,
  logSoftmax,
  minimum,
  not,
  or,
  reduceSum,
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
  /**
   * 'segments': `segment_ids` [B, T], block-diagonal causal attention for packed examples
   * (give padding its own id); 'attention_mask': HF 0/1 padding mask [B, T] + causal.
   * @default 'segments'
   */
  mask?: 'segments' | 'attention_mask';
  /**
   * 'labels': HF `labels` [B, T], unshifted (the graph predicts labels[t+1] at t, never across
   * a segment boundary); 'targets': `targets` [B, T] already aligned with the inputs.
   * @default 'labels'
   */
  labels?: 'labels' | 'targets';
  /** Also output `token_logprobs` [B, T] (0 where ignored). @default false */
  tokenLogprobs?: boolean;
  /** Apply the spec's embedding / residual dropout (needs `dropout_seed`). @default false */
  modelDropout?: boolean;
}

/** ignore_index of the loss (torch / HF). */
export const IGNORE_INDEX = -100;

/** Next-token targets from HF labels [B, T]: labels[t+1], −100 at the end and across segments. */
function shiftLabels(labels: Var, segments: Var | undefined): Var {
  const g = labels.graph;
  const T = labels.shape[1]!;
  const t = arange(g, T, 'int64'); // [T]
  const lastT = add(dimValue(g, T, 'int64'), -1);
  const next = minimum(add(t, 1), lastT); // [T], clamped so the gather stays in range
  let drop = equal(t, lastT); // [T]
  if (segments) drop = or(drop, not(equal(gather(segments, next, 1), segments))); // [B,T]
  return where(drop, IGNORE_INDEX, gather(labels, next, 1)); // [B,T]
}

/** Additive bias [B, 1, T, T]: causal, keys dropped where attention_mask [B, T] is 0. */
export function paddedCausalBias(attentionMask: Var): Var {
  const g = attentionMask.graph;
  const keep = unsqueeze(equal(attentionMask, 1), [1]); // [B,T] -> [B,1,T(k)]
  const allowed = and(keep, causalAllowed(g, attentionMask.shape[1]!)); // [B,T(q),T(k)]
  return unsqueeze(where(allowed, g.scalar(0), g.scalar(MASK_MIN)), [1]); // [B,1,T,T]
}

/**
 * The training forward as an engine ForwardBuilder (for createTrainer / planTrainer).
 * Inputs [B, T] int64: input_ids, position_ids, segment_ids or attention_mask, labels or
 * targets; `dropout_seed` (int64 scalar) when a dropout is on. Outputs: the mean loss over
 * non-ignored targets, `num_tokens` (their count, float32) and optionally `token_logprobs`.
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
    const ids = g.input('input_ids', 'int64', ['B', 'T']);
    const positions = g.input('position_ids', 'int64', ['B', 'T']);
    const maskKind = opts.mask ?? 'segments';
    const maskIn = g.input(maskKind === 'segments' ? 'segment_ids' : 'attention_mask', 'int64', [
      'B',
      'T',
    ]);
    const bias = maskKind === 'segments' ? segmentMask(maskIn) : paddedCausalBias(maskIn);
    const labelKind = opts.labels ?? 'labels';
    const labelIn = g.input(labelKind, 'int64', ['B', 'T']);
    const targets =
      labelKind === 'labels'
        ? shiftLabels(labelIn, maskKind === 'segments' ? maskIn : undefined)
        : labelIn;
    const wantsSeed =
      (opts.lora !== undefined && opts.lora.dropout > 0) ||
      (opts.modelDropout === true && Math.max(spec.embdDropout, spec.residDropout) > 0);
    const dropoutSeed = wantsSeed ? g.input('dropout_seed', 'int64', []) : undefined;
    const out = decoderForward(
      spec,
      w,
      { ids, positions, bias, dropoutSeed },
      { lora: opts.lora, recompute: opts.recompute, modelDropout: opts.modelDropout },
    );
    const h = out.hidden.reshape([-1, spec.hiddenSize]); // [B,T,D] -> [B·T,D]
    const t = targets.reshape([-1]); // [B,T] -> [B·T]
    const head = lmHeadWeight(spec, w);
    const loss = linearCrossEntropy(h, head, t, { ignoreIndex: IGNORE_INDEX });
    const outputs: Record<string, Var> = {
      num_tokens: reduceSum(cast(not(equal(t, IGNORE_INDEX)), 'float32')),
    };
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
