// Input mutation for the fuzz harness: byte-level mutators in the style of libFuzzer's
// MutationDispatcher (bit flips, interesting values, insert / erase / copy, dictionary tokens,
// cross-over) and structure-level mutators that parse a JSON or YAML input, change one node
// (swap in another value, a huge or odd number, the wrong type, deep nesting, a long or astral
// string, a deleted / renamed / duplicated key) and serialise it again. Value pools come from
// fast-check's arbitraries, sampled once under the run's seed, so a run is reproducible.
import fc from 'fast-check';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { Rng } from '../../src/util/rng.ts';

/** How a target's input is structured, which picks the structure-level mutators. */
export type InputShape = 'bytes' | 'text' | 'json' | 'yaml' | 'safetensors';

const enc = new TextEncoder();
const dec = new TextDecoder('utf-8', { fatal: false });

const INTERESTING_8 = [0, 1, 0x7f, 0x80, 0xff, 0x20, 0x22, 0x5c, 0x0a, 0x7b, 0x5b, 0x7d, 0x5d];
const INTERESTING_32 = [
  0, 1, 2, 8, 32, 0x7f, 0xff, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
];
const INTERESTING_64: bigint[] = [
  0n,
  1n,
  24n,
  2n ** 31n,
  2n ** 32n,
  2n ** 53n,
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  2n ** 63n,
  2n ** 64n - 1n,
];

/** Odd numbers and wrong-typed values a structure mutator swaps in. */
const SPECIAL_VALUES: unknown[] = [
  0,
  -1,
  -0,
  1e308,
  -1e308,
  5e-324,
  2 ** 53 + 2,
  -(2 ** 63),
  2 ** 64,
  1e21,
  0.5,
  Number.MAX_SAFE_INTEGER,
  null,
  true,
  false,
  '',
  '0',
  '-1',
  'NaN',
  'Infinity',
  '\u0000',
  '\ud800',
  '\udfff\ud800',
  '😀👩‍👩‍👧',
  '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
  '\u202e\u200b\ufeff',
  '{{ x }}',
  '{% for i in range(3) %}{{ i }}{% endfor %}',
  '|||',
  '__proto__',
  'constructor',
  [],
  {},
  [[]],
  { '': null },
];

const SPECIAL_KEYS = [
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  '',
  '0',
  '😀',
  'a.b',
  '__metadata__',
];

export interface MutatorOptions {
  seed: number | string;
  /** Tokens worth inserting for this target (keywords, magic bytes, field names). */
  dictionary?: readonly string[];
  /** Largest input produced; longer results are cut. @default 1 << 20 */
  maxBytes?: number;
}

/** Seeded mutator; every choice comes from one Rng stream. */
export class Mutator {
  readonly rng: Rng;
  readonly #dict: Uint8Array[];
  readonly #maxBytes: number;
  readonly #values: unknown[];
  readonly #strings: string[];

