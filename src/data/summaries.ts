// Human-readable summaries of the data jobs (the lines `instructkit data ...` prints at the end;
// --json prints the job results themselves). Pure functions from a job result to lines.

import type { LocatedRecord } from './io.ts';
import type { ConvertSummary, DecontaminateSummary, DedupSummary } from './jobs.ts';
import type { MixFilesSummary } from './mix-files.ts';
import type { RenderSummary } from './render.ts';
import type { SplitFilesSummary } from './split-files.ts';
import type { DataStats, Summary } from './stats.ts';

const fmt = (n: number) => n.toLocaleString('en-US');

/** Reasons listed in a summary; the JSON result keeps up to 20. */
const SHOWN_REASONS = 5;

/** "skipped N invalid record(s):", the first reasons (file:line: why) and how many more, or nothing. */
export function skippedLines(
  skipped: number,
  reasons: string[],
  what = 'invalid record(s)',
): string[] {
  if (skipped === 0) return [];
  const shown = reasons.slice(0, SHOWN_REASONS);
  const more = skipped - shown.length;
  return [
    `skipped ${fmt(skipped)} ${what}:`,
    ...shown.map((r) => `  ${r}`),
    ...(more > 0 ? [`  ... and ${fmt(more)} more`] : []),
  ];
}

export function convertLines(r: ConvertSummary): string[] {
  return [
    `converted ${fmt(r.read)} ${r.from} record(s) from ${r.input} into ${fmt(r.written)} ${r.to} record(s) in ${r.output}`,
    ...skippedLines(r.skipped, r.reasons),
  ];
}

export function renderLines(r: RenderSummary, maxTasks = 40): string[] {
  const tasks = Object.entries(r.byTask);
  const w = Math.max(4, ...tasks.slice(0, maxTasks).map(([t]) => t.length));
  const rows = r.rows !== undefined ? ` from ${fmt(r.rows)} row(s)` : '';
  const excluded = r.excluded
    ? ` (${fmt(r.excluded)} template application(s) excluded by the template's own condition)`
    : '';
  return [
    `wrote ${fmt(r.written)} task example(s)${rows} to ${r.output}${excluded}`,
    ...tasks.slice(0, maxTasks).map(([t, n]) => `  ${t.padEnd(w)}  ${fmt(n).padStart(8)}`),
    ...(tasks.length > maxTasks ? [`  ... and ${fmt(tasks.length - maxTasks)} more task(s)`] : []),
    ...skippedLines(r.skipped, r.reasons, 'invalid row(s) or failed template application(s)'),
  ];
}

export function mixLines(r: MixFilesSummary): string[] {
  const w = Math.max(6, ...r.sources.map((s) => s.name.length));
  const row = (cells: string[]) =>
    [
      cells[0]!.padEnd(w),
      ...cells.slice(1, 5).map((c, i) => c.padStart([10, 8, 10, 6][i]!)),
      cells[5],
    ].join('  ');
  return [
    `mixed ${fmt(r.written)} ${r.kind} record(s) into ${r.output} (${r.strategy}, seed ${r.seed}; ended: ${r.ended})`,
    row(['source', 'size', 'target p', 'emitted', 'share', 'epochs']),
    ...r.sources.map((s) =>
      row([
        s.name,
        fmt(s.size ?? 0),
        s.probability.toFixed(4),
        fmt(s.emitted),
        (r.emitted ? s.emitted / r.emitted : 0).toFixed(4),
        `${s.epochs}${s.exhausted ? ' (exhausted)' : ''}`,
      ]),
    ),
    ...skippedLines(r.skipped, r.reasons),
  ];
}

export function splitLines(r: SplitFilesSummary): string[] {
  const p = r.plan;
  const line = (name: string, n: number, note: string) =>
    `  ${name.padEnd(22)}${fmt(n).padStart(10)}  (${note})`;
  return [
    `split ${r.input} into ${r.outDir} (seed ${p.seed}); plan in ${r.planFile}`,
    line('train', r.counts.train, `${p.trainTasks.length} tasks`),
    line(
      'fully_held_out',
      r.counts.fully_held_out,
      `categories: ${p.heldOutCategories.join(', ') || 'none'}`,
    ),
    line(
      'partially_supervised',
      r.counts.partially_supervised,
      `tasks: ${p.partiallySupervisedTasks.join(', ') || 'none'}`,
    ),
    line(
      'fully_supervised',
      r.counts.fully_supervised,
      `${p.supervisedFraction} of each training task`,
    ),
    `leak check: ${r.leaks.ok ? 'ok' : 'FAILED'}, ${fmt(r.leaks.checkedTrain)} training examples checked`,
    ...skippedLines(r.skipped, r.reasons),
  ];
}

