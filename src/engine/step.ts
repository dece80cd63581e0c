// The step runner: runs a TrainerPlan's graphs with double-buffered state. Parameters and
// optimizer state live in two flat buffer sets; a step reads set A and ORT writes set B
// (pre-allocated outputs), then they swap, so no output ever aliases its own input and a
// skipped step is free (no swap). Also: NaN/Inf policy, LR schedule, exact checkpoint/resume.
import { ConfigError, ShapeError, TrainingError } from '../util/errors.ts';
import type { TypedArrayOf } from './dtype.ts';
import { optimizerScalars, scalarNames } from './optim.ts';
import { ParamStore } from './params.ts';
import type { Session, SessionOptions, Tensor } from './runtime.ts';
import {
  createSession,
  TRAINING_DISABLED_OPTIMIZERS,
  tensor,
  withDisabledOptimizers,
} from './runtime.ts';
import type { Schedule } from './schedule.ts';
import { createSchedule } from './schedule.ts';
import type { TrainerOptions, TrainerPlan } from './step-graph.ts';
import { bindDims, planTrainer, resolveShape, STEP_NAMES } from './step-graph.ts';

/** Data feeds of one micro-batch, by input name. */
export type Feeds = Readonly<Record<string, Tensor>>;

/** What one optimizer step reports. */
export interface StepResult {
  /** 1-based number of this optimizer step (for a skipped step: the one that was attempted). */
  step: number;
  /** Loss (weighted mean over micro-batches). */
  loss: number;
  /** Global L2 norm of the gradient before clipping (NaN if a micro-batch was non-finite). */
  gradNorm: number;
  /** Learning rate of this step. */
  lr: number;
  /** True when a non-finite loss or gradient made the trainer skip this update. */
  skipped: boolean;
  /** The builder's extra outputs from the last micro-batch run. */
  outputs: Record<string, Tensor>;
  /**
   * The extra outputs of every micro-batch run, in order (the last is `outputs`), so a loop can
   * average per-batch metrics over an accumulated step.
   */
  microOutputs: Record<string, Tensor>[];
}

/** Options of `Trainer.step`. */
export interface StepOptions {
  /**
   * Weight of each micro-batch's gradient (accumulation > 1): the applied gradient is
   * Σ wᵢ·∇lossᵢ. @default 1/accumulation each (equal micro-batches give the big-batch mean)
   */
  weights?: readonly number[];
}

/** Everything needed to resume exactly: plain typed arrays, copied. */
export interface TrainerState {
  /** Optimizer steps applied. */
  step: number;
  /** Steps skipped for non-finite values. */
  skipped: number;
  /** Trainable parameters, flat, in layout order. */
  params: Float32Array;
  /** Optimizer state vectors by torch name (exp_avg, exp_avg_sq, momentum_buffer). */
  slots: Record<string, Float32Array>;
}

/** A training loop's handle on the engine (in-process or in a worker: see worker.ts). */
export interface Trainer {
  readonly plan: TrainerPlan;
  /** Run one optimizer step on `accumulation` micro-batches (a single Feeds when 1). */
  step(feeds: Feeds | readonly Feeds[], opts?: StepOptions): Promise<StepResult>;
  /** Optimizer steps applied so far. */
  readonly stepCount: number;
  /** Steps skipped so far under nonFinite: 'skip'. */
  readonly skippedCount: number;
  /** A copy of the state for checkpointing. */
  state(): Promise<TrainerState>;
  /** A copy of the current parameters (trainable and frozen). */
  readParams(): Promise<ParamStore>;
  /** Restore a state taken from a trainer with the same layout and optimizer. */
  load(state: TrainerState): Promise<void>;
  release(): Promise<void>;
}

/** A gradient accumulator: one flat buffer, fed and fetched as chunk views. */
interface AccBuffer {
  flat: Float32Array;
  feeds: Record<string, Tensor>;
  outs: Record<string, Tensor>;
}

interface BufferSet {
  params: Float32Array;
  slots: Float32Array[];
  /** Tensors over the buffers, built once: whole vectors and per-parameter views. */
  feeds: Record<string, Tensor>;
  outs: Record<string, Tensor>;
}

/**
 * Runs a plan in the current thread (session.run blocks it; use worker.ts to keep the event
 * loop free). `initial` becomes buffer set A without a copy.
 */
