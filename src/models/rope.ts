// Rotary position embeddings for the LLaMA family, computed in the graph from the position ids
// as transformers does (angle = position · inv_freq in float32, then cos / sin), so no
// [maxPositions, Dh] table is stored in any graph. Static scalings (linear, llama3) come from
// rope-config.ts's inverse frequencies; dynamic NTK rescales the base from the longest position
// of the current call. The rotation itself is the engine's rope() (HF rotate_half layout).
import type { Var } from '../engine/graph.ts';
import {
  add,
  cast,
  concat,
  exp,
  log,
  maximum,
  mul,
  pow,
  reduceMax,
  sub,
  unsqueeze,
} from '../engine/ops.ts';
import { ShapeError } from '../util/errors.ts';
import type { ModelSpec } from './config.ts';
import { cos, sin } from './graph-ops.ts';
import { ropeInvFreq } from './rope-config.ts';

/**
 * cos and sin [B, 1, S, Dh] for positions [B, S] (int64), broadcasting over heads; both halves
 * of the last dim repeat the Dh/2 angles (rotate_half pairs i with i + Dh/2).
 */
export function ropeCosSin(spec: ModelSpec, positions: Var): { cos: Var; sin: Var } {
  const rope = spec.rope;
  if (!rope) throw new ShapeError('rope', `${spec.modelType} has no rotary embeddings`);
  const g = positions.graph;
  const dh = spec.headDim;
  const half = dh / 2;
  const pos = unsqueeze(cast(positions, 'float32'), [-1]); // [B,S] -> [B,S,1]
  let inv: Var; // [Dh/2]
  const s = rope.scaling;
  if (s?.type === 'dynamic') {
    // NTK-aware scaling (transformers' _compute_dynamic_ntk_parameters): beyond the original
    // context L0, base' = base · (factor·L/L0 − (factor − 1))^(Dh/(Dh−2)), L = max position + 1.
    const l0 = s.originalMaxPositions ?? spec.maxPositions;
    const len = maximum(add(reduceMax(pos), 1), l0); // scalar
    const ratio = sub(mul(len, s.factor / l0), s.factor - 1);
    const base = mul(pow(ratio, dh / (dh - 2)), rope.theta);
    const expo = Float32Array.from({ length: half }, (_, i) => (-2 * i) / dh);
    inv = exp(mul(log(base), g.constant(expo, [half]))); // base'^(−2i/Dh)
  } else {
    inv = g.constant(Float32Array.from(ropeInvFreq(rope, dh)), [half]);
  }
  const angles = mul(pos, inv); // [B,S,1] · [Dh/2] -> [B,S,Dh/2]
  const full = concat([angles, angles], -1); // [B,S,Dh/2] -> [B,S,Dh]
  return {
    cos: unsqueeze(cos(full), [1]), // [B,S,Dh] -> [B,1,S,Dh]
    sin: unsqueeze(sin(full), [1]),
  };
}
