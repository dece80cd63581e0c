// Optimizers as graph nodes over flat vectors: AdamW and SGD (momentum, dampening, Nesterov)
// with torch.optim's formulas, and global-norm gradient clipping (clip_grad_norm_). The update
// runs per chunk of the flat parameters (step-graph.ts), each chunk decayed or not as a whole.
// Step-dependent scalars (lr, bias corrections) are computed here in float64 and fed as graph
// inputs each step; the step graph is built in step-graph.ts, its buffers live in step.ts.
import { z } from 'zod';
import { ConfigError } from '../util/errors.ts';
import type { Graph, Var } from './graph.ts';
import { add, div, minimum, mul, reduceSumSquare, sqrt, sumN } from './ops.ts';

/**
 * torch.optim.AdamW (Loshchilov & Hutter 2019, Alg. 2), defaults as HF TrainingArguments.
 * @example { type: 'adamw', learning_rate: 2e-5, weight_decay: 0.01 }
 */
export const AdamWConfig = z.strictObject({
  type: z.literal('adamw'),
  learning_rate: z.number().nonnegative(),
  /** (β1, β2). @default [0.9, 0.999] */
  betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]),
  /** Added to √v̂ (after the square root, as torch does). @default 1e-8 */
  eps: z.number().nonnegative().default(1e-8),
  /** Decoupled decay: p ← p·(1 − lr·wd) before the Adam step. @default 0 */
  weight_decay: z.number().nonnegative().default(0),
});

/**
 * torch.optim.SGD: coupled L2 decay (g + wd·p), momentum buffer initialised to the first
 * gradient, dampening, Nesterov. @example { type: 'sgd', learning_rate: 0.1, momentum: 0.9 }
 */
export const SgdConfig = z.strictObject({
  type: z.literal('sgd'),
  learning_rate: z.number().nonnegative(),
  /** @default 0 */
  momentum: z.number().min(0).default(0),
  /** @default 0 */
  dampening: z.number().min(0).max(1).default(0),
  /** @default false */
  nesterov: z.boolean().default(false),
  /** @default 0 */
  weight_decay: z.number().nonnegative().default(0),
});

export const OptimizerConfig = z.discriminatedUnion('type', [AdamWConfig, SgdConfig]);
/** Optimizer settings as the user writes them (defaults optional). */
export type OptimizerConfig = z.input<typeof OptimizerConfig>;
/** Optimizer settings with every default filled in. */
export type ResolvedOptimizer = z.output<typeof OptimizerConfig>;

/** Validate an optimizer config; errors name the field under `field`. */
export function parseOptimizer(config: OptimizerConfig, field = 'optimizer'): ResolvedOptimizer {
  const r = OptimizerConfig.safeParse(config);
  if (!r.success) {
    const issue = r.error.issues[0];
    const path = issue?.path.join('.') ?? '';
    throw new ConfigError(
      issue?.message ?? 'invalid optimizer',
      { field: path ? `${field}.${path}` : field },
      { hint: "type is 'adamw' or 'sgd'" },
    );
  }
  const c = r.data;
  if (c.type === 'sgd' && c.nesterov && (c.momentum <= 0 || c.dampening !== 0))
    throw new ConfigError('Nesterov momentum requires momentum > 0 and dampening = 0', {
      field: `${field}.nesterov`,
    });
  return c;
}

/** Names of the per-parameter state vectors (torch's state_dict keys). */
export function stateSlots(c: ResolvedOptimizer): string[] {
  if (c.type === 'adamw') return ['exp_avg', 'exp_avg_sq'];
  return c.momentum > 0 ? ['momentum_buffer'] : [];
}

/** Names of the scalar graph inputs the update reads (fed by `optimizerScalars`). */
export function scalarNames(c: ResolvedOptimizer): string[] {
  return c.type === 'adamw'
    ? ['opt.decay', 'opt.neg_step_size', 'opt.bc2_sqrt']
    : ['opt.neg_lr', 'opt.damp'];
}

/**
 * Values of the scalar inputs for optimizer step `step` (1-based, torch's state['step'] after
 * its increment) at learning rate `lr`. Computed in float64, rounded to float32 once when fed,
 * as torch does with Python-float scalars.
 */
export function optimizerScalars(
  c: ResolvedOptimizer,
  step: number,
  lr: number,
): Record<string, number> {
  if (c.type === 'adamw') {
    const [b1, b2] = c.betas;
    return {
      'opt.decay': 1 - lr * c.weight_decay,
      'opt.neg_step_size': -(lr / (1 - b1 ** step)),
      'opt.bc2_sqrt': Math.sqrt(1 - b2 ** step),
    };
  }
  // torch starts the momentum buffer as a copy of the first d_p (no dampening on step 1);
  // the buffer is zero before it, so buf·μ + d_p·1 is that copy.
  return { 'opt.neg_lr': -lr, 'opt.damp': step === 1 ? 1 : 1 - c.dampening };
}

/**
 * Scalars of one step, derived once from the fed ones (`scalarNames`) and the clipping factor
 * and shared by the update of every chunk, so each chunk's update is only vector passes.
 */
