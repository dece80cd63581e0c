// The thin onnxruntime-node layer, and the ONLY file in the project that imports it: our own
// Tensor type, session creation from model bytes or a Graph, run with optional pre-allocated
// outputs, and a cache of sessions keyed by shape bucket. Worker threads live elsewhere.
import * as ort from 'onnxruntime-node';
import { env } from '../util/env.ts';
import { ShapeError } from '../util/errors.ts';
import type { DType, TypedArrayOf } from './dtype.ts';
import { allocTyped, dtypeOfArray } from './dtype.ts';
import { Graph } from './graph.ts';
import { toBytes } from './onnx.ts';

/** A concrete tensor: dtype, static shape and row-major data. */
export interface Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly shape: readonly number[];
  readonly data: TypedArrayOf[D];
}

/**
 * Make a tensor; `data` defaults to zeros and is used as is (not copied).
 * @example tensor('float32', [2, 3], new Float32Array(6))
 */
export function tensor<D extends DType>(
  dtype: D,
  shape: readonly number[],
  data?: TypedArrayOf[D],
): Tensor<D> {
  const n = shape.reduce((p, q) => p * q, 1);
  const d = data ?? allocTyped(dtype, n);
  if (d.length !== n)
    throw new ShapeError('tensor', `${d.length} values for shape [${shape.join(',')}]`);
  if (
    data !== undefined &&
    dtypeOfArray(data) !== dtype &&
    !(dtype === 'bool' && data instanceof Uint8Array)
  )
    throw new ShapeError('tensor', `a ${data.constructor.name} cannot back a ${dtype} tensor`);
  return { dtype, shape: [...shape], data: d };
}

/** Session options; every field is optional. */
export interface SessionOptions {
  /** Intra-op threads. @default env.threads (IK_THREADS, else all cores) */
  threads?: number;
  /** ORT graph optimisation level. @default 'all' */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Write an ORT profile with this file prefix. */
  profilePrefix?: string;
  /** ORT config entries (sessionOptions.extra), e.g. { session: { set_denormal_as_zero: '1' } }. */
  extra?: Record<string, unknown>;
  /** ORT log severity (0 verbose .. 4 fatal). @default 3 */
  logSeverity?: 0 | 1 | 2 | 3 | 4;
  /** Use ORT's CPU memory arena (it grows and never shrinks). @default true */
  memArena?: boolean;
  /** Let ORT plan one allocation pattern for all intermediates. @default true */
  memPattern?: boolean;
}

/** Pre-allocated outputs by name, or just the names to fetch. */
export type Fetches = readonly string[] | Readonly<Record<string, Tensor>>;

/** A loaded model. `run` blocks the JS thread while ORT computes (the binding is synchronous). */
export interface Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Wall time spent in InferenceSession.create, in ms. */
  readonly createMs: number;
  /**
   * Run with `feeds`. Outputs named in `fetches` (all when omitted) are returned; when
   * `fetches` maps names to tensors, ORT writes into those buffers and the same Tensor
   * objects are returned (the binding also copies each output once more internally).
   */
  run(feeds: Readonly<Record<string, Tensor>>, fetches?: Fetches): Promise<Record<string, Tensor>>;
  /** End an ORT profile started with `profilePrefix`. */
  endProfiling(): void;
  release(): Promise<void>;
}

// ORT's QuickGeluFusion rewrites Sigmoid·x into com.microsoft QuickGelu even for float64, which
// has no CPU kernel, so float64 graphs would fail to load. silu() emits QuickGelu itself.
const DISABLED_OPTIMIZERS = ['QuickGeluFusion'];

/**
 * Also off in training sessions: MatmulTransposeFusion would fold the explicit Transposes of
 * weight gradients (matmulTN in ops-matmul.ts) back into a slower transposed-A GEMM.
 */
export const TRAINING_DISABLED_OPTIMIZERS = ['MatmulTransposeFusion'];

