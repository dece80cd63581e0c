// Task mixtures in the FLAN / T5 style: each source (task) gets a rate, and every output example
// is drawn from a source chosen with probability proportional to its rate. Sources are lazy
// iterators opened on demand, so a mixture over any number of examples holds one iterator per
// source and nothing else. Reading the sources from files is the caller's (or the CLI's) job.
import { z } from 'zod';
import { ConfigError } from '../util/errors.ts';
import { hashString, Rng } from '../util/rng.ts';
import { parseConfig } from './config.ts';

/** One task or dataset in a mixture. */
export interface MixtureSource<T = unknown> {
  /** Unique name (the task name); used for explicit rates and the summary. */
  name: string;
  /** Examples in one pass. Needed by the 'proportional' and 'temperature' strategies. */
  size?: number;
  /** Rate for the 'explicit' strategy (config.rates[name] takes precedence). */
  rate?: number;
  /**
   * Opens one pass over the examples. Called again for each epoch when onExhausted is
   * 'repeat'; `seed` differs per source and epoch so a source can reshuffle.
   */
  open(pass: { epoch: number; seed: number }): Iterable<T> | AsyncIterable<T>;
}

/**
 * How to mix. Rates (Raffel et al. 2020, T5, sec. 3.5.2; FLAN v2 mixtures_utils):
 * - proportional: r_i = min(n_i, cap) ("examples-proportional mixing" with an artificial limit;
 *   FLAN 2022 caps: FLAN 30k, T0 20k, NIv2 5k, CoT 100k; OPT-IML chose 4096).
 * - temperature: r_i = min(n_i, cap)^(1/T); T = 1 is proportional, T -> infinity is uniform.
 * - explicit: r_i given per source.
 * When a source runs out (onExhausted):
 * - 'drop' (default): sampling without replacement, T5 style; the source leaves the mixture,
 *   the other rates renormalise, and the mixture ends when every source is empty (or at total).
 * - 'repeat': the source starts another epoch; the mixture ends only at `total` (infinite
 *   without it), so the rates hold for the whole stream.
 * - 'stop': the whole mixture ends at the first exhausted source (proportions stay exact).
 */
export const MixtureConfig = z.strictObject({
  strategy: z.enum(['proportional', 'temperature', 'explicit']).default('proportional'),
  /** Per-source cap on n in the rate (examples-proportional with caps). Default: no cap. */
  cap: z.number().int().positive().optional(),
  /** Temperature T for the 'temperature' strategy. */
  temperature: z.number().positive().default(1),
  /** Explicit rates by source name. */
  rates: z.record(z.string(), z.number().nonnegative()).optional(),
  /** Stop after this many examples. Default: until the sources run out. */
  total: z.number().int().positive().optional(),
  onExhausted: z.enum(['drop', 'repeat', 'stop']).default('drop'),
  seed: z.number().int().default(0),
});
export type MixtureConfig = z.infer<typeof MixtureConfig>;
export type MixtureConfigInput = z.input<typeof MixtureConfig>;

/** Per-source figures in the summary. */
export interface SourceSummary {
  name: string;
  size: number | undefined;
  /** Unnormalised rate. */
  rate: number;
  /** Target probability of drawing this source while all sources are active. */
  probability: number;
  /** Examples emitted from this source. */
  emitted: number;
  /** Passes started (1 unless repeated). */
  epochs: number;
  exhausted: boolean;
}

/** What a mixture produced; filled in as it runs and final once iteration ends. */
export interface MixtureSummary {
  strategy: MixtureConfig['strategy'];
  seed: number;
  emitted: number;
  /** Why it ended: 'total' reached, all sources 'exhausted', 'stopped' at the first empty one. */
  ended: 'running' | 'total' | 'exhausted' | 'stopped';
  sources: SourceSummary[];
}