export class StepRunner implements Trainer {
  private sets: [BufferSet, BufferSet];
  private cur: 0 | 1 = 0;
  private acc: [AccBuffer, AccBuffer] | undefined;
  private applied = 0;
  private skipped = 0;
  private busy: string | undefined;
  private readonly schedule: Schedule;
  private readonly constFeeds: Record<string, Tensor> = {};
  private readonly scalars: Record<string, Tensor> = {};
  private readonly lossOut: Tensor<'float32'>;
  private readonly normOut: Tensor<'float32'>;

  private constructor(
    readonly plan: TrainerPlan,
    private readonly stepSession: Session,
    private readonly accumSession: Session | undefined,
    initial: Float32Array,
    frozen: Readonly<Record<string, Float32Array>>,
  ) {
    const n = plan.layout.size;
    if (initial.length !== n)
      throw new ShapeError(
        'trainer',
        `initial parameters have ${initial.length} values, layout needs ${n}`,
      );
    this.sets = [this.makeSet(initial), this.makeSet(new Float32Array(n))];
    if (plan.accumulation > 1) this.acc = [this.makeAcc(), this.makeAcc()];
    this.schedule = createSchedule(plan.schedule, plan.totalSteps);
    for (const f of plan.frozen) {
      const data = frozen[f.name];
      if (!data)
        throw new ConfigError(`frozen parameter '${f.name}' has no data`, { field: 'params' });
      this.constFeeds[f.name] = tensor('float32', f.shape as number[], data);
    }
    for (const s of scalarNames(plan.optimizer)) this.scalars[s] = tensor('float32', []);
    this.scalars[STEP_NAMES.gradScale] = tensor('float32', []);
    const lossSpec = plan.outputs[0] as { shape: readonly (number | string)[] };
    this.lossOut = tensor('float32', lossSpec.shape as number[]);
    this.normOut = tensor('float32', []);
  }

  /** Create sessions for `plan` and wrap `initial` (trainable, flat) and frozen buffers. */
  static async create(
    plan: TrainerPlan,
    initial: Float32Array,
    frozen: Readonly<Record<string, Float32Array>>,
    session: SessionOptions = {},
  ): Promise<StepRunner> {
    const so = withDisabledOptimizers(session, TRAINING_DISABLED_OPTIMIZERS);
    const stepSession = await createSession(plan.stepModel, so);
    const accumSession = plan.accumModel ? await createSession(plan.accumModel, so) : undefined;
    return new StepRunner(plan, stepSession, accumSession, initial, frozen);
  }