export type StepScalars = Readonly<Record<string, Var>>;

/**
 * Derive the per-step scalars. `gradScale` (the clip_grad_norm_ factor, 0-D) multiplies the
 * gradient; it is folded into the scalars rather than applied as a pass over the gradient.
 */
export function stepScalars(
  c: ResolvedOptimizer,
  fed: Readonly<Record<string, Var>>,
  gradScale?: Var,
): StepScalars {
  const s = (name: string) => {
    const v = fed[name];
    if (!v) throw new ConfigError(`missing optimizer scalar '${name}'`, { field: 'optimizer' });
    return v;
  };
  if (c.type === 'adamw') {
    const [b1, b2] = c.betas;
    const bc2 = s('opt.bc2_sqrt');
    const g = bc2.graph;
    // (1 − β1)·k and (1 − β2)·k², k the clipping factor.
    const m = gradScale ? mul(gradScale, 1 - b1) : g.scalar(1 - b1);
    const v = gradScale ? mul(mul(gradScale, gradScale), 1 - b2) : g.scalar(1 - b2);
    // m/(√v/√(1 − β2ᵗ) + eps) = √(1 − β2ᵗ)·m/(√v + eps·√(1 − β2ᵗ)): the bias correction moves
    // onto two scalars, saving a pass.
    return {
      gradM: m,
      gradV: v,
      eps: mul(bc2, c.eps),
      step: mul(s('opt.neg_step_size'), bc2),
      decay: s('opt.decay'),
    };
  }
  return {
    ...(gradScale ? { gradScale } : {}),
    negLr: s('opt.neg_lr'),
    damp: s('opt.damp'),
  };
}

/** Inputs of `optimizerUpdate`: flat vectors of one chunk of the parameters. */
export interface UpdateInputs {
  params: Var;
  grad: Var;
  /** State vectors in `stateSlots` order. */
  state: readonly Var[];
  /** Whether weight decay applies to this chunk. */
  decay: boolean;
}

/**
 * One optimizer step of one chunk as graph nodes: new params and new state (same slot order).
 * AdamW is 13 passes over the chunk (12 without decay), with torch.optim.AdamW's formula:
 * p ← p·(1 − lr·wd); m ← β1·m + (1 − β1)·g; v ← β2·v + (1 − β2)·g²;
 * p ← p − lr/(1 − β1ᵗ) · m / (√v/√(1 − β2ᵗ) + eps).
 */
export function optimizerUpdate(
  c: ResolvedOptimizer,
  k: StepScalars,
  x: UpdateInputs,
): { params: Var; state: Var[] } {
  const { params: p, grad: g } = x;
  if (c.type === 'adamw') {
    const [b1, b2] = c.betas;
    const [m, v] = x.state as [Var, Var];
    const m1 = add(mul(m, b1), mul(g, k.gradM as Var));
    const v1 = add(mul(v, b2), mul(mul(g, g), k.gradV as Var));
    const r = div(m1, add(sqrt(v1), k.eps as Var));
    const p1 = c.weight_decay > 0 && x.decay ? mul(p, k.decay as Var) : p;
    return { params: add(p1, mul(r, k.step as Var)), state: [m1, v1] };
  }
  // SGD: d = g + wd·p (coupled L2), buf ← μ·buf + (1 − dampening)·d, d = buf or d + μ·buf.
  let d = k.gradScale ? mul(g, k.gradScale) : g;
  if (c.weight_decay > 0 && x.decay) d = add(d, mul(p, c.weight_decay));
  const state: Var[] = [];
  if (c.momentum > 0) {
    const buf = x.state[0] as Var;
    const buf1 = add(mul(buf, c.momentum), mul(d, k.damp as Var));
    state.push(buf1);
    d = c.nesterov ? add(d, mul(buf1, c.momentum)) : buf1;
  }
  return { params: add(p, mul(d, k.negLr as Var)), state };
}

/**
 * Global L2 norm of a gradient given in chunks (one pass each, no squared copy) and, with
 * `maxNorm`, torch.nn.utils.clip_grad_norm_'s factor min(1, maxNorm / (norm + 1e-6)), which
 * torch always multiplies by. The norm is the one before clipping (what HF logs as grad_norm).
 */
export function gradNorm(grads: readonly Var[], maxNorm?: number): { norm: Var; scale?: Var } {
  const norm = sqrt(sumN(grads.map((g) => reduceSumSquare(g))));
  if (maxNorm === undefined) return { norm };
  if (!(maxNorm > 0))
    throw new ConfigError(`max_grad_norm must be positive, got ${maxNorm}`, {
      field: 'max_grad_norm',
    });
  return { norm, scale: minimum(div(maxNorm, add(norm, 1e-6)), 1) };
}

/** Declare the scalar inputs of `c` on `g` (float32, 0-D). */
export function declareScalars(g: Graph, c: ResolvedOptimizer): Record<string, Var> {
  const out: Record<string, Var> = {};
  for (const name of scalarNames(c)) out[name] = g.input(name, 'float32', []);
  return out;
}
