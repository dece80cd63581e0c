// Rendering evaluation results: Markdown tables for the terminal and READMEs, and an HTML
// fragment (self-contained, no scripts) that the demo report embeds. Scores print as percentages.
import type { Comparison, HeldoutResult } from './heldout.ts';
import { bootstrapMean, type Interval } from './metrics.ts';
import type { TaskResult } from './run.ts';

const pct = (x: number): string => (Number.isFinite(x) ? (100 * x).toFixed(1) : 'n/a');
const signed = (x: number): string =>
  Number.isFinite(x) ? `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)}` : 'n/a';

export function heldoutMarkdown(r: HeldoutResult): string {
  const rows = [
    `| level | name | n | ${r.metric} | 95% CI |`,
    '|---|---|---:|---:|---|',
    ...r.byGroup.map(
      (g) =>
        `| group | ${g.name} | ${g.n} | ${pct(g.score)} | ${pct(g.ci.low)}–${pct(g.ci.high)} |`,
    ),
    ...r.byCategory.map(
      (g) =>
        `| category | ${g.name} | ${g.n} | ${pct(g.score)} | ${pct(g.ci.low)}–${pct(g.ci.high)} |`,
    ),
    ...r.byTask.map(
      (g) => `| task | ${g.name} | ${g.n} | ${pct(g.score)} | ${pct(g.ci.low)}–${pct(g.ci.high)} |`,
    ),
  ];
  return `${rows.join('\n')}\n`;
}

export function comparisonMarkdown(c: Comparison, labels: { a?: string; b?: string } = {}): string {
  const a = labels.a ?? c.a;
  const b = labels.b ?? c.b;
  const rows = [
    `| level | name | n | ${a} | ${b} | Δ (${b} − ${a}) | 95% CI of Δ |`,
    '|---|---|---:|---:|---:|---:|---|',
    ...c.rows.map(
      (r) =>
        `| ${r.level} | ${r.name} | ${r.n} | ${pct(r.a)} | ${pct(r.b)} | ${signed(r.delta.mean)} | ${signed(r.delta.low)} to ${signed(r.delta.high)} |`,
    ),
  ];
  return `${rows.join('\n')}\n`;
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** An HTML <table> of a comparison, grouped rows first, with the metric in the caption. */
export function comparisonHtml(
  c: Comparison,
  labels: { a?: string; b?: string; caption?: string } = {},
): string {
  const a = esc(labels.a ?? c.a);
  const b = esc(labels.b ?? c.b);
  const body = c.rows
    .map((r) => {
      const cls = r.delta.low > 0 ? 'up' : r.delta.high < 0 ? 'down' : 'flat';
      return `<tr class="${r.level}"><td>${r.level}</td><td>${esc(r.name)}</td><td>${r.n}</td><td>${pct(r.a)}</td><td>${pct(r.b)}</td><td class="${cls}">${signed(r.delta.mean)}</td><td>${signed(r.delta.low)} to ${signed(r.delta.high)}</td></tr>`;
    })
    .join('\n');
  const caption = esc(labels.caption ?? `${c.metric} (%), ${b} vs ${a}, paired bootstrap 95% CI`);
  return `<table class="ik-eval">
<caption>${caption}</caption>
<thead><tr><th>level</th><th>name</th><th>n</th><th>${a}</th><th>${b}</th><th>Δ</th><th>95% CI of Δ</th></tr></thead>
<tbody>
${body}
</tbody>
</table>`;
}

export interface MetricRow {
  task: string;
  category?: string;
  n: number;
  metric: string;
  value: number;
  /** Seeded percentile bootstrap over the task's examples. */
  ci: Interval;
}

/** One row per (task, metric) with a bootstrap interval: what `instructkit eval` reports. */
export function taskMetricRows(
  results: readonly TaskResult[],
  opts: { seed?: number; resamples?: number } = {},
): MetricRow[] {
  return results.flatMap((r) =>
    Object.keys(r.metrics).map((m) => {
      const values = r.examples.map((e) => (e.metrics as Record<string, number>)[m] ?? 0);
      const ci = bootstrapMean(values, { seed: opts.seed ?? 0, resamples: opts.resamples ?? 1000 });
      return {
        task: r.task,
        ...(r.category ? { category: r.category } : {}),
        n: r.n,
        metric: m,
        value: (r.metrics as Record<string, number>)[m]!,
        ci,
      };
    }),
  );
}

export function taskMetricsMarkdown(rows: readonly MetricRow[]): string {
  const lines = [
    '| task | category | n | metric | value | 95% CI |',
    '|---|---|---:|---|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.task} | ${r.category ?? ''} | ${r.n} | ${r.metric} | ${pct(r.value)} | ${pct(r.ci.low)}–${pct(r.ci.high)} |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
