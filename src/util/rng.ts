// Seeded pseudo-random numbers. Every random choice in instructkit goes through an Rng made
// from an explicit seed, so the same config and seed give the same data and the same weights.
// Generator: sfc32 (Chris Doty-Humphrey's Small Fast Chaotic PRNG), seeded through splitmix32.

function splitmix32(state: number): [number, number] {
  state = (state + 0x9e3779b9) | 0;
  let z = state;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return [state, (z ^ (z >>> 16)) >>> 0];
}

/** 32-bit FNV-1a hash of a string; used to derive seeds from labels. */
export function hashString(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  #spare: number | undefined;

  /** @param seed integer or string; the same seed always gives the same stream. */
  constructor(seed: number | string) {
    let s = typeof seed === 'string' ? hashString(seed) : seed >>> 0;
    // Mix in the high bits of large integer seeds so 2**32 + 1 differs from 1.
    if (typeof seed === 'number' && Math.abs(seed) >= 2 ** 32)
      s ^= Math.floor(seed / 2 ** 32) >>> 0;
    let v: number;
    [s, v] = splitmix32(s);
    this.#a = v;
    [s, v] = splitmix32(s);
    this.#b = v;
    [s, v] = splitmix32(s);
    this.#c = v;
    [s, v] = splitmix32(s);
    this.#d = v;
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  /** A uniformly distributed unsigned 32-bit integer. */
  nextU32(): number {
    const a = this.#a;
    const b = this.#b;
    const c = this.#c;
    const d = this.#d;
    const t = (((a + b) | 0) + d) | 0;
    this.#d = (d + 1) | 0;
    this.#a = b ^ (b >>> 9);
    this.#b = (c + (c << 3)) | 0;
    this.#c = (((c << 21) | (c >>> 11)) + t) | 0;
    return t >>> 0;
  }

  /** Uniform float in [0, 1) with 53 bits of precision. */
  float(): number {
    const hi = this.nextU32() >>> 5;
    const lo = this.nextU32() >>> 6;
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n). Rejection sampling, so there is no modulo bias. */
  int(n: number): number {
    if (!(n > 0) || !Number.isInteger(n))
      throw new RangeError(`Rng.int: n must be a positive integer, got ${n}`);
    if (n <= 2 ** 32) {
      const limit = 2 ** 32 - (2 ** 32 % n);
      for (;;) {
        const x = this.nextU32();
        if (x < limit) return x % n;
      }
    }
    return Math.floor(this.float() * n);
  }

  /** Uniform integer in [lo, hi] inclusive. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Rng.choice: empty sequence');
    return items[this.int(items.length)]!;
  }

  /** Fisher-Yates shuffle in place; returns the same array. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }

  /** k distinct items, in random order. */
  sample<T>(items: readonly T[], k: number): T[] {
    if (k > items.length) throw new RangeError(`Rng.sample: k=${k} > ${items.length} items`);
    const pool = items.slice();
    for (let i = 0; i < k; i++) {
      const j = i + this.int(pool.length - i);
      const t = pool[i]!;
      pool[i] = pool[j]!;
      pool[j] = t;
    }
    return pool.slice(0, k);
  }

  /** Standard normal sample (Box-Muller, caching the second value). */
  normal(): number {
    if (this.#spare !== undefined) {
      const s = this.#spare;
      this.#spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.float();
    const v = this.float();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Index drawn with probability proportional to weights[i]. */
  weighted(weights: ArrayLike<number>): number {
    let total = 0;
    for (let i = 0; i < weights.length; i++) total += weights[i]!;
    if (!(total > 0)) throw new RangeError('Rng.weighted: weights must have a positive sum');
    let x = this.float() * total;
    for (let i = 0; i < weights.length; i++) {
      x -= weights[i]!;
      if (x < 0) return i;
    }
    return weights.length - 1;
  }

  /** An independent child stream derived from this one and a label, without consuming state. */
  fork(label: string | number): Rng {
    return new Rng(hashString(String(label), this.#a ^ this.#c) ^ this.#b);
  }
}
