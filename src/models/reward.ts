// A reward model: the decoder of a causal LM with its unembedding replaced by a scalar head on
// the last non-pad token (InstructGPT §3.5; heads.ts REWARD_HEAD), saved and loaded as HF's
// LlamaForSequenceClassification / Qwen2ForSequenceClassification / ... (num_labels 1,
// `score.weight`, pad_token_id set), so transformers' AutoModelForSequenceClassification and
// TRL load it. With LoRA the head is trained in full and saved as PEFT `modules_to_save`.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Graph } from '../engine/graph.ts';
import type { ParamSpec } from '../engine/params.ts';
import { createSession, type Session, type Tensor, tensor } from '../engine/runtime.ts';
import { ConfigError, FormatError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { hfConfigFromSpec, type ModelSpec, parseHfConfig } from './config.ts';
import { headForward, REWARD_HEAD } from './heads.ts';
import { CausalLM, type LoraInput } from './lm.ts';
import {
  fromPeftAdapter,
  initLoraWeights,
  type LoraSpec,
  loraSpec,
  toPeftAdapter,
} from './lora.ts';
import {
  adapterConfigJson,
  adapterFromTensors,
  type LoraAdapter,
  mergeLora,
  parseAdapterConfig,
  peftTensorNames,
} from './peft.ts';
import { SafetensorsReader, writeSafetensors } from './safetensors.ts';
import { openSafetensorsDir, writeSafetensorsDir } from './safetensors-shards.ts';
import type { HostTensor, TensorMap } from './tensor.ts';
import { Tokenizer } from './tokenizer.ts';
import { assignWeights, expectedTensors } from './weights.ts';

/**
 * config.json key holding the normalisation offset that `rm normalize` sets (InstructGPT §3.5:
 * "we normalize the reward model using a bias so that the labeler demonstrations achieve a mean
 * score of 0"). HF's *ForSequenceClassification `score` is nn.Linear(bias=False), and a
 * constant cannot be folded into a bias-free linear on a normalised hidden state, so the
 * offset cannot live in the weights. A `score.bias` tensor would make transformers warn about an
 * unused weight and then drop it; a config key loads silently and stays readable as
 * `model.config.score_bias`. Either way transformers itself does not add it: its scores are
 * ours minus score_bias, which changes no comparison (the loss is shift invariant), only the
 * absolute level a PPO run sees.
 */
export const SCORE_BIAS_KEY = 'score_bias';

const HEAD = REWARD_HEAD;
const PEFT_HEAD = `base_model.model.${HEAD.weight}`;

/** HF class of a sequence classifier over this decoder: LlamaForCausalLM → LlamaForSequenceClassification. */
export function classifierArchitecture(spec: ModelSpec): string {
  return spec.architecture.replace(/(ForCausalLM|LMHeadModel)$/, 'ForSequenceClassification');
}

/** The tensors of the classifier: the decoder without lm_head, plus score.weight [1, D]. */
export function expectedRewardTensors(spec: ModelSpec): Map<string, number[]> {
  const m = expectedTensors(spec);
  m.delete('lm_head.weight');
  m.set(HEAD.weight, [HEAD.outputs, spec.hiddenSize]);
  return m;
}

function checkRewardTensors(
  spec: ModelSpec,
  tensors: ReadonlyMap<string, { shape: readonly number[] }>,
  file?: string,
): void {
  const want = expectedRewardTensors(spec);
  for (const [name, shape] of want) {
    const t = tensors.get(name);
    if (!t) throw new FormatError(`missing tensor '${name}'`, file);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new FormatError(
        `tensor '${name}' has shape [${t.shape.join(', ')}], config.json implies [${shape.join(', ')}]`,
        file,
      );
  }
  for (const name of tensors.keys())
    if (!want.has(name))
      throw new FormatError(
        `unexpected tensor '${name}' for a ${classifierArchitecture(spec)}`,
        file,
      );
}

/** Options of RewardModel.score. */
export interface ScoreOptions {
  /** Rows per forward. @default 8 */
  batchSize?: number;
}

/**
 * A scalar-head reward model in memory.
 * @example
 * const rm = RewardModel.fromCausalLM(await CausalLM.load('runs/demo/tuned'), 0);
 * const [r] = await rm.score([[...promptIds, ...completionIds, eos]]);
 * await rm.save('out/rm');                        // LlamaForSequenceClassification
 */
export class RewardModel {
  readonly spec: ModelSpec;
  weights: TensorMap;
  tokenizer: Tokenizer | null;
  lora: { spec: LoraSpec; tensors: TensorMap } | null = null;
  /** Added to every score (SCORE_BIAS_KEY; `rm normalize`). */
  bias = 0;
  #session: Promise<Session> | null = null;

  constructor(spec: ModelSpec, weights: TensorMap, tokenizer: Tokenizer | null = null) {
    checkRewardTensors(spec, weights);
    this.spec = spec;
    this.weights = weights;
    this.tokenizer = tokenizer;
  }

  /**
   * The LM's decoder with a fresh head, N(0, initializer_range) as HF's _init_weights draws a
   * Linear. The decoder weights are copied (training writes into them); an attached adapter
   * is merged first.
   */
  static fromCausalLM(lm: CausalLM, seed: number): RewardModel {
    const base = lm.lora ? mergeLora(lm.weights, lm.peftAdapter()) : lm.weights;
    const weights: TensorMap = new Map();
    for (const [name, t] of base)
      if (name !== 'lm_head.weight') weights.set(name, { shape: t.shape, data: t.data.slice() });
    const D = lm.spec.hiddenSize;
    const data = new Float32Array(HEAD.outputs * D);
    const rng = new Rng(`${seed}/${HEAD.weight}`);
    for (let i = 0; i < data.length; i++) data[i] = rng.normal() * lm.spec.initializerRange;
    weights.set(HEAD.weight, { shape: [HEAD.outputs, D], data });
    return new RewardModel(lm.spec, weights, lm.tokenizer);
  }

  /**
   * Loads a saved reward model: an HF *ForSequenceClassification directory, or a PEFT adapter
   * directory (LoRA + `modules_to_save: ["score"]`) over its base_model_name_or_path.
   */
  static async load(dir: string): Promise<RewardModel> {
    if (existsSync(join(dir, 'adapter_config.json'))) return loadRewardAdapter(dir);
    const cfgPath = join(dir, 'config.json');
    if (!existsSync(cfgPath))
      throw new FormatError('no config.json', dir, { hint: 'point at a reward model directory' });
    const raw = await readJson(cfgPath);
    const arch = Array.isArray(raw.architectures) ? String(raw.architectures[0]) : '';
    if (!arch.endsWith('ForSequenceClassification'))
      throw new ConfigError(
        `architectures is ${JSON.stringify(raw.architectures)}, not a *ForSequenceClassification reward model`,
        { file: cfgPath, field: 'architectures' },
        { hint: 'start a reward model from a causal LM with `instructkit rm train`' },
      );
    const labels =
      raw.id2label && typeof raw.id2label === 'object'
        ? Object.keys(raw.id2label).length
        : typeof raw.num_labels === 'number'
          ? raw.num_labels
          : 2; // transformers' default
    if (labels !== HEAD.outputs)
      throw new ConfigError(`a reward model has num_labels 1, this one has ${labels}`, {
        file: cfgPath,
        field: 'id2label',
      });
    const { [SCORE_BIAS_KEY]: bias, ...rest } = raw;
    if (bias !== undefined && (typeof bias !== 'number' || !Number.isFinite(bias)))
      throw new ConfigError(`${SCORE_BIAS_KEY} must be a finite number`, {
        file: cfgPath,
        field: SCORE_BIAS_KEY,
      });
    const spec = parseHfConfig(rest, cfgPath);
    const source = await openSafetensorsDir(dir);
    let weights: TensorMap;
    try {
      weights = await source.readAll();
    } finally {
      await source.close();
    }
    checkRewardTensors(spec, weights, dir);
    const tok = existsSync(join(dir, 'tokenizer.json')) ? await Tokenizer.load(dir) : null;
    const rm = new RewardModel(spec, weights, tok);
    rm.bias = (bias as number | undefined) ?? 0;
    return rm;
  }

  /**
   * A reward model to train from `path`: a saved reward model (or its adapter) as it is, or a
   * causal LM directory with a fresh head (seeded).
   */
  static async fromPretrained(path: string, seed: number): Promise<RewardModel> {
    if (existsSync(join(path, 'adapter_config.json'))) return RewardModel.load(path);
    const cfgPath = join(path, 'config.json');
    if (!existsSync(cfgPath))
      throw new FormatError('no config.json', path, { hint: 'point at an HF model directory' });
    const raw = await readJson(cfgPath);
    const arch = Array.isArray(raw.architectures) ? String(raw.architectures[0]) : '';
    if (arch.endsWith('ForSequenceClassification')) return RewardModel.load(path);
    return RewardModel.fromCausalLM(await CausalLM.load(path), seed);
  }

  /** Every weight the graphs read, base then adapter. */
  allWeights(): [string, HostTensor][] {
    return [...this.weights, ...(this.lora ? [...this.lora.tensors] : [])];
  }

  setWeights(values: ReadonlyMap<string, ArrayLike<number>>): void {
    assignWeights(values, this.weights, this.lora?.tensors);
  }

  /**
   * Engine parameter specs: everything trainable, or (`lora: true`) the adapter and the head
   * (PEFT modules_to_save: a new head must be trained in full) with the base frozen.
   */
  paramSpecs(opts: { lora?: boolean } = {}): ParamSpec[] {
    if (opts.lora && !this.lora)
      throw new ConfigError('LoRA training needs an attached adapter', { field: 'lora' });
    return this.allWeights().map(([name, t]) => ({
      name,
      shape: t.shape,
      init: { kind: 'data', data: t.data },
      frozen:
        opts.lora === true && !(this.lora?.tensors.has(name) ?? false) && name !== HEAD.weight,
    }));
  }

  attachLora(lora: LoraInput, seed = 0): void {
    if (this.lora) throw new ConfigError('an adapter is already attached', { field: 'adapter' });
    const spec = 'targets' in lora ? lora : loraSpec(lora);
    this.lora = { spec, tensors: initLoraWeights(this.spec, spec, seed) };
    this.invalidate();
  }

  /** Fold the adapter into the decoder weights and drop it. */
  mergeAdapter(): void {
    if (!this.lora) return;
    this.weights = mergeLora(
      this.weights,
      toPeftAdapter(this.spec, this.lora.spec, this.lora.tensors),
    );
    this.lora = null;
    this.invalidate();
  }

  /** config.json of the classifier (transformers' names). */
  hfConfig(): Record<string, unknown> {
    const pad = this.spec.padTokenId ?? this.tokenizer?.pad?.id ?? this.spec.eosTokenId;
    return {
      ...hfConfigFromSpec(this.spec),
      architectures: [classifierArchitecture(this.spec)],
      // What save_pretrained writes for num_labels=1; num_labels itself for readers that look.
      id2label: { '0': 'LABEL_0' },
      label2id: { LABEL_0: 0 },
      num_labels: HEAD.outputs,
      // *ForSequenceClassification finds each row's last token through pad_token_id and
      // refuses batches > 1 without one.
      pad_token_id: pad,
      ...(this.bias !== 0 ? { [SCORE_BIAS_KEY]: this.bias } : {}),
    };
  }

  /** Writes an HF sequence-classification directory (the adapter must be merged or saved apart). */
  async save(dir: string): Promise<string[]> {
    if (this.lora)
      throw new ConfigError('merge the adapter first, or write it with saveAdapter', {
        field: 'adapter',
      });
    checkRewardTensors(this.spec, this.weights, dir);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir, { recursive: true });
    const cfg = this.hfConfig();
    const sorted = Object.fromEntries(Object.entries(cfg).sort(([a], [b]) => (a < b ? -1 : 1)));
    await writeFile(join(dir, 'config.json'), `${JSON.stringify(sorted, null, 2)}\n`);
    const files = [join(dir, 'config.json')];
    files.push(...(await writeSafetensorsDir(dir, this.weights, { dtype: 'F32' })));
    if (this.tokenizer) {
      await this.tokenizer.save(dir);
      files.push(join(dir, 'tokenizer.json'), join(dir, 'tokenizer_config.json'));
    }
    return files;
  }

  /**
   * Writes the adapter as PEFT does for a SEQ_CLS task: the LoRA factors plus the head under
   * `base_model.model.score.weight` (get_peft_model_state_dict strips "modules_to_save.default"),
   * with `modules_to_save: ["score"]` in adapter_config.json.
   */
  async saveAdapter(dir: string, opts: { baseModel?: string | null } = {}): Promise<void> {
    if (!this.lora) throw new ConfigError('no adapter is attached', { field: 'adapter' });
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir, { recursive: true });
    const a = toPeftAdapter(this.spec, this.lora.spec, this.lora.tensors, opts.baseModel ?? null);
    const config = adapterConfigJson({
      ...a.config,
      task_type: 'SEQ_CLS',
      modules_to_save: ['score'],
    });
    await writeFile(join(dir, 'adapter_config.json'), `${JSON.stringify(config, null, 2)}\n`);
    const tensors: [string, HostTensor][] = [];
    for (const [mod, { A, B }] of a.modules) {
      const n = peftTensorNames(mod);
      tensors.push([n.A, A], [n.B, B]);
    }
    tensors.push([PEFT_HEAD, this.weights.get(HEAD.weight)!]);
    await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, {
      dtype: 'F32',
      metadata: { format: 'pt' },
    });
  }

  /** Drop the compiled scoring session (after the set of weights changed). */
  invalidate(): void {
    const s = this.#session;
    this.#session = null;
    if (s) void s.then((x) => x.release()).catch(() => undefined);
  }

  async release(): Promise<void> {
    const s = this.#session;
    this.#session = null;
    if (s) await (await s).release();
  }

  #scoreSession(): Promise<Session> {
    if (!this.#session) {
      const g = new Graph({ name: `${this.spec.modelType}-reward` });
      const inputs = new Map<string, ReturnType<Graph['input']>>();
      for (const [n, t] of this.allWeights()) inputs.set(n, g.input(n, 'float32', t.shape));
      const ids = g.input('input_ids', 'int64', ['B', 'T']);
      const positions = g.input('position_ids', 'int64', ['B', 'T']);
      const attentionMask = g.input('attention_mask', 'int64', ['B', 'T']);
      const w = (n: string) => {
        const v = inputs.get(n);
        if (!v) throw new ConfigError(`the model has no weight '${n}'`, { field: n });
        return v;
      };
      const s = headForward(
        this.spec,
        HEAD,
        w,
        { ids, positions, attentionMask },
        {
          lora: this.lora?.spec,
        },
      );
      g.output('scores', s.reshape([-1])); // [B,1] -> [B]
      this.#session = createSession(g);
    }
    return this.#session;
  }

  /** Rewards (bias included) of token sequences, each scored at its last token. */
  async score(rows: readonly (readonly number[])[], opts: ScoreOptions = {}): Promise<number[]> {
    const session = await this.#scoreSession();
    const weights: Record<string, Tensor> = {};
    for (const [name, t] of this.allWeights()) weights[name] = tensor('float32', t.shape, t.data);
    const bs = opts.batchSize ?? 8;
    const out: number[] = [];
    for (let i = 0; i < rows.length; i += bs) {
      const batch = rows.slice(i, i + bs);
      const T = Math.max(...batch.map((r) => r.length));
      if (T === 0) throw new ConfigError('cannot score an empty sequence', { field: 'rows' });
      const B = batch.length;
      const ids = new BigInt64Array(B * T);
      const pos = new BigInt64Array(B * T);
      const mask = new BigInt64Array(B * T);
      batch.forEach((r, b) => {
        r.forEach((id, t) => {
          ids[b * T + t] = BigInt(id);
          pos[b * T + t] = BigInt(t);
          mask[b * T + t] = 1n;
        });
      });
      const res = await session.run({
        ...weights,
        input_ids: tensor('int64', [B, T], ids),
        position_ids: tensor('int64', [B, T], pos),
        attention_mask: tensor('int64', [B, T], mask),
      });
      for (const v of res.scores!.data as Float32Array) out.push(v + this.bias);
    }
    return out;
  }
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let v: unknown;
  try {
    v = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new ConfigError(`cannot read (${(e as Error).message})`, { file: path });
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new ConfigError('must be a JSON object', { file: path });
  return v as Record<string, unknown>;
}

