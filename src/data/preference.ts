// Preference data in TRL's formats (docs/source/dataset_formats.md): explicit prompt
// {prompt, chosen, rejected}, implicit prompt {chosen, rejected} (the prompt is their common
// prefix), conversational (message lists; rendering through a chat template is src/train's,
// since tokenisers live in src/models), an optional `margin`, and K-way rankings
// {prompt, completions, ranking} (ties share a rank; InstructGPT's labeler output). All of them
// normalise to one shape, PreferenceExample {prompt, completions[], ranks[]}, pairs being K = 2
// with the chosen completion rank 0. Bad records are DataErrors naming file:line and field, or
// with skipInvalid counted and listed in the read report (io.ts does the bookkeeping: the checks
// live in the schema, so they run inside its reader).
import { z } from 'zod';
import { DataError } from '../util/errors.ts';
import { describeZodError } from './config.ts';
import {
  type LocatedRecord,
  type ReadRecordsOptions,
  type ReadReport,
  readLocatedRecords,
} from './io.ts';
import { ChatMessage } from './records.ts';

/** A completion or prompt: plain text, or messages (conversational). */
export type PreferenceText = string | ChatMessage[];

/** One prompt with K ≥ 2 completions and their ranks (lower = better; ties share a rank). */
export interface PreferenceExample {
  prompt: PreferenceText;
  completions: PreferenceText[];
  ranks: number[];
  /** Required reward margin of the better completion (TRL RewardTrainer's `margin`). */
  margin?: number;
  /** Where the record came from ("file:line" or "file row N"), for errors downstream. */
  where?: string;
}

const Messages = z.array(ChatMessage).min(1);
const Text = z.union([z.string(), Messages]);

const PairInput = z.strictObject({
  prompt: Text.optional(),
  chosen: Text,
  rejected: Text,
  margin: z.number().finite().optional(),
});
type PairInput = z.infer<typeof PairInput>;

const RankingInput = z.strictObject({
  prompt: Text,
  completions: z.array(Text).min(2),
  ranking: z.array(z.number().int().min(0)),
  margin: z.number().finite().optional(),
});
type RankingInput = z.infer<typeof RankingInput>;

interface Problem {
  field: string;
  message: string;
}

const isChat = (t: PreferenceText): t is ChatMessage[] => Array.isArray(t);
const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * Splits an implicit-prompt pair at its longest common prefix, as TRL's extract_prompt does
 * (the space before the first differing word goes to the completions), but never inside a
 * word: the cut backs off to the last whitespace before it. A character-level cut inside a
 * word ("...is b|lue" / "...is b|lack") would tokenise a word fragment on each side, so the
 * prompt's last token differs from what the model sees in prompt+completion (trl#1153,
 * unsloth-zoo#1110, where a character cut split special tokens).
 */
export function extractPrompt(
  chosen: string,
  rejected: string,
): { prompt: string; chosen: string; rejected: string } {
  const n = Math.min(chosen.length, rejected.length);
  let cut = 0;
  while (cut < n && chosen[cut] === rejected[cut]) cut++;
  if (cut === chosen.length && cut === rejected.length)
    return { prompt: chosen, chosen: '', rejected: '' };
  let i = cut;
  while (i > 0 && !/\s/.test(chosen[i] ?? '')) i--;
  // Several spaces before the completion: keep them all on the completion side.
  while (i > 0 && /\s/.test(chosen[i - 1]!)) i--;
  return { prompt: chosen.slice(0, i), chosen: chosen.slice(i), rejected: rejected.slice(i) };
}

/**
 * A conversation's prompt (every message up to the last non-assistant one) and its completion
 * (the trailing assistant messages).
 */
export function splitConversation(m: ChatMessage[]): {
  prompt: ChatMessage[];
  completion: ChatMessage[];
} {
  let i = m.length;
  while (i > 0 && m[i - 1]!.role === 'assistant') i--;
  return { prompt: m.slice(0, i), completion: m.slice(i) };
}

function emptyCompletion(c: PreferenceText): boolean {
  return isChat(c) ? c.length === 0 || c.every((m) => m.content.trim() === '') : c.trim() === '';
}

function pairExample(r: PairInput): PreferenceExample | Problem {
  let prompt: PreferenceText;
  let chosen: PreferenceText;
  let rejected: PreferenceText;
  if (isChat(r.chosen) !== isChat(r.rejected))
    return { field: 'rejected', message: 'chosen and rejected must both be text or both messages' };
  if (r.prompt !== undefined && isChat(r.prompt) !== isChat(r.chosen))
    return {
      field: 'prompt',
      message: 'prompt and completions must both be text or both be message lists',
    };
  if (same(r.chosen, r.rejected))
    return { field: 'rejected', message: 'chosen and rejected are identical' };
  if (isChat(r.chosen) && isChat(r.rejected)) {
    if (r.prompt !== undefined) {
      for (const [k, msgs] of [
        ['chosen', r.chosen],
        ['rejected', r.rejected],
      ] as const) {
        const j = msgs.findIndex((m) => m.role !== 'assistant');
        if (j >= 0)
          return {
            field: `${k}.${j}.role`,
            message: `with an explicit prompt, ${k} holds only the assistant reply (found a '${msgs[j]!.role}' message)`,
          };
      }
      prompt = r.prompt;
      chosen = r.chosen;
      rejected = r.rejected;
    } else {
      const c = splitConversation(r.chosen);
      const x = splitConversation(r.rejected);
      if (!same(c.prompt, x.prompt))
        return {
          field: 'rejected',
          message:
            'the conversations of chosen and rejected differ before their final assistant reply (their prompts differ)',
        };
      if (c.prompt.length === 0)
        return { field: 'chosen', message: 'the conversation has no user turn before the reply' };
      prompt = c.prompt;
      chosen = c.completion;
      rejected = x.completion;
    }
  } else {
    const c = r.chosen as string;
    const x = r.rejected as string;
    if (r.prompt !== undefined) {
      prompt = r.prompt as string;
      chosen = c;
      rejected = x;
    } else {
      ({ prompt, chosen, rejected } = extractPrompt(c, x));
    }
  }
  if (emptyCompletion(chosen)) return { field: 'chosen', message: 'empty completion' };
  if (emptyCompletion(rejected)) return { field: 'rejected', message: 'empty completion' };
  return {
    prompt,
    completions: [chosen, rejected],
    ranks: [0, 1],
    ...(r.margin !== undefined ? { margin: r.margin } : {}),
  };
}

