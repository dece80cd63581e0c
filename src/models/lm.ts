// The one in-memory causal language model: spec + HF-named float32 weights + optional LoRA
// adapter (PEFT names; lora.ts) + tokenizer, with one cached onnxruntime session per inference
// graph of graphs.ts (cached decode, scoring with k alternatives, all-position logits) and the
// training forward for the engine's trainer. Loads and saves HF directories and PEFT adapters.
// Sampling and batching are decoding.ts's; training loops are src/train's.
import { Graph, type Var } from '../engine/graph.ts';
import type { ParamSpec } from '../engine/params.ts';
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
import {
  type Checkpoint,
  loadCheckpoint,
  type SaveCheckpointOptions,
  saveCheckpoint,
} from './checkpoint.ts';
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
import { assignWeights, checkTensors, expectedTensors } from './weights.ts';

/** HF-style initialisation: N(0, initializer_range) for matrices and embeddings, 1 for norm gains, 0 for biases. */
export function initWeights(spec: ModelSpec, seed: number): TensorMap {
  const out: TensorMap = new Map();
  for (const [name, shape] of expectedTensors(spec)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = /(norm|ln_\d|ln_f)\.weight$/.test(name);
    if (isNorm) data.fill(1);
    else if (!name.endsWith('.bias')) {
      // One stream per tensor, so adding a tensor leaves the others' values unchanged.
      const rng = new Rng(`${seed}/${name}`);
      for (let i = 0; i < n; i++) data[i] = rng.normal() * spec.initializerRange;
    }
    out.set(name, { shape, data });
  }
  return out;
}

/** Options of CausalLM.load. */
export interface LoadModelOptions {
  /** A PEFT adapter directory to attach, unmerged (mergeAdapter() folds it in). */
  adapter?: string;
  /** onnxruntime options of the inference sessions (threads, ...). */
  sessionOptions?: SessionOptions;
}

/** An adapter given as a finished LoraSpec or as PEFT-named options (r, lora_alpha, ...). */
export type LoraInput = LoraSpec | LoraOptions;

function toLoraSpec(l: LoraInput): LoraSpec {
  return 'targets' in l ? l : loraSpec(l);
}

/**
 * A causal LM (LLaMA family or GPT-2) in memory.
 * @example
 * const lm = await CausalLM.load('out/tiny');               // or CausalLM.random(spec, seed, tok)
 * const [r] = await generate(lm, ['Q: 2+2?\nA:'], { max_new_tokens: 8, stop: ['\n'] });
 * lm.attachLora({ r: 8, lora_alpha: 16 }, 0);                // targets q, k, v, o, gate, up, down
 * const params = ParamStore.create(lm.paramSpecs({ lora: true }), { seed: 0 });
 * const trainer = await createTrainer({ build: lm.trainingBuilder(), params, ... });
 * lm.setWeights(...); await lm.saveAdapter('out/tiny-lora'); lm.mergeAdapter();
 */
export class CausalLM {
  readonly spec: ModelSpec;
  weights: TensorMap;
  tokenizer: Tokenizer | null;
  generationConfig: Readonly<Record<string, unknown>> | null = null;
  /** The attached LoRA adapter: its spec and weights by PEFT name. */
  lora: { spec: LoraSpec; tensors: TensorMap } | null = null;
  /** Options for the inference sessions (threads, ORT extras); set before the first use. */
  sessionOptions: SessionOptions = {};
  #sessions = new Map<string, Promise<Session>>();
  #weightFeeds: Record<string, Tensor> | null = null;

  /** Wraps HF-named weights; a missing, misshapen or unexpected tensor is a FormatError. */
  constructor(spec: ModelSpec, weights: TensorMap, tokenizer: Tokenizer | null = null) {
    checkTensors(spec, weights);
    this.spec = spec;
    this.weights = weights;
    this.tokenizer = tokenizer;
  }

  static fromCheckpoint(c: Checkpoint): CausalLM {
    const lm = new CausalLM(c.spec, c.tensors, c.tokenizer);
    lm.generationConfig = c.generationConfig;
    return lm;
  }

  /** Loads an HF model directory (config.json, safetensors or shards, tokenizer files). */
  static async load(dir: string, opts: LoadModelOptions = {}): Promise<CausalLM> {
    const lm = CausalLM.fromCheckpoint(await loadCheckpoint(dir));
    if (opts.sessionOptions) lm.sessionOptions = opts.sessionOptions;
    if (opts.adapter !== undefined) await lm.loadAdapter(opts.adapter);
    return lm;
  }

  /** A freshly initialised model of `spec` (initWeights). */
  static random(spec: ModelSpec, seed: number, tokenizer: Tokenizer | null = null): CausalLM {
    return new CausalLM(spec, initWeights(spec, seed), tokenizer);
  }

  /** Every weight the graphs read, base then adapter. */
  allWeights(): [string, HostTensor][] {
    return [...this.weights, ...(this.lora ? [...this.lora.tensors] : [])];
  }

