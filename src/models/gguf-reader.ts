// GGUF reader (format in gguf.ts's header comment). The header is parsed through a windowed
// cursor over a file descriptor; every length and count is checked against the bytes left in
// the file before anything is allocated, and tensor data is read on demand by byte range.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { FormatError } from '../util/errors.ts';
import {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  type GgufArray,
  type GgufKv,
  type GgufScalar,
  type GgufTensorInfo,
  GgufType,
} from './gguf.ts';
import { decodeGgml, GGML_TYPE_SIZE } from './gguf-quant.ts';

const MIN_SIZE: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  8: 8,
  9: 12,
  10: 8,
  11: 8,
  12: 8,
};

/** Sequential little-endian reads from a file, checked against its size. */
class Cursor {
  readonly #fd: number;
  readonly size: number;
  readonly #path: string;
  pos = 0;
  #buf = Buffer.alloc(1 << 20);
  #start = 0;
  #len = 0;
  constructor(fd: number, size: number, path: string) {
    this.#fd = fd;
    this.size = size;
    this.#path = path;
  }
  get left(): number {
    return this.size - this.pos;
  }
  fail(msg: string): never {
    throw new FormatError(msg, this.#path);
  }
  #need(n: number, what: string): number {
    if (n > this.left)
      this.fail(`truncated: ${what} needs ${n} bytes at offset ${this.pos}, ${this.left} left`);
    if (this.pos < this.#start || this.pos + n > this.#start + this.#len) {
      if (n > this.#buf.length) this.#buf = Buffer.alloc(n);
      this.#start = this.pos;
      this.#len = readSync(this.#fd, this.#buf, 0, Math.min(this.#buf.length, this.left), this.pos);
    }
    const at = this.pos - this.#start;
    this.pos += n;
    return at;
  }
  u32(what = 'u32'): number {
    return this.#buf.readUInt32LE(this.#need(4, what));
  }
  u64(what = 'u64'): bigint {
    return this.#buf.readBigUInt64LE(this.#need(8, what));
  }
  /** A u64 count or length that must fit both a safe integer and `limit`. */
  count(what: string, limit: number): number {
    const v = this.u64(what);
    if (v > BigInt(limit))
      this.fail(
        `${what} ${v} is larger than the rest of the file allows (${limit}): truncated or corrupt`,
      );
    return Number(v);
  }
  str(what: string): string {
    const n = this.count(`${what} length`, this.left);
    const at = this.#need(n, what);
    return this.#buf.toString('utf8', at, at + n);
  }
  scalar(type: number, what: string): GgufScalar {
    switch (type) {
      case GgufType.UINT8:
        return this.#buf.readUInt8(this.#need(1, what));
      case GgufType.INT8:
        return this.#buf.readInt8(this.#need(1, what));
      case GgufType.UINT16:
        return this.#buf.readUInt16LE(this.#need(2, what));
      case GgufType.INT16:
        return this.#buf.readInt16LE(this.#need(2, what));
      case GgufType.UINT32:
        return this.#buf.readUInt32LE(this.#need(4, what));
      case GgufType.INT32:
        return this.#buf.readInt32LE(this.#need(4, what));
      case GgufType.FLOAT32:
        return this.#buf.readFloatLE(this.#need(4, what));
      case GgufType.BOOL:
        return this.#buf.readUInt8(this.#need(1, what)) !== 0;
      case GgufType.STRING:
        return this.str(what);
      case GgufType.UINT64:
        return this.#buf.readBigUInt64LE(this.#need(8, what));
      case GgufType.INT64:
        return this.#buf.readBigInt64LE(this.#need(8, what));
      case GgufType.FLOAT64:
        return this.#buf.readDoubleLE(this.#need(8, what));
    }
    return this.fail(`${what}: unknown value type ${type}`);
  }
  value(type: number, what: string, depth = 0): GgufScalar | GgufArray {
    if (type !== GgufType.ARRAY) return this.scalar(type, what);
    if (depth > 8) this.fail(`${what}: arrays nested too deeply`);
    const elemType = this.u32(what) as GgufType;
    if (MIN_SIZE[elemType] === undefined)
      this.fail(`${what}: unknown array element type ${elemType}`);
    const n = this.count(`${what} array length`, Math.floor(this.left / MIN_SIZE[elemType]));
    const items: (GgufScalar | GgufArray)[] = new Array(n);
    for (let i = 0; i < n; i++) items[i] = this.value(elemType, what, depth + 1);
    return { elemType, items } as GgufArray;
  }
}

/** An open GGUF file: metadata and tensor infos in memory, tensor data read on demand. */
export class GgufReader {
  readonly path: string;
  readonly version: number;
  readonly metadata: ReadonlyMap<string, GgufKv>;
  readonly tensors: readonly GgufTensorInfo[];
  readonly alignment: number;
  /** File offset of the tensor-data section. */
  readonly dataStart: number;
  #fd: number | undefined;
  readonly #byName: Map<string, GgufTensorInfo>;

