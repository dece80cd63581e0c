// RoPE settings from config.json in both spellings: transformers v4's top-level `rope_theta` +
// `rope_scaling` ({rope_type|type, factor, ...}) and v5's `rope_parameters` ({rope_type,
// rope_theta, ...}). Supported scalings: linear (position interpolation), dynamic (NTK-aware,
// applied beyond the original context) and llama3 (Llama 3.1 frequency-band rescaling). The
// frequencies themselves are computed by ropeInvFreq for the forward builders and GGUF export.
import { ConfigError } from '../util/errors.ts';

/** RoPE frequency scaling, in our own field names. */
export type RopeScaling =
  | { readonly type: 'linear'; readonly factor: number }
  | {
      readonly type: 'dynamic';
      readonly factor: number;
      readonly originalMaxPositions: number | null;
    }
  | {
      readonly type: 'llama3';
      readonly factor: number;
      readonly lowFreqFactor: number;
      readonly highFreqFactor: number;
      readonly originalMaxPositions: number;
    };

/** RoPE base frequency and optional scaling. */
export interface RopeSpec {
  readonly theta: number;
  readonly scaling: RopeScaling | null;
}

const ALLOWED: Record<string, readonly string[]> = {
  default: [],
  linear: ['factor'],
  dynamic: ['factor', 'original_max_position_embeddings'],
  llama3: ['factor', 'low_freq_factor', 'high_freq_factor', 'original_max_position_embeddings'],
};

function num(
  o: Record<string, unknown>,
  key: string,
  field: string,
  file?: string,
  need = true,
): number | null {
  const v = o[key];
  if (v === undefined || v === null) {
    if (need) throw new ConfigError(`missing ${key}`, { file, field: `${field}.${key}` });
    return null;
  }
  if (typeof v !== 'number' || !(v > 0))
    throw new ConfigError(`${key} must be a positive number, got ${JSON.stringify(v)}`, {
      file,
      field: `${field}.${key}`,
    });
  return v;
}

/**
 * Normalise the RoPE keys of a LLaMA-family config. Both spellings may appear together (a v5
 * config re-saved by v4 code); they must then agree.
 */
export function parseRope(
  ropeTheta: number | undefined,
  ropeScaling: Record<string, unknown> | null | undefined,
  ropeParameters: Record<string, unknown> | null | undefined,
  defaultTheta: number,
  file?: string,
): RopeSpec {
  let theta = ropeTheta ?? defaultTheta;
  let scaling: Record<string, unknown> | null = ropeScaling ?? null;
  let field = 'rope_scaling';
  if (ropeParameters != null) {
    const p = ropeParameters;
    if (!('rope_type' in p) && !('rope_theta' in p))
      throw new ConfigError('per-layer-type rope_parameters are not supported', {
        file,
        field: 'rope_parameters',
      });
    const pt = p.rope_theta;
    if (pt !== undefined) {
      if (typeof pt !== 'number' || !(pt > 0))
        throw new ConfigError('rope_theta must be a positive number', {
          file,
          field: 'rope_parameters.rope_theta',
        });
      if (ropeTheta !== undefined && ropeTheta !== pt)
        throw new ConfigError(
          `rope_parameters.rope_theta ${pt} disagrees with rope_theta ${ropeTheta}`,
          {
            file,
            field: 'rope_parameters.rope_theta',
          },
        );
      theta = pt;
    }
    const prf = p.partial_rotary_factor;
    if (prf !== undefined && prf !== 1)
      throw new ConfigError('partial rotary embeddings are not supported', {
        file,
        field: 'rope_parameters.partial_rotary_factor',
      });
    const { rope_theta: _t, partial_rotary_factor: _p, ...rest } = p;
    const kind = rest.rope_type ?? rest.type ?? 'default';
    if (kind !== 'default' || Object.keys(rest).some((k) => k !== 'rope_type' && k !== 'type')) {
      if (scaling !== null && kind !== (scaling.rope_type ?? scaling.type))
        throw new ConfigError('rope_parameters and rope_scaling disagree', {
          file,
          field: 'rope_parameters.rope_type',
        });
      scaling = rest;
      field = 'rope_parameters';
    }
  }
  return { theta, scaling: scaling === null ? null : parseScaling(scaling, field, file) };
}

