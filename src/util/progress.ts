// Progress reporting on stderr for long CLI work: a cli-progress bar on a terminal, and plain
// periodic lines ("label: 12,000/50,000 records (24%), 3,100/s") when stderr is not a TTY
// (logs, CI, NO_COLOR). Cheap to tick per item: the clock is read at most every 256 ticks.
import { SingleBar } from 'cli-progress';
import { env } from './env.ts';

export interface ProgressOptions {
  /** Shown first, e.g. 'dedup'. */
  label: string;
  /** Expected final value, if known (enables percent and ETA). */
  total?: number;
  /** What is counted, e.g. 'records'. Default 'items'. */
  unit?: string;
  /** Default process.stderr. */
  stream?: NodeJS.WriteStream;
  /** Force plain lines (true) or a bar (false); default: plain unless stderr is a TTY. */
  plain?: boolean;
  /** Seconds between plain lines. Default 5. */
  intervalSeconds?: number;
  /** false: report nothing (for --quiet). Default true. */
  enabled?: boolean;
}

/** A running progress report. */
export interface Progress {
  readonly value: number;
  /** Adds n (default 1). */
  tick(n?: number): void;
  /** Sets the current value. */
  set(value: number): void;
  /** Sets or changes the expected total. */
  setTotal(total: number): void;
  /** Sets a short status shown after the counts (e.g. reject reasons and cost); '' clears it. */
  detail(text: string): void;
  /** Ends the report; prints a final line (plain mode) or leaves the finished bar. */
  done(): void;
  /** Ends the report after an error: 'stopped after N' instead of 'done'. */
  fail(): void;
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${Math.round(s % 60)}s` : `${Math.floor(m / 60)}h${m % 60}m`;
}

/**
 * Starts a progress report.
 * @example
 * const p = progress({ label: 'dedup', unit: 'records', total: 52_002 });
 * for await (const r of records) { ...; p.tick(); }
 * p.done();
 */
export function progress(opts: ProgressOptions): Progress {
  const stream = opts.stream ?? process.stderr;
  const unit = opts.unit ?? 'items';
  const plain = opts.plain ?? (env.plainOutput || !stream.isTTY);
  const enabled = opts.enabled ?? true;
  const start = performance.now();
  let total = opts.total;
  let value = 0;
  let sinceCheck = 0;
  let finished = false;
  const interval = (opts.intervalSeconds ?? 5) * 1000;
  let lastPrint = start;
  let bar: SingleBar | undefined;
  let detail = '';
  const suffix = () => (detail ? ` | ${detail}` : '');

  const rate = () => value / Math.max(1e-3, (performance.now() - start) / 1000);
  const line = () => {
    const pct = total ? ` (${((100 * value) / total).toFixed(1)}%)` : '';
    return `${opts.label}: ${fmt(value)}${total ? `/${fmt(total)}` : ''} ${unit}${pct}, ${fmt(rate())}/s${suffix()}`;
  };

  if (enabled && !plain) {
    const withTotal = total !== undefined;
    bar = new SingleBar({
      stream,
      format: withTotal
        ? `${opts.label} [{bar}] {percentage}% | {value}/{total} ${unit} | {rate}/s | ETA {eta_formatted}{detail}`
        : `${opts.label} {value} ${unit} | {rate}/s | {duration_formatted}{detail}`,
      hideCursor: null,
      etaBuffer: 50,
      formatValue: (v, _o, type) => (type === 'value' || type === 'total' ? fmt(v) : String(v)),
    });
    bar.start(total ?? 0, 0, { rate: '0', detail: '' });
  }

  const refresh = (force: boolean) => {
    if (!enabled || finished) return;
    const now = performance.now();
    if (bar) {
      if (force || now - lastPrint > 100) {
        bar.update(value, { rate: fmt(rate()), detail: suffix() });
        lastPrint = now;
      }
    } else if (force || now - lastPrint >= interval) {
      stream.write(`${line()}\n`);
      lastPrint = now;
    }
  };

  return {
    get value() {
      return value;
    },
    tick(n = 1) {
      value += n;
      sinceCheck += n;
      if (sinceCheck >= 256 || n > 1) {
        sinceCheck = 0;
        refresh(false);
      }
    },
    set(v: number) {
      value = v;
      refresh(false);
    },
    setTotal(t: number) {
      total = t;
      bar?.setTotal(t);
    },
    detail(text: string) {
      detail = text;
    },
    done() {
      if (finished) return;
      if (enabled) {
        const secs = (performance.now() - start) / 1000;
        if (bar) {
          bar.update(value, { rate: fmt(rate()), detail: suffix() });
          bar.stop();
        } else {
          stream.write(
            `${opts.label}: done, ${fmt(value)} ${unit} in ${formatSeconds(secs)} (${fmt(rate())}/s)${suffix()}\n`,
          );
        }
      }
      finished = true;
    },
    fail() {
      if (finished) return;
      if (enabled) {
        bar?.stop();
        if (!bar) stream.write(`${opts.label}: stopped after ${fmt(value)} ${unit}\n`);
      }
      finished = true;
    },
  };
}
