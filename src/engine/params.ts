// The flat parameter store: every trainable parameter lives in ONE Float32Array (llm.c's
// params_memory) and is reached through named views (offset, shape), so the optimizer updates a
// few long vectors; frozen parameters (LoRA's base weights) are held apart. Seeded initialisers.
// Double buffering and optimizer state (m, v) live in step.ts; checkpoint files in src/models.
import { ConfigError, ShapeError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';

/** How a parameter starts. All random initialisers draw from the store's seeded Rng. */
export type Init =
  | { kind: 'zeros' }
  | { kind: 'ones' }
  | { kind: 'constant'; value: number }
  /** N(mean, std²), e.g. GPT-2 / LLaMA's initializer_range 0.02. */
  | { kind: 'normal'; std: number; mean?: number }
  | { kind: 'uniform'; low: number; high: number }
  /**
   * torch.nn.init.kaiming_uniform_ with leaky-ReLU slope `a` (default √5, as nn.Linear and
   * PEFT's lora_A use): U(−b, b) with b = √(6 / ((1 + a²)·fan_in)), fan_in = prod(shape[1:])
   * (the `in` of a [out, in] weight).
   */
  | { kind: 'kaiming_uniform'; a?: number }
  /** Explicit values (copied), e.g. loaded from a checkpoint. */
  | { kind: 'data'; data: ArrayLike<number> };

/** One parameter to allocate. */
export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  /** @default { kind: 'zeros' } */
  readonly init?: Init;
  /** Frozen: fed to the graph, never updated, no gradient built. @default false */
  readonly frozen?: boolean;
  /**
   * Apply weight decay to it. @default true for matrices (rank >= 2), false for vectors: norm
   * gains and biases, which HF's Trainer also leaves undecayed.
   */
  readonly decay?: boolean;
}

/** Where a trainable parameter sits in the flat buffer. */
export interface ParamView {
  readonly name: string;
  readonly shape: readonly number[];
  /** First element in the flat buffer. */
  readonly offset: number;
  /** Number of elements. */
  readonly size: number;
  readonly decay: boolean;
}

/** The trainable layout: views in flat order and the total size. Plain data (worker-safe). */
export interface ParamLayout {
  readonly views: readonly ParamView[];
  readonly size: number;
}

/** A frozen parameter: its own buffer. */
export interface FrozenParam {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

function numel(shape: readonly number[]): number {
  return shape.reduce((p, q) => p * q, 1);
}

/** Fill `out` according to `init`; random kinds consume `rng`. */
export function initialise(
  out: Float32Array,
  shape: readonly number[],
  init: Init,
  rng: Rng,
): void {
  switch (init.kind) {
    case 'zeros':
      out.fill(0);
      return;
    case 'ones':
      out.fill(1);
      return;
    case 'constant':
      out.fill(init.value);
      return;
    case 'normal': {
      const mean = init.mean ?? 0;
      for (let i = 0; i < out.length; i++) out[i] = mean + init.std * rng.normal();
      return;
    }
    case 'uniform':
      for (let i = 0; i < out.length; i++) out[i] = init.low + (init.high - init.low) * rng.float();
      return;
    case 'kaiming_uniform': {
      const a = init.a ?? Math.sqrt(5);
      const fanIn = shape.length >= 2 ? numel(shape.slice(1)) : (shape[0] ?? 1);
      // gain = √(2 / (1 + a²)), bound = gain · √(3 / fan_in)  (torch.nn.init, He et al. 2015)
      const bound = Math.sqrt(2 / (1 + a * a)) * Math.sqrt(3 / Math.max(1, fanIn));
      for (let i = 0; i < out.length; i++) out[i] = (2 * rng.float() - 1) * bound;
      return;
    }
    case 'data':
      if (init.data.length !== out.length)
        throw new ShapeError('init', `${init.data.length} values for ${out.length} elements`);
      for (let i = 0; i < out.length; i++) out[i] = init.data[i] as number;
      return;
  }
}

/**
 * All parameters of a model: trainable ones packed into `flat` in spec order, frozen ones
 * apart. Each parameter draws from its own Rng fork (seed, name), so adding or reordering
 * parameters does not change the others' initial values.
 * @example
 * const store = ParamStore.create([
 *   { name: 'wte', shape: [V, D], init: { kind: 'normal', std: 0.02 } },
 *   { name: 'ln_f.weight', shape: [D], init: { kind: 'ones' }, decay: false },
 * ], { seed: 42 });
 * store.get('wte'); // Float32Array view into store.flat
 */
export class ParamStore {
  private readonly byName: Map<string, ParamView>;
  private readonly frozenByName: Map<string, FrozenParam>;

