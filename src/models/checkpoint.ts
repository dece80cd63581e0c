// HF model directories: config.json, model.safetensors (or shards + index), tokenizer.json,
// tokenizer_config.json and generation_config.json, saved and loaded as a ModelSpec plus
// HF-named float32 tensors. Loading checks every tensor against the config. Training state
// (optimizer moments, step) is the train stage's; this is only the model a user hands around.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError, FormatError } from '../util/errors.ts';
import { hfConfigFromSpec, type ModelSpec, parseHfConfig } from './config.ts';
import type { FloatStorageDtype } from './safetensors.ts';
import {
  openSafetensorsDir,
  type TensorSource,
  writeSafetensorsDir,
} from './safetensors-shards.ts';
import type { TensorMap } from './tensor.ts';
import { Tokenizer } from './tokenizer.ts';
import { checkTensors, normaliseTensorNames } from './weights.ts';

/** A model in memory: what a model directory holds. */
export interface Checkpoint {
  readonly spec: ModelSpec;
  /** HF-named float32 parameters. */
  readonly tensors: TensorMap;
  readonly tokenizer: Tokenizer | null;
  /** generation_config.json as stored (sampling defaults, eos ids); null when absent. */
  readonly generationConfig: Readonly<Record<string, unknown>> | null;
}

/** Options for saveCheckpoint. */
export interface SaveCheckpointOptions {
  /** Storage dtype of the weights; config.json's torch_dtype follows it. @default 'F32' */
  dtype?: FloatStorageDtype;
  /** Shard size cap in bytes. @default 5e9 */
  maxShardBytes?: number;
}

const TORCH_DTYPE: Record<FloatStorageDtype, string> = {
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
};

/** generation_config.json derived from the config's special token ids, as transformers does. */
function defaultGenerationConfig(spec: ModelSpec): Record<string, unknown> {
  const g: Record<string, unknown> = { _from_model_config: true };
  if (spec.bosTokenId !== null) g.bos_token_id = spec.bosTokenId;
  if (spec.eosTokenId !== null) g.eos_token_id = spec.eosTokenId;
  if (spec.padTokenId !== null) g.pad_token_id = spec.padTokenId;
  return g;
}

/**
 * Write a model directory that transformers' from_pretrained (and our loadCheckpoint) reads.
 * @example await saveCheckpoint('out/tiny', { spec, tensors, tokenizer, generationConfig: null });
 */
export async function saveCheckpoint(
  dir: string,
  ckpt: Checkpoint,
  opts: SaveCheckpointOptions = {},
): Promise<string[]> {
  const dtype = opts.dtype ?? 'F32';
  checkTensors(ckpt.spec, ckpt.tensors, dir);
  await mkdir(dir, { recursive: true });
  const spec: ModelSpec = { ...ckpt.spec, torchDtype: TORCH_DTYPE[dtype] };
  const files = [join(dir, 'config.json'), join(dir, 'generation_config.json')];
  await writeFile(files[0], `${JSON.stringify(hfConfigFromSpec(spec), null, 2)}\n`);
  await writeFile(
    files[1],
    `${JSON.stringify(ckpt.generationConfig ?? defaultGenerationConfig(spec), null, 2)}\n`,
  );
  files.push(
    ...(await writeSafetensorsDir(dir, ckpt.tensors, { dtype, maxShardBytes: opts.maxShardBytes })),
  );
  if (ckpt.tokenizer !== null) {
    await ckpt.tokenizer.save(dir);
    files.push(join(dir, 'tokenizer.json'), join(dir, 'tokenizer_config.json'));
  }
  return files;
}

/** A model directory opened lazily: config and tokenizer read, weights read on demand. */
export interface OpenCheckpoint {
  readonly dir: string;
  readonly spec: ModelSpec;
  /** config.json as stored. */
  readonly config: Readonly<Record<string, unknown>>;
  readonly tokenizer: Tokenizer | null;
  readonly generationConfig: Readonly<Record<string, unknown>> | null;
  /** HF name → name as stored in the files (they differ for bare GPT-2 files). */
  readonly names: ReadonlyMap<string, string>;
  readonly source: TensorSource;
  /** Read every parameter as float32, HF-named. */
  readAll(): Promise<TensorMap>;
  close(): Promise<void>;
}

async function readJsonFile(path: string): Promise<Record<string, unknown>> {
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

/** Open a model directory, validating config.json and the tensor names and shapes. */
export async function openCheckpoint(dir: string): Promise<OpenCheckpoint> {
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath))
    throw new FormatError('no config.json', dir, { hint: 'point at a HF model directory' });
  const config = await readJsonFile(cfgPath);
  const spec = parseHfConfig(config, cfgPath);
  const genPath = join(dir, 'generation_config.json');
  const generationConfig = existsSync(genPath) ? await readJsonFile(genPath) : null;
  const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? await Tokenizer.load(dir) : null;
  const source = await openSafetensorsDir(dir);
  try {
    const stored = normaliseTensorNames(spec, source.names());
    const byHf = new Map<string, string>();
    const shapes = new Map<string, { shape: readonly number[] }>();
    for (const [s, hf] of stored) {
      byHf.set(hf, s);
      shapes.set(hf, { shape: source.entry(s).shape });
    }
    checkTensors(spec, shapes, dir);
    return {
      dir,
      spec,
      config,
      tokenizer,
      generationConfig,
      names: byHf,
      source,
      async readAll() {
        const out: TensorMap = new Map();
        for (const [hf, s] of byHf) out.set(hf, await source.read(s));
        return out;
      },
      close: () => source.close(),
    };
  } catch (e) {
    await source.close();
    throw e;
  }
}

/**
 * Load a whole model directory into memory (weights converted to float32).
 * @example const { spec, tensors, tokenizer } = await loadCheckpoint('models/SmolLM2-135M');
 */
export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const c = await openCheckpoint(dir);
  try {
    return {
      spec: c.spec,
      tensors: await c.readAll(),
      tokenizer: c.tokenizer,
      generationConfig: c.generationConfig,
    };
  } finally {
    await c.close();
  }
}
