// A causal language model in memory: spec + HF-named float32 weights (+ optional LoRA adapter)
// + tokenizer, with the graphs the rest of instructkit runs on it: the training forward (packed
// examples, next-token loss), a scoring forward (per-token log-probs and argmax agreement), and
// a cached decode step (past keys/values in, last-position logits and present out).
import { segmentMask } from '../engine/attention.ts';
import { linearCrossEntropy, linearTokenLogProbs } from '../engine/composite.ts';
import { Graph, type Var } from '../engine/graph.ts';
import {
  argMax,
  cast,
  gatherElements,
  greaterOrEqual,
  logSoftmax,
  reduceMax,
  slice,
  squeeze,
  unsqueeze,
} from '../engine/ops.ts';
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
import { type Checkpoint, loadCheckpoint } from './checkpoint.ts';
import type { ModelSpec } from './config.ts';
import { decoderForward, type KvPair, type LoraSpec, lmHeadWeight, loraNames } from './decoder.ts';
import type { HostTensor, TensorMap } from './tensor.ts';
import type { Tokenizer } from './tokenizer.ts';
import { expectedTensors } from './weights.ts';

/** HF-style initialisation: N(0, initializer_range) for matrices and embeddings, 1 for norm gains, 0 for biases. */
export function initWeights(spec: ModelSpec, seed: number): TensorMap {
  const out: TensorMap = new Map();
  for (const [name, shape] of expectedTensors(spec)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNorm = /(norm|ln_\d|ln_f)\.weight$/.test(name);
    if (isNorm) data.fill(1);
    else if (!name.endsWith('.bias')) {
      const rng = new Rng(`${seed}/${name}`);
      for (let i = 0; i < n; i++) data[i] = rng.normal() * spec.initializerRange;
    }
    out.set(name, { shape, data });
  }
  return out;
}

/** The HF modules a LoRA target name matches, with their [out, in] shapes. */
export function loraModules(
  spec: ModelSpec,
  lora: LoraSpec,
): { module: string; out: number; in: number }[] {
  const mods: { module: string; out: number; in: number }[] = [];
  for (const [name, shape] of expectedTensors(spec)) {
    if (!name.endsWith('.weight') || shape.length !== 2) continue;
    const module = name.slice(0, -'.weight'.length);
    const short = module.slice(module.lastIndexOf('.') + 1);
    if (!lora.targets.has(short)) continue;
    // GPT-2's Conv1D stores [in, out].
    const [out, inDim] = spec.family === 'gpt2' ? [shape[1]!, shape[0]!] : [shape[0]!, shape[1]!];
    mods.push({ module, out, in: inDim });
  }
  if (mods.length === 0) {
    throw new ConfigError(`no module matches LoRA targets ${[...lora.targets].join(', ')}`, {
      field: 'lora_target_modules',
    });
  }
  return mods;
}

export interface TrainingGraphOptions {
  /** Train only the LoRA adapter (base weights frozen). */
  lora?: LoraSpec;
  /** Recompute block activations in the backward pass. */
  recompute?: boolean;
  /** Also output per-token log-probs [B, T] (for tests and per-example losses). */
  tokenLogprobs?: boolean;
}

/**
 * Graph input names of the training forward: token ids, positions (restarting per packed
 * example), segment ids (block-diagonal attention; padding gets its own id) and next-token
 * targets aligned with the positions (−100 where no loss is taken), all [B, T] int64.
 */
export const TRAIN_INPUTS = ['input_ids', 'position_ids', 'segment_ids', 'targets'] as const;

export class CausalLM {
  readonly spec: ModelSpec;
  weights: TensorMap;
  tokenizer: Tokenizer | null;
  /** LoRA adapter weights by PEFT name, when an adapter is attached. */
  lora: { spec: LoraSpec; tensors: TensorMap } | null = null;
  /** Options for the inference sessions (threads, ORT extras); set before the first use. */
  sessionOptions: SessionOptions = {};
  #sessions = new Map<string, Promise<Session>>();
  #weightFeeds: Record<string, Tensor> | null = null;

  constructor(spec: ModelSpec, weights: TensorMap, tokenizer: Tokenizer | null = null) {
    this.spec = spec;
    this.weights = weights;
    this.tokenizer = tokenizer;
  }

