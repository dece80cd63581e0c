// A causal language model in memory: spec + tokenizer + parameters in the engine's flat
// ParamStore (trainable ones packed in one buffer, frozen ones apart) + an optional LoRA
// adapter, with one cached onnxruntime session per graph variant (decode, scoring with k
// alternatives, all-position logits). Loads and saves HF directories and PEFT adapters.
// Training loops, sampling and batching live elsewhere (train/, generate.ts, decoding.ts).

import { Graph, type Var } from '../engine/graph.ts';
import { type ParamSpec, ParamStore, planLayout } from '../engine/params.ts';
import {
  createSession,
  type Session,
  type SessionOptions,
  type Tensor,
  tensor,
} from '../engine/runtime.ts';
import type { ForwardBuilder } from '../engine/step-graph.ts';
import { ConfigError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { type Checkpoint, loadCheckpoint, saveCheckpoint } from './checkpoint.ts';
import type { ModelSpec } from './config.ts';
import type { Weights } from './decoder.ts';
import {
  buildDecodeGraph,
  buildLogitsGraph,
  buildScoreGraph,
  DECODE_IO,
  type TrainingForwardOptions,
  trainingForward,
} from './graphs.ts';
import { causalBias } from './kv-cache.ts';
import {
  fromPeftAdapter,
  initLoraWeights,
  type LoraOptions,
  type LoraSpec,
  loraSpec,
  toPeftAdapter,
} from './lora.ts';
import { type LoraAdapter, loadPeftAdapter, mergeLora, savePeftAdapter } from './peft.ts';
import type { FloatStorageDtype } from './safetensors.ts';
import type { HostTensor, TensorMap } from './tensor.ts';
import type { Tokenizer } from './tokenizer.ts';
import { checkTensors, expectedTensors } from './weights.ts';

/** A model given in memory rather than as a directory. */
export interface ModelSource {
  spec: ModelSpec;
  tensors: TensorMap;
  tokenizer?: Tokenizer | null;
  generationConfig?: Readonly<Record<string, unknown>> | null;
}

/** Options of loadModel. */
export interface LoadModelOptions {
  /** A PEFT adapter directory to attach (unmerged; call mergeAdapter() to fold it in). */
  adapter?: string;
  /** onnxruntime options of the inference sessions (threads, ...). */
  sessionOptions?: SessionOptions;
}

/** HF-style initial weights: N(0, initializer_range) for matrices, 1 for norm gains, 0 for biases. */
export function randomWeights(spec: ModelSpec, seed: number): TensorMap {
  const out: TensorMap = new Map();
  const root = new Rng(`init/${seed}`);
  for (const [name, shape] of expectedTensors(spec)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (/(norm|ln_\d|ln_f)\.weight$/.test(name)) data.fill(1);
    else if (!name.endsWith('.bias')) {
      const rng = root.fork(name);
      for (let i = 0; i < data.length; i++) data[i] = rng.normal() * spec.initializerRange;
    }
    out.set(name, { shape, data });
  }
  return out;
}

interface Entry {
  name: string;
  shape: readonly number[];
  data: Float32Array;
  trainable: boolean;
}

/** Pack entries into a ParamStore: trainable ones copied into the flat buffer, frozen ones shared. */
function packStore(entries: readonly Entry[]): ParamStore {
  const layout = planLayout(
    entries.map((e) => ({ name: e.name, shape: e.shape, frozen: !e.trainable })),
  );
  const flat = new Float32Array(layout.size);
  const byName = new Map(entries.map((e) => [e.name, e]));
  for (const v of layout.views) flat.set(byName.get(v.name)!.data, v.offset);
  const frozen = entries
    .filter((e) => !e.trainable)
    .map((e) => ({ name: e.name, shape: [...e.shape], data: e.data }));
  return ParamStore.fromBuffers(layout, flat, frozen);
}

/** Which parameters a training run updates. */
export type Trainable = 'all' | 'adapter' | 'none';

/**
 * A causal LM whose parameters live in a ParamStore.
 * @example
 * const model = await loadModel('models/tiny');
 * const [r] = await generate(model, ['Hello'], { max_new_tokens: 8 });
 * model.attachLora({ r: 8, lora_alpha: 16 }, 0);          // base frozen, adapter trainable
 * const trainer = await createTrainer({ build: model.trainingBuilder(), params: model.params, ... });
 */
export class Model {
  readonly spec: ModelSpec;
  tokenizer: Tokenizer | null;
  generationConfig: Readonly<Record<string, unknown>> | null;
  /** Options for the inference sessions; set before their first use. */
  sessionOptions: SessionOptions = {};
  #store: ParamStore;
  #names: { base: string[]; adapter: string[] };
  #trainable: Trainable;
  #shapes = new Map<string, readonly number[]>();
  #lora: LoraSpec | null = null;
  #sessions = new Map<string, Promise<Session>>();
  #feeds: Record<string, Tensor> | null = null;

  /** Wraps HF-named weights (checked against the spec); they are trainable unless told. */
  constructor(src: ModelSource, opts: { trainable?: Trainable } = {}) {
    checkTensors(src.spec, src.tensors);
    this.spec = src.spec;
    this.tokenizer = src.tokenizer ?? null;
    this.generationConfig = src.generationConfig ?? null;
    this.#names = { base: [...src.tensors.keys()], adapter: [] };
    for (const [n, t] of src.tensors) this.#shapes.set(n, t.shape);
    this.#trainable = opts.trainable ?? 'all';
    this.#store = packStore(
      [...src.tensors].map(([name, t]) => ({
        name,
        shape: t.shape,
        data: t.data,
        trainable: this.#trainable === 'all',
      })),
    );
  }

  /** A freshly initialised model (seeded). */
  static random(spec: ModelSpec, seed: number, tokenizer: Tokenizer | null = null): Model {
    return new Model({ spec, tensors: randomWeights(spec, seed), tokenizer });
  }

  /** The parameter store (hand it to createTrainer; read it back with adoptParams). */
  get params(): ParamStore {
    return this.#store;
  }

  /** What training updates: every weight, only the adapter, or nothing. */
  get trainable(): Trainable {
    return this.#trainable;
  }

  /** A tensor by HF / PEFT name (a view of the store, not a copy). */
  tensor(name: string): HostTensor {
    if (!this.#store.has(name))
      throw new ConfigError(`the model has no weight '${name}'`, { field: name });
    const shape = this.#shape(name);
    return { shape, data: this.#store.get(name) };
  }

  #shape(name: string): readonly number[] {
    return this.#shapes.get(name)!;
  }

  /** Base weights by HF name (views into the store). */
  get weights(): TensorMap {
    return new Map(this.#names.base.map((n) => [n, this.tensor(n)]));
  }

  /** The attached adapter's spec and PEFT-named weights, or null. */
  get lora(): { spec: LoraSpec; tensors: TensorMap } | null {
    if (!this.#lora) return null;
    return {
      spec: this.#lora,
      tensors: new Map(this.#names.adapter.map((n) => [n, this.tensor(n)])),
    };
  }

  /** Every weight the graphs read, base then adapter. */
  allWeights(): [string, HostTensor][] {
    return [...this.#names.base, ...this.#names.adapter].map((n) => [n, this.tensor(n)]);
  }

  #repack(trainable: Trainable, extra: TensorMap = new Map()): void {
    const entries: Entry[] = [];
    for (const n of this.#names.base)
      entries.push({ name: n, ...this.tensor(n), trainable: trainable === 'all' });
    for (const n of this.#names.adapter)
      entries.push({
        name: n,
        ...(extra.get(n) ?? this.tensor(n)),
        trainable: trainable !== 'none',
      });
    this.#store = packStore(entries);
    this.#trainable = trainable;
    this.#feeds = null;
  }

  /** Choose what training updates ('adapter' needs an attached adapter). Re-packs the store. */
  setTrainable(trainable: Trainable): void {
    if (trainable === 'adapter' && !this.#lora)
      throw new ConfigError('no adapter is attached', { field: 'trainable' });
    this.#repack(trainable);
  }

  /**
   * Attach a fresh LoRA adapter (A Kaiming-uniform, B zero: logits are unchanged) and make it
   * the only trainable part; the base weights become frozen (no gradient graph is built).
   */
  attachLora(lora: LoraSpec | LoraOptions, seed = 0): void {
    const spec = 'targets' in lora ? (lora as LoraSpec) : loraSpec(lora as LoraOptions);
    this.#attach(spec, initLoraWeights(this.spec, spec, seed));
  }

  #attach(spec: LoraSpec, tensors: TensorMap): void {
    if (this.#lora) throw new ConfigError('an adapter is already attached', { field: 'adapter' });
    this.#lora = spec;
    this.#names.adapter = [...tensors.keys()];
    for (const [n, t] of tensors) this.#shapes.set(n, t.shape);
    this.#repack('adapter', tensors);
    this.invalidate();
  }

  /** Attach a PEFT adapter (adapter_config.json + adapter_model.safetensors), frozen base. */
  async loadAdapter(dir: string): Promise<void> {
    const a = fromPeftAdapter(this.spec, await loadPeftAdapter(dir), dir);
    this.#attach(a.spec, a.tensors);
  }

  /** The attached adapter in PEFT form (for savePeftAdapter, mergeLora, exportLoraGguf). */
  peftAdapter(baseModel: string | null = null): LoraAdapter {
    const l = this.lora;
    if (!l) throw new ConfigError('no adapter is attached', { field: 'adapter' });
    return toPeftAdapter(this.spec, l.spec, l.tensors, baseModel);
  }

  /** Write the adapter as a PEFT directory. */
  async saveAdapter(dir: string, opts: { baseModel?: string; dtype?: FloatStorageDtype } = {}) {
    await savePeftAdapter(dir, this.peftAdapter(opts.baseModel ?? null), { dtype: opts.dtype });
  }

  /** Fold the adapter into the base weights (W += scale·B·A) and drop it; all trainable again. */
  mergeAdapter(): void {
    const merged = mergeLora(this.weights, this.peftAdapter());
    this.#lora = null;
    for (const n of this.#names.adapter) this.#shapes.delete(n);
    this.#names.adapter = [];
    const entries = [...merged].map(([name, t]) => ({
      name,
      shape: t.shape,
      data: t.data,
      trainable: true,
    }));
    this.#store = packStore(entries);
    this.#trainable = 'all';
    this.#feeds = null;
    this.invalidate();
  }

  /** Overwrite weight values by name (e.g. from a trainer); sessions stay valid. */
  setWeights(values: ReadonlyMap<string, ArrayLike<number>>): void {
    for (const [name, data] of values) {
      if (!this.#store.has(name))
        throw new ConfigError(`unknown weight '${name}'`, { field: name });
      this.#store.set(name, data);
    }
  }

  /** Take every value from a store with the same names (e.g. `await trainer.readParams()`). */
  adoptParams(store: ParamStore): void {
    for (const [name] of this.allWeights()) {
      if (!store.has(name))
        throw new ConfigError(`the store has no parameter '${name}'`, { field: name });
      this.#store.set(name, store.get(name));
    }
  }

  /** Parameter specs of the current split (for callers that build their own ParamStore). */
  paramSpecs(): ParamSpec[] {
    return this.allWeights().map(([name, t]) => ({
      name,
      shape: t.shape,
      init: { kind: 'data', data: t.data },
      frozen: !this.#isTrainable(name),
    }));
  }

  #isTrainable(name: string): boolean {
    return this.#store.layout.views.some((v) => v.name === name);
  }

  /** The training forward (graphs.ts) with this model's adapter, for createTrainer. */
  trainingBuilder(opts: Omit<TrainingForwardOptions, 'lora'> = {}): ForwardBuilder {
    return trainingForward(this.spec, { ...opts, lora: this.#lora ?? undefined });
  }

  // -------------------------------------------------------------------------------------------
  // Inference: weights are graph inputs fed from the store each run (no copy).

  /** Feeds of every weight, by name. */
  weightFeeds(): Record<string, Tensor> {
    if (!this.#feeds) {
      this.#feeds = {};
      for (const [name, t] of this.allWeights())
        this.#feeds[name] = tensor('float32', t.shape, t.data);
    }
    return this.#feeds;
  }

  #weightInputs(g: Graph): Weights {
    const declared = new Map<string, Var>();
    const shapes = new Map(this.allWeights().map(([n, t]) => [n, t.shape]));
    return (n) => {
      let v = declared.get(n);
      if (!v) {
        const shape = shapes.get(n);
        if (!shape) throw new ConfigError(`the model has no weight '${n}'`, { field: n });
        v = g.input(n, 'float32', shape);
        declared.set(n, v);
      }
      return v;
    };
  }

  #session(key: string, build: (g: Graph, w: Weights) => void): Promise<Session> {
    let s = this.#sessions.get(key);
    if (!s) {
      const g = new Graph({ name: `${this.spec.modelType}-${key}` });
      build(g, this.#weightInputs(g));
      s = createSession(g, this.sessionOptions);
      this.#sessions.set(key, s);
    }
    return s;
  }

  /** The cached decode graph (graphs.ts buildDecodeGraph). */
  decodeSession(): Promise<Session> {
    return this.#session('decode', (g, w) =>
      buildDecodeGraph(g, this.spec, w, { lora: this.#lora ?? undefined }),
    );
  }

  /** The scoring graph (graphs.ts buildScoreGraph), one session per number of alternatives. */
  scoreSession(topK = 0): Promise<Session> {
    return this.#session(`score-top${topK}`, (g, w) =>
      buildScoreGraph(g, this.spec, w, { lora: this.#lora ?? undefined, topK }),
    );
  }

  /** The all-position logits graph. */
  logitsSession(): Promise<Session> {
    return this.#session('logits', (g, w) =>
      buildLogitsGraph(g, this.spec, w, { lora: this.#lora ?? undefined }),
    );
  }

  /**
   * Logits [B, T, V] of equal-length token sequences (causal, positions 0..T−1), for tests
   * and checks against other runtimes.
   */
  async logits(ids: readonly number[] | readonly (readonly number[])[]): Promise<HostTensor> {
    const rows = (typeof ids[0] === 'number' ? [ids] : ids) as readonly (readonly number[])[];
    const B = rows.length;
    const T = rows[0]?.length ?? 0;
    if (T === 0 || rows.some((r) => r.length !== T))
      throw new ConfigError('logits() needs non-empty sequences of one length', { field: 'ids' });
    const flat = BigInt64Array.from(rows.flat().map(BigInt));
    const pos = BigInt64Array.from({ length: B * T }, (_, i) => BigInt(i % T));
    const out = await (await this.logitsSession()).run({
      ...this.weightFeeds(),
      [DECODE_IO.ids]: tensor('int64', [B, T], flat),
      [DECODE_IO.positions]: tensor('int64', [B, T], pos),
      [DECODE_IO.bias]: tensor('float32', [B, 1, T, T], causalBias(B, T)),
    });
    const l = out[DECODE_IO.logits]!;
    return { shape: l.shape, data: l.data as Float32Array };
  }

  /** Drop compiled sessions (after the set of weights changed). */
  invalidate(): void {
    const old = [...this.#sessions.values()];
    this.#sessions.clear();
    this.#feeds = null;
    for (const s of old) void s.then((x) => x.release()).catch(() => undefined);
  }

  /** Release every session. */
  async release(): Promise<void> {
    const old = [...this.#sessions.values()];
    this.#sessions.clear();
    for (const s of old) await (await s).release();
  }

  /**
   * Write an HF model directory (config.json, safetensors, tokenizer, generation config). The
   * adapter is not included: merge it first, or save it with saveAdapter.
   */
  async save(dir: string, opts: { dtype?: FloatStorageDtype; maxShardBytes?: number } = {}) {
    return saveCheckpoint(
      dir,
      {
        spec: this.spec,
        tensors: this.weights,
        tokenizer: this.tokenizer,
        generationConfig: this.generationConfig,
      },
      opts,
    );
  }
}

/**
 * A Model from an HF directory (config.json, safetensors or shards, tokenizer files) or from
 * memory; optionally with a PEFT adapter attached.
 * @example const model = await loadModel('out/tiny', { adapter: 'out/tiny-lora' });
 */
export async function loadModel(
  src: string | ModelSource | Checkpoint,
  opts: LoadModelOptions = {},
): Promise<Model> {
  const s: ModelSource = typeof src === 'string' ? await loadCheckpoint(src) : src;
  const model = new Model(s);
  if (opts.sessionOptions) model.sessionOptions = opts.sessionOptions;
  if (opts.adapter !== undefined) await model.loadAdapter(opts.adapter);
  return model;
}

/** Save a model as an HF directory (see Model.save). */
export function saveModel(
  model: Model,
  dir: string,
  opts: { dtype?: FloatStorageDtype; maxShardBytes?: number } = {},
): Promise<string[]> {
  return model.save(dir, opts);
}
