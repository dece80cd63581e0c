// PEFT LoRA adapter files: adapter_config.json (PEFT's LoraConfig field names and defaults)
// and adapter_model.safetensors (base_model.model.<module>.lora_A.weight [r, in] and
// .lora_B.weight [out, r]), plus mergeLora, which folds an adapter into base weights
// (Hu et al. 2021, "LoRA", eq. 3: W' = W + (α/r)·B·A; rsLoRA, Kalajdzievski 2023: α/√r).
// Training the adapter is the train stage's job; exporting it to GGUF is gguf-lora.ts.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigError, FormatError } from '../util/errors.ts';
import { type FloatStorageDtype, SafetensorsReader, writeSafetensors } from './safetensors.ts';
import type { HostTensor, TensorMap } from './tensor.ts';

const nullish = z.unknown().nullish();

/** adapter_config.json for a LoRA adapter, with PEFT's defaults (peft tuners/lora/config.py). */
export const AdapterConfigSchema = z.strictObject({
  peft_type: z.literal('LORA').default('LORA'),
  task_type: z.string().nullish().default('CAUSAL_LM'),
  base_model_name_or_path: z.string().nullish().default(null),
  revision: z.string().nullish().default(null),
  inference_mode: z.boolean().default(true),
  auto_mapping: nullish,
  peft_version: z.string().optional(),
  r: z.number().int().positive().default(8),
  lora_alpha: z.number().positive().default(8),
  lora_dropout: z.number().min(0).max(1).default(0),
  target_modules: z
    .union([z.array(z.string()), z.string()])
    .nullish()
    .default(null),
  exclude_modules: z
    .union([z.array(z.string()), z.string()])
    .nullish()
    .default(null),
  use_rslora: z.boolean().default(false),
  use_dora: z.boolean().default(false),
  bias: z.enum(['none', 'all', 'lora_only']).default('none'),
  lora_bias: z.boolean().default(false),
  fan_in_fan_out: z.boolean().default(false),
  init_lora_weights: z.union([z.boolean(), z.string()]).default(true),
  modules_to_save: z.array(z.string()).nullish().default(null),
  rank_pattern: z.record(z.string(), z.number().int().positive()).default({}),
  alpha_pattern: z.record(z.string(), z.number().positive()).default({}),
  layers_to_transform: z
    .union([z.array(z.number().int()), z.number().int()])
    .nullish()
    .default(null),
  layers_pattern: z
    .union([z.array(z.string()), z.string()])
    .nullish()
    .default(null),
  layer_replication: nullish,
  trainable_token_indices: nullish,
  target_parameters: nullish,
  loftq_config: z.record(z.string(), z.unknown()).default({}),
  eva_config: nullish,
  corda_config: nullish,
  megatron_config: nullish,
  megatron_core: z.string().nullish().default('megatron.core'),
  use_qalora: z.boolean().default(false),
  qalora_group_size: z.number().int().default(16),
});

/** A parsed adapter_config.json. */
export type AdapterConfig = z.infer<typeof AdapterConfigSchema>;

/** One adapted module's factors: ΔW = scale · B·A. */
export interface LoraPair {
  /** [r, in] */
  readonly A: HostTensor;
  /** [out, r] */
  readonly B: HostTensor;
}

/** An adapter: config plus factors keyed by base module name (e.g. model.layers.0.self_attn.q_proj). */
export interface LoraAdapter {
  readonly config: AdapterConfig;
  readonly modules: ReadonlyMap<string, LoraPair>;
}

/** Parse adapter_config.json; settings that change the math and that we do not implement are errors. */
export function parseAdapterConfig(raw: unknown, file?: string): AdapterConfig {
  const r = AdapterConfigSchema.safeParse(raw);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = i.code === 'unrecognized_keys' ? i.keys[0] : i.path.join('.');
    throw new ConfigError(
      i.code === 'unrecognized_keys' ? `unsupported key '${field}'` : i.message,
      { file, field },
    );
  }
  const c = r.data;
  const unsupported = (field: string, what: string) =>
    new ConfigError(`${what} is not supported`, { file, field });
  if (c.use_dora) throw unsupported('use_dora', 'DoRA');
  if (c.lora_bias) throw unsupported('lora_bias', 'a LoRA bias');
  if (c.bias !== 'none') throw unsupported('bias', `bias='${c.bias}' (trained biases)`);
  if (c.use_qalora) throw unsupported('use_qalora', 'QA-LoRA');
  if (c.modules_to_save != null && c.modules_to_save.length > 0)
    throw unsupported('modules_to_save', 'fully trained extra modules');
  if (c.trainable_token_indices != null)
    throw unsupported('trainable_token_indices', 'trainable token rows');
  if (c.target_parameters != null) throw unsupported('target_parameters', 'LoRA on raw parameters');
  if (c.layer_replication != null) throw unsupported('layer_replication', 'layer replication');
  // These initialisations rewrite the base weights, so the adapter is not a delta on the original model.
  if (
    typeof c.init_lora_weights === 'string' &&
    /^(pissa|olora|corda|loftq)/.test(c.init_lora_weights)
  )
    throw unsupported(
      'init_lora_weights',
      `init_lora_weights='${c.init_lora_weights}' (it modifies the base model)`,
    );
  return c;
}

/** `(.*\.)?key$` as PEFT matches rank_pattern / alpha_pattern keys against module names. */
function patternFor(patterns: Record<string, number>, module: string): number | undefined {
  for (const [k, v] of Object.entries(patterns))
    if (new RegExp(`(^|.*\\.)(${k})$`).test(module)) return v;
  return undefined;
}