/** The computed rates and normalised probabilities for the sources (no iteration). */
export function mixtureRates(
  sources: readonly Pick<MixtureSource, 'name' | 'size' | 'rate'>[],
  config: MixtureConfigInput = {},
): { name: string; rate: number; probability: number }[] {
  const c = parseConfig(MixtureConfig, config);
  const names = new Set<string>();
  for (const s of sources) {
    if (names.has(s.name))
      throw new ConfigError(`source '${s.name}' appears twice`, { field: 'sources' });
    names.add(s.name);
  }
  for (const k of Object.keys(c.rates ?? {})) {
    if (!names.has(k))
      throw new ConfigError(`rate given for unknown source '${k}'`, { field: `rates.${k}` });
  }
  const rates = sources.map((s) => {
    if (c.strategy === 'explicit') {
      const r = c.rates?.[s.name] ?? s.rate;
      if (r === undefined)
        throw new ConfigError(
          `no rate for source '${s.name}'`,
          { field: `rates.${s.name}` },
          {
            hint: 'the explicit strategy needs a rate for every source',
          },
        );
      return r;
    }
    if (s.size === undefined || !(s.size >= 0))
      throw new ConfigError(
        `source '${s.name}' has no size`,
        { field: `sources.${s.name}.size` },
        {
          hint: `the ${c.strategy} strategy needs each source's example count`,
        },
      );
    const n = Math.min(s.size, c.cap ?? Number.POSITIVE_INFINITY);
    return c.strategy === 'temperature' ? n ** (1 / c.temperature) : n;
  });
  const sum = rates.reduce((a, b) => a + b, 0);
  if (!(sum > 0)) throw new ConfigError('all mixture rates are zero', { field: 'rates' });
  return sources.map((s, i) => ({ name: s.name, rate: rates[i]!, probability: rates[i]! / sum }));
}

type AnyIter<T> = Iterator<T> | AsyncIterator<T>;

function openIter<T>(
  src: MixtureSource<T>,
  epoch: number,
  seed: number,
): { it: AnyIter<T>; sync: boolean } {
  const pass = src.open({ epoch, seed: hashString(`${src.name}#${epoch}`, seed >>> 0) });
  if (Symbol.iterator in pass) return { it: (pass as Iterable<T>)[Symbol.iterator](), sync: true };
  return { it: (pass as AsyncIterable<T>)[Symbol.asyncIterator](), sync: false };
}

/** A running mixture: iterate it once; `summary` is live and final when iteration ends. */
export interface Mixture<T> extends AsyncIterable<T> {
  readonly summary: MixtureSummary;
}

/**
 * Mixes sources by rate, deterministically for config.seed. Sources are opened lazily and read
 * one example at a time; the mixture never buffers, so memory is independent of size.
 * @example
 * const m = mix(tasks.map((t) => ({ name: t.name, size: t.count, open: () => t.examples() })),
 *   { strategy: 'proportional', cap: 3000, total: 100_000, seed: 1 });
 * for await (const ex of m) sink.write(ex);
 * console.log(m.summary.sources.map((s) => [s.name, s.emitted]));
 */