  static fromCheckpoint(c: Checkpoint): CausalLM {
    return new CausalLM(c.spec, c.tensors, c.tokenizer);
  }

  /** Loads an HF model directory (config.json, safetensors, tokenizer files). */
  static async load(dir: string): Promise<CausalLM> {
    return CausalLM.fromCheckpoint(await loadCheckpoint(dir));
  }

  /** A freshly initialised model of `spec`. */
  static random(spec: ModelSpec, seed: number, tokenizer: Tokenizer | null = null): CausalLM {
    return new CausalLM(spec, initWeights(spec, seed), tokenizer);
  }

  /** Drop compiled sessions (after the weights or the adapter changed shape). */
  invalidate(): void {
    this.#sessions.clear();
    this.#weightFeeds = null;
  }

  /** Replace weight values in place (e.g. after training); sessions stay valid. */
  setWeights(values: ReadonlyMap<string, Float32Array>): void {
    for (const [name, data] of values) {
      const t = this.weights.get(name) ?? this.lora?.tensors.get(name);
      if (!t) throw new ConfigError(`unknown weight '${name}'`, { field: name });
      t.data.set(data);
    }
  }

  /** Every weight the graphs read, base then adapter. */
  allWeights(): [string, HostTensor][] {
    return [...this.weights, ...(this.lora ? [...this.lora.tensors] : [])];
  }

  /**
   * Parameter specs for the engine's ParamStore: everything trainable (full fine-tuning), or
   * the adapter trainable and the base frozen (LoRA). Values come from the current weights.
   */
  paramSpecs(opts: { lora?: boolean } = {}): ParamSpec[] {
    const specs: ParamSpec[] = [];
    for (const [name, t] of this.weights)
      specs.push({
        name,
        shape: t.shape,
        init: { kind: 'data', data: t.data },
        frozen: opts.lora === true,
      });
    if (opts.lora) {
      if (!this.lora)
        throw new ConfigError('LoRA training needs an attached adapter', { field: 'lora' });
      for (const [name, t] of this.lora.tensors)
        specs.push({ name, shape: t.shape, init: { kind: 'data', data: t.data } });
    }
    return specs;
  }

  /** The training forward for createTrainer: mean next-token loss over non-ignored targets. */
  trainingBuilder(opts: TrainingGraphOptions = {}): ForwardBuilder {
    const spec = this.spec;
    return (g, params) => {
      const shape = ['B', 'T'];
      const [ids, positions, segments, targets] = TRAIN_INPUTS.map((n) =>
        g.input(n, 'int64', shape),
      ) as [Var, Var, Var, Var];
      const dropoutSeed =
        opts.lora && opts.lora.dropout > 0 ? g.input('dropout_seed', 'int64', []) : undefined;
      const w = (n: string) => {
        const v = params[n];
        if (!v) throw new ConfigError(`the model has no weight '${n}'`, { field: n });
        return v;
      };
      const out = decoderForward(
        spec,
        w,
        { ids, positions, bias: segmentMask(segments), dropoutSeed },
        { lora: opts.lora, recompute: opts.recompute },
      );
      const h = out.hidden.reshape([-1, spec.hiddenSize]); // [B,T,D] -> [B·T,D]
      const t = targets.reshape([-1]);
      const loss = linearCrossEntropy(h, lmHeadWeight(spec, w), t);
      const outputs: Record<string, Var> = {};
      if (opts.tokenLogprobs)
        outputs.token_logprobs = linearTokenLogProbs(h, lmHeadWeight(spec, w), t).reshape([
          'B',
          'T',
        ]);
      return { loss, outputs };
    };
  }

  /** Attaches a fresh LoRA adapter: A Kaiming-uniform (a = √5, as PEFT), B zero. */
  attachLora(lora: LoraSpec, seed: number): void {
    const tensors: TensorMap = new Map();
    for (const m of loraModules(this.spec, lora)) {
      const names = loraNames(m.module);
      // kaiming_uniform_(a=√5) on [r, in]: bound = √(6 / ((1 + a²)·fan_in)) = 1/√fan_in.
      const bound = 1 / Math.sqrt(m.in);
      const rng = new Rng(`${seed}/${names.a}`);
      const a = new Float32Array(lora.r * m.in);
      for (let i = 0; i < a.length; i++) a[i] = (2 * rng.float() - 1) * bound;
      tensors.set(names.a, { shape: [lora.r, m.in], data: a });
      tensors.set(names.b, { shape: [m.out, lora.r], data: new Float32Array(m.out * lora.r) });
    }
    this.lora = { spec: lora, tensors };
    this.invalidate();
  }

