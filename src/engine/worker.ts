// Training in a worker thread, so the main thread's event loop stays free for progress bars
// and servers while onnxruntime's blocking `run` computes. The graphs are built here (the
// forward builder is a function and cannot cross threads); the worker only runs sessions.
// Buffers are COPIED across: onnxruntime-node 1.30 rejects SharedArrayBuffer-backed tensors.

import type { Worker } from 'node:worker_threads';
import {
  ConfigError,
  DataError,
  EndpointError,
  FormatError,
  ShapeError,
  TrainingError,
} from '../util/errors.ts';
import { spawnTsWorker } from '../util/ts-worker.ts';
import { ParamStore } from './params.ts';
import type { SessionOptions } from './runtime.ts';
import type { Feeds, StepOptions, StepResult, Trainer, TrainerState } from './step.ts';
import type { TrainerOptions, TrainerPlan } from './step-graph.ts';
import { planTrainer } from './step-graph.ts';

/** Messages the main thread sends (each carries an id the reply echoes). */
export type WorkerRequest =
  | {
      type: 'init';
      plan: TrainerPlan;
      params: Float32Array;
      frozen: Record<string, Float32Array>;
      session: SessionOptions;
    }
  | { type: 'step'; feeds: Feeds[]; opts: StepOptions }
  | { type: 'state' }
  | { type: 'params' }
  | { type: 'frozen' }
  | { type: 'load'; state: TrainerState }
  | { type: 'dispose' };

/** An error as it crosses the thread boundary. */
export interface WireError {
  name: string;
  message: string;
  stack?: string;
  hint?: string;
  step?: number;
  op?: string;
  file?: string;
  line?: number;
  field?: string;
  status?: number;
}

/** The worker's reply to request `id`. */
export type WorkerReply =
  | { id: number; ok: true; result: unknown; stepCount: number; skippedCount: number }
  | { id: number; ok: false; error: WireError };

/** Serialise any thrown value for postMessage. */
export function toWire(e: unknown): WireError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const x = e as Error & Partial<Record<keyof WireError, unknown>>;
  const w: WireError = { name: e.name, message: e.message };
  if (e.stack !== undefined) w.stack = e.stack;
  for (const k of ['hint', 'op', 'file', 'field'] as const)
    if (typeof x[k] === 'string') w[k] = x[k] as string;
  for (const k of ['step', 'line', 'status'] as const)
    if (typeof x[k] === 'number') w[k] = x[k] as number;
  return w;
}

/** Rebuild the typed error on this side, keeping the original message, fields and stack. */
export function fromWire(w: WireError): Error {
  const opts = w.hint !== undefined ? { hint: w.hint } : {};
  const loc = { file: w.file, line: w.line, field: w.field };
  let e: Error;
  switch (w.name) {
    case 'TrainingError':
      e = new TrainingError('', w.step, opts);
      break;
    case 'ShapeError':
      e = new ShapeError(w.op ?? '', '', opts);
      break;
    case 'ConfigError':
      e = new ConfigError('', loc, opts);
      break;
    case 'DataError':
      e = new DataError('', loc, opts);
      break;
    case 'FormatError':
      e = new FormatError('', w.file, opts);
      break;
    case 'EndpointError':
      e = new EndpointError('', w.status, opts);
      break;
    default:
      e = new Error('');
      e.name = w.name;
  }
  Object.defineProperty(e, 'message', { value: w.message, writable: true, configurable: true });
  const frames = (w.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l));
  e.stack = [`${w.name}: ${w.message}`, '    (in the training worker)', ...frames].join('\n');
  return e;
}

/** Options of `createWorkerTrainer`. */
export interface WorkerTrainerOptions extends TrainerOptions {
  session?: SessionOptions;
  /**
   * Move `params.flat` and the frozen buffers into the worker instead of copying them (saves
   * one copy of the model; the store's buffers become unusable here). @default false
   */
  transfer?: boolean;
}

/**
 * A Trainer whose sessions run in a worker thread. `step` resolves when the worker finishes;
 * the main thread keeps running meanwhile. Parameters are read back with `readParams()` (a copy).
 */
