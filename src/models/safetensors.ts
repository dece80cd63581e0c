// safetensors read and write (format: huggingface/safetensors README). A reader parses and
// bounds-checks the header, then reads only the byte ranges of the tensors asked for through a
// file descriptor, so a multi-GB file is never loaded whole and a hostile header cannot cause
// an out-of-bounds read or a huge allocation. Sharded checkpoints live in safetensors-shards.ts.
import { open } from 'node:fs/promises';
import { endianness } from 'node:os';
import { FormatError } from '../util/errors.ts';
import { bf16ToF32Array, f16ToF32Array, f32ToBf16Array, f32ToF16Array } from './half.ts';
import {
  type FloatStorageDtype,
  MAX_HEADER_BYTES,
  parseSafetensorsHeader,
  type RawTensor,
  SAFETENSORS_DTYPE_BYTES,
  type SafetensorsDtype,
  type SafetensorsEntry,
} from './safetensors-header.ts';
import type { HostTensor, TensorMap } from './tensor.ts';

export * from './safetensors-header.ts';

function assertLittleEndian(): void {
  if (endianness() !== 'LE') throw new FormatError('safetensors needs a little-endian host');
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
