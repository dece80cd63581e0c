// safetensors header (format: huggingface/safetensors README): dtypes, entry types, and the
// validation that keeps a hostile header from steering reads: the JSON must be an object of
// well-formed entries whose byte ranges tile the data section exactly, with no duplicates.
// Reading and writing files is safetensors.ts.
import { FormatError } from '../util/errors.ts';

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
