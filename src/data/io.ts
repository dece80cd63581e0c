// Reading and writing record files by extension: JSONL (streamed line by line), JSON arrays
// (Alpaca's file shape) and Parquet (streamed by row group). Every record is validated against
// its zod schema; errors name file, line (or row index) and field. Nothing is dropped silently:
// with skipInvalid, each skipped record is counted in the report with its location and reason.
import type { z } from 'zod';
import { ConfigError, DataError, FormatError } from '../util/errors.ts';
import { JsonlWriter, readJsonl, recordSkip, type SkipReport } from '../util/jsonl.ts';
import { describeZodError } from './config.ts';
import { JsonArrayWriter, readJsonArray } from './json-array.ts';
import { ParquetRecordWriter, readParquetRows } from './parquet.ts';
import { detectKind, type RecordKind, recordSchemas } from './records.ts';

/** On-disk formats, chosen by file extension. */
export type FileFormat = 'jsonl' | 'json' | 'parquet';

/** All record kinds, for messages and CLI choices. */
export const RECORD_KINDS = Object.keys(recordSchemas) as RecordKind[];

/** Format from extension: .jsonl/.ndjson, .json, .parquet. Throws ConfigError otherwise. */
export function formatOf(path: string): FileFormat {
  const p = path.toLowerCase();
  if (p.endsWith('.jsonl') || p.endsWith('.ndjson')) return 'jsonl';
  if (p.endsWith('.json')) return 'json';
  if (p.endsWith('.parquet') || p.endsWith('.pq')) return 'parquet';
  throw new ConfigError(
    `cannot tell the format of '${path}' from its extension`,
    { file: path },
    {
      hint: 'use .jsonl, .json (one array) or .parquet',
    },
  );
}

/** Checks a user-supplied kind name; throws ConfigError listing the valid ones. */
export function parseKind(kind: string, file?: string): RecordKind {
  if ((RECORD_KINDS as string[]).includes(kind)) return kind as RecordKind;
  throw new ConfigError(
    `unknown record kind '${kind}'`,
    { file, field: 'kind' },
    {
      hint: `valid kinds: ${RECORD_KINDS.join(', ')}`,
    },
  );
}

/** What a read saw: the kind used, how many records it yielded, what it skipped and why. */
export interface ReadReport extends SkipReport {
  kind?: RecordKind;
  read: number;
}

export function newReadReport(): ReadReport {
  return { skipped: 0, reasons: [], read: 0 };
}

interface ReadRecordsBase {
  /** Record kind; detected from the first valid record when absent. */
  kind?: RecordKind | string;
  /** Overrides the extension. */
  format?: FileFormat;
  /**
   * Validates with this schema instead of the kind's (record families with variants, e.g.
   * preference.ts's explicit / implicit / conversational pairs and rankings).
   */
  schema?: {
    safeParse(v: unknown): { success: true; data: unknown } | { success: false; error: z.ZodError };
  };
}

/**
 * Options of readRecords. skipInvalid requires a report: a skipped record must land somewhere
 * the caller can see, never vanish.
 */
export type ReadRecordsOptions = ReadRecordsBase &
  (
    | {
        skipInvalid?: false;
        /** Filled as records are read (kind, read). */
        report?: SkipReport | ReadReport;
      }
    | {
        /** Count and report invalid records instead of throwing. */
        skipInvalid: true;
        /** Filled as records are read (kind, read, skipped, reasons). */
        report: SkipReport | ReadReport;
      }
  );

/** A validated record and where it came from. */
export interface LocatedRecord<T = unknown> {
  record: T;
  kind: RecordKind;
  file: string;
  /** 0-based position among the file's records (array index, Parquet row, JSONL record). */
  row: number;
  /** 1-based line (JSONL, JSON); undefined for Parquet. */
  line?: number;
}

interface RawItem {
  value: unknown;
  row: number;
  line?: number;
  error?: string;
}

async function* rawItems(
  path: string,
  format: FileFormat,
  opts: ReadRecordsOptions,
): AsyncGenerator<RawItem> {
  if (format === 'jsonl') {
    let row = 0;
    for await (const l of readJsonl(path, { skipInvalid: opts.skipInvalid, report: opts.report }))
      yield { value: l.value, line: l.line, row: row++ };
  } else if (format === 'json') {
    for await (const e of readJsonArray(path)) yield { ...e, row: e.index };
  } else {
    yield* readParquetRows(path);
  }
}

const where = (file: string, it: RawItem): string =>
  it.line !== undefined ? `${file}:${it.line}` : `${file} row ${it.row}`;

/**
 * Streams validated records with their location. See readRecords.
 */
