// Reading task lists and task -> category tables: Super-NaturalInstructions split files
// (splits/default/{train,test,excluded}_tasks.txt, one task name a line) and tables in YAML,
// JSON, CSV/TSV or JSONL. Deciding the split itself is split.ts.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DataError } from '../util/errors.ts';
import { readJsonl } from '../util/jsonl.ts';

const SUPER_NI_TASK = /^task\d+_[\w.-]+$/;

/**
 * Reads a task list: one name a line, blank lines ignored. With `pattern`, every name must
 * match it (Super-NI names look like task1159_bard_analogical_reasoning_containers); a line
 * that does not is a DataError naming file and line.
 */
export async function readTaskList(path: string, pattern?: RegExp): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new DataError('file not found', { file: path });
    throw e;
  }
  const out: string[] = [];
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const name = raw.trim();
    if (name === '') return;
    if (pattern && !pattern.test(name))
      throw new DataError(
        `'${name.slice(0, 80)}' is not a task name`,
        { file: path, line: i + 1 },
        {
          hint: `expected names matching ${pattern}`,
        },
      );
    if (seen.has(name))
      throw new DataError(`task '${name}' is listed twice`, { file: path, line: i + 1 });
    seen.add(name);
    out.push(name);
  });
  return out;
}

/** The task lists of one Super-NI split folder; absent files are undefined. */
export interface SuperNiSplit {
  test: string[];
  train?: string[];
  excluded?: string[];
}

/**
 * Loads a Super-NaturalInstructions split: `dir` is a folder such as splits/default holding
 * test_tasks.txt (required) and train_tasks.txt / excluded_tasks.txt (optional), or the path of
 * test_tasks.txt itself. Checks that no task is both trained on and tested.
 */
export async function loadSuperNiSplit(dir: string): Promise<SuperNiSplit> {
  const folder = basename(dir).endsWith('.txt') ? join(dir, '..') : dir;
  const file = (n: string) => join(folder, `${n}_tasks.txt`);
  const test = await readTaskList(file('test'), SUPER_NI_TASK);
  const out: SuperNiSplit = { test };
  if (existsSync(file('train'))) out.train = await readTaskList(file('train'), SUPER_NI_TASK);
  if (existsSync(file('excluded')))
    out.excluded = await readTaskList(file('excluded'), SUPER_NI_TASK);
  if (out.train) {
    const t = new Set(test);
    const both = out.train.find((x) => t.has(x));
    if (both)
      throw new DataError(`task '${both}' is in both train and test lists`, {
        file: file('train'),
      });
  }
  return out;
}

function addRow(
  table: Map<string, string>,
  task: unknown,
  cat: unknown,
  file: string,
  line?: number,
  prefix = '',
): void {
  const field = (f: string) => `${prefix}${f}`;
  if (typeof task !== 'string' || task === '')
    throw new DataError('task name must be a non-empty string', {
      file,
      line,
      field: field('task'),
    });
  if (typeof cat !== 'string' || cat === '')
    throw new DataError(`category of task '${task}' must be a non-empty string`, {
      file,
      line,
      field: prefix ? field('category') : task,
    });
  const prev = table.get(task);
  if (prev !== undefined && prev !== cat)
    throw new DataError(`task '${task}' has two categories: '${prev}' and '${cat}'`, {
      file,
      line,
      field: prefix ? field('category') : task,
    });
  table.set(task, cat);
}

/**
 * Reads a task -> category table. Formats by extension:
 * - .yaml/.yml/.json: a mapping {task: category}, or a list of {task, category};
 * - .csv/.tsv: rows `task,category` (a header row `task,category` is skipped);
 * - .jsonl: one {task, category, ...} a line (extra keys ignored, so task examples work).
 */
export async function readTaskTable(path: string): Promise<Map<string, string>> {
  const table = new Map<string, string>();
  const lower = path.toLowerCase();
  if (lower.endsWith('.jsonl')) {
    for await (const { value, line } of readJsonl(path)) {
      const o = value as Record<string, unknown>;
      addRow(table, o?.task, o?.category, path, line);
    }
    return table;
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new DataError('file not found', { file: path });
    throw e;
  }
  if (lower.endsWith('.csv') || lower.endsWith('.tsv')) {
    const sep = lower.endsWith('.tsv') ? '\t' : ',';
    text.split(/\r?\n/).forEach((raw, i) => {
      if (raw.trim() === '') return;
      const cells = raw.split(sep).map((c) => c.trim());
      if (i === 0 && cells[0]?.toLowerCase() === 'task') return;
      if (cells.length !== 2)
        throw new DataError(`expected 2 columns (task${sep}category), found ${cells.length}`, {
          file: path,
          line: i + 1,
        });
      addRow(table, cells[0], cells[1], path, i + 1);
    });
    return table;
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    const line = (e as { linePos?: { line: number }[] }).linePos?.[0]?.line;
    throw new DataError(`invalid YAML/JSON: ${(e as Error).message.split('\n')[0]}`, {
      file: path,
      line,
    });
  }
  if (Array.isArray(doc)) {
    doc.forEach((row, i) => {
      const o = row as Record<string, unknown>;
      addRow(table, o?.task, o?.category, path, undefined, `${i}.`);
    });
  } else if (doc && typeof doc === 'object') {
    for (const [task, cat] of Object.entries(doc)) addRow(table, task, cat, path);
  } else {
    throw new DataError('expected a mapping {task: category} or a list of {task, category}', {
      file: path,
    });
  }
  return table;
}
