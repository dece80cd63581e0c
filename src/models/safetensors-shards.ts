// Sharded safetensors checkpoints: model.safetensors.index.json ({metadata.total_size,
// weight_map: name → shard file}) beside model-0000i-of-0000N.safetensors, as transformers'
// save_pretrained writes them. One TensorSource reads a single file or a sharded set alike.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { z } from 'zod';
import { FormatError } from '../util/errors.ts';
import {
  type FloatStorageDtype,
  type RawTensor,
  SAFETENSORS_DTYPE_BYTES,
  type SafetensorsEntry,
  SafetensorsReader,
  type WritableTensor,
  writeSafetensors,
} from './safetensors.ts';
import type { HostTensor, TensorMap } from './tensor.ts';

/** Lazy, read-on-demand access to the tensors of a checkpoint (one file or many shards). */
export interface TensorSource {
  names(): string[];
  has(name: string): boolean;
  entry(name: string): SafetensorsEntry;
  read(name: string): Promise<HostTensor>;
  readRaw(name: string): Promise<RawTensor>;
  readAll(names?: readonly string[]): Promise<TensorMap>;
  close(): Promise<void>;
}

const IndexSchema = z.object({
  metadata: z.record(z.string(), z.unknown()).optional(),
  weight_map: z.record(z.string(), z.string()),
});

/** The parsed model.safetensors.index.json. */
export type SafetensorsIndex = z.infer<typeof IndexSchema>;