/** Rank, alpha and scale of one module under the config's patterns. */
export function loraScale(
  config: AdapterConfig,
  module: string,
): { r: number; alpha: number; scale: number } {
  const r = patternFor(config.rank_pattern, module) ?? config.r;
  const alpha = patternFor(config.alpha_pattern, module) ?? config.lora_alpha;
  return { r, alpha, scale: config.use_rslora ? alpha / Math.sqrt(r) : alpha / r };
}

const PREFIX = 'base_model.model.';
const NAME_RE = /^base_model\.model\.(.+)\.lora_([AB])\.weight$/;

/** PEFT's tensor names for a module. */
export function peftTensorNames(module: string): { A: string; B: string } {
  return { A: `${PREFIX}${module}.lora_A.weight`, B: `${PREFIX}${module}.lora_B.weight` };
}

/** Group PEFT-named tensors into modules, checking shapes against the config. */
export function adapterFromTensors(
  config: AdapterConfig,
  tensors: TensorMap,
  file?: string,
): LoraAdapter {
  const parts = new Map<string, { A?: HostTensor; B?: HostTensor }>();
  for (const [name, t] of tensors) {
    const m = NAME_RE.exec(name);
    if (m === null)
      throw new FormatError(
        `tensor '${name}' is not a PEFT LoRA factor (…lora_A.weight / …lora_B.weight)`,
        file,
      );
    const p = parts.get(m[1]) ?? {};
    p[m[2] as 'A' | 'B'] = t;
    parts.set(m[1], p);
  }
  const modules = new Map<string, LoraPair>();
  for (const [mod, { A, B }] of parts) {
    if (A === undefined || B === undefined)
      throw new FormatError(`module '${mod}' lacks its lora_${A ? 'B' : 'A'} tensor`, file);
    const { r } = loraScale(config, mod);
    if (A.shape.length !== 2 || B.shape.length !== 2 || A.shape[0] !== r || B.shape[1] !== r)
      throw new FormatError(
        `module '${mod}': lora_A [${A.shape.join(', ')}] / lora_B [${B.shape.join(', ')}] do not have rank ${r}`,
        file,
      );
    modules.set(mod, { A, B });
  }
  return { config, modules };
}

/** Read adapter_config.json + adapter_model.safetensors from a directory. */
export async function loadPeftAdapter(dir: string): Promise<LoraAdapter> {
  const cfgPath = join(dir, 'adapter_config.json');
  let raw: unknown;
  try {
    raw = JSON.parse(await readFile(cfgPath, 'utf8'));
  } catch (e) {
    throw new ConfigError(`cannot read adapter config (${(e as Error).message})`, {
      file: cfgPath,
    });
  }
  const config = parseAdapterConfig(raw, cfgPath);
  const st = join(dir, 'adapter_model.safetensors');
  if (!existsSync(st))
    throw new FormatError('no adapter_model.safetensors', dir, {
      hint: existsSync(join(dir, 'adapter_model.bin'))
        ? 'adapter_model.bin (pickle) is not read; re-save with safe_serialization=True'
        : undefined,
    });
  const reader = await SafetensorsReader.open(st);
  try {
    return adapterFromTensors(config, await reader.readAll(), st);
  } finally {
    await reader.close();
  }
}

/** adapter_config.json as PEFT writes it: every field, keys sorted. */
export function adapterConfigJson(config: AdapterConfig): Record<string, unknown> {
  const full = AdapterConfigSchema.parse(config) as Record<string, unknown>;
  if (Array.isArray(full.target_modules)) full.target_modules = [...full.target_modules].sort();
  return Object.fromEntries(Object.entries(full).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** Write an adapter directory PEFT's PeftModel.from_pretrained can load. */
export async function savePeftAdapter(
  dir: string,
  adapter: LoraAdapter,
  opts: { dtype?: FloatStorageDtype } = {},
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, 'adapter_config.json'),
    `${JSON.stringify(adapterConfigJson(adapter.config), null, 2)}\n`,
  );
  const tensors: [string, HostTensor][] = [];
  for (const [mod, { A, B }] of adapter.modules) {
    const n = peftTensorNames(mod);
    tensors.push([n.A, A], [n.B, B]);
  }
  await writeSafetensors(join(dir, 'adapter_model.safetensors'), tensors, {
    dtype: opts.dtype ?? 'F32',
    metadata: { format: 'pt' },
  });
}

/**
 * Base weights with the adapter folded in: W[out, in] += scale · B[out, r] · A[r, in]
 * (transposed for fan_in_fan_out, i.e. GPT-2 Conv1D weights stored [in, out]). Returns a new
 * map sharing the untouched tensors; the base map is not modified.
 */
export function mergeLora(base: TensorMap, adapter: LoraAdapter): TensorMap {
  const out: TensorMap = new Map(base);
  const fifo = adapter.config.fan_in_fan_out;
  for (const [mod, { A, B }] of adapter.modules) {
    const name = `${mod}.weight`;
    const w = base.get(name);
    if (w === undefined)
      throw new FormatError(`adapter targets '${mod}' but the base model has no '${name}'`);
    const [r, nIn] = A.shape;
    const nOut = B.shape[0];
    const expect = fifo ? [nIn, nOut] : [nOut, nIn];
    if (w.shape.length !== 2 || w.shape[0] !== expect[0] || w.shape[1] !== expect[1])
      throw new FormatError(
        `'${name}' is [${w.shape.join(', ')}] but the adapter expects [${expect.join(', ')}]`,
      );
    const { scale } = loraScale(adapter.config, mod);
    const data = new Float32Array(w.data);
    const a = A.data;
    const b = B.data;
    for (let o = 0; o < nOut; o++)
      for (let i = 0; i < nIn; i++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += b[o * r + k] * a[k * nIn + i];
        data[fifo ? i * nOut + o : o * nIn + i] += scale * s;
      }
    out.set(name, { shape: w.shape, data });
  }
  return out;
}