function rankingExample(r: RankingInput): PreferenceExample | Problem {
  if (r.ranking.length !== r.completions.length)
    return {
      field: 'ranking',
      message: `has ${r.ranking.length} entries but there are ${r.completions.length} completions`,
    };
  const chat = isChat(r.prompt);
  for (const [i, c] of r.completions.entries()) {
    if (isChat(c) !== chat)
      return {
        field: `completions.${i}`,
        message: 'prompt and completions must both be text or both be message lists',
      };
    if (emptyCompletion(c)) return { field: `completions.${i}`, message: 'empty completion' };
    if (isChat(c)) {
      const j = c.findIndex((m) => m.role !== 'assistant');
      if (j >= 0)
        return {
          field: `completions.${i}.${j}.role`,
          message: `a completion holds only assistant messages (found '${c[j]!.role}')`,
        };
    }
    for (let j = 0; j < i; j++)
      if (same(r.completions[j], c))
        return { field: `completions.${i}`, message: `identical to completions.${j}` };
  }
  if (new Set(r.ranking).size < 2)
    return { field: 'ranking', message: 'all completions share one rank: nothing is preferred' };
  return {
    prompt: r.prompt,
    completions: r.completions,
    ranks: r.ranking,
    ...(r.margin !== undefined ? { margin: r.margin } : {}),
  };
}

function checked<T>(schema: z.ZodType<T>, make: (r: T) => PreferenceExample | Problem) {
  return schema.transform((r, ctx): PreferenceExample => {
    const out = make(r);
    if ('message' in out) {
      ctx.addIssue({ code: 'custom', path: [out.field], message: out.message });
      return z.NEVER;
    }
    return out;
  });
}

const PairSchema = checked(PairInput, pairExample);
const RankingSchema = checked(RankingInput, rankingExample);

/**
 * Validates and normalises one record of any preference format: rankings (with `completions`)
 * or pairs (explicit, implicit or conversational). A safeParse-able object, so io.ts's readers
 * report its issues with file, line and field like any record kind's.
 */
export const PreferenceInput = {
  safeParse(v: unknown) {
    const ranking = v !== null && typeof v === 'object' && 'completions' in v;
    return (ranking ? RankingSchema : PairSchema).safeParse(v);
  },
};

/**
 * One in-memory record → PreferenceExample.
 * @throws DataError naming the field (and `where`, e.g. "record 3", when given).
 */
export function parsePreference(v: unknown, where?: string): PreferenceExample {
  const r = PreferenceInput.safeParse(v);
  if (!r.success) {
    const { field, message } = describeZodError(r.error);
    throw new DataError(where ? `${where}: ${message}` : message, { field });
  }
  return where ? { ...r.data, where } : r.data;
}

/** Options of readPreferences: skipInvalid needs a report, as in io.ts. */
export type ReadPreferencesOptions = Omit<ReadRecordsOptions, 'kind' | 'schema'>;

/**
 * Reads a JSONL / JSON / Parquet file of preference records (pairs or rankings; the first
 * valid record fixes which) as PreferenceExamples, each with `where` set to its location.
 * @example for await (const ex of readPreferences('prefs.jsonl')) console.log(ex.ranks);
 */
export async function* readPreferences(
  path: string,
  opts: ReadPreferencesOptions = {},
): AsyncGenerator<PreferenceExample> {
  const o = { ...opts, schema: PreferenceInput } as ReadRecordsOptions;
  for await (const r of readLocatedRecords<PreferenceExample>(path, o)) yield located(r);
}

function located(r: LocatedRecord<PreferenceExample>): PreferenceExample {
  const where = r.line !== undefined ? `${r.file}:${r.line}` : `${r.file} row ${r.row}`;
  return { ...r.record, where };
}

/** All of a file's examples (see readPreferences). */
export async function loadPreferences(
  path: string,
  opts: ReadPreferencesOptions = {},
): Promise<PreferenceExample[]> {
  const out: PreferenceExample[] = [];
  for await (const e of readPreferences(path, opts)) out.push(e);
  return out;
}

/**
 * The ordered pairs of an example with different ranks, better first (DPO and ORPO train on
 * pairs; a K-way ranking gives every untied pair, InstructGPT's C(K,2) less the ties).
 */
export function preferencePairs(e: PreferenceExample): { chosen: number; rejected: number }[] {
  const out: { chosen: number; rejected: number }[] = [];
  for (let i = 0; i < e.completions.length; i++)
    for (let j = i + 1; j < e.completions.length; j++) {
      const a = e.ranks[i]!;
      const b = e.ranks[j]!;
      if (a !== b) out.push(a < b ? { chosen: i, rejected: j } : { chosen: j, rejected: i });
    }
  return out;
}

export type { ReadReport };
