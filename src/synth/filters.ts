// The heuristic filters Self-Instruct and Alpaca apply to machine-written instructions and
// instances, each returning a named reason so a run can report why candidates were rejected.
// The ROUGE-L near-duplicate filter lives in data/rouge.ts; pipelines combine the two.

/** Self-Instruct's 13 blacklisted words and phrases (tasks a text model cannot do). */
export const SELF_INSTRUCT_BLACKLIST: readonly string[] = [
  'image',
  'images',
  'graph',
  'graphs',
  'picture',
  'pictures',
  'file',
  'files',
  'map',
  'maps',
  'draw',
  'plot',
  'go to',
];

/** Alpaca adds five more. */
export const ALPACA_BLACKLIST: readonly string[] = [
  ...SELF_INSTRUCT_BLACKLIST,
  'video',
  'audio',
  'music',
  'flowchart',
  'diagram',
];

export type RejectReason =
  | 'empty'
  | 'too_short'
  | 'too_long'
  | 'blacklisted'
  | 'write_a_program'
  | 'starts_with_punctuation'
  | 'starts_with_non_ascii'
  | 'too_similar'
  | 'truncated_response'
  | 'unparseable'
  | 'duplicate_in_batch';

/** Python's string.punctuation. */
const PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

/** Python's str.split() word count (runs of whitespace). */
export function wordCount(s: string): number {
  const t = s.trim();
  return t === '' ? 0 : t.split(/\s+/).length;
}

export interface InstructionFilterOptions {
  blacklist?: readonly string[];
  /** Reject when the word count is <= this. @default 3 */
  minWordsExclusive?: number;
  /** Reject when the word count is > this. @default 150 */
  maxWords?: number;
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const blacklistCache = new Map<readonly string[], RegExp[]>();

/** The first heuristic filter an instruction fails, or null when it passes them all. */
export function checkInstruction(
  inst: string,
  opts: InstructionFilterOptions = {},
): RejectReason | null {
  if (inst.trim() === '') return 'empty';
  const n = wordCount(inst);
  if (n <= (opts.minWordsExclusive ?? 3)) return 'too_short';
  if (n > (opts.maxWords ?? 150)) return 'too_long';
  const list = opts.blacklist ?? SELF_INSTRUCT_BLACKLIST;
  let res = blacklistCache.get(list);
  if (!res) {
    res = list.map((w) => new RegExp(`\\b${escapeRe(w)}\\b`, 'i'));
    blacklistCache.set(list, res);
  }
  if (res.some((re) => re.test(inst))) return 'blacklisted';
  if (inst.startsWith('Write a program')) return 'write_a_program';
  const first = inst[0]!;
  if (PUNCTUATION.has(first)) return 'starts_with_punctuation';
  if (first.charCodeAt(0) > 0x7f) return 'starts_with_non_ascii';
  return null;
}

/** Collapses whitespace runs to one space and trims, as both pipelines do before filtering. */
export function collapseWhitespace(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/**
 * Capitalisation of a parsed instruction. 'python' reproduces Self-Instruct's str.capitalize(),
 * which also lower-cases everything after the first character ("Paris" becomes "paris");
 * 'first' only upper-cases the first character; 'none' leaves it.
 */
export type Capitalize = 'python' | 'first' | 'none';

export function capitalize(s: string, mode: Capitalize): string {
  if (mode === 'none' || s === '') return s;
  const head = s.slice(0, 1).toUpperCase();
  return mode === 'python' ? head + s.slice(1).toLowerCase() : head + s.slice(1);
}

export interface Instance {
  input: string;
  output: string;
}

export type InstanceRejectReason = 'input_equals_output' | 'empty_output' | 'ends_with_colon';

/** Self-Instruct's instance filter: input == output, empty output, or a field ending with ':'. */
export function checkInstance(x: Instance): InstanceRejectReason | null {
  if (x.input === x.output) return 'input_equals_output';
  if (x.output.trim() === '') return 'empty_output';
  if (x.input.endsWith(':') || x.output.endsWith(':')) return 'ends_with_colon';
  return null;
}

/**
 * Drops every instance of a task when two of them share a non-empty input with different
 * outputs (the task is ambiguous), then removes exact duplicates keeping first occurrences.
 */
export function dedupInstances(xs: readonly Instance[]): {
  kept: Instance[];
  conflicting: boolean;
} {
  const byInput = new Map<string, string>();
  for (const x of xs) {
    if (x.input === '') continue;
    const prev = byInput.get(x.input);
    if (prev !== undefined && prev !== x.output) return { kept: [], conflicting: true };
    byInput.set(x.input, x.output);
  }
  const seen = new Set<string>();
  const kept: Instance[] = [];
  for (const x of xs) {
    const k = `${x.input}\u0000${x.output}`;
    if (!seen.has(k)) {
      seen.add(k);
      kept.push(x);
    }
  }
  return { kept, conflicting: false };
}