  // -------------------------------------------------------------------------------------------
  // Inference graphs: weights are graph inputs, fed from this.weights each run (zero-copy).

  #feeds(): Record<string, Tensor> {
    if (!this.#weightFeeds) {
      this.#weightFeeds = {};
      for (const [name, t] of this.allWeights())
        this.#weightFeeds[name] = tensor('float32', t.shape, t.data);
    }
    return this.#weightFeeds;
  }

  #weightInputs(g: Graph): (n: string) => Var {
    const declared = new Map<string, Var>();
    const shapes = new Map(this.allWeights().map(([n, t]) => [n, t.shape]));
    return (n: string) => {
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

  #session(kind: 'decode' | 'score', build: (g: Graph) => void): Promise<Session> {
    let s = this.#sessions.get(kind);
    if (!s) {
      const g = new Graph({ name: `${this.spec.modelType}-${kind}` });
      build(g);
      s = createSession(g, this.sessionOptions);
      this.#sessions.set(kind, s);
    }
    return s;
  }

  /** Cached decoding: new tokens [B, S] after P cached ones; last-position logits and present. */
  decodeSession(): Promise<Session> {
    const spec = this.spec;
    return this.#session('decode', (g) => {
      const w = this.#weightInputs(g);
      const ids = g.input('input_ids', 'int64', ['B', 'S']);
      const positions = g.input('position_ids', 'int64', ['B', 'S']);
      const bias = g.input('attn_bias', 'float32', ['B', 1, 'S', 'P+S']);
      const past: KvPair[] = [];
      for (let l = 0; l < spec.numLayers; l++) {
        past.push({
          k: g.input(`past.${l}.key`, 'float32', ['B', spec.numKvHeads, 'P', spec.headDim]),
          v: g.input(`past.${l}.value`, 'float32', ['B', spec.numKvHeads, 'P', spec.headDim]),
        });
      }
      const out = decoderForward(
        spec,
        w,
        { ids, positions, bias, past },
        { lora: this.lora?.spec },
      );
      const last = squeeze(slice(out.hidden, 1, -1), [1]); // [B,S,D] -> [B,D]
      g.output('logits', last.matmul(lmHeadWeight(spec, w), { transB: true })); // [B,V]
      out.present.forEach((kv, l) => {
        g.output(`present.${l}.key`, kv.k);
        g.output(`present.${l}.value`, kv.v);
      });
    });
  }

  /**
   * Scoring: log p(targets[t] | ids[..t]) and whether targets[t] is the argmax, for [B, T]
   * inputs with an additive bias [B, 1, T, T] (padding and causality).
   */
  scoreSession(): Promise<Session> {
    const spec = this.spec;
    return this.#session('score', (g) => {
      const w = this.#weightInputs(g);
      const ids = g.input('input_ids', 'int64', ['B', 'T']);
      const positions = g.input('position_ids', 'int64', ['B', 'T']);
      const bias = g.input('attn_bias', 'float32', ['B', 1, 'T', 'T']);
      const targets = g.input('targets', 'int64', ['B', 'T']);
      const out = decoderForward(spec, w, { ids, positions, bias }, { lora: this.lora?.spec });
      const logits = out.hidden.matmul(lmHeadWeight(spec, w), { transB: true }); // [B,T,V]
      const lp = logSoftmax(logits, -1);
      const picked = squeeze(gatherElements(lp, unsqueeze(targets, [-1]), -1), [-1]); // [B,T]
      g.output('logprobs', picked);
      g.output('is_greedy', cast(greaterOrEqual(picked, reduceMax(lp, [-1], false)), 'int64'));
      // The most likely token and its log-prob at each position (top_logprobs of an echo).
      g.output('argmax', argMax(lp, -1));
      g.output('max_logprob', reduceMax(lp, [-1], false));
    });
  }

  /** Feeds of the weights (for callers that run the sessions above). */
  weightFeeds(): Record<string, Tensor> {
    return this.#feeds();
  }
}