/** A set of shard files addressed through the index's weight_map. */
class ShardedSource implements TensorSource {
  readonly #map: Map<string, SafetensorsReader>;
  readonly #readers: SafetensorsReader[];
  constructor(map: Map<string, SafetensorsReader>, readers: SafetensorsReader[]) {
    this.#map = map;
    this.#readers = readers;
  }
  names(): string[] {
    return [...this.#map.keys()];
  }
  has(name: string): boolean {
    return this.#map.has(name);
  }
  #reader(name: string): SafetensorsReader {
    const r = this.#map.get(name);
    if (r === undefined) throw new FormatError(`no tensor named '${name}' in the weight_map`);
    return r;
  }
  entry(name: string): SafetensorsEntry {
    return this.#reader(name).entry(name);
  }
  read(name: string): Promise<HostTensor> {
    return this.#reader(name).read(name);
  }
  readRaw(name: string): Promise<RawTensor> {
    return this.#reader(name).readRaw(name);
  }
  async readAll(names: readonly string[] = this.names()): Promise<TensorMap> {
    const out: TensorMap = new Map();
    for (const n of names) out.set(n, await this.read(n));
    return out;
  }
  async close(): Promise<void> {
    for (const r of this.#readers) await r.close();
  }
}

/**
 * Open a sharded checkpoint by its index file. Every shard the index names must exist and hold
 * the tensors mapped to it; otherwise a FormatError names the shard (or the tensor).
 */
export async function openSafetensorsIndex(indexPath: string): Promise<TensorSource> {
  let parsed: SafetensorsIndex;
  try {
    const r = IndexSchema.safeParse(JSON.parse(await readFile(indexPath, 'utf8')));
    if (!r.success)
      throw new FormatError(
        `bad index: ${r.error.issues[0]?.message} at ${r.error.issues[0]?.path.join('.')}`,
        indexPath,
      );
    parsed = r.data;
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError(`cannot read index (${(e as Error).message})`, indexPath);
  }
  const dir = join(indexPath, '..');
  const shardNames = [...new Set(Object.values(parsed.weight_map))];
  for (const s of shardNames) {
    if (s !== basename(s) || s === '..' || s === '.')
      throw new FormatError(`shard '${s}' is not a plain file name`, indexPath, {
        hint: 'weight_map values must name files beside the index',
      });
    if (!existsSync(join(dir, s)))
      throw new FormatError(`shard file '${s}' named in the weight_map is missing`, indexPath, {
        hint: `expected ${join(dir, s)}; copy every shard next to the index`,
      });
  }
  const readers = new Map<string, SafetensorsReader>();
  try {
    for (const s of shardNames) readers.set(s, await SafetensorsReader.open(join(dir, s)));
    const map = new Map<string, SafetensorsReader>();
    for (const [name, shard] of Object.entries(parsed.weight_map)) {
      const r = readers.get(shard)!;
      if (!r.has(name))
        throw new FormatError(
          `tensor '${name}' is mapped to shard '${shard}' but that shard does not hold it`,
          indexPath,
        );
      map.set(name, r);
    }
    return new ShardedSource(map, [...readers.values()]);
  } catch (e) {
    for (const r of readers.values()) await r.close();
    throw e;
  }
}

/**
 * Open the weights of a model directory: `<prefix>.safetensors`, or the sharded set named by
 * `<prefix>.safetensors.index.json`.
 */
export async function openSafetensorsDir(dir: string, prefix = 'model'): Promise<TensorSource> {
  const index = join(dir, `${prefix}.safetensors.index.json`);
  if (existsSync(index)) return openSafetensorsIndex(index);
  const single = join(dir, `${prefix}.safetensors`);
  if (existsSync(single)) return SafetensorsReader.open(single);
  throw new FormatError(`no ${prefix}.safetensors or ${prefix}.safetensors.index.json`, dir, {
    hint: 'point at a HF model directory that holds safetensors weights',
  });
}

/** Options for writing a model directory's weights. */
export interface WriteShardedOptions {
  /** Storage dtype for float tensors. @default 'F32' */
  dtype?: FloatStorageDtype;
  /** Largest shard in bytes of tensor data; a bigger tensor gets a shard of its own. @default 5e9 */
  maxShardBytes?: number;
  /** File name prefix. @default 'model' */
  prefix?: string;
  /** `__metadata__` for every shard. @default { format: 'pt' } */
  metadata?: Record<string, string>;
}

/**
 * Write weights into `dir`: one `<prefix>.safetensors` when they fit in a shard, otherwise
 * `<prefix>-0000i-of-0000N.safetensors` plus `<prefix>.safetensors.index.json`. Tensors are
 * packed greedily in the given order, as transformers does. Returns the files written.
 */
export async function writeSafetensorsDir(
  dir: string,
  tensors: Iterable<[string, WritableTensor]>,
  opts: WriteShardedOptions = {},
): Promise<string[]> {
  const dtype = opts.dtype ?? 'F32';
  const max = opts.maxShardBytes ?? 5e9;
  const prefix = opts.prefix ?? 'model';
  const shards: [string, WritableTensor][][] = [[]];
  let cur = 0;
  let total = 0;
  for (const [name, t] of tensors) {
    const bytes = t.data.length * SAFETENSORS_DTYPE_BYTES['dtype' in t ? t.dtype : dtype];
    if (cur + bytes > max && shards[shards.length - 1].length > 0) {
      shards.push([]);
      cur = 0;
    }
    shards[shards.length - 1].push([name, t]);
    cur += bytes;
    total += bytes;
  }
  const wopts = { dtype, metadata: opts.metadata ?? { format: 'pt' } };
  if (shards.length === 1) {
    const f = join(dir, `${prefix}.safetensors`);
    await writeSafetensors(f, shards[0], wopts);
    return [f];
  }
  const n = shards.length;
  const pad = (i: number) => String(i).padStart(5, '0');
  const files: string[] = [];
  const weightMap: Record<string, string> = {};
  for (let i = 0; i < n; i++) {
    const name = `${prefix}-${pad(i + 1)}-of-${pad(n)}.safetensors`;
    await writeSafetensors(join(dir, name), shards[i], wopts);
    for (const [t] of shards[i]) weightMap[t] = name;
    files.push(join(dir, name));
  }
  const index = join(dir, `${prefix}.safetensors.index.json`);
  const sorted = Object.fromEntries(Object.entries(weightMap).sort(([a], [b]) => (a < b ? -1 : 1)));
  await writeFile(
    index,
    `${JSON.stringify({ metadata: { total_size: total }, weight_map: sorted }, null, 2)}\n`,
  );
  files.push(index);
  return files;
}
