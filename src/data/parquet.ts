// Parquet read/write for instruction records: hyparquet reads one row group at a time (memory is
// bounded by the row-group size), hyparquet-writer writes row groups as records stream in. Each
// record kind has a fixed column layout; nested fields use the standard 3-level LIST encoding,
// so HF `datasets` reads our files (chat `messages` is list<struct<role, content, ...>>).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type { AsyncBuffer, SchemaElement, SchemaTree } from 'hyparquet';
import { parquetMetadataAsync, parquetReadObjects, parquetSchema } from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import { compressors } from 'hyparquet-compressors';
import { fileWriter, ParquetWriter } from 'hyparquet-writer';
import { FormatError } from '../util/errors.ts';
import type { RecordKind } from './records.ts';

type ColType = 'string' | 'string_list' | 'int_list' | 'messages';
interface Col {
  name: string;
  type: ColType;
  required: boolean;
}

const req = (name: string, type: ColType = 'string'): Col => ({ name, type, required: true });
const opt = (name: string, type: ColType = 'string'): Col => ({ name, type, required: false });

/** Column layout per record kind, in the field order of records.ts. */
export const PARQUET_COLUMNS: Record<RecordKind, readonly Col[]> = {
  instruction: [req('instruction'), req('input'), req('output')],
  prompt_completion: [req('prompt'), req('completion')],
  chat: [req('messages', 'messages')],
  preference: [req('prompt'), req('chosen'), req('rejected')],
  ranking: [req('prompt'), req('completions', 'string_list'), req('ranking', 'int_list')],
  task: [
    req('task'),
    opt('category'),
    opt('template'),
    req('input'),
    req('target'),
    opt('references', 'string_list'),
    opt('choices', 'string_list'),
    opt('id'),
  ],
};

const utf8 = (name: string, rep: 'REQUIRED' | 'OPTIONAL'): SchemaElement => ({
  name,
  type: 'BYTE_ARRAY',
  converted_type: 'UTF8',
  repetition_type: rep,
});

function colSchema(c: Col): SchemaElement[] {
  const rep = c.required ? 'REQUIRED' : 'OPTIONAL';
  const list = (n: number): SchemaElement[] => [
    { name: c.name, repetition_type: rep, converted_type: 'LIST', num_children: 1 },
    { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
    { name: 'element', repetition_type: 'REQUIRED', num_children: n },
  ];
  switch (c.type) {
    case 'string':
      return [utf8(c.name, rep)];
    case 'string_list':
      return [...list(0).slice(0, 2), utf8('element', 'REQUIRED')];
    case 'int_list':
      return [
        ...list(0).slice(0, 2),
        { name: 'element', type: 'INT64', repetition_type: 'REQUIRED' },
      ];
    case 'messages':
      return [
        ...list(5),
        utf8('role', 'REQUIRED'),
        utf8('content', 'REQUIRED'),
        utf8('name', 'OPTIONAL'),
        utf8('tool_call_id', 'OPTIONAL'),
        {
          name: 'tool_calls',
          type: 'BYTE_ARRAY',
          converted_type: 'JSON',
          repetition_type: 'OPTIONAL',
        },
      ];
  }
}

/** The Parquet schema (flattened SchemaElement list) for a record kind. */
export function parquetSchemaFor(kind: RecordKind): SchemaElement[] {
  const cols = PARQUET_COLUMNS[kind];
  return [{ name: 'root', num_children: cols.length }, ...cols.flatMap(colSchema)];
}

function columnValue(c: Col, v: unknown): unknown {
  if (v === undefined) return null;
  if (c.type === 'int_list') return (v as number[]).map((x) => BigInt(x));
  if (c.type === 'messages') {
    return (v as Record<string, unknown>[]).map((m) => ({
      role: m.role,
      content: m.content,
      name: m.name ?? null,
      tool_call_id: m.tool_call_id ?? null,
      tool_calls: m.tool_calls ?? null,
    }));
  }
  return v;
}

/** Streams records of one kind into a Parquet file, one row group per `rowGroupSize` records. */
export class ParquetRecordWriter {
  readonly path: string;
  readonly kind: RecordKind;
  #writer: ParquetWriter;
  #cols: readonly Col[];
  #buf: Record<string, unknown>[] = [];
  #rowGroupSize: number;
  #count = 0;

  constructor(path: string, kind: RecordKind, opts: { rowGroupSize?: number } = {}) {
    this.path = path;
    this.kind = kind;
    this.#cols = PARQUET_COLUMNS[kind];
    this.#rowGroupSize = opts.rowGroupSize ?? 10_000;
    this.#writer = new ParquetWriter({
      writer: fileWriter(path),
      schema: parquetSchemaFor(kind),
      createdBy: 'instructkit',
      kvMetadata: [{ key: 'instructkit.kind', value: kind }],
    });
  }

  get count(): number {
    return this.#count;
  }

  async write(record: Record<string, unknown>): Promise<void> {
    this.#buf.push(record);
    this.#count++;
    if (this.#buf.length >= this.#rowGroupSize) await this.#flush();
  }

  async #flush(): Promise<void> {
    if (this.#buf.length === 0) return;
    const rows = this.#buf;
    this.#buf = [];
    const columnData = this.#cols.map((c) => ({
      name: c.name,
      data: rows.map((r) => columnValue(c, r[c.name])),
    }));
    await this.#writer.write({ columnData, rowGroupSize: rows.length });
  }

  async close(): Promise<void> {
    await this.#flush();
    await this.#writer.finish();
  }
}

