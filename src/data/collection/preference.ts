// Preference data from the built-in collection: for each fact, the right answer is preferred to
// a near-miss (the right answer misspelt by one letter), a wrong fact's answer (another answer of
// the same task) and an off-format reply (no answer at all). Pairs (chosen = the right answer,
// rejected = one of the others) or K-way rankings right > near-miss > wrong > off-format, in TRL's
// record shapes. Seen / held-out categories and train / eval facts are chosen as the demo does.
import { DataError } from '../../util/errors.ts';
import { Rng } from '../../util/rng.ts';
import type { PreferenceRecord, RankingRecord } from '../records.ts';
import { type Collection, type CollectionTask, renderTask, splitFacts } from './index.ts';
import type { Fact } from './tasks.ts';

/** The kinds of worse completion, best first (their rank in a ranking is their index + 1). */
export const REJECTED_KINDS = ['near_miss', 'wrong', 'off_format'] as const;
export type RejectedKind = (typeof REJECTED_KINDS)[number];

export interface CollectionPreferenceOptions {
  seed?: number;
  /** Only these categories (default: all). */
  categories?: readonly string[];
  /** Leave these categories out (e.g. the demo's held-out ones). */
  excludeCategories?: readonly string[];
  /**
   * Which facts of each task: all, or the train / eval side of splitFacts(evalFraction,
   * splitSeed) — the demo's split of seen categories. @default 'all'
   */
  facts?: 'all' | 'train' | 'eval';
  evalFraction?: number;
  splitSeed?: number;
  /** 'pairs': {prompt, chosen, rejected}; 'ranking': {prompt, completions, ranking}. @default 'pairs' */
  format?: 'pairs' | 'ranking';
  /** Worse completions to use (pairs: one record each; ranking: these in this order). */
  rejected?: readonly RejectedKind[];
  /** Templates rendered per fact (each a new prompt). @default 1 */
  templatesPerFact?: number;
  /** The prompt around a rendered instruction. @default the demo's `${input}\nAnswer:` */
  prompt?: (input: string) => string;
  /** Put before every completion (the demo's completions start with a space). @default ' ' */
  completionPrefix?: string;
}

/** A record and the task it came from. */
export interface CollectionPreference {
  task: string;
  category: string;
  record: PreferenceRecord | RankingRecord;
}

const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

/**
 * The right answer with one letter changed (or, for answers without letters, one digit / a
 * character appended): close in spelling, still wrong.
 */
export function nearMiss(answer: string, rng: Rng): string {
  const spots = [...answer].flatMap((ch, i) => (/[a-z]/i.test(ch) ? [i] : []));
  if (spots.length === 0) return `${answer}0`;
  const i = rng.choice(spots);
  const ch = answer[i]!;
  const lower = ch.toLowerCase();
  const others = [...LETTERS].filter((l) => l !== lower);
  let sub = rng.choice(others);
  if (ch !== lower) sub = sub.toUpperCase();
  return answer.slice(0, i) + sub + answer.slice(i + 1);
}

function offFormat(input: string, rng: Rng): string {
  const firstLine = input.split('\n')[0]!.trim();
  return rng.choice(["I don't know.", firstLine === '' ? 'Question?' : firstLine, 'Sure!']);
}

function worse(
  kind: RejectedKind,
  task: CollectionTask,
  fact: Fact,
  input: string,
  rng: Rng,
): string {
  if (kind === 'near_miss') return nearMiss(fact.y, rng);
  if (kind === 'wrong') {
    const others = task.answers.filter((a) => a !== fact.y && !fact.y.startsWith(a));
    if (others.length === 0) return nearMiss(fact.y, rng);
    return rng.choice(others);
  }
  return offFormat(input, rng);
}

/**
 * Preference records for the selected tasks' facts, deterministic for a seed.
 * @example const prefs = collectionPreferences(builtinCollection({ seed: 0 }), { excludeCategories: ['antonyms', 'sequences'], format: 'ranking' });
 */
export function collectionPreferences(
  c: Collection,
  opts: CollectionPreferenceOptions = {},
): CollectionPreference[] {
  const seed = opts.seed ?? c.seed;
  const kinds = opts.rejected ?? REJECTED_KINDS;
  if (kinds.length === 0) throw new DataError('no rejected kinds given', { field: 'rejected' });
  const prompt = opts.prompt ?? ((input: string) => `${input}\nAnswer:`);
  const pre = opts.completionPrefix ?? ' ';
  const out: CollectionPreference[] = [];
  for (const t of c.tasks) {
    if (opts.categories && !opts.categories.includes(t.category)) continue;
    if (opts.excludeCategories?.includes(t.category)) continue;
    const split = splitFacts(t, opts.evalFraction ?? 0.2, opts.splitSeed ?? seed);
    const facts =
      opts.facts === 'train' ? split.train : opts.facts === 'eval' ? split.eval : t.facts;
    if (facts.length === 0) continue;
    const rng = new Rng(`${seed}/preferences/${t.name}`);
    for (let s = 0; s < (opts.templatesPerFact ?? 1); s++) {
      const rendered = renderTask(c, t, { variant: 'zero_shot', seed: seed + 1 + s, facts });
      rendered.forEach((e, i) => {
        const fact = facts[i]!;
        const p = prompt(e.input);
        const right = `${pre}${e.target}`;
        const bad = kinds.map((k) => {
          let w = `${pre}${worse(k, t, fact, e.input, rng)}`;
          // A near-miss can only collide with the answer for answers without letters.
          if (w === right) w = `${right}!`;
          return w;
        });
        if ((opts.format ?? 'pairs') === 'ranking') {
          // Rank = position in right, kinds...; shuffled so position says nothing.
          const items = [right, ...bad].map((text, rank) => ({ text, rank }));
          const uniq = items.filter((x, j) => items.findIndex((y) => y.text === x.text) === j);
          const order = rng.shuffle(uniq);
          out.push({
            task: t.name,
            category: t.category,
            record: {
              prompt: p,
              completions: order.map((x) => x.text),
              ranking: order.map((x) => x.rank),
            },
          });
        } else {
          for (const w of new Set(bad))
            out.push({
              task: t.name,
              category: t.category,
              record: { prompt: p, chosen: right, rejected: w },
            });
        }
      });
    }
  }
  return out;
}
