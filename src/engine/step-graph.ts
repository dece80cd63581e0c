// Builds the training-step graphs from a user forward builder: forward + loss, gradients of
// every trainable parameter concatenated into one flat gradient, accumulation, global-norm
// clipping and the optimizer update over flat vectors. The result (a TrainerPlan) is plain data
// plus ONNX bytes, so it can cross to a worker thread; running it is step.ts's job.
import { ConfigError, ShapeError } from '../util/errors.ts';
import { grad } from './autodiff.ts';
import type { DType } from './dtype.ts';
import { Graph, type Var } from './graph.ts';
import { toBytes } from './onnx.ts';
import { add, concat, mul, reshape, split } from './ops.ts';
import type { OptimizerConfig, ResolvedOptimizer } from './optim.ts';
import {
  declareScalars,
  gradNorm,
  optimizerUpdate,
  parseOptimizer,
  stateSlots,
  stepScalars,
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

/**
 * A contiguous range of the flat parameters that the optimizer updates as one set of vectors:
 * its params, state and gradient are separate graph inputs and outputs (views of the flat
 * buffers), decayed or not as a whole.
 */
export interface Chunk {
  readonly offset: number;
  readonly size: number;
  readonly decay: boolean;
}

/**
 * Largest chunk, in values (4 MB of float32). onnxruntime-node copies every output into a new
 * ArrayBuffer; above glibc's mmap threshold (at most 32 MB) each copy maps fresh pages and
 * faults on every one of them, which costs several times the memcpy. Small outputs come from
 * reused heap memory instead.
 */
export const MAX_CHUNK = 1 << 20;
/** Consecutive parameters with the same decay are grouped while a chunk stays this small. */
export const SMALL_CHUNK = 1 << 16;

interface ChunkPart {
  /** Index into layout.views. */
  view: number;
  /** Piece of that view's split gradient (big views), or -1 for the whole view. */
  piece: number;
}

interface ChunkPlan extends Chunk {
  parts: ChunkPart[];
}

/**
 * Cut the layout into chunks: parameters above MAX_CHUNK into near-equal pieces, small
 * neighbours with the same decay together (their gradients are concatenated, a cheap copy), and
 * every other parameter on its own, so most gradients feed the update without any copy.
 */
export function planChunks(layout: ParamLayout, max = MAX_CHUNK, small = SMALL_CHUNK): Chunk[] {
  return chunkPlans(layout, max, small).map(({ offset, size, decay }) => ({ offset, size, decay }));
}

function chunkPlans(layout: ParamLayout, max: number, small: number): ChunkPlan[] {
  const out: ChunkPlan[] = [];
  layout.views.forEach((v, i) => {
    if (v.size > max) {
      const k = Math.ceil(v.size / max);
      let offset = v.offset;
      for (let j = 0; j < k; j++) {
        const size = Math.floor(v.size / k) + (j < v.size % k ? 1 : 0);
        out.push({ offset, size, decay: v.decay, parts: [{ view: i, piece: j }] });
        offset += size;
      }
      return;
    }
    const last = out[out.length - 1];
    if (
      last &&
      last.decay === v.decay &&
      last.size + v.size <= small &&
      last.parts.every((p) => p.piece < 0)
    ) {
      out[out.length - 1] = {
        ...last,
        size: last.size + v.size,
        parts: [...last.parts, { view: i, piece: -1 }],
      };
      return;
    }
    out.push({ offset: v.offset, size: v.size, decay: v.decay, parts: [{ view: i, piece: -1 }] });
  });
  return out;
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
  /** How the update splits the flat parameters (inputs and outputs per chunk). */
  readonly chunks: readonly Chunk[];
  /** The builder's own inputs (data). */
  readonly dataInputs: readonly ValueSpec[];
  /** The loss and the builder's extra outputs. */
  readonly outputs: readonly ValueSpec[];
  /** Forward + backward + clip + update (reads the accumulator when accumulation > 1). */
  readonly stepModel: Uint8Array;
  /** Forward + backward + add into the accumulator (accumulation > 1 only). */
  readonly accumModel: Uint8Array | undefined;
}

/** Reserved value names of the step graphs; `j` is a chunk index. */
export const STEP_NAMES = {
  loss: 'loss',
  gradNorm: 'grad_norm',
  params: (j: number) => `opt.params.${j}`,
  paramsOut: (j: number) => `opt.params_out.${j}`,
  slot: (s: string, j: number) => `opt.${s}.${j}`,
  slotOut: (s: string, j: number) => `opt.${s}_out.${j}`,
  acc: (j: number) => `opt.grad_acc.${j}`,
  accOut: (j: number) => `opt.grad_acc_out.${j}`,
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
  // With decay off everywhere, drop it from the graph (and its scalar input).
  const opt: ResolvedOptimizer = layout.views.some((v) => v.decay)
    ? optimizer
    : { ...optimizer, weight_decay: 0 };
  const name = o.name ?? 'train';
  const chunks = chunkPlans(layout, MAX_CHUNK, SMALL_CHUNK);
  const base = { o, layout, optimizer: opt, chunks, accumulation };
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
    chunks: chunks.map(({ offset, size, decay }) => ({ offset, size, decay })),
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
  chunks: readonly ChunkPlan[];
  accumulation: number;
  kind: 'step' | 'accum';
  name: string;
}

function buildGraph(a: BuildArgs): { graph: Graph; dataInputs: ValueSpec[]; outputs: ValueSpec[] } {
  const g = new Graph({ name: a.name });
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

  // The gradient in chunks: whole parameters as they are (a free reshape), big ones split
  // into their pieces, small neighbours concatenated.
  const grads = grad(loss, trainable) as Var[];
  const pieces = new Map<number, Var[]>();
  const part = ({ view, piece }: ChunkPart): Var => {
    const flat = reshape(grads[view] as Var, [-1]);
    if (piece < 0) return flat;
    let ps = pieces.get(view);
    if (!ps) {
      const sizes = a.chunks
        .filter((c) => c.parts[0]?.view === view && c.parts[0].piece >= 0)
        .map((c) => c.size);
      ps = split(flat, 0, sizes);
      pieces.set(view, ps);
    }
    return ps[piece] as Var;
  };
  let chunkGrads = a.chunks.map((c) =>
    c.parts.length === 1 ? part(c.parts[0] as ChunkPart) : concat(c.parts.map(part), 0),
  );
  if (a.accumulation > 1) {
    const scale = g.input(STEP_NAMES.gradScale, 'float32', []);
    chunkGrads = chunkGrads.map((d, j) =>
      add(g.input(STEP_NAMES.acc(j), 'float32', [a.chunks[j]!.size]), mul(d, scale)),
    );
    if (a.kind === 'accum') {
      chunkGrads.forEach((d, j) => {
        g.output(STEP_NAMES.accOut(j), d);
      });
      return { graph: g, dataInputs, outputs };
    }
  }
  const slots = stateSlots(a.optimizer);
  const fed = declareScalars(g, a.optimizer);
  const chunkInputs = a.chunks.map((c, j) => ({
    params: g.input(STEP_NAMES.params(j), 'float32', [c.size]),
    state: slots.map((s) => g.input(STEP_NAMES.slot(s, j), 'float32', [c.size])),
  }));
  // A scope only names the values ('optimizer/...'), so profiles can tell the update apart.
  g.scope('optimizer', () => {
    const { norm, scale } = gradNorm(chunkGrads, a.o.max_grad_norm);
    g.output(STEP_NAMES.gradNorm, norm);
    const k = stepScalars(a.optimizer, fed, scale);
    a.chunks.forEach((c, j) => {
      const upd = optimizerUpdate(a.optimizer, k, {
        ...(chunkInputs[j] as { params: Var; state: Var[] }),
        grad: chunkGrads[j] as Var,
        decay: c.decay,
      });
      g.output(STEP_NAMES.paramsOut(j), upd.params);
      slots.forEach((s, i) => {
        g.output(STEP_NAMES.slotOut(s, j), upd.state[i] as Var);
      });
    });
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
