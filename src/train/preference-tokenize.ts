// Tokenising preference examples (data/preference.ts) for the reward model, DPO and ORPO: the
// prompt and each completion are tokenised separately and concatenated, so no token merges
// across the boundary and every completion of a prompt continues the same prompt tokens
// (TRL issue #1153: prompt+chosen and prompt+rejected tokenised whole disagree on the prompt's
// last token). Conversational examples are rendered through the model's chat template: the
// prompt with the generation prompt, the completion as the rest of the full conversation. EOS
// always ends a completion. A prompt that leaves no room for a completion within max_length is
// a DataError naming the record, or a counted, listed skip.

import {
  loadPreferences,
  type PreferenceExample,
  type PreferenceText,
  parsePreference,
} from '../data/preference.ts';
import type { ChatMessage } from '../data/records.ts';
import { applyChatTemplate, renderChatTemplate } from '../data/templates/chat.ts';
import type { Tokenizer } from '../models/tokenizer.ts';
import { DataError } from '../util/errors.ts';
import { recordSkip, type SkipReport } from '../util/jsonl.ts';

/** A tokenised preference example: shared prompt ids, completion ids (each ending in EOS). */
export interface TokenizedPreference {
  prompt: number[];
  completions: number[][];
  ranks: number[];
  margin?: number;
  where?: string;
}

export interface PreferenceTokenizeOptions {
  eosId: number;
  /** Prompt + completion tokens allowed; longer completions keep their start. */
  maxLength: number;
  /** Needed for conversational examples. */
  chatTemplate?: string | null;
}

function renderChat(
  tok: Tokenizer,
  template: string | null | undefined,
  prompt: ChatMessage[],
  completion: ChatMessage[],
  where: string,
): { prompt: string; completion: string } {
  if (!template)
    throw new DataError(
      `${where}: conversational preferences need a tokenizer with a chat_template`,
      {
        field: 'chat_template',
      },
    );
  const opts = { bosToken: tok.bos?.token ?? null, eosToken: tok.eos?.token ?? null };
  const p = applyChatTemplate(template, prompt, { ...opts, addGenerationPrompt: true });
  const rendered = renderChatTemplate(template, [...prompt, ...completion], opts);
  // The completion ends with its turn's end-of-turn marker; what a template adds after it
  // (ChatML's newline) is not part of the reply, and EOS must be the last token.
  const last = rendered.spans[rendered.spans.length - 1];
  const full = rendered.text.slice(0, last ? last.end : rendered.text.length);
  if (!full.startsWith(p))
    throw new DataError(
      `${where}: the chat template renders the prompt differently with and without the reply, so the completion cannot be cut off it`,
      { field: 'chat_template' },
    );
  return { prompt: p, completion: full.slice(p.length) };
}

const text = (t: PreferenceText): string => t as string;

/**
 * One example → token ids. Completions longer than the room the prompt leaves are cut at the
 * end (TRL truncation_mode keep_start); their EOS goes with the cut.
 * @throws DataError when the prompt leaves no room for a completion token, or a completion
 *   tokenises to nothing.
 */
export function tokenizePreference(
  tok: Tokenizer,
  ex: PreferenceExample,
  o: PreferenceTokenizeOptions,
): TokenizedPreference {
  const where = ex.where ?? 'preference record';
  const enc = (s: string) => (s === '' ? [] : tok.encode(s, { addSpecialTokens: false }));
  let prompt: number[] = [];
  const completions: number[][] = [];
  for (const [i, c] of ex.completions.entries()) {
    let ptext: string;
    let ctext: string;
    if (Array.isArray(ex.prompt)) {
      const r = renderChat(tok, o.chatTemplate, ex.prompt, c as ChatMessage[], where);
      ptext = r.prompt;
      ctext = r.completion;
    } else {
      ptext = ex.prompt;
      ctext = text(c);
    }
    if (i === 0) prompt = enc(ptext);
    const ids = enc(ctext);
    if (ids.length === 0) throw new DataError(`${where}: completion ${i} tokenises to nothing`);
    if (ids[ids.length - 1] !== o.eosId) ids.push(o.eosId);
    completions.push(ids);
  }
  const room = o.maxLength - prompt.length;
  if (room < 1)
    throw new DataError(
      `${where}: the prompt is ${prompt.length} tokens, which leaves no room for the completion within max_length ${o.maxLength}`,
      {},
      { hint: 'raise max_length, shorten the prompt, or pass --skip-invalid to count and skip it' },
    );
  return {
    prompt,
    completions: completions.map((c) => (c.length > room ? c.slice(0, room) : c)),
    ranks: ex.ranks,
    ...(ex.margin !== undefined ? { margin: ex.margin } : {}),
    ...(ex.where !== undefined ? { where: ex.where } : {}),
  };
}

/** A preference file, or examples / raw records in memory. */
export type PreferenceSource = string | readonly (PreferenceExample | Record<string, unknown>)[];

export interface LoadPreferenceOptions extends PreferenceTokenizeOptions {
  /** Count and list bad records in `report` instead of throwing. */
  skipInvalid?: boolean;
  report?: SkipReport;
}

/**
 * Reads (or takes) preference records and tokenises them. With skipInvalid, records that fail
 * validation or tokenisation are counted and listed with their location in `report`.
 */
export async function loadTokenizedPreferences(
  source: PreferenceSource,
  tok: Tokenizer,
  o: LoadPreferenceOptions,
): Promise<{ examples: TokenizedPreference[]; truncated: number }> {
  if (o.skipInvalid && !o.report)
    throw new DataError('skipInvalid needs a report to count the skipped records in', {
      field: 'report',
    });
  const raw: PreferenceExample[] = [];
  if (typeof source === 'string')
    raw.push(
      ...(await loadPreferences(
        source,
        o.skipInvalid ? { skipInvalid: true, report: o.report! } : {},
      )),
    );
  else
    for (const [i, r] of source.entries()) {
      const where = `record ${i + 1}`;
      if ('completions' in r && 'ranks' in r) {
        raw.push({ ...(r as PreferenceExample), where: (r as PreferenceExample).where ?? where });
        continue;
      }
      try {
        raw.push(parsePreference(r, where));
      } catch (e) {
        if (!o.skipInvalid || !(e instanceof DataError)) throw e;
        recordSkip(o.report!, e.message);
      }
    }
  const examples: TokenizedPreference[] = [];
  let truncated = 0;
  for (const ex of raw) {
    try {
      const t = tokenizePreference(tok, ex, o);
      if (t.completions.some((c) => c[c.length - 1] !== o.eosId)) truncated++;
      examples.push(t);
    } catch (e) {
      if (!o.skipInvalid || !(e instanceof DataError)) throw e;
      recordSkip(o.report!, e.message);
    }
  }
  return { examples, truncated };
}