  private constructor(path: string, fd: number) {
    this.path = path;
    this.#fd = fd;
    const c = new Cursor(fd, fstatSync(fd).size, path);
    if (c.size < 24) c.fail(`file has ${c.size} bytes, too short for a GGUF header`);
    const magic = c.u32();
    if (magic !== GGUF_MAGIC)
      c.fail(`bad magic 0x${magic.toString(16).padStart(8, '0')} (expected "GGUF")`);
    this.version = c.u32();
    if (this.version !== 2 && this.version !== 3)
      c.fail(`GGUF version ${this.version} is not supported (2 and 3 are)`);
    const nTensors = c.count('tensor_count', Math.floor(c.left / 24));
    const nKv = c.count('metadata_kv_count', Math.floor(c.left / 12));
    const kv = new Map<string, GgufKv>();
    for (let i = 0; i < nKv; i++) {
      const key = c.str('metadata key');
      if (kv.has(key)) c.fail(`duplicate metadata key '${key}'`);
      const type = c.u32(key) as GgufType;
      kv.set(key, { type, value: c.value(type, `metadata '${key}'`) });
    }
    this.metadata = kv;
    const al = kv.get('general.alignment');
    this.alignment = al === undefined ? GGUF_DEFAULT_ALIGNMENT : Number(al.value);
    if (!Number.isInteger(this.alignment) || this.alignment <= 0 || this.alignment % 8 !== 0)
      c.fail(`general.alignment ${String(al?.value)} is not a positive multiple of 8`);
    const infos: GgufTensorInfo[] = [];
    this.#byName = new Map();
    for (let i = 0; i < nTensors; i++) {
      const name = c.str('tensor name');
      const nd = c.u32(name);
      if (nd < 1 || nd > 4) c.fail(`tensor '${name}': ${nd} dims (1 to 4 allowed)`);
      const dims: number[] = [];
      for (let j = 0; j < nd; j++)
        dims.push(c.count(`tensor '${name}' dim`, Number.MAX_SAFE_INTEGER));
      const type = c.u32(name);
      const offset = c.count(`tensor '${name}' offset`, Number.MAX_SAFE_INTEGER);
      if (offset % this.alignment !== 0)
        c.fail(`tensor '${name}': offset ${offset} is not aligned to ${this.alignment}`);
      const n = dims.reduce((a, b) => a * b, 1);
      if (!Number.isSafeInteger(n)) c.fail(`tensor '${name}': too many elements`);
      // Unknown (e.g. K-quant) types can be listed but not read; their size stays unknown (-1).
      const bytes =
        GGML_TYPE_SIZE[type] !== undefined && n % GGML_TYPE_SIZE[type].block === 0
          ? (n / GGML_TYPE_SIZE[type].block) * GGML_TYPE_SIZE[type].bytes
          : -1;
      if (this.#byName.has(name)) c.fail(`duplicate tensor '${name}'`);
      const info: GgufTensorInfo = { name, dims, shape: [...dims].reverse(), type, offset, bytes };
      infos.push(info);
      this.#byName.set(name, info);
    }
    this.dataStart = c.pos + ((this.alignment - (c.pos % this.alignment)) % this.alignment);
    for (const t of infos)
      if (t.bytes >= 0 && this.dataStart + t.offset + t.bytes > c.size)
        c.fail(
          `tensor '${t.name}': data [${t.offset}, ${t.offset + t.bytes}) runs past the end of the file (truncated)`,
        );
    this.tensors = infos;
  }

  /** Open and parse a GGUF file's header. */
  static open(path: string): GgufReader {
    const fd = openSync(path, 'r');
    try {
      return new GgufReader(path, fd);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** A metadata value, or undefined. */
  get(key: string): GgufKv['value'] | undefined {
    return this.metadata.get(key)?.value;
  }

  /** A numeric metadata value (u64 converted to number); throws when missing and no fallback. */
  num(key: string, fallback?: number): number {
    const v = this.get(key);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new FormatError(`missing metadata key '${key}'`, this.path);
    }
    if (typeof v !== 'number' && typeof v !== 'bigint')
      throw new FormatError(`metadata '${key}' is not a number`, this.path);
    return Number(v);
  }

  /** A string metadata value. */
  str(key: string): string | undefined {
    const v = this.get(key);
    if (v !== undefined && typeof v !== 'string')
      throw new FormatError(`metadata '${key}' is not a string`, this.path);
    return v;
  }

  /** The items of an array metadata value. */
  array(key: string): readonly GgufScalar[] | undefined {
    const v = this.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== 'object')
      throw new FormatError(`metadata '${key}' is not an array`, this.path);
    return v.items as readonly GgufScalar[];
  }

  tensor(name: string): GgufTensorInfo {
    const t = this.#byName.get(name);
    if (t === undefined) throw new FormatError(`no tensor '${name}'`, this.path);
    return t;
  }

  /** Raw bytes of one tensor. */
  readBytes(name: string): Uint8Array {
    const t = this.tensor(name);
    if (t.bytes < 0)
      throw new FormatError(
        `tensor '${name}': ggml type ${t.type} cannot be read (F32, F16, BF16, Q8_0 can)`,
        this.path,
      );
    if (this.#fd === undefined) throw new FormatError('reader is closed', this.path);
    const out = new Uint8Array(t.bytes);
    let done = 0;
    while (done < out.length) {
      const n = readSync(this.#fd, out, done, out.length - done, this.dataStart + t.offset + done);
      if (n === 0) throw new FormatError(`tensor '${name}': unexpected end of file`, this.path);
      done += n;
    }
    return out;
  }

  /** One tensor decoded to float32 (row-major, shape = info.shape). */
  readF32(name: string): Float32Array {
    const t = this.tensor(name);
    return decodeGgml(
      this.readBytes(name),
      t.type,
      t.bytes >= 0 ? t.dims.reduce((a, b) => a * b, 1) : 0,
      `${this.path}: tensor '${name}'`,
    );
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}
