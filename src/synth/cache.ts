// Content-addressed disk cache for LLM responses: the key is a SHA-256 of the model and the
// full request body, so re-running a pipeline replays answers without network calls. Writes
// go to a temporary file and are renamed into place, so a killed process never leaves half a file.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Stable JSON: object keys sorted, so equal requests hash equally whatever their key order. */
export function stableJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
}

export function cacheKey(kind: string, body: unknown): string {
  return createHash('sha256')
    .update(`${kind}\n${stableJson(body)}`)
    .digest('hex');
}

export class ResponseCache {
  readonly dir: string;
  #tmpCounter = 0;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
  }

  #path(key: string): string {
    return join(this.dir, key.slice(0, 2), `${key.slice(2)}.json`);
  }

  get<T>(key: string): T | undefined {
    try {
      return JSON.parse(readFileSync(this.#path(key), 'utf8')) as T;
    } catch {
      // Missing or unreadable (e.g. written by a different version): treat as a miss.
      return undefined;
    }
  }

  set(key: string, value: unknown): void {
    const path = this.#path(key);
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.${this.#tmpCounter++}.tmp`;
    writeFileSync(tmp, JSON.stringify(value));
    renameSync(tmp, path);
  }
}