function parseScaling(
  s: Record<string, unknown>,
  field: string,
  file?: string,
): RopeScaling | null {
  const kind = s.rope_type ?? s.type ?? 'default';
  const typeKey = 'rope_type' in s ? 'rope_type' : 'type';
  if (typeof kind !== 'string' || !Object.hasOwn(ALLOWED, kind))
    throw new ConfigError(
      `RoPE scaling type ${JSON.stringify(kind)} is not supported`,
      { file, field: `${field}.${typeKey}` },
      {
        hint: 'supported: default, linear, dynamic, llama3',
      },
    );
  for (const k of Object.keys(s)) {
    if (k === 'rope_type' || k === 'type') continue;
    if (!ALLOWED[kind].includes(k))
      throw new ConfigError(`key '${k}' is not supported for ${kind} RoPE scaling`, {
        file,
        field: `${field}.${k}`,
      });
  }
  switch (kind) {
    case 'default':
      return null;
    case 'linear':
      return { type: 'linear', factor: num(s, 'factor', field, file)! };
    case 'dynamic':
      return {
        type: 'dynamic',
        factor: num(s, 'factor', field, file)!,
        originalMaxPositions: num(s, 'original_max_position_embeddings', field, file, false),
      };
    default:
      return {
        type: 'llama3',
        factor: num(s, 'factor', field, file)!,
        lowFreqFactor: num(s, 'low_freq_factor', field, file)!,
        highFreqFactor: num(s, 'high_freq_factor', field, file)!,
        originalMaxPositions: num(s, 'original_max_position_embeddings', field, file)!,
      };
  }
}

/** The v4 spelling: `rope_theta` and `rope_scaling` (null when unscaled). */
export function ropeToHf(r: RopeSpec): {
  rope_theta: number;
  rope_scaling: Record<string, unknown> | null;
} {
  const s = r.scaling;
  if (s === null) return { rope_theta: r.theta, rope_scaling: null };
  if (s.type === 'linear')
    return { rope_theta: r.theta, rope_scaling: { rope_type: 'linear', factor: s.factor } };
  if (s.type === 'dynamic') {
    const o: Record<string, unknown> = { rope_type: 'dynamic', factor: s.factor };
    if (s.originalMaxPositions !== null)
      o.original_max_position_embeddings = s.originalMaxPositions;
    return { rope_theta: r.theta, rope_scaling: o };
  }
  return {
    rope_theta: r.theta,
    rope_scaling: {
      rope_type: 'llama3',
      factor: s.factor,
      low_freq_factor: s.lowFreqFactor,
      high_freq_factor: s.highFreqFactor,
      original_max_position_embeddings: s.originalMaxPositions,
    },
  };
}

/**
 * Inverse frequencies θ_i = theta^(-2i/Dh), i < Dh/2 (RoFormer, Su et al. 2021, eq. 15), with the
 * static scalings applied: linear divides every frequency by `factor`; llama3 divides the
 * low-frequency band by `factor`, keeps the high band and blends between them (as in
 * transformers' _compute_llama3_parameters). Dynamic NTK depends on the sequence length and is
 * left to the forward builder; here it returns the unscaled frequencies.
 */
export function ropeInvFreq(rope: RopeSpec, headDim: number): Float64Array {
  const half = headDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / rope.theta ** ((2 * i) / headDim);
  const s = rope.scaling;
  if (s?.type === 'linear') for (let i = 0; i < half; i++) inv[i] /= s.factor;
  if (s?.type === 'llama3') {
    const lowWavelen = s.originalMaxPositions / s.lowFreqFactor;
    const highWavelen = s.originalMaxPositions / s.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] /= s.factor;
      else if (wavelen >= highWavelen) {
        const smooth =
          (s.originalMaxPositions / wavelen - s.lowFreqFactor) /
          (s.highFreqFactor - s.lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i] / s.factor) + smooth * inv[i];
      }
    }
  }
  return inv;
}