/** A PEFT SEQ_CLS adapter (LoRA + modules_to_save ["score"]) over its base model. */
async function loadRewardAdapter(dir: string): Promise<RewardModel> {
  const cfgPath = join(dir, 'adapter_config.json');
  const raw = await readJson(cfgPath);
  const mts = raw.modules_to_save;
  if (!Array.isArray(mts) || mts.length !== 1 || mts[0] !== 'score')
    throw new ConfigError(
      `a reward-model adapter saves exactly the head: modules_to_save must be ["score"], got ${JSON.stringify(mts)}`,
      { file: cfgPath, field: 'modules_to_save' },
    );
  // parseAdapterConfig refuses modules_to_save for causal-LM adapters; here it is the head.
  const config = parseAdapterConfig({ ...raw, modules_to_save: null }, cfgPath);
  const base = config.base_model_name_or_path;
  if (!base)
    throw new ConfigError('the adapter names no base model', {
      file: cfgPath,
      field: 'base_model_name_or_path',
    });
  const st = join(dir, 'adapter_model.safetensors');
  if (!existsSync(st)) throw new FormatError('no adapter_model.safetensors', dir);
  const reader = await SafetensorsReader.open(st);
  let all: TensorMap;
  try {
    all = await reader.readAll();
  } finally {
    await reader.close();
  }
  const head = all.get(PEFT_HEAD);
  if (!head) throw new FormatError(`missing tensor '${PEFT_HEAD}' (modules_to_save)`, st);
  all.delete(PEFT_HEAD);
  const adapter: LoraAdapter = adapterFromTensors(config, all, st);
  const rm = await RewardModel.fromPretrained(base, 0);
  if (rm.lora)
    throw new ConfigError('the base of a reward-model adapter must not be an adapter itself', {
      file: cfgPath,
      field: 'base_model_name_or_path',
    });
  const want = [HEAD.outputs, rm.spec.hiddenSize];
  if (head.shape.length !== 2 || head.shape[0] !== want[0] || head.shape[1] !== want[1])
    throw new FormatError(
      `'${PEFT_HEAD}' has shape [${head.shape.join(', ')}], the base implies [${want.join(', ')}]`,
      st,
    );
  rm.weights.set(HEAD.weight, head);
  const a = fromPeftAdapter(rm.spec, adapter, dir);
  rm.lora = { spec: a.spec, tensors: a.tensors };
  return rm;
}
