// Scalar heads on the decoder: a linear layer on the hidden state of each row's last non-pad
// token, as HF's *ForSequenceClassification (`score.weight`, reward models) and TRL's value
// head (`v_head.summary`, PPO) do. A head is a small declaration (weight names and shapes);
// headForward builds it on decoder.ts's skeleton, so reward and value training reuse everything.
import type { Var } from '../engine/graph.ts';
import { linear } from '../engine/nn.ts';
import {
  arange,
  expand,
  gatherElements,
  mul,
  reduceMax,
  squeeze,
  unsqueeze,
} from '../engine/ops.ts';
import { ConfigError } from '../util/errors.ts';
import type { ModelSpec } from './config.ts';
import { decoderForward, type Weights } from './decoder.ts';
import { paddedCausalBias } from './graphs.ts';
import type { LoraSpec } from './lora.ts';

/** A linear head [outputs, D] (+ bias) on the last non-pad hidden state. */
export interface ScalarHead {
  readonly weight: string;
  readonly bias: string | null;
  readonly outputs: number;
}

/** HF AutoModelForSequenceClassification with num_labels = 1 (TRL's reward model). */
export const REWARD_HEAD: ScalarHead = { weight: 'score.weight', bias: null, outputs: 1 };

/** TRL's AutoModelForCausalLMWithValueHead (PPO's critic). */
export const VALUE_HEAD: ScalarHead = {
  weight: 'v_head.summary.weight',
  bias: 'v_head.summary.bias',
  outputs: 1,
};

/** The head's parameters: name → shape (initialise the weight N(0, 1/(D+1)) as HF's score). */
export function headTensors(spec: ModelSpec, head: ScalarHead): Map<string, number[]> {
  const m = new Map<string, number[]>([[head.weight, [head.outputs, spec.hiddenSize]]]);
  if (head.bias) m.set(head.bias, [head.outputs]);
  return m;
}

/**
 * Hidden state of each row's last token with attention_mask 1: hidden [B, T, D], mask [B, T]
 * (int64 0/1, right or left padding) → [B, D]. Differentiable in hidden.
 */
export function lastTokenHidden(hidden: Var, attentionMask: Var): Var {
  const g = hidden.graph;
  const [B, T, D] = hidden.shape;
  const idx = reduceMax(mul(attentionMask, arange(g, T!, 'int64')), [1], true); // [B,T] -> [B,1]
  const rows = expand(unsqueeze(idx, [2]), [B!, 1, D!]); // [B,1] -> [B,1,D]
  return squeeze(gatherElements(hidden, rows, 1), [1]); // [B,1,D] -> [B,D]
}

/**
 * Scores [B, outputs] of input_ids [B, T] with attention_mask [B, T] (causal attention over
 * non-pad keys; positions as given). The loss on them (Bradley-Terry, value MSE) is the
 * trainer's.
 */
export function headForward(
  spec: ModelSpec,
  head: ScalarHead,
  w: Weights,
  inp: { ids: Var; positions: Var; attentionMask: Var; dropoutSeed?: Var },
  opts: { lora?: LoraSpec; recompute?: boolean } = {},
): Var {
  const bias = paddedCausalBias(inp.attentionMask);
  const out = decoderForward(
    spec,
    w,
    { ids: inp.ids, positions: inp.positions, bias, dropoutSeed: inp.dropoutSeed },
    opts,
  );
  const last = lastTokenHidden(out.hidden, inp.attentionMask); // [B,D]
  return linear(last, w(head.weight), head.bias ? w(head.bias) : undefined); // [B,D] -> [B,outputs]
}

/**
 * Per-token scores [B, T] of a one-output head (PPO's critic): the head applied to the hidden
 * state at every position, so V[b, t] values the state after token t, as TRL's value model
 * (`value_model.score(hidden)[:, context_length - 1 : -1]`) reads it. With REWARD_HEAD this is
 * the reward model read at every token, the InstructGPT / TRL initialisation of the value
 * function; headForward's last-token read is its value at the last real token.
 */
export function tokenHeadForward(
  spec: ModelSpec,
  head: ScalarHead,
  w: Weights,
  inp: { ids: Var; positions: Var; attentionMask?: Var; bias?: Var; dropoutSeed?: Var },
  opts: { lora?: LoraSpec; recompute?: boolean } = {},
): Var {
  if (head.outputs !== 1)
    throw new ConfigError(`a per-token value head has 1 output, not ${head.outputs}`, {
      field: head.weight,
    });
  // The attention bias may be given (packed / segment rows, as the policy's forward builds it).
  const bias = inp.bias ?? paddedCausalBias(inp.attentionMask!);
  const out = decoderForward(
    spec,
    w,
    { ids: inp.ids, positions: inp.positions, bias, dropoutSeed: inp.dropoutSeed },
    opts,
  );
  const v = linear(out.hidden, w(head.weight), head.bias ? w(head.bias) : undefined); // [B,T,D] -> [B,T,1]
  return squeeze(v, [2]); // [B,T,1] -> [B,T]
}
