// Reads a JSON file holding one top-level array (the shape of Alpaca's alpaca_data.json) element
// by element, with the 1-based line where each element starts, so errors can name file:line.
// The whole file is read into memory (as Alpaca's loader does); writing streams one record a line.
import { once } from 'node:events';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { DataError } from '../util/errors.ts';

/** One element of the top-level array. */
export interface JsonArrayElement {
  /** Parsed value, or undefined when `error` is set. */
  value: unknown;
  /** 0-based index in the array. */
  index: number;
  /** 1-based line where the element starts. */
  line: number;
  /** JSON.parse message when the element itself is malformed (its extent was still found). */
  error?: string;
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

function describeTop(text: string, at: number): string {
  const c = text[at];
  if (c === undefined) return 'an empty file';
  if (c === '{') return 'an object';
  if (c === '"') return 'a string';
  if (c === 'n') return 'null';
  if (c === 't' || c === 'f') return 'a boolean';
  return 'a number or invalid JSON';
}

/**
 * Yields the elements of the top-level array in `path`. The array's structure (brackets,
 * strings, commas between elements) is checked here; each element is then parsed on its own,
 * so one malformed element is reported (error set) without losing its neighbours.
 * Throws DataError naming file and line when the file is not a JSON array or its structure is
 * broken beyond one element.
 */
export async function* readJsonArray(path: string): AsyncGenerator<JsonArrayElement> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new DataError('file not found', { file: path });
    throw e;
  }
  let i = 0;
  let line = 1;
  const n = text.length;
  if (text.charCodeAt(0) === 0xfeff) i = 1;
  const skipWs = () => {
    while (i < n && WS.has(text.charCodeAt(i))) {
      if (text.charCodeAt(i) === 0x0a) line++;
      i++;
    }
  };
  skipWs();
  if (text[i] !== '[') {
    throw new DataError(
      `expected a JSON array of records, found ${describeTop(text, i)}`,
      { file: path, line },
      {
        hint: 'JSON input must be one array [{...}, ...] (Alpaca style); use .jsonl for one record a line',
      },
    );
  }
  i++;
  skipWs();
  if (text[i] === ']') return;
  for (let index = 0; ; index++) {
    skipWs();
    const start = i;
    const startLine = line;
    let depth = 0;
    let inString = false;
    // Scan to the ',' or ']' that ends this element at depth 0.
    for (; i < n; i++) {
      const c = text.charCodeAt(i);
      if (c === 0x0a) line++;
      if (inString) {
        if (c === 0x5c)
          i++; // backslash: skip the escaped char (never a newline in valid JSON)
        else if (c === 0x22) inString = false;
        continue;
      }
      if (c === 0x22) inString = true;
      else if (c === 0x7b || c === 0x5b) depth++;
      else if (c === 0x7d || c === 0x5d) {
        if (depth === 0) break;
        depth--;
      } else if (c === 0x2c && depth === 0) break;
    }
    if (i >= n) {
      throw new DataError(
        `unterminated JSON array: element ${index} starting here never closes`,
        { file: path, line: startLine },
        { hint: 'the file is truncated or has an unclosed string or bracket' },
      );
    }
    const slice = text.slice(start, i);
    if (slice.trim() === '') {
      throw new DataError(`empty element ${index} in JSON array (stray comma?)`, {
        file: path,
        line: startLine,
      });
    }
    let value: unknown;
    let error: string | undefined;
    try {
      value = JSON.parse(slice);
    } catch (e) {
      error = `invalid JSON: ${(e as Error).message}`;
    }
    yield error === undefined
      ? { value, index, line: startLine }
      : { value, index, line: startLine, error };
    const end = text[i];
    i++;
    if (end === ']') {
      skipWs();
      if (i < n) {
        throw new DataError('unexpected text after the closing ] of the JSON array', {
          file: path,
          line,
        });
      }
      return;
    }
  }
}

/**
 * Writes a JSON array with one element per line (valid JSON, and line k+2 holds element k, so
 * errors found later point at readable lines), streaming with back-pressure.
 */
export class JsonArrayWriter {
  readonly path: string;
  #out: WriteStream;
  #count = 0;
  constructor(path: string) {
    this.path = path;
    this.#out = createWriteStream(path, { encoding: 'utf8' });
    this.#out.write('[');
  }
  get count(): number {
    return this.#count;
  }
  async write(value: unknown): Promise<void> {
    const ok = this.#out.write(`${this.#count === 0 ? '\n' : ',\n'}${JSON.stringify(value)}`);
    this.#count++;
    if (!ok) await once(this.#out, 'drain');
  }
  async close(): Promise<void> {
    this.#out.write(this.#count === 0 ? ']\n' : '\n]\n');
    await new Promise<void>((resolve, reject) =>
      this.#out.end((err?: Error | null) => (err ? reject(err) : resolve())),
    );
  }
}

/** Writes all values as a JSON array file, replacing it; returns the count. */
export async function writeJsonArray(
  path: string,
  values: Iterable<unknown> | AsyncIterable<unknown>,
): Promise<number> {
  const w = new JsonArrayWriter(path);
  try {
    for await (const v of values) await w.write(v);
  } finally {
    await w.close();
  }
  return w.count;
}