export class WorkerTrainer implements Trainer {
  private nextId = 1;
  private pending = new Map<
    number,
    { resolve: (v: unknown) => void; reject: (e: Error) => void }
  >();
  private steps = 0;
  private skips = 0;
  private dead: Error | undefined;

  private constructor(
    readonly plan: TrainerPlan,
    private readonly worker: Worker,
    /** Copies of the frozen parameters, or undefined when they were moved to the worker. */
    private readonly frozen: ParamStore['frozen'] | undefined,
  ) {
    // The worker keeps the process alive only while a request is pending, so a trainer that
    // was never released does not hang the program at exit.
    worker.unref();
    worker.on('message', (r: WorkerReply) => this.settle(r));
    worker.on('error', (e) => this.fail(e));
    worker.on('exit', (code) => this.fail(new Error(`training worker exited with code ${code}`)));
  }

  /** Build the plan here, start the worker and load the plan's sessions there. */
  static async create(o: WorkerTrainerOptions): Promise<WorkerTrainer> {
    const plan = planTrainer(o);
    const worker = spawnWorker();
    const frozenCopy = o.transfer
      ? undefined
      : o.params.frozen.map((f) => ({ ...f, data: f.data.slice() }));
    const t = new WorkerTrainer(plan, worker, frozenCopy);
    const frozen: Record<string, Float32Array> = {};
    for (const f of o.params.frozen) frozen[f.name] = f.data;
    const transfer = o.transfer
      ? [o.params.flat.buffer, ...o.params.frozen.map((f) => f.data.buffer)].filter(
          (b): b is ArrayBuffer => b instanceof ArrayBuffer,
        )
      : [];
    try {
      await t.call(
        { type: 'init', plan, params: o.params.flat, frozen, session: o.session ?? {} },
        transfer,
      );
    } catch (e) {
      await worker.terminate();
      throw e;
    }
    return t;
  }

  get stepCount(): number {
    return this.steps;
  }

  get skippedCount(): number {
    return this.skips;
  }

  step(feeds: Feeds | readonly Feeds[], opts: StepOptions = {}): Promise<StepResult> {
    const list = Array.isArray(feeds) ? [...(feeds as readonly Feeds[])] : [feeds as Feeds];
    return this.call({ type: 'step', feeds: list, opts }) as Promise<StepResult>;
  }

  state(): Promise<TrainerState> {
    return this.call({ type: 'state' }) as Promise<TrainerState>;
  }

  async load(state: TrainerState): Promise<void> {
    await this.call({ type: 'load', state });
  }

  /** A copy of the current parameters (frozen ones from the worker if they were moved there). */
  async readParams(): Promise<ParamStore> {
    // Only the parameters cross the thread, not the optimizer slots (AdamW's two moments would
    // triple the copy): online trainers read the weights back before every rollout.
    const params = (await this.call({ type: 'params' })) as Float32Array;
    const frozen = this.frozen ?? ((await this.call({ type: 'frozen' })) as ParamStore['frozen']);
    return ParamStore.fromBuffers(this.plan.layout, params, frozen);
  }

  async release(): Promise<void> {
    if (this.dead) return;
    await this.call({ type: 'dispose' });
    this.dead = new Error('the trainer was released');
    await this.worker.terminate();
  }

  private call(req: WorkerRequest, transfer: ArrayBuffer[] = []): Promise<unknown> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, ...req }, transfer);
    });
  }

  private settle(r: WorkerReply): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (this.pending.size === 0) this.worker.unref();
    if (r.ok) {
      this.steps = r.stepCount;
      this.skips = r.skippedCount;
      p.resolve(r.result);
    } else p.reject(fromWire(r.error));
  }

  private fail(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

/**
 * Same as `createTrainer`, but the sessions run in a worker thread.
 * @example
 * const t = await createWorkerTrainer({ build, params, optimizer: { type: 'adamw', learning_rate: 1e-3 } });
 * const r = await t.step(feeds); // the event loop keeps turning meanwhile
 */
export function createWorkerTrainer(o: WorkerTrainerOptions): Promise<WorkerTrainer> {
  return WorkerTrainer.create(o);
}

/** Start the worker on worker-entry.ts (through the tsx bootstrap in util/ts-worker.ts). */
function spawnWorker(): Worker {
  return spawnTsWorker(new URL('./worker-entry.ts', import.meta.url));
}
