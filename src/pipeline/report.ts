// The demo's report.html: loss curves drawn with vega-lite and rendered to inline SVG on the
// server side (no scripts, viewable offline), the before/after table from the evaluation
// harness, and the run's settings and timings.
import * as vega from 'vega';
import * as vl from 'vega-lite';

export interface LossPoint {
  phase: string;
  step: number;
  loss: number;
  series: string;
}

/** A line chart of loss against step, one line per series, as an SVG string. */
export async function lossChartSvg(points: readonly LossPoint[], title: string): Promise<string> {
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    width: 560,
    height: 260,
    data: { values: points as unknown as Record<string, unknown>[] },
    mark: { type: 'line', point: points.length < 60 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'step' },
      y: { field: 'loss', type: 'quantitative', title: 'loss', scale: { zero: false } },
      color: {
        field: 'series',
        type: 'nominal',
        title: null,
        legend: { orient: 'bottom', labelLimit: 400 },
      },
    },
  };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

/** A grouped bar chart of accuracy before and after tuning, per group, as an SVG string. */
export async function accuracyChartSvg(
  rows: readonly { group: string; model: string; accuracy: number }[],
): Promise<string> {
  const spec: vl.TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'Exact-match accuracy (%)',
    width: 260,
    height: 220,
    data: { values: rows as unknown as Record<string, unknown>[] },
    mark: 'bar',
    encoding: {
      x: { field: 'group', type: 'nominal', title: null },
      xOffset: { field: 'model' },
      y: {
        field: 'accuracy',
        type: 'quantitative',
        scale: { domain: [0, 100] },
        title: 'accuracy (%)',
      },
      color: { field: 'model', type: 'nominal', title: null },
    },
  };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export interface ReportParts {
  title: string;
  summary: string[];
  charts: string[];
  table: string;
  samples: { category: string; prompt: string; target: string; base: string; tuned: string }[];
  settings: Record<string, unknown>;
}

export function reportHtml(p: ReportParts): string {
  const samples = p.samples
    .map(
      (s) =>
        `<tr><td>${esc(s.category)}</td><td><pre>${esc(s.prompt)}</pre></td><td>${esc(s.target)}</td><td>${esc(s.base)}</td><td>${esc(s.tuned)}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(p.title)}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
tr.group td{font-weight:600}td.up{color:#060}td.down{color:#a00}pre{margin:0;white-space:pre-wrap}
caption{text-align:left;font-weight:600;margin-bottom:.4em}.charts{display:flex;flex-wrap:wrap;gap:1em}
</style></head><body>
<h1>${esc(p.title)}</h1>
<ul>${p.summary.map((s) => `<li>${esc(s)}</li>`).join('')}</ul>
<div class="charts">${p.charts.join('\n')}</div>
<h2>Before and after instruction tuning</h2>
${p.table}
<h2>Examples (held-out categories)</h2>
<table><thead><tr><th>category</th><th>prompt</th><th>target</th><th>base</th><th>tuned</th></tr></thead><tbody>
${samples}
</tbody></table>
<h2>Settings</h2>
<pre>${esc(JSON.stringify(p.settings, null, 2))}</pre>
</body></html>
`;
}
