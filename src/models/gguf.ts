// GGUF v3 container read and write (ggml docs/gguf.md): header, typed metadata key/values,
// tensor infos with dims in ggml order (innermost first), aligned tensor data. The reader
// bounds-checks every count, length and offset against the file, so a corrupt or hostile file
// gives a FormatError instead of a wild read or allocation. What the keys and tensors mean for
// llama.cpp (architectures, tokenizer, permutation) is gguf-export.ts's business.
import { open } from 'node:fs/promises';
import { FormatError } from '../util/errors.ts';
import { GGML_TYPE_SIZE, ggmlBytes } from './gguf-quant.ts';

/** "GGUF" read as a little-endian u32. */
export const GGUF_MAGIC = 0x46554747;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** Metadata value types (gguf.md, gguf_metadata_value_type). */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufType = (typeof GgufType)[keyof typeof GgufType];

/** An array value: element type plus items (nested arrays are GgufArray items). */
export interface GgufArray {
  readonly elemType: GgufType;
  readonly items: readonly GgufScalar[] | readonly GgufArray[];
}
export type GgufScalar = number | bigint | boolean | string;
/** One metadata value with its type (u64/i64 are bigint; the rest numbers, booleans, strings). */
export interface GgufKv {
  readonly type: GgufType;
  readonly value: GgufScalar | GgufArray;
}

/** A tensor's header entry. `shape` is row-major (PyTorch order); `dims` is ggml order. */
export interface GgufTensorInfo {
  readonly name: string;
  readonly dims: readonly number[];
  readonly shape: readonly number[];
  readonly type: number;
  /** Offset from the start of the tensor-data section. */
  readonly offset: number;
  readonly bytes: number;
}

const FIXED_SIZE: Partial<Record<number, number>> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  10: 8,
  11: 8,
  12: 8,
};

// ---------------------------------------------------------------------------------- writing

class ByteSink {
  buf = new Uint8Array(1 << 16);
  len = 0;
  #dv = new DataView(this.buf.buffer);
  #room(n: number): number {
    if (this.len + n > this.buf.length) {
      const b = new Uint8Array(Math.max(this.buf.length * 2, this.len + n));
      b.set(this.buf.subarray(0, this.len));
      this.buf = b;
      this.#dv = new DataView(b.buffer);
    }
    const at = this.len;
    this.len += n;
    return at;
  }
  // #room may grow the buffer, so it runs before this.#dv / this.buf are read.
  u32(v: number) {
    const at = this.#room(4);
    this.#dv.setUint32(at, v, true);
  }
  u64(v: number | bigint) {
    const at = this.#room(8);
    this.#dv.setBigUint64(at, BigInt(v), true);
  }
  bytes(b: Uint8Array) {
    const at = this.#room(b.length);
    this.buf.set(b, at);
  }
  str(s: string) {
    const b = new TextEncoder().encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  scalar(type: GgufType, v: GgufScalar, key: string) {
    const at = type === GgufType.STRING ? -1 : this.#room(FIXED_SIZE[type] ?? 0);
    const dv = this.#dv;
    const bad = () =>
      new FormatError(`metadata '${key}': value ${String(v)} does not fit type ${type}`);
    switch (type) {
      case GgufType.STRING:
        if (typeof v !== 'string') throw bad();
        return this.str(v);
      case GgufType.BOOL:
        return dv.setUint8(at, v ? 1 : 0);
      case GgufType.UINT64:
        return dv.setBigUint64(at, BigInt(v as number | bigint), true);
      case GgufType.INT64:
        return dv.setBigInt64(at, BigInt(v as number | bigint), true);
    }
    if (typeof v !== 'number') throw bad();
    if (type === GgufType.FLOAT32) return dv.setFloat32(at, v, true);
    if (type === GgufType.FLOAT64) return dv.setFloat64(at, v, true);
    if (!Number.isInteger(v)) throw bad();
    switch (type) {
      case GgufType.UINT8:
        return dv.setUint8(at, v);
      case GgufType.INT8:
        return dv.setInt8(at, v);
      case GgufType.UINT16:
        return dv.setUint16(at, v, true);
      case GgufType.INT16:
        return dv.setInt16(at, v, true);
      case GgufType.UINT32:
        return dv.setUint32(at, v, true);
      case GgufType.INT32:
        return dv.setInt32(at, v, true);
    }
    throw bad();
  }
  value(kv: GgufKv, key: string) {
    if (kv.type !== GgufType.ARRAY) return this.scalar(kv.type, kv.value as GgufScalar, key);
    const arr = kv.value as GgufArray;
    this.u32(arr.elemType);
    this.u64(arr.items.length);
    for (const it of arr.items) this.value({ type: arr.elemType, value: it }, key);
  }
}