export function mix<T>(
  sources: readonly MixtureSource<T>[],
  config: MixtureConfigInput = {},
): Mixture<T> {
  const c = parseConfig(MixtureConfig, config);
  const rates = mixtureRates(sources, c);
  const summary: MixtureSummary = {
    strategy: c.strategy,
    seed: c.seed,
    emitted: 0,
    ended: 'running',
    sources: sources.map((s, i) => ({
      name: s.name,
      size: s.size,
      rate: rates[i]!.rate,
      probability: rates[i]!.probability,
      emitted: 0,
      epochs: 0,
      exhausted: false,
    })),
  };
  let started = false;
  return {
    summary,
    [Symbol.asyncIterator]() {
      if (started) throw new Error('a mixture can be iterated only once; call mix() again');
      started = true;
      return new MixtureRun(sources, rates, c, summary);
    },
  };
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * The iteration state of one mixture. A hand-written async iterator rather than an async
 * generator: when the drawn source is synchronous, next() does all its work synchronously and
 * returns an already-resolved promise, which roughly halves the per-example overhead.
 */
class MixtureRun<T> implements AsyncIterator<T> {
  #sources: readonly MixtureSource<T>[];
  #rates: { rate: number }[];
  #c: MixtureConfig;
  #summary: MixtureSummary;
  #rng: Rng;
  #iters: ({ it: AnyIter<T>; sync: boolean } | undefined)[];
  /** Examples emitted in each source's current pass (0 at the end of a pass = empty pass). */
  #inPass: number[];
  /** Active sources and their cumulative rates; rebuilt only when a source leaves. */
  #active: number[];
  #cdf = new Float64Array(0);
  #total: number;
  #finished = false;
  #stopped = false;

  constructor(
    sources: readonly MixtureSource<T>[],
    rates: { rate: number }[],
    c: MixtureConfig,
    summary: MixtureSummary,
  ) {
    this.#sources = sources;
    this.#rates = rates;
    this.#c = c;
    this.#summary = summary;
    this.#rng = new Rng(c.seed);
    this.#iters = sources.map(() => undefined);
    this.#inPass = sources.map(() => 0);
    this.#active = sources.map((_, i) => i).filter((i) => rates[i]!.rate > 0);
    this.#rebuild();
    this.#total = c.total ?? Number.POSITIVE_INFINITY;
  }

  #rebuild(): void {
    this.#cdf = new Float64Array(this.#active.length);
    let acc = 0;
    for (let j = 0; j < this.#active.length; j++) {
      acc += this.#rates[this.#active[j]!]!.rate;
      this.#cdf[j] = acc;
    }
  }

  /** Draws a source index with probability proportional to its rate (binary search). */
  #draw(): number {
    const cdf = this.#cdf;
    const x = this.#rng.float() * cdf[cdf.length - 1]!;
    let lo = 0;
    let hi = cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (x < cdf[mid]!) hi = mid;
      else lo = mid + 1;
    }
    return this.#active[lo]!;
  }

  /** Accounts for source k's result; returns the example to emit, or undefined to draw again. */
  #take(k: number, r: IteratorResult<T>): IteratorResult<T> | undefined {
    const s = this.#summary.sources[k]!;
    if (!r.done) {
      this.#inPass[k]!++;
      s.emitted++;
      this.#summary.emitted++;
      return r;
    }
    this.#iters[k] = undefined;
    // Repeat mode starts the next pass at the next draw of this source, unless this pass was
    // empty (which would loop forever).
    if (this.#c.onExhausted === 'repeat' && this.#inPass[k]! > 0) {
      this.#inPass[k] = 0;
      return undefined;
    }
    s.exhausted = true;
    if (this.#c.onExhausted === 'stop') {
      this.#stopped = true;
      return undefined;
    }
    this.#active = this.#active.filter((i) => i !== k);
    this.#rebuild();
    return undefined;
  }

  #step(): IteratorResult<T> | Promise<IteratorResult<T>> {
    for (;;) {
      if (this.#finished) return DONE;
      const reachedTotal = this.#summary.emitted >= this.#total;
      if (reachedTotal || this.#stopped || this.#active.length === 0) {
        this.#summary.ended = reachedTotal ? 'total' : this.#stopped ? 'stopped' : 'exhausted';
        this.#finished = true;
        return this.#close().then(() => DONE);
      }
      const k = this.#draw();
      let cur = this.#iters[k];
      if (!cur) {
        const s = this.#summary.sources[k]!;
        cur = openIter(this.#sources[k]!, s.epochs, this.#c.seed);
        this.#iters[k] = cur;
        s.epochs++;
      }
      if (!cur.sync) {
        return (cur.it.next() as Promise<IteratorResult<T>>).then(
          (r) => this.#take(k, r) ?? this.#step(),
        );
      }
      const out = this.#take(k, (cur.it as Iterator<T>).next());
      if (out) return out;
    }
  }

  next(): Promise<IteratorResult<T>> {
    const r = this.#step();
    return r instanceof Promise ? r : Promise.resolve(r);
  }

  async #close(): Promise<void> {
    for (const cur of this.#iters) await cur?.it.return?.();
    this.#iters.fill(undefined);
  }

  async return(): Promise<IteratorResult<T>> {
    this.#finished = true;
    await this.#close();
    return DONE;
  }
}
