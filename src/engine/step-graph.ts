// Builds the training-step graphs from a user forward builder: forward + loss, gradients of
// every trainable parameter concatenated into one flat gradient, accumulation, global-norm
// clipping and the optimizer update over flat vectors. The result (a TrainerPlan) is plain data
// plus ONNX bytes, so it can cross to a worker thread; running it is step.ts's job.
import { ConfigError, ShapeError } from '../util/errors.ts';
import { grad } from './autodiff.ts';
import type { DType } from './dtype.ts';
import { Graph, type Var } from './graph.ts';
import { toBytes } from './onnx.ts';
import { add, concat, mul, reshape } from './ops.ts';
import type { OptimizerConfig, ResolvedOptimizer } from './optim.ts';
import {
  clipGradNorm,
  declareScalars,
  optimizerUpdate,
  parseOptimizer,
  stateSlots,
} from './optim.ts';
import type { ParamLayout, ParamStore } from './params.ts';
import type { ScheduleConfig } from './schedule.ts';
import { createSchedule } from './schedule.ts';
import type { Shape } from './shape.ts';
import { fmtShape, isStatic } from './shape.ts';

/** What a forward builder returns: the scalar loss and any extra outputs to fetch. */
export interface ForwardResult {
  loss: Var;
  outputs?: Readonly<Record<string, Var>>;
}

/**
 * Builds the model's forward pass and loss on `g`. `params` maps every parameter name (frozen
 * ones too) to its graph value; data inputs are declared by the builder with `g.input`.
 * It is called once per step graph, so it must only build graph.
 */
export type ForwardBuilder = (g: Graph, params: Readonly<Record<string, Var>>) => ForwardResult;

/** Options shared by the in-process trainer and the worker trainer. */
export interface TrainerOptions {
  build: ForwardBuilder;
  /** Initial parameters. In-process, the trainer adopts `params.flat` as one of its buffers. */
  params: ParamStore;
  optimizer: OptimizerConfig;
  /** Clip the global L2 norm of the gradient (torch clip_grad_norm_). @default no clipping */
  max_grad_norm?: number;
  /** @default { type: 'constant' } */
  schedule?: ScheduleConfig;
  /** Total optimizer steps: the horizon of linear / cosine schedules and warmup_ratio. */
  totalSteps?: number;
  /** Micro-batches per optimizer step (gradient accumulation). @default 1 */
  accumulation?: number;
  /** On a NaN/Inf loss or gradient norm: throw a TrainingError, or skip the update. @default 'error' */
  nonFinite?: 'error' | 'skip';
  /** Graph name (dumps, errors). @default 'train' */
  name?: string;
}