/** Turns hyparquet's decoded values into JSON-like ones: bigint -> number, null -> absent. */
function normalise(v: unknown): unknown {
  if (typeof v === 'bigint') {
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(v)
      : v.toString();
  }
  if (Array.isArray(v)) return v.map(normalise);
  if (v !== null && typeof v === 'object' && !(v instanceof Date) && !ArrayBuffer.isView(v)) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v))
      if (x !== null && x !== undefined) out[k] = normalise(x);
    return out;
  }
  return v;
}

/** A decoded row with its 0-based index in the file. */
export interface ParquetRow {
  value: unknown;
  row: number;
}

/**
 * Yields the rows of a Parquet file, decoding one row group at a time. A file that is not
 * Parquet, or a row group that fails to decode, is a FormatError naming the file (and the row
 * group and its first row).
 */
export async function* readParquetRows(path: string): AsyncGenerator<ParquetRow> {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new FormatError('file not found', path);
    throw e;
  }
  try {
    yield* readRows(path, fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * A rejected promise already marked handled: hyparquet drops some reads it started (prefetched
 * ranges, chunks of a group that failed), which must not surface as unhandled rejections;
 * whoever awaits it still gets the error.
 */
function failed(e: Error): Promise<never> {
  const p = Promise.reject(e);
  p.catch(() => {});
  return p;
}

/**
 * The file as hyparquet's AsyncBuffer, read synchronously: every read completes before the
 * microtask queue drains, so a decode that has not settled after one event-loop turn never will
 * (see settled). Ranges outside the file are a FormatError, not a short or endless read.
 */
function fileBuffer(fd: number, path: string): AsyncBuffer {
  const size = fstatSync(fd).size;
  return {
    byteLength: size,
    // A bad range is a rejected promise, not a throw: hyparquet starts one read per column
    // chunk in a loop, and a throw mid-loop would orphan the reads already started.
    slice(start: number, end = size): Promise<ArrayBuffer> {
      if (
        !Number.isSafeInteger(start) ||
        !Number.isSafeInteger(end) ||
        start < 0 ||
        end > size ||
        start > end
      )
        return failed(
          new FormatError(`byte range ${start}..${end} lies outside the ${size}-byte file`, path, {
            hint: 'the metadata is corrupt or the file is truncated; re-export it',
          }),
        );
      const buf = new ArrayBuffer(end - start);
      const view = new Uint8Array(buf);
      let done = 0;
      while (done < view.length) {
        const n = readSync(fd, view, done, view.length - done, start + done);
        if (n === 0)
          return failed(new FormatError(`unexpected end of file at byte ${start + done}`, path));
        done += n;
      }
      return Promise.resolve(buf);
    },
  };
}

/**
 * Awaits a hyparquet read that does no I/O of its own (fileBuffer is synchronous). Some corrupt
 * files leave hyparquet's promise pending forever (found by bench/fuzz); after one macrotask
 * turn the microtask queue has drained, so a read still pending then is stuck.
 */
async function settled<T>(p: Promise<T>, path: string, what: string): Promise<T> {
  let done = false;
  p.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await new Promise((r) => setImmediate(r));
  if (!done)
    throw new FormatError(`${what}: the decoder stopped without a result`, path, {
      hint: 'the file is corrupt; re-export it',
    });
  return p;
}

/** Schema leaf paths, dotted. */
function leafPaths(tree: SchemaTree, out = new Set<string>()): Set<string> {
  if (tree.children.length === 0) out.add(tree.path.join('.'));
  for (const c of tree.children) leafPaths(c, out);
  return out;
}

async function* readRows(path: string, fd: number): AsyncGenerator<ParquetRow> {
  const file = fileBuffer(fd, path);
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  let leaves: Set<string>;
  try {
    metadata = await settled(parquetMetadataAsync(file), path, 'metadata');
    leaves = leafPaths(parquetSchema(metadata));
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError(`not a readable Parquet file: ${(e as Error).message}`, path, {
      hint: 'the footer or metadata is corrupt or the file is truncated; re-export it',
      cause: e,
    });
  }
  // hyparquet reads every column chunk but only awaits those matching a schema column: a chunk
  // with an unknown or repeated path would fail later as an unhandled rejection (bench/fuzz).
  for (let g = 0; g < metadata.row_groups.length; g++) {
    const seen = new Set<string>();
    for (const c of metadata.row_groups[g]!.columns) {
      const p = c.meta_data?.path_in_schema?.join('.');
      if (p === undefined || !leaves.has(p) || seen.has(p))
        throw new FormatError(
          `row group ${g}: column chunk '${p}' is ${p !== undefined && seen.has(p) ? 'repeated' : 'not a column of the schema'}`,
          path,
          { hint: 'the metadata is corrupt; re-export the file' },
        );
      seen.add(p);
    }
  }
  let start = 0;
  for (let g = 0; g < metadata.row_groups.length; g++) {
    const n = Number(metadata.row_groups[g]!.num_rows);
    checkPages(file, fd, path, metadata, g, start);
    let rows: Record<string, unknown>[];
    try {
      rows = await settled(
        parquetReadObjects({
          file,
          metadata,
          rowStart: start,
          rowEnd: start + n,
          compressors,
        }),
        path,
        `row group ${g}`,
      );
    } catch (e) {
      throw new FormatError(
        `row group ${g} (rows ${start}..${start + n - 1}) cannot be decoded: ${(e as Error).message}`,
        path,
        { hint: 'the file is corrupt; re-export it', cause: e },
      );
    }
    for (let i = 0; i < rows.length; i++) yield { value: normalise(rows[i]), row: start + i };
    start += n;
  }
}

const isCount = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Walks every page header of row group g before hyparquet decodes it. A corrupt data page v2
 * header (missing level lengths, negative num_nulls; found by bench/fuzz) sends hyparquet
 * 1.31.5's readRleBitPackedHybrid into a loop that runs for minutes, so each header's counts
 * and sizes are checked against the column chunk (Parquet format spec, PageHeader /
 * DataPageHeaderV2): pages lie inside the chunk, values per page sum to at most the chunk's
 * num_values, v2 level lengths fit in the page, rows per page at most the group's num_rows.
 */
function checkPages(
  file: AsyncBuffer,
  fd: number,
  path: string,
  metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>,
  g: number,
  start: number,
): void {
  const group = metadata.row_groups[g]!;
  const groupRows = Number(group.num_rows);
  for (const c of group.columns) {
    const m = c.meta_data!;
    const col = m.path_in_schema.join('.');
    const bad = (what: string): FormatError =>
      new FormatError(
        `row group ${g} (rows ${start}..${start + groupRows - 1}), column '${col}': ${what}`,
        path,
        {
          hint: 'the file is corrupt; re-export it',
        },
      );
    const first = Number(m.dictionary_page_offset ?? m.data_page_offset);
    const end = first + Number(m.total_compressed_size);
    const chunkValues = Number(m.num_values);
    if (
      !isCount(first) ||
      !isCount(end) ||
      end < first ||
      end > file.byteLength ||
      !isCount(chunkValues)
    )
      throw bad(`column chunk range ${first}..${end} or num_values ${chunkValues} is invalid`);
    const bytes = new Uint8Array(end - first);
    let done = 0;
    while (done < bytes.length) {
      const k = readSync(fd, bytes, done, bytes.length - done, first + done);
      if (k === 0) throw bad(`unexpected end of file at byte ${first + done}`);
      done += k;
    }
    const view = new DataView(bytes.buffer);
    let off = 0;
    let values = 0;
    while (off < bytes.length) {
      const reader = { view, offset: off };
      let h: ReturnType<typeof parquetHeader>;
      try {
        h = parquetHeader(reader);
      } catch (e) {
        throw bad(`page header at byte ${first + off} does not parse: ${(e as Error).message}`);
      }
      const at = `page at byte ${first + off}`;
      const size = h.compressed_page_size;
      if (h.type === undefined || !isCount(size) || !isCount(h.uncompressed_page_size))
        throw bad(`${at}: header has no valid type or page sizes`);
      if (reader.offset + size > bytes.length)
        throw bad(`${at}: ${size}-byte page runs past the end of the column chunk`);
      const v1 = h.data_page_header;
      const v2 = h.data_page_header_v2;
      const dataValues = v1?.num_values ?? v2?.num_values;
      if (v1 || v2) {
        if (!isCount(dataValues) || values + dataValues > chunkValues)
          throw bad(`${at}: num_values ${dataValues} exceeds the chunk's ${chunkValues}`);
        values += dataValues;
      }
      if (v2) {
        const { num_nulls, num_rows, definition_levels_byte_length: d } = v2;
        const r = v2.repetition_levels_byte_length;
        if (!isCount(num_nulls) || num_nulls > v2.num_values)
          throw bad(`${at}: num_nulls ${num_nulls} is not within 0..num_values`);
        if (!isCount(num_rows) || num_rows > groupRows)
          throw bad(`${at}: num_rows ${num_rows} is not within 0..${groupRows}`);
        if (!isCount(d) || !isCount(r) || d + r > size)
          throw bad(`${at}: level lengths ${d} + ${r} do not fit the ${size}-byte page`);
      }
      if (h.dictionary_page_header && !isCount(h.dictionary_page_header.num_values))
        throw bad(`${at}: dictionary num_values is invalid`);
      off = reader.offset + size;
    }
  }
}