  constructor(o: MutatorOptions) {
    this.rng = new Rng(`fuzz-mutator:${o.seed}`);
    this.#maxBytes = o.maxBytes ?? 1 << 20;
    this.#dict = [
      ...(o.dictionary ?? []),
      '"',
      '\\u0000',
      '\\ud800',
      'null',
      '-',
      '1e999',
      '99999999999999999999',
      '\u00e9',
      '😀',
    ].map((s) => enc.encode(s));
    const seed = hash32(String(o.seed));
    this.#values = [
      ...SPECIAL_VALUES,
      ...fc.sample(fc.jsonValue({ maxDepth: 3 }), { seed, numRuns: 200 }),
      ...fc.sample(fc.oneof(fc.integer(), fc.double(), fc.bigInt().map(Number)), {
        seed: seed + 1,
        numRuns: 100,
      }),
    ];
    this.#strings = fc.sample(
      fc.oneof(
        fc.string({ unit: 'binary', maxLength: 12 }),
        fc.string({ unit: 'grapheme', maxLength: 12 }),
        fc.string({ maxLength: 12 }),
      ),
      { seed: seed + 2, numRuns: 200 },
    );
  }

  /**
   * One new input from `base` (and maybe `other`, for cross-over): one structure mutation
   * when the shape allows and the coin says so, then one to three byte mutations (or none).
   */
  mutate(base: Uint8Array, shape: InputShape, other?: Uint8Array): Uint8Array {
    const r = this.rng;
    let out = base;
    if (shape !== 'bytes' && shape !== 'text' && r.float() < 0.5) {
      const s = this.#structural(out, shape);
      if (s) out = s;
      if (r.float() < 0.5) return this.#cap(out);
    }
    const rounds = 1 + r.int(3);
    for (let i = 0; i < rounds; i++) out = this.#byteMutation(out, other);
    return this.#cap(out);
  }

  #cap(b: Uint8Array): Uint8Array {
    return b.length > this.#maxBytes ? b.subarray(0, this.#maxBytes) : b;
  }

  // ---- byte level ----

  #byteMutation(b: Uint8Array, other?: Uint8Array): Uint8Array {
    const r = this.rng;
    const n = b.length;
    const at = (extra = 0) => r.int(n + extra);
    switch (r.int(other ? 13 : 12)) {
      case 0: {
        if (n === 0) return this.#insert(b, 0, this.#randomBytes(1 + r.int(4)));
        const c = b.slice();
        const i = at();
        c[i] = c[i]! ^ (1 << r.int(8));
        return c;
      }
      case 1: {
        if (n === 0) return b;
        const c = b.slice();
        c[at()] = r.float() < 0.5 ? r.int(256) : r.choice(INTERESTING_8);
        return c;
      }
      case 2:
        return this.#insert(b, at(1), this.#randomBytes(1 + r.int(8)));
      case 3: {
        if (n === 0) return b;
        const i = at();
        const len = 1 + r.int(Math.min(n - i, 64));
        return concat(b.subarray(0, i), b.subarray(i + len));
      }
      case 4: {
        // copy a chunk elsewhere (duplicates fields, tokens, tensors)
        if (n === 0) return b;
        const i = at();
        const len = 1 + r.int(Math.min(n - i, 256));
        return this.#insert(b, at(1), b.slice(i, i + len));
      }
      case 5:
        return this.#insert(b, at(1), r.choice(this.#dict));
      case 6: {
        // overwrite with a dictionary token
        const tok = r.choice(this.#dict);
        if (n < tok.length) return this.#insert(b, 0, tok);
        const c = b.slice();
        c.set(tok, r.int(n - tok.length + 1));
        return c;
      }
      case 7: {
        if (n < 4) return b;
        const c = b.slice();
        const v = r.choice(INTERESTING_32);
        new DataView(c.buffer, c.byteOffset).setUint32(r.int(n - 3), v, true);
        return c;
      }
      case 8: {
        if (n < 8) return b;
        const c = b.slice();
        const v = r.choice(INTERESTING_64);
        new DataView(c.buffer, c.byteOffset).setBigUint64(r.int(n - 7), v, true);
        return c;
      }
      case 9:
        // truncation
        return n === 0 ? b : b.subarray(0, r.int(n));
      case 10: {
        // a chunk repeated many times (size growth)
        if (n === 0) return b;
        const i = at();
        const len = 1 + r.int(Math.min(n - i, 16));
        const times = 2 + r.int(r.float() < 0.1 ? 10_000 : 64);
        const chunk = b.subarray(i, i + len);
        const rep = new Uint8Array(len * times);
        for (let k = 0; k < times; k++) rep.set(chunk, k * len);
        return this.#insert(b, i, rep);
      }
      case 11: {
        // swap two bytes ranges' order (shuffles structure)
        if (n < 2) return b;
        const c = b.slice();
        const i = at();
        const j = at();
        const t = c[i]!;
        c[i] = c[j]!;
        c[j] = t;
        return c;
      }
      default: {
        // cross-over: head of this input, tail of another
        const o = other!;
        return concat(b.subarray(0, at(1)), o.subarray(r.int(o.length + 1)));
      }
    }
  }

  #insert(b: Uint8Array, at: number, x: Uint8Array): Uint8Array {
    return concat(b.subarray(0, at), x, b.subarray(at));
  }

  #randomBytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.rng.int(256);
    return out;
  }

  // ---- structure level ----

  #structural(b: Uint8Array, shape: InputShape): Uint8Array | undefined {
    if (shape === 'safetensors') return this.#safetensors(b);
    const text = dec.decode(b);
    if (shape === 'json') {
      // JSONL: mutate one line's value
      const lines = text.split('\n');
      if (lines.length > 2) {
        const i = this.rng.int(lines.length);
        const v = tryJson(lines[i]!);
        if (v === NOPE) return undefined;
        lines[i] = this.#stringify(this.mutateValue(v.value), 'json');
        return enc.encode(lines.join('\n'));
      }
      const v = tryJson(text);
      if (v === NOPE) return undefined;
      return enc.encode(this.#stringify(this.mutateValue(v.value), 'json'));
    }
    let v: unknown;
    try {
      v = parseYaml(text, { maxAliasCount: 100 });
    } catch {
      return undefined;
    }
    return enc.encode(this.#stringify(this.mutateValue(v), 'yaml'));
  }

  #stringify(v: unknown, how: 'json' | 'yaml'): string {
    if (how === 'json') return JSON.stringify(v) ?? 'null';
    try {
      return stringifyYaml(v, { lineWidth: 0 });
    } catch {
      return JSON.stringify(v) ?? 'null';
    }
  }

  /** A safetensors file: mutate its header JSON and write the correct length prefix back. */
  #safetensors(b: Uint8Array): Uint8Array | undefined {
    if (b.length < 8) return undefined;
    const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
    if (n > b.length - 8) return undefined;
    const v = tryJson(dec.decode(b.subarray(8, 8 + n)));
    if (v === NOPE) return undefined;
    const header = enc.encode(JSON.stringify(this.mutateValue(v.value)) ?? 'null');
    const out = new Uint8Array(8 + header.length + (b.length - 8 - n));
    new DataView(out.buffer).setBigUint64(0, BigInt(header.length), true);
    out.set(header, 8);
    out.set(b.subarray(8 + n), 8 + header.length);
    return out;
  }

  /** Returns a copy of `v` with one node changed. */
  mutateValue(v: unknown): unknown {
    const r = this.rng;
    const paths: (string | number)[][] = [];
    collectPaths(v, [], paths, 0);
    const path = r.choice(paths);
    const root = structuredCloneSafe(v);
    const parent = path.length === 0 ? undefined : getAt(root, path.slice(0, -1));
    const key = path[path.length - 1];
    const cur = path.length === 0 ? root : getAt(root, path);
    let next: unknown;
    switch (r.int(10)) {
      case 0:
        next = r.choice(this.#values);
        break;
      case 1:
        next = r.choice(SPECIAL_VALUES);
        break;
      case 2: {
        // another node of the same document (values swapped between fields)
        const p2 = r.choice(paths);
        next = structuredCloneSafe(p2.length === 0 ? v : getAt(v, p2));
        break;
      }
      case 3: {
        // deep nesting
        const depth = r.choice([8, 64, 512, 5000]);
        let x: unknown = cur;
        for (let i = 0; i < depth; i++) x = r.float() < 0.5 ? [x] : { a: x };
        next = x;
        break;
      }
      case 4:
        next =
          typeof cur === 'string'
            ? cur + r.choice(this.#strings)
            : typeof cur === 'number'
              ? r.choice([cur + 1, cur - 1, -cur, cur * 1e9, cur / 3, Math.floor(cur * 2 ** 31)])
              : r.choice(this.#strings);
        break;
      case 5: {
        // long string or long array
        const s = typeof cur === 'string' && cur.length > 0 ? cur : r.choice(this.#strings) || 'x';
        const times = r.choice([100, 10_000, 100_000]);
        next =
          r.float() < 0.5
            ? s.repeat(Math.ceil(times / s.length))
            : Array(Math.min(times, 10_000)).fill(cur);
        break;
      }
      case 6:
        if (parent !== undefined && key !== undefined) {
          if (Array.isArray(parent)) parent.splice(key as number, 1);
          else delete (parent as Record<string, unknown>)[key];
          return root;
        }
        next = null;
        break;
      case 7:
        if (
          parent !== null &&
          typeof parent === 'object' &&
          !Array.isArray(parent) &&
          key !== undefined
        ) {
          const o = parent as Record<string, unknown>;
          const k = r.float() < 0.5 ? r.choice(SPECIAL_KEYS) : r.choice(this.#strings);
          Object.defineProperty(o, k, {
            value: o[key],
            enumerable: true,
            configurable: true,
            writable: true,
          });
          if (r.float() < 0.5) delete o[key];
          return root;
        }
        next = [cur, cur];
        break;
      case 8:
        // wrong container type
        next = Array.isArray(cur)
          ? Object.fromEntries(cur.map((x, i) => [String(i), x]))
          : cur !== null && typeof cur === 'object'
            ? Object.values(cur)
            : [cur];
        break;
      default:
        next =
          typeof cur === 'string' ? cur.slice(0, r.int(cur.length + 1)) : r.choice(this.#strings);
    }
    if (path.length === 0) return next;
    (parent as Record<string | number, unknown>)[key!] = next;
    return root;
  }
}

const NOPE = Symbol('nope');
function tryJson(s: string): { value: unknown } | typeof NOPE {
  try {
    return { value: JSON.parse(s) };
  } catch {
    return NOPE;
  }
}

function collectPaths(
  v: unknown,
  at: (string | number)[],
  out: (string | number)[][],
  depth: number,
): void {
  out.push(at);
  if (out.length > 4000 || depth > 64 || v === null || typeof v !== 'object') return;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length && i < 200; i++) collectPaths(v[i], [...at, i], out, depth + 1);
  } else
    for (const k of Object.keys(v).slice(0, 200))
      collectPaths((v as Record<string, unknown>)[k], [...at, k], out, depth + 1);
}

function getAt(v: unknown, path: readonly (string | number)[]): unknown {
  let x = v;
  for (const k of path) x = (x as Record<string | number, unknown>)[k];
  return x;
}

function structuredCloneSafe(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(structuredCloneSafe);
  const o: Record<string, unknown> = {};
  for (const k of Object.keys(v))
    Object.defineProperty(o, k, {
      value: structuredCloneSafe((v as Record<string, unknown>)[k]),
      enumerable: true,
      configurable: true,
      writable: true,
    });
  return o;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** FNV-1a, for seeds and signatures. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}