/** A graph value's name, dtype and (possibly symbolic) shape. */
export interface ValueSpec {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

/** Everything needed to run training, as structured-cloneable data. */
export interface TrainerPlan {
  readonly name: string;
  readonly layout: ParamLayout;
  readonly frozen: readonly ValueSpec[];
  readonly optimizer: ResolvedOptimizer;
  readonly slots: readonly string[];
  readonly maxGradNorm: number | undefined;
  readonly schedule: ScheduleConfig;
  readonly totalSteps: number | undefined;
  readonly accumulation: number;
  readonly nonFinite: 'error' | 'skip';
  /** Whether the graphs read the bool decay mask input. */
  readonly decayMask: boolean;
  /** The builder's own inputs (data). */
  readonly dataInputs: readonly ValueSpec[];
  /** The loss and the builder's extra outputs. */
  readonly outputs: readonly ValueSpec[];
  /** Forward + backward + clip + update (reads the accumulator when accumulation > 1). */
  readonly stepModel: Uint8Array;
  /** Forward + backward + add into the accumulator (accumulation > 1 only). */
  readonly accumModel: Uint8Array | undefined;
}

/** Reserved value names of the step graphs. */
export const STEP_NAMES = {
  loss: 'loss',
  gradNorm: 'grad_norm',
  params: 'opt.params',
  paramsOut: 'opt.params_out',
  slot: (s: string) => `opt.${s}`,
  slotOut: (s: string) => `opt.${s}_out`,
  decayMask: 'opt.decay_mask',
  acc: 'opt.grad_acc',
  accOut: 'opt.grad_acc_out',
  gradScale: 'opt.grad_scale',
} as const;

/** Validate options and build the step graph(s). Shape errors surface here, at build time. */
export function planTrainer(o: TrainerOptions): TrainerPlan {
  const optimizer = parseOptimizer(o.optimizer);
  const accumulation = o.accumulation ?? 1;
  if (!(Number.isInteger(accumulation) && accumulation >= 1))
    throw new ConfigError(`accumulation must be a positive integer, got ${accumulation}`, {
      field: 'accumulation',
    });
  if (o.max_grad_norm !== undefined && !(o.max_grad_norm > 0))
    throw new ConfigError(`max_grad_norm must be positive, got ${o.max_grad_norm}`, {
      field: 'max_grad_norm',
    });
  const nonFinite = o.nonFinite ?? 'error';
  if (nonFinite !== 'error' && nonFinite !== 'skip')
    throw new ConfigError(`nonFinite must be 'error' or 'skip', got '${nonFinite}'`, {
      field: 'nonFinite',
    });
  const schedule = o.schedule ?? {};
  createSchedule(schedule, o.totalSteps); // validates now rather than at the first step
  const layout = o.params.layout;
  if (layout.size === 0)
    throw new ConfigError(
      'no trainable parameters',
      { field: 'params' },
      { hint: 'at least one parameter must be trainable (frozen: false)' },
    );
  const wantsDecay = optimizer.weight_decay > 0;
  const someDecay = layout.views.some((v) => v.decay);
  const allDecay = layout.views.every((v) => v.decay);
  const decayMask = wantsDecay && someDecay && !allDecay;
  // With decay off everywhere, drop it from the graph rather than multiply by 1.
  const opt: ResolvedOptimizer =
    wantsDecay && !someDecay ? { ...optimizer, weight_decay: 0 } : optimizer;
  const name = o.name ?? 'train';
  const base = { o, layout, optimizer: opt, decayMask, accumulation };
  const step = buildGraph({ ...base, kind: 'step', name: `${name}_step` });
  const accum =
    accumulation > 1 ? buildGraph({ ...base, kind: 'accum', name: `${name}_accum` }) : undefined;
  return {
    name,
    layout,
    frozen: o.params.frozen.map((f) => ({ name: f.name, dtype: 'float32', shape: f.shape })),
    optimizer: opt,
    slots: stateSlots(opt),
    maxGradNorm: o.max_grad_norm,
    schedule,
    totalSteps: o.totalSteps,
    accumulation,
    nonFinite,
    decayMask,
    dataInputs: step.dataInputs,
    outputs: step.outputs,
    stepModel: toBytes(step.graph),
    accumModel: accum ? toBytes(accum.graph) : undefined,
  };
}

interface BuildArgs {
  o: TrainerOptions;
  layout: ParamLayout;
  optimizer: ResolvedOptimizer;
  decayMask: boolean;
  accumulation: number;
  kind: 'step' | 'accum';
  name: string;
}

function buildGraph(a: BuildArgs): { graph: Graph; dataInputs: ValueSpec[]; outputs: ValueSpec[] } {
  const g = new Graph({ name: a.name });
  const n = a.layout.size;
  const params: Record<string, Var> = {};
  const trainable = a.layout.views.map((v) => {
    params[v.name] = g.param(v.name, v.shape);
    return params[v.name] as Var;
  });
  for (const f of a.o.params.frozen) params[f.name] = g.param(f.name, f.shape, { frozen: true });
  const reserved = new Set(g.inputs.map((v) => v.name));
  const r = a.o.build(g, params);
  if (!r?.loss)
    throw new ConfigError('the forward builder must return { loss }', { field: 'build' });
  const loss = r.loss;
  if (!loss.shape.every((d) => d === 1) || loss.graph !== g)
    throw new ShapeError('train_step', `loss must be a scalar of this graph, got ${loss}`, {
      hint: 'reduce the loss to a scalar (mean or sum)',
    });
  if (loss.dtype !== 'float32')
    throw new ShapeError('train_step', `loss must be float32, got ${loss.dtype}`);
  const dataInputs = g.inputs
    .filter((v) => !reserved.has(v.name))
    .map((v) => ({ name: v.name as string, dtype: v.dtype, shape: v.shape }));
  for (const d of dataInputs)
    if (d.name.startsWith('opt.'))
      throw new ConfigError(`input name '${d.name}' uses the reserved prefix 'opt.'`, {
        field: 'build',
      });
  g.output(STEP_NAMES.loss, loss);
  const outputs: ValueSpec[] = [{ name: STEP_NAMES.loss, dtype: loss.dtype, shape: loss.shape }];
  for (const [name, v] of Object.entries(r.outputs ?? {})) {
    if (name === STEP_NAMES.loss || name === STEP_NAMES.gradNorm || name.startsWith('opt.'))
      throw new ConfigError(`output name '${name}' is reserved`, { field: `outputs.${name}` });
    g.output(name, v);
    outputs.push({ name, dtype: v.dtype, shape: v.shape });
  }

  // One flat gradient in layout order: the update then runs as a few ops over [N].
  const grads = grad(loss, trainable) as Var[];
  let flatGrad = concat(
    grads.map((d) => reshape(d, [-1])),
    0,
  );
  if (a.accumulation > 1) {
    const acc = g.input(STEP_NAMES.acc, 'float32', [n]);
    const scale = g.input(STEP_NAMES.gradScale, 'float32', []);
    flatGrad = add(acc, mul(flatGrad, scale));
    if (a.kind === 'accum') {
      g.output(STEP_NAMES.accOut, flatGrad);
      return { graph: g, dataInputs, outputs };
    }
  }
  const p = g.input(STEP_NAMES.params, 'float32', [n]);
  const state = stateSlots(a.optimizer).map((s) => g.input(STEP_NAMES.slot(s), 'float32', [n]));
  const mask = a.decayMask ? g.input(STEP_NAMES.decayMask, 'bool', [n]) : undefined;
  const scalars = declareScalars(g, a.optimizer);
  // A scope only names the values ('optimizer/...'), so profiles can tell the update apart.
  const { norm, upd } = g.scope('optimizer', () => {
    const { grad: clipped, norm } = clipGradNorm(flatGrad, a.o.max_grad_norm);
    const upd = optimizerUpdate(a.optimizer, {
      params: p,
      grad: clipped,
      state,
      scalars,
      ...(mask ? { decayMask: mask } : {}),
    });
    return { norm, upd };
  });
  g.output(STEP_NAMES.gradNorm, norm);
  g.output(STEP_NAMES.paramsOut, upd.params);
  stateSlots(a.optimizer).forEach((s, i) => {
    g.output(STEP_NAMES.slotOut(s), upd.state[i] as Var);
  });
  return { graph: g, dataInputs, outputs };
}

/** Bind symbolic dims from the shapes of fed tensors; conflicting sizes are ShapeErrors. */
export function bindDims(
  specs: readonly ValueSpec[],
  shapes: Readonly<Record<string, readonly number[]>>,
): Map<string, number> {
  const env = new Map<string, number>();
  for (const s of specs) {
    const got = shapes[s.name];
    if (got === undefined) continue;
    if (got.length !== s.shape.length)
      throw new ShapeError(
        'feed',
        `'${s.name}' expects ${fmtShape(s.shape)}, got ${fmtShape(got)}`,
      );
    s.shape.forEach((d, i) => {
      const size = got[i] as number;
      if (typeof d === 'number') {
        if (d !== size)
          throw new ShapeError(
            'feed',
            `'${s.name}' expects ${fmtShape(s.shape)}, got ${fmtShape(got)}`,
          );
      } else if (/^[A-Za-z_][\w.]*$/.test(d)) {
        const prev = env.get(d);
        if (prev !== undefined && prev !== size)
          throw new ShapeError(
            'feed',
            `dim '${d}' is ${prev} elsewhere but ${size} in '${s.name}'`,
            {
              hint: 'every input sharing a symbolic dim must agree on its size',
            },
          );
        env.set(d, size);
      }
    });
  }
  return env;
}

/** Evaluate a (possibly symbolic) shape under bound dims. */
export function resolveShape(
  shape: Shape,
  env: ReadonlyMap<string, number>,
  what: string,
): number[] {
  if (isStatic(shape)) return [...shape];
  return shape.map((d) => (typeof d === 'number' ? d : evalDim(d, env, what)));
}

function evalDim(d: string, env: ReadonlyMap<string, number>, what: string): number {
  const s = d.trim();
  const sum = splitTop(s, '+');
  if (sum.length > 1) return sum.reduce((acc, t) => acc + evalDim(t, env, what), 0);
  const prod = splitTop(s, '*');
  if (prod.length > 1) return prod.reduce((acc, t) => acc * evalDim(t, env, what), 1);
  if (s.startsWith('(') && s.endsWith(')')) return evalDim(s.slice(1, -1), env, what);
  if (/^\d+$/.test(s)) return Number(s);
  const v = env.get(s);
  if (v === undefined)
    throw new ShapeError('feed', `cannot size ${what}: dim '${s}' is not set by any input`);
  return v;
}

function splitTop(s: string, ch: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '(') depth++;
    else if (s[i] === ')') depth--;
    else if (s[i] === ch && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts;
}
