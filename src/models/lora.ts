// LoRA (Hu et al. 2021, eq. 3: h = W·x + (α/r)·B·A·x) for every model family: which HF modules
// an adapter targets (PEFT's suffix matching, plus short aliases q/k/v/o/gate/up/down that each
// family maps to its own module names), PEFT's initialisation (A Kaiming-uniform with a = √5,
// B zero, so a fresh adapter is an exact no-op), and conversion to and from the PEFT adapter
// files of peft.ts. The LoRA branch itself is drawn into the graph by decoder.ts.
import { initialise } from '../engine/params.ts';
import { ConfigError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import type { ModelFamily, ModelSpec } from './config.ts';
import {
  type AdapterConfig,
  type LoraAdapter,
  type LoraPair,
  loraScale,
  parseAdapterConfig,
  peftTensorNames,
} from './peft.ts';
import type { TensorMap } from './tensor.ts';
import { expectedTensors } from './weights.ts';

/** LoRA on a set of projections: y = W·x + scale · B·(A·dropout(x)) (Hu et al. 2021, eq. 3). */
export interface LoraSpec {
  r: number;
  alpha: number;
  /** Dropout on the adapter's input (training only; seeded per step). */
  dropout: number;
  /**
   * Target modules, matched as PEFT matches a list: a module is adapted when its HF name equals
   * a target or ends with `.<target>` (q_proj, self_attn.q_proj, model.layers.0.mlp.up_proj).
   * Short aliases q, k, v, o, gate, up, down map to each family's modules (GPT-2: c_attn,
   * attn.c_proj, mlp.c_fc, mlp.c_proj).
   */
  targets: ReadonlySet<string>;
  /** rsLoRA scale alpha/√r instead of alpha/r (Kalajdzievski 2023). */
  rslora: boolean;
  /** Per-module scale overrides (PEFT rank_pattern / alpha_pattern of a loaded adapter). */
  moduleScales?: ReadonlyMap<string, number>;
}

/** The default targets: every attention and MLP projection. */
export const DEFAULT_LORA_TARGETS: readonly string[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

/** Short alias → module-name suffixes, per family. */
const ALIASES: Record<ModelFamily, Readonly<Record<string, readonly string[]>>> = {
  llama: {
    q: ['q_proj'],
    k: ['k_proj'],
    v: ['v_proj'],
    o: ['o_proj'],
    gate: ['gate_proj'],
    up: ['up_proj'],
    down: ['down_proj'],
  },
  // GPT-2 fuses q, k and v into c_attn, and has no gate.
  gpt2: {
    q: ['c_attn'],
    k: ['c_attn'],
    v: ['c_attn'],
    o: ['attn.c_proj'],
    gate: [],
    up: ['mlp.c_fc'],
    down: ['mlp.c_proj'],
  },
};

/** The scale of the LoRA branch: alpha/r, or alpha/√r with rsLoRA. */
export const loraScaling = (l: LoraSpec): number =>
  l.rslora ? l.alpha / Math.sqrt(l.r) : l.alpha / l.r;

/** The scale of one module (a per-module override, else the spec's). */
export function moduleScaling(l: LoraSpec, module: string): number {
  return l.moduleScales?.get(module) ?? loraScaling(l);
}

/** PEFT's parameter names for an adapter on module `module` (an HF name without `.weight`). */
export function loraNames(module: string): { a: string; b: string } {
  const n = peftTensorNames(module);
  return { a: n.A, b: n.B };
}

/** A predicate telling whether a module (full HF name) is adapted under `targets`. */
export function loraMatcher(
  family: ModelFamily,
  targets: Iterable<string>,
): (m: string) => boolean {
  const suffixes: string[] = [];
  for (const t of targets) suffixes.push(...(ALIASES[family][t] ?? [t]));
  return (m) => suffixes.some((s) => m === s || m.endsWith(`.${s}`));
}

/** One adapted module: its HF name and the in/out features of its weight. */
export interface LoraModule {
  module: string;
  in: number;
  out: number;
}

/** The modules of `spec` that `lora` adapts, in weight order; none matching is a ConfigError. */
export function adaptedModules(spec: ModelSpec, lora: Pick<LoraSpec, 'targets'>): LoraModule[] {
  const match = loraMatcher(spec.family, lora.targets);
  const mods: LoraModule[] = [];
  for (const [name, shape] of expectedTensors(spec)) {
    if (!name.endsWith('.weight') || shape.length !== 2) continue;
    const module = name.slice(0, -'.weight'.length);
    if (module.endsWith('embed_tokens') || module.endsWith('wte') || module.endsWith('wpe'))
      continue;
    if (module === 'lm_head' || !match(module)) continue;
    // GPT-2's Conv1D weights are stored [in, out]; the adapter factors are not.
    const [out, inDim] = spec.family === 'gpt2' ? [shape[1]!, shape[0]!] : [shape[0]!, shape[1]!];
    mods.push({ module, out, in: inDim });
  }
  if (mods.length === 0)
    throw new ConfigError(
      `no module of this ${spec.modelType} model matches the LoRA targets ${[...lora.targets].join(', ')}`,
      { field: 'target_modules' },
      { hint: `use q, k, v, o, gate, up, down or module names such as ${exampleModule(spec)}` },
    );
  return mods;
}

function exampleModule(spec: ModelSpec): string {
  return spec.family === 'gpt2' ? 'c_attn' : 'q_proj';
}

/**
 * Fresh adapter weights by PEFT name: lora_A [r, in] ~ kaiming_uniform_(a = √5), i.e.
 * U(−1/√in, 1/√in), as PEFT's reset_lora_parameters; lora_B [out, r] = 0. Each tensor draws
 * from its own stream of `seed`, so adding a target leaves the others unchanged.
 */
export function initLoraWeights(spec: ModelSpec, lora: LoraSpec, seed: number): TensorMap {
  const out: TensorMap = new Map();
  const root = new Rng(`lora/${seed}`);
  for (const m of adaptedModules(spec, lora)) {
    const n = loraNames(m.module);
    const a = new Float32Array(lora.r * m.in);
    initialise(a, [lora.r, m.in], { kind: 'kaiming_uniform', a: Math.sqrt(5) }, root.fork(n.a));
    out.set(n.a, { shape: [lora.r, m.in], data: a });
    out.set(n.b, { shape: [m.out, lora.r], data: new Float32Array(m.out * lora.r) });
  }
  return out;
}

/** LoRA settings under PEFT's LoraConfig names (adapter_config.json, TRL's lora_* flags). */
export interface LoraOptions {
  /** @default 8 */
  r?: number;
  /** @default 8 (PEFT) */
  lora_alpha?: number;
  /** @default 0 */
  lora_dropout?: number;
  /** @default DEFAULT_LORA_TARGETS */
  target_modules?: readonly string[];
  /** @default false */
  use_rslora?: boolean;
}

/** A LoraSpec from PEFT-named options, validated (bad values are ConfigErrors naming the field). */
export function loraSpec(o: LoraOptions = {}): LoraSpec {
  const r = o.r ?? 8;
  const alpha = o.lora_alpha ?? 8;
  const dropout = o.lora_dropout ?? 0;
  if (!Number.isInteger(r) || r < 1)
    throw new ConfigError(`r must be a positive integer, got ${r}`, { field: 'r' });
  if (!(alpha > 0))
    throw new ConfigError(`lora_alpha must be positive, got ${alpha}`, { field: 'lora_alpha' });
  if (!(dropout >= 0 && dropout < 1))
    throw new ConfigError(`lora_dropout must be in [0, 1), got ${dropout}`, {
      field: 'lora_dropout',
    });
  const targets = o.target_modules ?? DEFAULT_LORA_TARGETS;
  if (targets.length === 0)
    throw new ConfigError('target_modules is empty', { field: 'target_modules' });
  return { r, alpha, dropout, targets: new Set(targets), rslora: o.use_rslora ?? false };
}

/**
 * The shortest name suffixes that, matched as PEFT matches target_modules, select exactly
 * `modules` (GPT-2's o alias is attn.c_proj: a bare c_proj would also take mlp.c_proj).
 */
function targetSuffixes(spec: ModelSpec, modules: readonly string[]): Set<string> {
  const all: string[] = [];
  for (const [name, shape] of expectedTensors(spec))
    if (name.endsWith('.weight') && shape.length === 2) all.push(name.slice(0, -'.weight'.length));
  const chosen = new Set(modules);
  const out = new Set<string>();
  for (const m of modules) {
    const parts = m.split('.');
    for (let k = 1; k <= parts.length; k++) {
      const suffix = parts.slice(-k).join('.');
      const hits = all.filter((x) => x === suffix || x.endsWith(`.${suffix}`));
      if (hits.every((x) => chosen.has(x))) {
        out.add(suffix);
        break;
      }
    }
  }
  return out;
}

/**
 * A PEFT adapter (for savePeftAdapter / mergeLora / exportLoraGguf) from a spec and its weights.
 * target_modules lists the shortest name suffixes that select exactly the adapted modules; GPT-2 sets
 * fan_in_fan_out, since its base weights are Conv1D [in, out].
 */
export function toPeftAdapter(
  spec: ModelSpec,
  lora: LoraSpec,
  tensors: TensorMap,
  baseModel: string | null = null,
): LoraAdapter {
  const modules = new Map<string, LoraPair>();
  const adapted = adaptedModules(spec, lora);
  for (const m of adapted) {
    const n = loraNames(m.module);
    const A = tensors.get(n.a);
    const B = tensors.get(n.b);
    if (!A || !B)
      throw new ConfigError(`the adapter has no weights for '${m.module}'`, { field: n.a });
    modules.set(m.module, { A, B });
  }
  const short = targetSuffixes(
    spec,
    adapted.map((m) => m.module),
  );
  const config = parseAdapterConfig({
    base_model_name_or_path: baseModel,
    r: lora.r,
    lora_alpha: lora.alpha,
    lora_dropout: lora.dropout,
    target_modules: [...short].sort(),
    use_rslora: lora.rslora,
    fan_in_fan_out: spec.family === 'gpt2',
    task_type: 'CAUSAL_LM',
  });
  return { config, modules };
}

/**
 * The LoraSpec and PEFT-named weights of a loaded adapter, checked against `spec`: every
 * module must exist in the model with matching in/out features.
 */
export function fromPeftAdapter(
  spec: ModelSpec,
  adapter: LoraAdapter,
  file?: string,
): { spec: LoraSpec; tensors: TensorMap } {
  const c: AdapterConfig = adapter.config;
  const shapes = expectedTensors(spec);
  const tensors: TensorMap = new Map();
  const scales = new Map<string, number>();
  for (const [module, { A, B }] of adapter.modules) {
    const w = shapes.get(`${module}.weight`);
    if (!w)
      throw new ConfigError(
        `the adapter targets '${module}', which this ${spec.modelType} model does not have`,
        { file, field: 'target_modules' },
      );
    const [out, inDim] = spec.family === 'gpt2' ? [w[1]!, w[0]!] : [w[0]!, w[1]!];
    if (A.shape[1] !== inDim || B.shape[0] !== out)
      throw new ConfigError(
        `adapter '${module}' is ${B.shape[0]}×${A.shape[1]} but the model's weight is ${out}×${inDim}`,
        { file, field: module },
      );
    const n = loraNames(module);
    tensors.set(n.a, A);
    tensors.set(n.b, B);
    scales.set(module, loraScale(c, module).scale);
  }
  const ranks = new Set([...adapter.modules.keys()].map((m) => loraScale(c, m).r));
  return {
    spec: {
      r: ranks.size === 1 ? [...ranks][0]! : c.r,
      alpha: c.lora_alpha,
      dropout: c.lora_dropout,
      targets: new Set(adapter.modules.keys()),
      rslora: c.use_rslora,
      moduleScales: scales,
    },
    tensors,
  };
}