  private constructor(
    readonly layout: ParamLayout,
    /** Trainable parameters, packed. */
    readonly flat: Float32Array,
    readonly frozen: readonly FrozenParam[],
  ) {
    this.byName = new Map(layout.views.map((v) => [v.name, v]));
    this.frozenByName = new Map(frozen.map((f) => [f.name, f]));
  }

  /** Allocate and initialise. Duplicate names and bad shapes are ConfigErrors. */
  static create(specs: readonly ParamSpec[], opts: { seed: number | string }): ParamStore {
    const layout = planLayout(specs);
    const frozen: FrozenParam[] = specs
      .filter((s) => s.frozen)
      .map((s) => ({ name: s.name, shape: [...s.shape], data: new Float32Array(numel(s.shape)) }));
    const store = new ParamStore(layout, new Float32Array(layout.size), frozen);
    const root = new Rng(opts.seed);
    for (const s of specs)
      initialise(store.get(s.name), s.shape, s.init ?? { kind: 'zeros' }, root.fork(s.name));
    return store;
  }

  /** Wrap existing buffers (e.g. received from another thread); sizes are checked. */
  static fromBuffers(
    layout: ParamLayout,
    flat: Float32Array,
    frozen: readonly FrozenParam[],
  ): ParamStore {
    if (flat.length !== layout.size)
      throw new ShapeError(
        'param_store',
        `flat buffer has ${flat.length} values, layout needs ${layout.size}`,
      );
    for (const f of frozen)
      if (f.data.length !== numel(f.shape))
        throw new ShapeError(
          'param_store',
          `frozen '${f.name}' has ${f.data.length} values for [${f.shape.join(',')}]`,
        );
    return new ParamStore(layout, flat, frozen);
  }

  /** Names of the trainable parameters, in flat order. */
  get names(): string[] {
    return this.layout.views.map((v) => v.name);
  }

  /** True if `name` is a trainable or frozen parameter. */
  has(name: string): boolean {
    return this.byName.has(name) || this.frozenByName.has(name);
  }

  /** The view of trainable parameter `name`. */
  view(name: string): ParamView {
    const v = this.byName.get(name);
    if (!v) throw unknownParam(name, this.names);
    return v;
  }

  /** The values of `name` (trainable: a view into `flat`, no copy; frozen: its own buffer). */
  get(name: string, flat: Float32Array = this.flat): Float32Array {
    const f = this.frozenByName.get(name);
    if (f) return f.data;
    const v = this.view(name);
    return flat.subarray(v.offset, v.offset + v.size);
  }

  /** Overwrite the values of `name` (trainable or frozen). */
  set(name: string, values: ArrayLike<number>): void {
    const dst = this.get(name);
    if (values.length !== dst.length)
      throw new ShapeError(
        'param_store',
        `'${name}' has ${dst.length} values, got ${values.length}`,
      );
    for (let i = 0; i < dst.length; i++) dst[i] = values[i] as number;
  }
}

/** Pack the trainable specs into a layout (contiguous, in spec order). */
export function planLayout(specs: readonly ParamSpec[]): ParamLayout {
  const seen = new Set<string>();
  const views: ParamView[] = [];
  let offset = 0;
  specs.forEach((s, i) => {
    if (typeof s.name !== 'string' || s.name === '')
      throw new ConfigError('parameter name must be a non-empty string', {
        field: `params.${i}.name`,
      });
    if (seen.has(s.name))
      throw new ConfigError(`duplicate parameter '${s.name}'`, { field: `params.${i}.name` });
    seen.add(s.name);
    if (!s.shape.every((d) => Number.isInteger(d) && d > 0))
      throw new ConfigError(
        `parameter '${s.name}' has bad shape [${s.shape.join(',')}]`,
        { field: `params.${i}.shape` },
        { hint: 'dims must be positive integers' },
      );
    if (s.frozen) return;
    const size = numel(s.shape);
    views.push({
      name: s.name,
      shape: [...s.shape],
      offset,
      size,
      decay: s.decay ?? s.shape.length >= 2,
    });
    offset += size;
  });
  return { views, size: offset };
}

function unknownParam(name: string, names: readonly string[]): ShapeError {
  return new ShapeError('param_store', `no trainable parameter '${name}'`, {
    hint: `known: ${names.slice(0, 8).join(', ')}${names.length > 8 ? ', ...' : ''}`,
  });
}
