// Streaming JSON Lines: read with line numbers in bounded memory, write with back-pressure,
// and append durably (one write per record) for resumable runs.

import { once } from 'node:events';
import {
  closeSync,
  createReadStream,
  createWriteStream,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  readSync,
  type WriteStream,
  writeSync,
} from 'node:fs';
import { createInterface } from 'node:readline';
import { DataError } from './errors.ts';

export interface JsonlLine {
  /** Parsed JSON value. */
  value: unknown;
  /** 1-based line number in the file. */
  line: number;
}

export interface SkipReport {
  /** Number of lines skipped because they were invalid. */
  skipped: number;
  /** First few reasons, with line numbers, for the summary. */
  reasons: string[];
}

export function newSkipReport(): SkipReport {
  return { skipped: 0, reasons: [] };
}

export function recordSkip(report: SkipReport, reason: string, maxReasons = 20): void {
  report.skipped++;
  if (report.reasons.length < maxReasons) report.reasons.push(reason);
}

export interface ReadJsonlOptions {
  /** Count and report invalid lines instead of throwing. Default false. */
  skipInvalid?: boolean;
  /** Filled with what was skipped when skipInvalid is set. */
  report?: SkipReport;
}

/**
 * Yields each non-blank line of a JSONL file, parsed, with its line number.
 * Throws DataError naming file and line on malformed JSON unless `skipInvalid`.
 */
export async function* readJsonl(
  path: string,
  opts: ReadJsonlOptions = {},
): AsyncGenerator<JsonlLine> {
  const stream = createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 20 });
  const rl = createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY });
  let line = 0;
  try {
    for await (const text of rl) {
      line++;
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (e) {
        const msg = `invalid JSON: ${(e as Error).message}`;
        if (opts.skipInvalid) {
          if (opts.report) recordSkip(opts.report, `${path}:${line}: ${msg}`);
          continue;
        }
        throw new DataError(
          msg,
          { file: path, line },
          { hint: 'fix the line, or pass --skip-invalid to count and skip it' },
        );
      }
      yield { value, line };
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new DataError('file not found', { file: path });
    }
    throw e;
  } finally {
    rl.close();
    stream.destroy();
  }
}

/** Serialises one record as a JSONL line (no trailing newline). */
export function toJsonlLine(value: unknown): string {
  return JSON.stringify(value);
}

/** Buffered JSONL writer with back-pressure. Call close() to flush. */
export class JsonlWriter {
  #stream: WriteStream;
  #count = 0;
  readonly path: string;

  constructor(path: string, opts: { append?: boolean } = {}) {
    this.path = path;
    this.#stream = createWriteStream(path, { flags: opts.append ? 'a' : 'w', encoding: 'utf8' });
  }

  get count(): number {
    return this.#count;
  }

  async write(value: unknown): Promise<void> {
    this.#count++;
    if (!this.#stream.write(`${toJsonlLine(value)}\n`)) await once(this.#stream, 'drain');
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve, reject) =>
      this.#stream.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
  }
}

/**
 * Appends records one write() call each, so a kill -9 loses at most the record being written.
 * Used for resumable pipelines; readers of such files should pass skipInvalid to tolerate a
 * torn last line.
 */
export class DurableJsonlAppender {
  #fd: number;
  readonly path: string;
  #fsync: boolean;
  /** Bytes of a torn final line (from a killed writer) that were cut off on open. */
  readonly repairedBytes: number;

  constructor(path: string, opts: { fsync?: boolean } = {}) {
    this.path = path;
    this.#fsync = opts.fsync ?? false;
    this.repairedBytes = existsSync(path) ? cutTornTail(path) : 0;
    this.#fd = openSync(path, 'a');
  }

  append(value: unknown): void {
    writeSync(this.#fd, `${toJsonlLine(value)}\n`);
    if (this.#fsync) fsyncSync(this.#fd);
  }
  close(): void {
    closeSync(this.#fd);
  }
}

/** Truncates a file after its last newline; returns how many bytes were removed. */
function cutTornTail(path: string): number {
  const fd = openSync(path, 'r+');
  try {
    const size = fstatSync(fd).size;
    if (size === 0) return 0;
    const buf = Buffer.alloc(Math.min(size, 1 << 16));
    let end = size;
    while (end > 0) {
      const start = Math.max(0, end - buf.length);
      const n = readSync(fd, buf, 0, end - start, start);
      const idx = buf.subarray(0, n).lastIndexOf(10);
      if (idx >= 0) {
        const keep = start + idx + 1;
        if (keep < size) ftruncateSync(fd, keep);
        return size - keep;
      }
      end = start;
    }
    ftruncateSync(fd, 0);
    return size;
  } finally {
    closeSync(fd);
  }
}

/** Writes all values to a JSONL file, replacing it. */
export async function writeJsonl(
  path: string,
  values: Iterable<unknown> | AsyncIterable<unknown>,
): Promise<number> {
  const w = new JsonlWriter(path);
  try {
    for await (const v of values) await w.write(v);
  } finally {
    await w.close();
  }
  return w.count;
}