export function dedupLines(
  r: DedupSummary,
  c: {
    mode: string;
    threshold: number;
    shingleUnit: string;
    shingleSize: number;
    bands: number;
    numPerm: number;
  },
): string[] {
  const near =
    c.mode === 'exact'
      ? ''
      : ` (Jaccard >= ${c.threshold}, ${c.shingleUnit} ${c.shingleSize}-grams, ${c.bands}x${c.numPerm / c.bands} LSH)`;
  return [
    `kept ${fmt(r.kept)} of ${fmt(r.total)} ${r.kind} record(s) in ${r.output}: removed ${fmt(r.removedExact)} exact and ${fmt(r.removedNear)} near duplicate(s)${near}`,
    ...(r.report ? [`report: ${r.report}`] : []),
    ...skippedLines(r.skipped, r.reasons),
  ];
}

export function decontaminateLines(
  r: DecontaminateSummary,
  c: { n: number; minN?: number },
): string[] {
  return [
    `kept ${fmt(r.kept)} of ${fmt(r.total)} ${r.kind} record(s) in ${r.output}; removed ${fmt(r.removed)} sharing a ${c.n}-gram with an eval set`,
    ...r.evalSets.map((e) => {
      const short = e.tooShort
        ? ` (${fmt(e.tooShort)} shorter than ${c.minN ?? c.n} words, not indexed)`
        : '';
      const skipped = e.skipped ? `, ${fmt(e.skipped)} invalid skipped` : '';
      return `  ${e.name}: ${fmt(e.records)} eval record(s)${short}${skipped}, removed ${fmt(r.removedBySet[e.name] ?? 0)}`;
    }),
    ...(r.report ? [`report: ${r.report}`] : []),
    ...skippedLines(r.skipped, r.reasons),
  ];
}

const sumLine = (name: string, s: Summary) =>
  `  ${name.padEnd(22)} ${[s.min, s.p50, s.p90, s.p99, s.max].map((x) => fmt(x).padStart(7)).join('')} ${s.mean.toFixed(1).padStart(9)}`;

/** The stats table of one file. */
export function statsLines(
  s: DataStats & { file: string; skipped: number; reasons: string[] },
  top = 10,
): string[] {
  const out = [
    `${s.file}: ${fmt(s.records)} ${s.kind} record(s), ${fmt(s.exactDuplicates)} exact duplicate(s)`,
    `  ${'length (chars)'.padEnd(22)} ${['min', 'p50', 'p90', 'p99', 'max'].map((x) => x.padStart(7)).join('')} ${'mean'.padStart(9)}`,
  ];
  for (const [name, f] of Object.entries(s.fields))
    out.push(sumLine(`${name}${f.empty ? ` (${f.empty} empty)` : ''}`, f.chars));
  out.push('  length (words)');
  for (const [name, f] of Object.entries(s.fields)) out.push(sumLine(name, f.words));
  if (s.turns) out.push(sumLine('messages per chat', s.turns));
  if (s.completionsPerPrompt) out.push(sumLine('completions per prompt', s.completionsPerPrompt));
  const counts = (label: string, m?: Record<string, number>) => {
    if (!m) return;
    const e = Object.entries(m);
    const more = e.length > top ? ', ...' : '';
    out.push(
      `  ${label} (${e.length}): ${e
        .slice(0, top)
        .map(([k, v]) => `${k} ${fmt(v)}`)
        .join(', ')}${more}`,
    );
  };
  counts('tasks', s.tasks);
  counts('categories', s.categories);
  counts('templates', s.templates);
  counts('roles', s.roles);
  out.push(...skippedLines(s.skipped, s.reasons));
  return out;
}

function clip(v: unknown, max: number): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s.length > max ? `${s.slice(0, max)}... [${fmt(s.length - max)} more chars]` : s;
}

/** One record for `inspect`: a header with its location and kind, then its fields. */
export function recordLines(x: LocatedRecord, maxChars = 400): string[] {
  const at = x.line !== undefined ? `${x.file}:${x.line}` : `${x.file} row ${x.row}`;
  const out = [`--- record ${x.row} (${at}) [${x.kind}]`];
  for (const [k, v] of Object.entries(x.record as Record<string, unknown>)) {
    if (k === 'messages')
      for (const m of v as { role: string; content: string }[])
        out.push(`  [${m.role}] ${clip(m.content, maxChars)}`);
    else out.push(`  ${k}: ${clip(v, maxChars)}`);
  }
  return out;
}