  /** Replace weight values in place (e.g. from a trainer's readParams); sessions stay valid. */
  setWeights(values: ReadonlyMap<string, ArrayLike<number>>): void {
    assignWeights(values, this.weights, this.lora?.tensors);
  }

  /**
   * Parameter specs for the engine's ParamStore, valued from the current weights: everything
   * trainable (full fine-tuning), or the adapter trainable and the base frozen (`lora: true`).
   */
  paramSpecs(opts: { lora?: boolean } = {}): ParamSpec[] {
    if (opts.lora && !this.lora)
      throw new ConfigError('LoRA training needs an attached adapter', { field: 'lora' });
    return this.allWeights().map(([name, t]) => {
      const adapter = this.lora?.tensors.has(name) ?? false;
      return {
        name,
        shape: t.shape,
        init: { kind: 'data', data: t.data },
        frozen: opts.lora === true && !adapter,
      };
    });
  }

  /**
   * The training forward (graphs.ts trainingForward) for createTrainer, with the attached
   * adapter unless `lora` gives another spec for it (e.g. the same one without dropout).
   */
  trainingBuilder(opts: TrainingForwardOptions = {}): ForwardBuilder {
    const lora = opts.lora ?? this.lora?.spec;
    if (lora && !this.lora)
      throw new ConfigError('the training graph has LoRA but no adapter is attached', {
        field: 'lora',
      });
    return trainingForward(this.spec, { ...opts, lora });
  }

  // -------------------------------------------------------------------------------------------
  // LoRA

  /**
   * Attach a fresh adapter (A Kaiming-uniform, B zero, so logits are unchanged). Targets may
   * be module names (q_proj, self_attn.q_proj) or short aliases (q, k, v, o, gate, up, down).
   */
  attachLora(lora: LoraInput, seed = 0): void {
    const spec = toLoraSpec(lora);
    this.#attach(spec, initLoraWeights(this.spec, spec, seed));
  }

  #attach(spec: LoraSpec, tensors: TensorMap): void {
    if (this.lora) throw new ConfigError('an adapter is already attached', { field: 'adapter' });
    this.lora = { spec, tensors };
    this.invalidate();
  }

  /** Attach a PEFT adapter directory (adapter_config.json + adapter_model.safetensors). */
  async loadAdapter(dir: string): Promise<void> {
    const a = fromPeftAdapter(this.spec, await loadPeftAdapter(dir), dir);
    this.#attach(a.spec, a.tensors);
  }

  /** The attached adapter in PEFT form (for savePeftAdapter, mergeLora, exportLoraGguf). */
  peftAdapter(baseModel: string | null = null): LoraAdapter {
    if (!this.lora) throw new ConfigError('no adapter is attached', { field: 'adapter' });
    return toPeftAdapter(this.spec, this.lora.spec, this.lora.tensors, baseModel);
  }

  /** Write the adapter as a PEFT directory. */
  async saveAdapter(
    dir: string,
    opts: { baseModel?: string | null; dtype?: FloatStorageDtype } = {},
  ): Promise<void> {
    await savePeftAdapter(dir, this.peftAdapter(opts.baseModel ?? null), { dtype: opts.dtype });
  }

  /** Fold the adapter into the base weights (W += scale·B·A) and drop it. */
  mergeAdapter(): void {
    this.weights = mergeLora(this.weights, this.peftAdapter());
    this.lora = null;
    this.invalidate();
  }

  // -------------------------------------------------------------------------------------------
  // Inference: weights are graph inputs, fed from the host tensors each run (no copy).

  /** Feeds of every weight the graphs read, by name. */
  weightFeeds(): Record<string, Tensor> {
    if (!this.#weightFeeds) {
      this.#weightFeeds = {};
      for (const [name, t] of this.allWeights())
        this.#weightFeeds[name] = tensor('float32', t.shape, t.data);
    }
    return this.#weightFeeds;
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

  /** The cached decode step (graphs.ts buildDecodeGraph). */
  decodeSession(): Promise<Session> {
    return this.#session('decode', (g, w) =>
      buildDecodeGraph(g, this.spec, w, { lora: this.lora?.spec }),
    );
  }

  /** The scoring graph (graphs.ts buildScoreGraph), one session per number of alternatives. */
  scoreSession(topK = 0): Promise<Session> {
    return this.#session(`score-top${topK}`, (g, w) =>
      buildScoreGraph(g, this.spec, w, { lora: this.lora?.spec, topK }),
    );
  }

  /** The all-position logits graph (graphs.ts buildLogitsGraph). */
  logitsSession(): Promise<Session> {
    return this.#session('logits', (g, w) =>
      buildLogitsGraph(g, this.spec, w, { lora: this.lora?.spec }),
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

  /** Drop compiled sessions (after the set of weights changed: an adapter attached or merged). */
  invalidate(): void {
    const old = [...this.#sessions.values()];
    this.#sessions.clear();
    this.#weightFeeds = null;
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
   * adapter is not included: merge it first, or write it with saveAdapter.
   */
  save(dir: string, opts: SaveCheckpointOptions = {}): Promise<string[]> {
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
