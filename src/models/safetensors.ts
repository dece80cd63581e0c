// safetensors read and write (format: huggingface/safetensors README). A reader parses and
// bounds-checks the header, then reads only the byte ranges of the tensors asked for through a
// file descriptor, so a multi-GB file is never loaded whole and a hostile header cannot cause
// an out-of-bounds read or a huge allocation. Sharded checkpoints live in safetensors-shards.ts.
import { open } from 'node:fs/promises';
import { endianness } from 'node:os';
import { FormatError } from '../util/errors.ts';
import { bf16ToF32Array, f16ToF32Array, f32ToBf16Array, f32ToF16Array } from './half.ts';
import type { HostTensor, TensorMap } from './tensor.ts';

/** Bytes per element of the dtypes we read and write (a subset of the spec's list). */
export const SAFETENSORS_DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
} as const;

/** A safetensors dtype string this module understands. */
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BYTES;

/** Dtypes a float tensor can be saved as (compute stays f32). */
export type FloatStorageDtype = 'F32' | 'F16' | 'BF16';

/** One header entry; offsets are relative to the start of the data section, end exclusive. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** Tensor data in its stored dtype; F16 and BF16 come as raw Uint16Array bit patterns. */
export interface RawTensor {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  readonly data:
    | Float64Array
    | Float32Array
    | Uint16Array
    | BigInt64Array
    | Int32Array
    | Int16Array
    | Int8Array
    | Uint8Array;
}

/** Largest header we accept, as in the reference Rust implementation (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;

const ENTRY_KEYS = new Set(['dtype', 'shape', 'data_offsets']);

function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new FormatError('safetensors needs a little-endian host');
}

/**
 * Parse and validate a header. `dataBytes` is the size of the byte buffer after the header.
 * Throws FormatError naming the file and the tensor for every inconsistency.
 */
export function parseSafetensorsHeader(
  text: string,
  dataBytes: number,
  file: string,
): { entries: SafetensorsEntry[]; metadata: Record<string, string> } {
  if (!text.startsWith('{'))
    throw new FormatError(
      `header must start with '{', found ${JSON.stringify(text.slice(0, 8))}`,
      file,
      {
        hint: 'this is not a safetensors file (or its first 8 bytes, the header length, are wrong)',
      },
    );
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new FormatError(`header is not valid JSON (${(e as Error).message})`, file);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new FormatError('header must be a JSON object', file);
  const seen = new Set<string>();
  for (const k of topLevelKeys(text)) {
    if (seen.has(k)) throw new FormatError(`duplicate tensor name '${k}' in header`, file);
    seen.add(k);
  }
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, v] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v === null || typeof v !== 'object' || Array.isArray(v))
        throw new FormatError('__metadata__ must be an object of strings', file);
      for (const [mk, mv] of Object.entries(v)) {
        if (typeof mv !== 'string')
          throw new FormatError(`__metadata__.${mk} must be a string, got ${typeof mv}`, file);
        metadata[mk] = mv;
      }
      continue;
    }
    entries.push(parseEntry(name, v, dataBytes, file));
  }
  // The data section must be covered exactly: sorted by offset, each tensor starts where the
  // previous one ended, and the last one ends at the end of the file.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const e of sorted) {
    if (e.begin < expected)
      throw new FormatError(
        `tensor '${e.name}' overlaps the previous tensor (starts at ${e.begin}, previous ends at ${expected})`,
        file,
      );
    if (e.begin > expected)
      throw new FormatError(
        `bytes ${expected}..${e.begin} before tensor '${e.name}' belong to no tensor`,
        file,
      );
    expected = e.end;
  }
  if (expected !== dataBytes)
    throw new FormatError(
      `data section has ${dataBytes} bytes but tensors cover ${expected}`,
      file,
      {
        hint:
          expected > dataBytes
            ? 'the file is truncated'
            : 'the file has trailing bytes no tensor owns',
      },
    );
  return { entries: sorted, metadata };
}

function parseEntry(name: string, v: unknown, dataBytes: number, file: string): SafetensorsEntry {
  const where = `tensor '${name}'`;
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new FormatError(`${where}: entry must be an object`, file);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o))
    if (!ENTRY_KEYS.has(k)) throw new FormatError(`${where}: unknown field '${k}'`, file);
  const dtype = o.dtype;
  if (typeof dtype !== 'string' || !Object.hasOwn(SAFETENSORS_DTYPE_BYTES, dtype))
    throw new FormatError(`${where}: unsupported dtype ${JSON.stringify(dtype)}`, file, {
      hint: `supported: ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')}`,
    });
  const shape = o.shape;
  if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0))
    throw new FormatError(`${where}: shape must be an array of non-negative integers`, file);
  const offs = o.data_offsets;
  if (
    !Array.isArray(offs) ||
    offs.length !== 2 ||
    offs.some((x) => !Number.isSafeInteger(x) || x < 0) ||
    offs[0] > offs[1]
  )
    throw new FormatError(
      `${where}: data_offsets must be [begin, end] with 0 <= begin <= end`,
      file,
    );
  const [begin, end] = offs as [number, number];
  if (end > dataBytes)
    throw new FormatError(
      `${where}: data_offsets [${begin}, ${end}] run past the data section (${dataBytes} bytes)`,
      file,
      {
        hint: 'the file is truncated or the header is corrupt',
      },
    );
  let bytes: number = SAFETENSORS_DTYPE_BYTES[dtype as SafetensorsDtype];
  for (const d of shape as number[]) {
    bytes *= d;
    if (!Number.isSafeInteger(bytes)) throw new FormatError(`${where}: shape is too large`, file);
  }
  if (bytes !== end - begin)
    throw new FormatError(
      `${where}: shape [${shape.join(', ')}] × ${dtype} needs ${bytes} bytes but data_offsets span ${end - begin}`,
      file,
    );
  return { name, dtype: dtype as SafetensorsDtype, shape: shape as number[], begin, end };
}