  /** Tensors over views of `flat`, one per chunk, named by `name(j)`. */
  private chunkViews(flat: Float32Array, name: (j: number) => string): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    this.plan.chunks.forEach((c, j) => {
      out[name(j)] = tensor('float32', [c.size], flat.subarray(c.offset, c.offset + c.size));
    });
    return out;
  }

  private makeAcc(): AccBuffer {
    const flat = new Float32Array(this.plan.layout.size);
    const feeds = this.chunkViews(flat, STEP_NAMES.acc);
    return { flat, feeds, outs: this.chunkViews(flat, STEP_NAMES.accOut) };
  }

  private makeSet(params: Float32Array): BufferSet {
    const n = this.plan.layout.size;
    const slots = this.plan.slots.map(() => new Float32Array(n));
    // Zero-copy views: onnxruntime-node builds its input tensors over the same memory, and ORT
    // writes the outputs straight into the other set's views.
    const feeds = this.chunkViews(params, STEP_NAMES.params);
    const outs = this.chunkViews(params, STEP_NAMES.paramsOut);
    this.plan.slots.forEach((s, i) => {
      Object.assign(
        feeds,
        this.chunkViews(slots[i] as Float32Array, (j) => STEP_NAMES.slot(s, j)),
      );
      Object.assign(
        outs,
        this.chunkViews(slots[i] as Float32Array, (j) => STEP_NAMES.slotOut(s, j)),
      );
    });
    for (const v of this.plan.layout.views)
      feeds[v.name] = tensor('float32', v.shape, params.subarray(v.offset, v.offset + v.size));
    return { params, slots, feeds, outs };
  }

  get stepCount(): number {
    return this.applied;
  }

  get skippedCount(): number {
    return this.skipped;
  }

  /** The current trainable parameters as a store (views, no copy; valid until the next step). */
  get params(): ParamStore {
    const frozen = this.plan.frozen.map((f) => ({
      name: f.name,
      shape: f.shape as number[],
      data: this.constFeeds[f.name]?.data as Float32Array,
    }));
    return ParamStore.fromBuffers(this.plan.layout, this.sets[this.cur].params, frozen);
  }

  /** The current optimizer state vector `slot` (a view; valid until the next step). */
  slot(name: string): Float32Array {
    const i = this.plan.slots.indexOf(name);
    if (i < 0) throw new ShapeError('trainer', `no optimizer state '${name}'`);
    return this.sets[this.cur].slots[i] as Float32Array;
  }

  async step(feeds: Feeds | readonly Feeds[], opts: StepOptions = {}): Promise<StepResult> {
    this.enter('step');
    try {
      return await this.runStep(feeds, opts);
    } finally {
      this.busy = undefined;
    }
  }

  /** Steps and loads must not overlap: both would write the same buffer set. */
  private enter(what: string): void {
    if (this.busy)
      throw new TrainingError(`${what} called while a ${this.busy} is running`, this.applied + 1, {
        hint: 'await each step before starting the next',
      });
    this.busy = what;
  }

  private async runStep(feeds: Feeds | readonly Feeds[], opts: StepOptions): Promise<StepResult> {
    const k = this.plan.accumulation;
    const micro = Array.isArray(feeds) ? (feeds as readonly Feeds[]) : [feeds as Feeds];
    if (micro.length !== k)
      throw new ConfigError(`expected ${k} micro-batch feeds, got ${micro.length}`, {
        field: 'accumulation',
      });
    const weights = opts.weights ?? new Array<number>(k).fill(1 / k);
    if (weights.length !== k || weights.some((w) => !Number.isFinite(w)))
      throw new ConfigError(`weights must be ${k} finite numbers`, { field: 'weights' });
    const stepNo = this.applied + 1;
    const lr = this.plan.optimizer.learning_rate * this.schedule.factor(this.applied);
    const src = this.sets[this.cur];
    const dst = this.sets[1 - this.cur] as BufferSet;
    let loss = 0;
    let outputs: Record<string, Tensor> = {};
    const microOutputs: Record<string, Tensor>[] = [];
    for (let i = 0; i < k; i++) {
      const last = i === k - 1;
      const shapes = this.checkFeeds(micro[i] as Feeds, i);
      const run: Record<string, Tensor> = { ...micro[i], ...src.feeds, ...this.constFeeds };
      const fetch: Record<string, Tensor> = { [STEP_NAMES.loss]: this.lossOut };
      const extras = this.extraOutputs(shapes);
      Object.assign(fetch, extras);
      if (this.acc) {
        // Accumulator ping-pong too: micro-batch i reads acc[i % 2] and writes the other.
        const a = this.acc[i % 2] as AccBuffer;
        if (i === 0) a.flat.fill(0);
        Object.assign(run, a.feeds);
        (this.scalars[STEP_NAMES.gradScale]?.data as Float32Array)[0] = weights[i] as number;
        run[STEP_NAMES.gradScale] = this.scalars[STEP_NAMES.gradScale] as Tensor;
        if (!last) Object.assign(fetch, (this.acc[(i + 1) % 2] as AccBuffer).outs);
      }
      if (last) {
        const values = optimizerScalars(this.plan.optimizer, stepNo, lr);
        for (const [name, v] of Object.entries(values)) {
          (this.scalars[name]?.data as Float32Array)[0] = v;
          run[name] = this.scalars[name] as Tensor;
        }
        fetch[STEP_NAMES.gradNorm] = this.normOut;
        Object.assign(fetch, dst.outs);
      }
      const session = last ? this.stepSession : (this.accumSession as Session);
      await session.run(run, fetch);
      outputs = extras;
      microOutputs.push(extras);
      const l = sum(this.lossOut.data);
      loss += k === 1 ? l : (weights[i] as number) * l;
      if (!Number.isFinite(l)) return this.nonFinite(stepNo, lr, `loss is ${l}`, i, microOutputs);
    }
    const gradNorm = this.normOut.data[0] as number;
    if (!Number.isFinite(gradNorm))
      return this.nonFinite(stepNo, lr, `gradient norm is ${gradNorm}`, k - 1, microOutputs, loss);
    this.cur = (1 - this.cur) as 0 | 1;
    this.applied++;
    return { step: stepNo, loss, gradNorm, lr, skipped: false, outputs, microOutputs };
  }

  private nonFinite(
    step: number,
    lr: number,
    what: string,
    micro: number,
    microOutputs: Record<string, Tensor>[],
    loss = Number.NaN,
  ): StepResult {
    const outputs = microOutputs[microOutputs.length - 1] ?? {};
    const where = this.plan.accumulation > 1 ? ` (micro-batch ${micro + 1})` : '';
    if (this.plan.nonFinite === 'error')
      throw new TrainingError(`${what}${where}; parameters were not updated`, step, {
        hint: "lower the learning rate, check the data, or set nonFinite: 'skip'",
      });
    // Skip: the new values went to the other buffer set, so not swapping discards them.
    this.skipped++;
    return { step, loss, gradNorm: Number.NaN, lr, skipped: true, outputs, microOutputs };
  }

  private checkFeeds(feeds: Feeds, micro: number): Record<string, readonly number[]> {
    const shapes: Record<string, readonly number[]> = {};
    for (const d of this.plan.dataInputs) {
      const t = feeds[d.name];
      if (t === undefined)
        throw new ShapeError('feed', `missing input '${d.name}' in micro-batch ${micro + 1}`, {
          hint: `the forward builder declared ${this.plan.dataInputs.map((x) => x.name).join(', ')}`,
        });
      if (t.dtype !== d.dtype)
        throw new ShapeError('feed', `input '${d.name}' must be ${d.dtype}, got ${t.dtype}`);
      shapes[d.name] = t.shape;
    }
    bindDims(this.plan.dataInputs, shapes);
    return shapes;
  }

  private extraOutputs(shapes: Record<string, readonly number[]>): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    const extras = this.plan.outputs.slice(1);
    if (extras.length === 0) return out;
    const env = bindDims(this.plan.dataInputs, shapes);
    for (const o of extras)
      out[o.name] = tensor(o.dtype, resolveShape(o.shape, env, `output '${o.name}'`));
    return out;
  }

  async readParams(): Promise<ParamStore> {
    const p = this.params;
    return ParamStore.fromBuffers(p.layout, p.flat.slice(), p.frozen);
  }

  async state(): Promise<TrainerState> {
    const s = this.sets[this.cur];
    const slots: Record<string, Float32Array> = {};
    this.plan.slots.forEach((name, i) => {
      slots[name] = (s.slots[i] as Float32Array).slice();
    });
    return { step: this.applied, skipped: this.skipped, params: s.params.slice(), slots };
  }

  async load(state: TrainerState): Promise<void> {
    this.enter('load');
    try {
      this.loadNow(state);
    } finally {
      this.busy = undefined;
    }
  }

  private loadNow(state: TrainerState): void {
    const n = this.plan.layout.size;
    if (state.params.length !== n)
      throw new ShapeError(
        'load',
        `checkpoint has ${state.params.length} parameters, layout has ${n}`,
      );
    for (const name of this.plan.slots) {
      const v = state.slots[name];
      if (!v || v.length !== n)
        throw new ShapeError('load', `checkpoint lacks optimizer state '${name}' of size ${n}`, {
          hint: 'resume with the optimizer the checkpoint was saved with',
        });
    }
    if (!(Number.isInteger(state.step) && state.step >= 0))
      throw new ShapeError('load', `bad step count ${state.step}`);
    const s = this.sets[this.cur];
    s.params.set(state.params);
    this.plan.slots.forEach((name, i) => {
      (s.slots[i] as Float32Array).set(state.slots[name] as Float32Array);
    });
    this.applied = state.step;
    this.skipped = state.skipped ?? 0;
  }

  /** End the ORT profiles of the sessions (created with `session.profilePrefix`), writing them. */
  endProfiling(): void {
    this.stepSession.endProfiling();
    this.accumSession?.endProfiling();
  }

  async release(): Promise<void> {
    await this.stepSession.release();
    await this.accumSession?.release();
  }
}

function sum(a: TypedArrayOf['float32']): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] as number;
  return s;
}

/**
 * Build the step graph(s) and sessions and return an in-process trainer. The trainer adopts
 * `params.flat` as buffer set A (no copy): read parameters through `trainer.params` afterwards.
 * @example
 * const t = await createTrainer({ build, params, optimizer: { type: 'adamw', learning_rate: 1e-3 } });
 * const { loss, gradNorm, lr } = await t.step({ input_ids, labels });
 */
export async function createTrainer(
  o: TrainerOptions & { session?: SessionOptions },
): Promise<StepRunner> {
  const plan = planTrainer(o);
  const frozen: Record<string, Float32Array> = {};
  for (const f of o.params.frozen) frozen[f.name] = f.data;
  return StepRunner.create(plan, o.params.flat, frozen, o.session);
}