/**
 * Builds a GGUF file: metadata in insertion order, then tensors in insertion order.
 * @example const w = new GgufWriter(); w.set('general.architecture', GgufType.STRING, 'llama');
 *          w.addTensor('output_norm.weight', [D], GgmlType.F32, bytes); await w.write('m.gguf');
 */
export class GgufWriter {
  readonly alignment: number;
  readonly #kv = new Map<string, GgufKv>();
  readonly #tensors: { name: string; shape: readonly number[]; type: number; data: Uint8Array }[] =
    [];

  constructor(opts: { alignment?: number } = {}) {
    this.alignment = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
    if (this.alignment % 8 !== 0 || this.alignment <= 0)
      throw new FormatError('GGUF alignment must be a positive multiple of 8');
    if (this.alignment !== GGUF_DEFAULT_ALIGNMENT)
      this.set('general.alignment', GgufType.UINT32, this.alignment);
  }

  /** Set one metadata key (later calls replace earlier ones). */
  set(key: string, type: GgufType, value: GgufScalar | GgufArray): this {
    this.#kv.set(key, { type, value });
    return this;
  }

  /** Set an array of scalars. */
  setArray(key: string, elemType: GgufType, items: readonly GgufScalar[]): this {
    return this.set(key, GgufType.ARRAY, { elemType, items });
  }

  /** Add a tensor given its row-major shape and its bytes already encoded as `type`. */
  addTensor(name: string, shape: readonly number[], type: number, data: Uint8Array): this {
    if (Buffer.byteLength(name) > 64)
      throw new FormatError(`tensor name '${name}' is longer than 64 bytes`);
    if (shape.length < 1 || shape.length > 4)
      throw new FormatError(`tensor '${name}': GGUF tensors have 1 to 4 dims`);
    if (this.#tensors.some((t) => t.name === name))
      throw new FormatError(`duplicate tensor '${name}'`);
    const n = shape.reduce((a, b) => a * b, 1);
    const ne0 = shape[shape.length - 1];
    const block = GGML_TYPE_SIZE[type]?.block ?? 1;
    if (ne0 % block !== 0)
      throw new FormatError(
        `tensor '${name}': row of ${ne0} is not a multiple of the block size ${block}`,
      );
    if (ggmlBytes(type, n, name) !== data.length)
      throw new FormatError(
        `tensor '${name}': ${data.length} bytes given, ${ggmlBytes(type, n, name)} expected`,
      );
    this.#tensors.push({ name, shape, type, data });
    return this;
  }

  /** Write the file. */
  async write(path: string): Promise<void> {
    const h = new ByteSink();
    h.u32(GGUF_MAGIC);
    h.u32(3);
    h.u64(this.#tensors.length);
    h.u64(this.#kv.size);
    for (const [k, v] of this.#kv) {
      h.str(k);
      h.u32(v.type);
      h.value(v, k);
    }
    let off = 0;
    const pad = (x: number) => (this.alignment - (x % this.alignment)) % this.alignment;
    for (const t of this.#tensors) {
      h.str(t.name);
      h.u32(t.shape.length);
      for (let j = t.shape.length - 1; j >= 0; j--) h.u64(t.shape[j]); // ggml order
      h.u32(t.type);
      h.u64(off);
      off += t.data.length + pad(t.data.length);
    }
    h.bytes(new Uint8Array(pad(h.len)));
    const fh = await open(path, 'w');
    try {
      await fh.write(h.buf.subarray(0, h.len));
      for (const t of this.#tensors) {
        await fh.write(t.data);
        const p = pad(t.data.length);
        if (p > 0) await fh.write(new Uint8Array(p));
      }
    } finally {
      await fh.close();
    }
  }
}