/** `opts` with `names` added to ORT's disabled graph optimizers. */
export function withDisabledOptimizers(
  opts: SessionOptions,
  names: readonly string[],
): SessionOptions {
  const extra = opts.extra ?? {};
  const optim = { ...((extra.optimization as Record<string, unknown> | undefined) ?? {}) };
  const user = String(optim.disable_specified_optimizers ?? '');
  optim.disable_specified_optimizers = [...user.split(';').filter(Boolean), ...names].join(';');
  return { ...opts, extra: { ...extra, optimization: optim } };
}

function withDefaultExtra(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const optim = { ...((extra.optimization as Record<string, unknown> | undefined) ?? {}) };
  const user = String(optim.disable_specified_optimizers ?? '');
  optim.disable_specified_optimizers = [
    ...DISABLED_OPTIMIZERS,
    ...user.split(';').filter(Boolean),
  ].join(';');
  return { ...extra, optimization: optim };
}

function toOrt(t: Tensor): ort.Tensor {
  return new ort.Tensor(t.dtype, t.data as never, t.shape as number[]);
}

function fromOrt(t: ort.Tensor): Tensor {
  const dtype = t.type as DType;
  return { dtype, shape: [...t.dims], data: t.data as TypedArrayOf[DType] };
}

/** Load a model (bytes or a Graph, serialised here) into an onnxruntime session. */
export async function createSession(
  model: Uint8Array | Graph,
  opts: SessionOptions = {},
): Promise<Session> {
  const bytes = model instanceof Graph ? toBytes(model) : model;
  const so: ort.InferenceSession.SessionOptions = {
    executionProviders: ['cpu'],
    intraOpNumThreads: opts.threads ?? env.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: opts.optimization ?? 'all',
    logSeverityLevel: opts.logSeverity ?? 3,
    enableCpuMemArena: opts.memArena ?? true,
    enableMemPattern: opts.memPattern ?? true,
  };
  if (opts.profilePrefix !== undefined) {
    so.enableProfiling = true;
    so.profileFilePrefix = opts.profilePrefix;
  }
  so.extra = withDefaultExtra(opts.extra);
  const t0 = performance.now();
  const s = await ort.InferenceSession.create(bytes, so);
  const createMs = performance.now() - t0;
  return {
    inputNames: s.inputNames,
    outputNames: s.outputNames,
    createMs,
    async run(feeds, fetches) {
      const inFeeds: Record<string, ort.Tensor> = {};
      for (const name of s.inputNames) {
        const t = feeds[name];
        if (t === undefined)
          throw new ShapeError('run', `missing feed '${name}'`, {
            hint: `the model's inputs are ${s.inputNames.join(', ')}`,
          });
        inFeeds[name] = toOrt(t);
      }
      if (fetches === undefined) return mapOut(await s.run(inFeeds));
      if (Array.isArray(fetches)) return mapOut(await s.run(inFeeds, fetches as string[]));
      const pre = fetches as Readonly<Record<string, Tensor>>;
      const ortFetches: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(pre)) ortFetches[name] = toOrt(t);
      await s.run(inFeeds, ortFetches);
      return { ...pre };
    },
    endProfiling() {
      s.endProfiling();
    },
    release: () => s.release(),
  };
}

function mapOut(r: ort.InferenceSession.OnnxValueMapType): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(r)) out[k] = fromOrt(v as ort.Tensor);
  return out;
}

/**
 * Sessions built on demand per key (e.g. a padded (batch, seq) bucket), for graphs that need
 * static shapes. Keys are compared by their JSON form.
 */
export class SessionCache<K> {
  private sessions = new Map<string, Promise<Session>>();
  constructor(
    private readonly build: (key: K) => Graph | Uint8Array,
    private readonly opts: SessionOptions = {},
  ) {}

  /** The session for `key`, building and loading it on first use. */
  get(key: K): Promise<Session> {
    const k = JSON.stringify(key);
    let s = this.sessions.get(k);
    if (!s) {
      s = createSession(this.build(key), this.opts);
      this.sessions.set(k, s);
    }
    return s;
  }

  /** Number of sessions built so far. */
  get size(): number {
    return this.sessions.size;
  }

  /** Release every session. */
  async clear(): Promise<void> {
    const all = [...this.sessions.values()];
    this.sessions.clear();
    for (const s of all) await (await s).release();
  }
}
