// Append-only run logs for resumable pipelines. Each log is a JSONL file whose lines are written
// one write() each as work completes; reopening it replays the lines (a torn last line from a
// killed process is cut off), so a re-run continues where the last one stopped, with no duplicates.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { DurableJsonlAppender } from '../util/jsonl.ts';

export class RunLog<T> {
  readonly path: string;
  readonly entries: T[] = [];
  readonly #appender: DurableJsonlAppender;

  private constructor(path: string) {
    this.path = path;
    mkdirSync(dirname(path), { recursive: true });
    // Opening the appender first cuts a torn final line, so every remaining line parses.
    this.#appender = new DurableJsonlAppender(path);
    if (existsSync(path)) {
      const text = readFileSync(path, 'utf8');
      for (const line of text.split('\n'))
        if (line.trim() !== '') this.entries.push(JSON.parse(line) as T);
    }
  }

  /** Opens (or creates) a log and loads what an earlier run wrote. */
  static open<T>(path: string): RunLog<T> {
    return new RunLog<T>(path);
  }

  append(entry: T): void {
    this.#appender.append(entry);
    this.entries.push(entry);
  }

  close(): void {
    this.#appender.close();
  }
}