/** Top-level object keys of a JSON text already known to be valid (to find duplicates). */
function topLevelKeys(text: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(text.slice(i, j + 1)) as string);
      expectKey = false;
      i = j;
    } else if (c === '{' || c === '[') {
      depth++;
      expectKey = depth === 1;
    } else if (c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 1) expectKey = true;
  }
  return keys;
}

/** Random access to one .safetensors file: header in memory, tensor bytes read on demand. */
export class SafetensorsReader {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly #entries: Map<string, SafetensorsEntry>;
  readonly #dataStart: number;
  #fh: Awaited<ReturnType<typeof open>> | undefined;

  private constructor(
    path: string,
    fh: Awaited<ReturnType<typeof open>>,
    entries: SafetensorsEntry[],
    metadata: Record<string, string>,
    dataStart: number,
  ) {
    this.path = path;
    this.#fh = fh;
    this.#entries = new Map(entries.map((e) => [e.name, e]));
    this.metadata = metadata;
    this.#dataStart = dataStart;
  }

  /**
   * Open a file and validate its header; no tensor data is read yet.
   * @example const r = await SafetensorsReader.open('model.safetensors'); const w = await r.read('lm_head.weight');
   */
  static async open(
    path: string,
    opts: { maxHeaderBytes?: number } = {},
  ): Promise<SafetensorsReader> {
    assertLittleEndian();
    const cap = opts.maxHeaderBytes ?? MAX_HEADER_BYTES;
    const fh = await open(path, 'r');
    try {
      const size = (await fh.stat()).size;
      if (size < 8)
        throw new FormatError(`file has ${size} bytes, less than the 8-byte header length`, path);
      const lenBuf = Buffer.alloc(8);
      await readExactly(fh, lenBuf, 0, path);
      const n = lenBuf.readBigUInt64LE(0);
      if (n > BigInt(cap))
        throw new FormatError(`header length ${n} exceeds the ${cap}-byte limit`, path, {
          hint: 'the file is corrupt or not a safetensors file',
        });
      if (n > BigInt(size - 8))
        throw new FormatError(
          `header length ${n} is larger than the rest of the file (${size - 8} bytes)`,
          path,
          {
            hint: 'the file is truncated or not a safetensors file',
          },
        );
      if (n < 2n) throw new FormatError(`header length ${n} is too small for a JSON object`, path);
      const headerBuf = Buffer.alloc(Number(n));
      await readExactly(fh, headerBuf, 8, path);
      const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
      let json: string;
      try {
        json = text.decode(headerBuf);
      } catch {
        throw new FormatError('header is not valid UTF-8', path);
      }
      const dataStart = 8 + Number(n);
      const { entries, metadata } = parseSafetensorsHeader(json, size - dataStart, path);
      return new SafetensorsReader(path, fh, entries, metadata, dataStart);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  /** Tensor names in file order (by data offset). */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** Header entry (dtype, shape, offsets) of a tensor. */
  entry(name: string): SafetensorsEntry {
    const e = this.#entries.get(name);
    if (e === undefined) throw new FormatError(`no tensor named '${name}'`, this.path);
    return e;
  }

  /** Read one tensor in its stored dtype. */
  async readRaw(name: string): Promise<RawTensor> {
    const e = this.entry(name);
    if (this.#fh === undefined) throw new FormatError('reader is closed', this.path);
    const bytes = new Uint8Array(e.end - e.begin);
    await readExactly(this.#fh, bytes, this.#dataStart + e.begin, this.path);
    return { dtype: e.dtype, shape: e.shape, data: viewAs(e.dtype, bytes.buffer) };
  }

  /** Read one float tensor as float32 (F16 / BF16 / F64 are converted). */
  async read(name: string): Promise<HostTensor> {
    const raw = await this.readRaw(name);
    return { shape: raw.shape, data: rawToF32(raw, name, this.path) };
  }

  /** Read several (default all) float tensors. */
  async readAll(names: readonly string[] = this.names()): Promise<TensorMap> {
    const out: TensorMap = new Map();
    for (const n of names) out.set(n, await this.read(n));
    return out;
  }

  async close(): Promise<void> {
    const fh = this.#fh;
    this.#fh = undefined;
    await fh?.close();
  }
}

async function readExactly(
  fh: Awaited<ReturnType<typeof open>>,
  buf: Uint8Array,
  position: number,
  path: string,
): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesRead } = await fh.read(
      buf,
      done,
      Math.min(buf.length - done, 1 << 30),
      position + done,
    );
    if (bytesRead === 0)
      throw new FormatError(`unexpected end of file at byte ${position + done}`, path);
    done += bytesRead;
  }
}

function viewAs(dtype: SafetensorsDtype, buf: ArrayBufferLike): RawTensor['data'] {
  switch (dtype) {
    case 'F64':
      return new Float64Array(buf);
    case 'F32':
      return new Float32Array(buf);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buf);
    case 'I64':
      return new BigInt64Array(buf);
    case 'I32':
      return new Int32Array(buf);
    case 'I16':
      return new Int16Array(buf);
    case 'I8':
      return new Int8Array(buf);
    default:
      return new Uint8Array(buf);
  }
}

