// Streaming statistics over a record file: counts, per-field length distributions (characters
// and words, with exact percentiles from a length histogram), task/category/role counts and
// exact-duplicate counts. Memory grows with distinct lengths, tasks and texts, not with text size.
import type { RecordKind } from './records.ts';
import { hash53, normalizedWords, normalizeText, recordText } from './text.ts';

/** Distribution of one integer measure. */
export interface Summary {
  count: number;
  min: number;
  max: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
}

/** Exact percentiles from a histogram of integer values. */
export class Histogram {
  #counts = new Map<number, number>();
  #n = 0;
  #sum = 0;
  add(v: number): void {
    this.#counts.set(v, (this.#counts.get(v) ?? 0) + 1);
    this.#n++;
    this.#sum += v;
  }
  summary(): Summary {
    if (this.#n === 0) return { count: 0, min: 0, max: 0, mean: 0, p50: 0, p90: 0, p99: 0 };
    const keys = [...this.#counts.keys()].sort((a, b) => a - b);
    // Nearest-rank percentile: the smallest value with at least ceil(p * n) values <= it.
    const pct = (p: number) => {
      const rank = Math.max(1, Math.ceil(p * this.#n));
      let acc = 0;
      for (const k of keys) {
        acc += this.#counts.get(k)!;
        if (acc >= rank) return k;
      }
      return keys[keys.length - 1]!;
    };
    return {
      count: this.#n,
      min: keys[0]!,
      max: keys[keys.length - 1]!,
      mean: this.#sum / this.#n,
      p50: pct(0.5),
      p90: pct(0.9),
      p99: pct(0.99),
    };
  }
}

export interface FieldStats {
  chars: Summary;
  words: Summary;
  /** Values that are the empty string. */
  empty: number;
}

export interface DataStats {
  kind: RecordKind;
  records: number;
  /** Records whose whole text (normalised) repeats an earlier record's. */
  exactDuplicates: number;
  fields: Record<string, FieldStats>;
  /** Counts by task / category / template (task examples). */
  tasks?: Record<string, number>;
  categories?: Record<string, number>;
  templates?: Record<string, number>;
  /** Chat: messages per conversation and counts by role. */
  turns?: Summary;
  roles?: Record<string, number>;
  /** Ranking: completions per prompt. */
  completionsPerPrompt?: Summary;
}

class FieldAcc {
  chars = new Histogram();
  words = new Histogram();
  empty = 0;
  add(s: string) {
    this.chars.add(s.length);
    this.words.add(normalizedWords(s).length);
    if (s === '') this.empty++;
  }
  result(): FieldStats {
    return { chars: this.chars.summary(), words: this.words.summary(), empty: this.empty };
  }
}

/** String fields that are labels, counted rather than measured. */
const LABEL_FIELDS = new Set(['id', 'task', 'category', 'template']);

const inc = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);
const sortedObj = (m: Map<string, number>) =>
  Object.fromEntries([...m].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)));

/** Accumulates statistics one validated record at a time. */
export class StatsCollector {
  readonly kind: RecordKind;
  #records = 0;
  #dups = 0;
  #seen = new Set<number>();
  #fields = new Map<string, FieldAcc>();
  #tasks = new Map<string, number>();
  #cats = new Map<string, number>();
  #templates = new Map<string, number>();
  #roles = new Map<string, number>();
  #turns = new Histogram();
  #k = new Histogram();

  constructor(kind: RecordKind) {
    this.kind = kind;
  }

  #field(name: string, value: string) {
    let f = this.#fields.get(name);
    if (!f) {
      f = new FieldAcc();
      this.#fields.set(name, f);
    }
    f.add(value);
  }

  add(record: unknown): void {
    const o = record as Record<string, unknown>;
    this.#records++;
    const key = hash53(normalizeText(recordText(record, this.kind)));
    if (this.#seen.has(key)) this.#dups++;
    else this.#seen.add(key);
    switch (this.kind) {
      case 'chat': {
        const msgs = o.messages as { role: string; content: string }[];
        this.#turns.add(msgs.length);
        for (const m of msgs) {
          inc(this.#roles, m.role);
          this.#field(`messages.${m.role}`, m.content);
        }
        break;
      }
      case 'ranking': {
        const cs = o.completions as string[];
        this.#k.add(cs.length);
        this.#field('prompt', o.prompt as string);
        for (const c of cs) this.#field('completions', c);
        break;
      }
      default:
        for (const [k, v] of Object.entries(o))
          if (typeof v === 'string' && !LABEL_FIELDS.has(k)) this.#field(k, v);
        if (this.kind === 'task') {
          inc(this.#tasks, o.task as string);
          if (typeof o.category === 'string') inc(this.#cats, o.category);
          if (typeof o.template === 'string') inc(this.#templates, o.template);
        }
    }
  }

  result(): DataStats {
    const out: DataStats = {
      kind: this.kind,
      records: this.#records,
      exactDuplicates: this.#dups,
      fields: Object.fromEntries([...this.#fields].map(([k, f]) => [k, f.result()])),
    };
    if (this.kind === 'task') {
      out.tasks = sortedObj(this.#tasks);
      if (this.#cats.size) out.categories = sortedObj(this.#cats);
      if (this.#templates.size) out.templates = sortedObj(this.#templates);
    }
    if (this.kind === 'chat') {
      out.turns = this.#turns.summary();
      out.roles = sortedObj(this.#roles);
    }
    if (this.kind === 'ranking') out.completionsPerPrompt = this.#k.summary();
    return out;
  }
}

/** Statistics of a record stream of one kind. */
export async function computeStats(
  records: Iterable<unknown> | AsyncIterable<unknown>,
  kind: RecordKind,
): Promise<DataStats> {
  const c = new StatsCollector(kind);
  for await (const r of records) c.add(r);
  return c.result();
}