export async function* readLocatedRecords<T = unknown>(
  path: string,
  opts: ReadRecordsOptions = {},
): AsyncGenerator<LocatedRecord<T>> {
  const format = opts.format ?? formatOf(path);
  let kind = opts.kind === undefined ? undefined : parseKind(opts.kind, path);
  const report = opts.report as ReadReport | undefined;
  if (report && kind) report.kind = kind;
  let schema = opts.schema ?? (kind ? recordSchemas[kind] : undefined);
  if (opts.skipInvalid && !opts.report)
    throw new ConfigError('skipInvalid needs a report to count the skipped records in', {
      file: path,
      field: 'report',
    });
  const skip = (it: RawItem, reason: string, err: () => Error) => {
    if (!opts.skipInvalid) throw err();
    recordSkip(opts.report!, `${where(path, it)}: ${reason}`);
  };
  for await (const it of rawItems(path, format, opts)) {
    const loc = { file: path, line: it.line };
    const rowNote = it.line === undefined ? `row ${it.row}: ` : '';
    if (it.error !== undefined) {
      skip(
        it,
        it.error,
        () =>
          new DataError(it.error!, loc, {
            hint: 'fix the record, or pass --skip-invalid to count and skip it',
          }),
      );
      continue;
    }
    if (!kind) {
      const k = detectKind(it.value);
      if (!k) {
        const keys =
          it.value !== null && typeof it.value === 'object'
            ? Object.keys(it.value).join(', ')
            : typeof it.value;
        const msg = `${rowNote}cannot detect the record kind from keys [${keys}]`;
        // Skipped like any invalid record; the next record gets its turn to fix the kind.
        skip(
          it,
          msg,
          () =>
            new DataError(msg, loc, { hint: `pass --kind (one of ${RECORD_KINDS.join(', ')})` }),
        );
        continue;
      }
      kind = k;
      schema = opts.schema ?? recordSchemas[k];
      if (report) report.kind = k;
    }
    const parsed = schema!.safeParse(it.value);
    if (!parsed.success) {
      const { field, message } = describeZodError(parsed.error);
      const msg = `${rowNote}not a valid ${kind} record: ${message}`;
      skip(
        it,
        field ? `field '${field}': ${msg}` : msg,
        () =>
          new DataError(
            msg,
            { ...loc, field },
            { hint: 'fix the record, or pass --skip-invalid to count and skip it' },
          ),
      );
      continue;
    }
    if (report) report.read = (report.read ?? 0) + 1;
    yield { record: parsed.data as T, kind, file: path, row: it.row, line: it.line };
  }
}

/**
 * Streams the validated records of a JSONL, JSON-array or Parquet file (chosen by extension).
 * Memory is bounded for JSONL (one line) and Parquet (one row group); a JSON array is parsed
 * from one in-memory string. The kind is detected from the first record unless given, and
 * every later record must be of that kind. Invalid records throw DataError with file, line
 * (row index for Parquet) and field path, or with skipInvalid are counted in `report`.
 * @example
 * for await (const r of readRecords<InstructionRecord>('alpaca_data.json')) console.log(r.output);
 */
export async function* readRecords<T = unknown>(
  path: string,
  opts: ReadRecordsOptions = {},
): AsyncGenerator<T> {
  for await (const r of readLocatedRecords<T>(path, opts)) yield r.record;
}

/** Kind of the first valid record of a file (reads only up to it). */
export async function detectFileKind(
  path: string,
  opts: { format?: FileFormat; skipInvalid?: boolean; report?: ReadReport } = {},
): Promise<RecordKind> {
  const report = opts.report ?? newReadReport();
  for await (const _ of readLocatedRecords(path, { ...opts, report })) break;
  if (!report.kind) throw new DataError('no records to detect a kind from', { file: path });
  return report.kind;
}

/** A sink that accepts records one at a time. */
export interface RecordWriter {
  readonly path: string;
  readonly count: number;
  write(record: unknown): Promise<void>;
  close(): Promise<void>;
}

export interface WriteRecordsOptions {
  /** Needed for Parquet (column layout); detected from the first record when absent. */
  kind?: RecordKind;
  format?: FileFormat;
  /** Validate each record before writing. Default true. */
  validate?: boolean;
  /** Parquet rows per row group. Default 10,000. */
  rowGroupSize?: number;
}

/**
 * Opens a writer for `path` chosen by extension. Records are validated (unless told not to)
 * against `kind`, which for Parquet fixes the column layout; without `kind` it is taken from
 * the first record.
 */
export function openRecordWriter(path: string, opts: WriteRecordsOptions = {}): RecordWriter {
  const format = opts.format ?? formatOf(path);
  const validate = opts.validate ?? true;
  let kind = opts.kind;
  let inner: RecordWriter | undefined;
  let count = 0;
  const open = (): RecordWriter => {
    if (format === 'jsonl') return new JsonlWriter(path);
    if (format === 'json') return new JsonArrayWriter(path);
    return new ParquetRecordWriter(path, kind!, { rowGroupSize: opts.rowGroupSize });
  };
  return {
    path,
    get count() {
      return count;
    },
    async write(record: unknown) {
      if (!kind) {
        kind = detectKind(record);
        if (!kind)
          throw new DataError(`cannot detect the kind of record ${count} to write`, { file: path });
      }
      if (validate) {
        const parsed = recordSchemas[kind].safeParse(record);
        if (!parsed.success) {
          const { field, message } = describeZodError(parsed.error);
          throw new DataError(`record ${count} is not a valid ${kind} record: ${message}`, {
            file: path,
            field,
          });
        }
        record = parsed.data;
      }
      inner ??= open();
      count++;
      await inner.write(record as Record<string, unknown>);
    },
    async close() {
      if (!inner) {
        if (format === 'parquet' && !kind)
          throw new FormatError('cannot write an empty Parquet file without a record kind', path);
        inner = open();
      }
      await inner.close();
    },
  };
}

/** Writes records to `path` (format by extension), replacing it. Returns the count. */
export async function writeRecords(
  path: string,
  records: Iterable<unknown> | AsyncIterable<unknown>,
  opts: WriteRecordsOptions = {},
): Promise<number> {
  const w = openRecordWriter(path, opts);
  try {
    for await (const r of records) await w.write(r);
  } catch (e) {
    await w.close().catch(() => {});
    throw e;
  }
  await w.close();
  return w.count;
}