/** Convert a float RawTensor to float32; integer dtypes are an error. */
export function rawToF32(raw: RawTensor, name: string, file?: string): Float32Array {
  switch (raw.dtype) {
    case 'F32':
      return raw.data as Float32Array;
    case 'F16':
      return f16ToF32Array(raw.data as Uint16Array);
    case 'BF16':
      return bf16ToF32Array(raw.data as Uint16Array);
    case 'F64':
      return Float32Array.from(raw.data as Float64Array);
    default:
      throw new FormatError(`tensor '${name}' has dtype ${raw.dtype}, not a float type`, file, {
        hint: 'read integer tensors with readRaw()',
      });
  }
}

/** A float32 tensor or a raw tensor, as accepted by the writers. */
export type WritableTensor = HostTensor | RawTensor;

/** Encode one tensor's bytes in the dtype it is written as (float tensors → `dtype`). */
export function tensorBytes(
  t: WritableTensor,
  dtype: FloatStorageDtype,
): { dtype: SafetensorsDtype; bytes: Uint8Array } {
  if ('dtype' in t) {
    const d = t.data;
    return { dtype: t.dtype, bytes: new Uint8Array(d.buffer, d.byteOffset, d.byteLength) };
  }
  const enc =
    dtype === 'F16' ? f32ToF16Array(t.data) : dtype === 'BF16' ? f32ToBf16Array(t.data) : t.data;
  return { dtype, bytes: new Uint8Array(enc.buffer, enc.byteOffset, enc.byteLength) };
}

/** Options for writing a .safetensors file. */
export interface WriteSafetensorsOptions {
  /** Storage dtype for float32 tensors. @default 'F32' */
  dtype?: FloatStorageDtype;
  /** String → string map written as `__metadata__`. @default { format: 'pt' } */
  metadata?: Record<string, string>;
}

/**
 * Write tensors to one .safetensors file, streaming one tensor at a time. Tensors are laid out
 * as the reference writer does (larger element size first, then by name), so every tensor is
 * aligned to its element size; the header is padded with spaces to a multiple of 8 bytes.
 * Returns the number of bytes written.
 */
export async function writeSafetensors(
  path: string,
  tensors: Iterable<[string, WritableTensor]>,
  opts: WriteSafetensorsOptions = {},
): Promise<number> {
  assertLittleEndian();
  const dtype = opts.dtype ?? 'F32';
  const items = [...tensors].map(([name, t]) => {
    const storeAs: SafetensorsDtype = 'dtype' in t ? t.dtype : dtype;
    return { name, t, storeAs, size: SAFETENSORS_DTYPE_BYTES[storeAs] };
  });
  items.sort((a, b) => b.size - a.size || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = { __metadata__: opts.metadata ?? { format: 'pt' } };
  let offset = 0;
  const seen = new Set<string>();
  for (const it of items) {
    if (seen.has(it.name)) throw new FormatError(`duplicate tensor name '${it.name}'`, path);
    seen.add(it.name);
    let n = it.size;
    for (const d of it.t.shape) n *= d;
    if (n !== it.t.data.length * it.size)
      throw new FormatError(
        `tensor '${it.name}': shape [${it.t.shape.join(', ')}] does not match ${it.t.data.length} values`,
        path,
      );
    header[it.name] = {
      dtype: it.storeAs,
      shape: [...it.t.shape],
      data_offsets: [offset, offset + n],
    };
    offset += n;
  }
  let json = JSON.stringify(header);
  const raw = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (raw % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const fh = await open(path, 'w');
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerBytes.length));
    await fh.write(len);
    await fh.write(headerBytes);
    for (const it of items) {
      const { bytes } = tensorBytes(it.t, dtype);
      await fh.write(bytes);
    }
  } finally {
    await fh.close();
  }
  return 8 + headerBytes.length + offset;
}

/** Read every float tensor of a file as float32 (convenience for small files). */
export async function readSafetensors(path: string): Promise<TensorMap> {
  const r = await SafetensorsReader.open(path);
  try {
    return await r.readAll();
  } finally {
    await r.close();
  }
}
