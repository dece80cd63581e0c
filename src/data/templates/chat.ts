// HF chat templates: render a tokenizer_config.json `chat_template` over messages with the
// settings transformers uses (trim_blocks, lstrip_blocks, raise_exception, strftime_now), and
// return each message's character span so a trainer can put the loss on exactly the assistant
// replies plus their end-of-turn marker. Tokenisation of the spans is the models stage's job.

import { DataError } from '../../util/errors.ts';
import { PyRandom } from '../../util/pyrandom.ts';
import type { ChatMessage } from '../records.ts';
import { type JinjaLimits, JinjaTemplate } from './jinja.ts';

export interface MessageSpan {
  role: string;
  /** Start of the whole turn (its header); equals the previous turn's end. */
  start: number;
  /** End of the turn: after the content and the end-of-turn marker, when one follows. */
  end: number;
  /** text.slice(contentStart, contentEnd) is the content exactly as the template rendered it. */
  contentStart: number;
  contentEnd: number;
}

export interface RenderedChat {
  text: string;
  spans: MessageSpan[];
  /** Offset where the generation prompt starts (text.length if there is none). */
  generationPromptStart: number;
}

export interface ChatRenderOptions {
  addGenerationPrompt?: boolean;
  bosToken?: string | null;
  eosToken?: string | null;
  /** Tool definitions passed as `tools`. */
  tools?: unknown[];
  /** Extra template variables (e.g. enable_thinking, date_string). */
  extra?: Record<string, unknown>;
  /** Strings that close a turn, searched right after each content; default: common markers. */
  endOfTurn?: readonly string[];
  /** Clock for strftime_now, so renders are reproducible. Default: 2026-01-01T00:00:00Z. */
  now?: Date;
  /** Render budgets (default DEFAULT_JINJA_LIMITS): the template comes with the model. */
  limits?: Partial<JinjaLimits>;
}

const DEFAULT_END_OF_TURN = [
  '<|eot_id|>',
  '<|im_end|>',
  '<|end|>',
  '<end_of_turn>',
  '</s>',
  '<|endoftext|>',
  '<|end_of_text|>',
];

const compiled = new Map<string, JinjaTemplate>();

function strftime(d: Date, fmt: string): string {
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  const days = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
  const months = [
    'January',
    'February',
    'March',
    'April',
    'May',
    'June',
    'July',
    'August',
    'September',
    'October',
    'November',
    'December',
  ];
  return fmt.replace(/%([a-zA-Z%])/g, (_, c: string) => {
    switch (c) {
      case 'Y':
        return String(d.getUTCFullYear());
      case 'm':
        return pad(d.getUTCMonth() + 1);
      case 'd':
        return pad(d.getUTCDate());
      case 'H':
        return pad(d.getUTCHours());
      case 'M':
        return pad(d.getUTCMinutes());
      case 'S':
        return pad(d.getUTCSeconds());
      case 'B':
        return months[d.getUTCMonth()]!;
      case 'b':
        return months[d.getUTCMonth()]!.slice(0, 3);
      case 'A':
        return days[d.getUTCDay()]!;
      case 'a':
        return days[d.getUTCDay()]!.slice(0, 3);
      case '%':
        return '%';
      default:
        return `%${c}`;
    }
  });
}

function compile(source: string, now: Date): JinjaTemplate {
  const key = `${now.toISOString()}\u0000${source}`;
  let t = compiled.get(key);
  if (!t) {
    try {
      t = new JinjaTemplate(source, {
        trimBlocks: true,
        lstripBlocks: true,
        name: 'chat_template',
        globals: {
          raise_exception: (msg: unknown) => {
            throw new DataError(`chat template raised: ${String(msg)}`, { field: 'chat_template' });
          },
          strftime_now: (fmt: unknown) => strftime(now, String(fmt)),
        },
      });
    } catch (e) {
      throw new DataError(`chat template does not parse: ${(e as Error).message}`, {
        field: 'chat_template',
      });
    }
    if (compiled.size > 256) compiled.clear();
    compiled.set(key, t);
  }
  return t;
}

/** Renders a chat template to text, as transformers' apply_chat_template(tokenize=False). */
export function applyChatTemplate(
  template: string,
  messages: readonly ChatMessage[],
  opts: ChatRenderOptions = {},
): string {
  const t = compile(template, opts.now ?? new Date(Date.UTC(2026, 0, 1)));
  const context: Record<string, unknown> = {
    messages: messages.map((m) => ({ ...m })),
    add_generation_prompt: opts.addGenerationPrompt ?? false,
    bos_token: opts.bosToken ?? '',
    eos_token: opts.eosToken ?? '',
    ...(opts.tools ? { tools: opts.tools } : {}),
    ...opts.extra,
  };
  try {
    return t.render(context, { rng: new PyRandom(0), limits: opts.limits });
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(
      `chat template failed: ${(e as Error).message}`,
      { field: 'chat_template' },
      { cause: e },
    );
  }
}

// Sentinels replace each content for a structural render; they contain no whitespace, so trims
// inside templates leave them intact.
const sentinel = (i: number): string => `\u0001ikmsg${i}\u0002`;

/** Aligns the real render against the sentinel render; undefined when the structure differs. */
function alignBySentinels(
  real: string,
  skeleton: string,
  n: number,
): Array<[number, number]> | undefined {
  const literal: string[] = [];
  let cursor = 0;
  for (let i = 0; i < n; i++) {
    const at = skeleton.indexOf(sentinel(i), cursor);
    if (at < 0) return undefined;
    literal.push(skeleton.slice(cursor, at));
    cursor = at + sentinel(i).length;
  }
  literal.push(skeleton.slice(cursor));
  if (!real.startsWith(literal[0]!)) return undefined;
  const out: Array<[number, number]> = [];
  let pos = literal[0]!.length;
  for (let i = 0; i < n; i++) {
    const next = literal[i + 1]!;
    const end = i === n - 1 ? real.length - next.length : real.indexOf(next, pos);
    if (end < pos || (i === n - 1 && !real.endsWith(next))) return undefined;
    out.push([pos, end]);
    pos = end + next.length;
  }
  return out;
}

/**
 * Renders the template and locates every message. Content is located by aligning against a
 * render where each content is a unique sentinel (robust to contents that also appear in
 * headers); if the template branches on content, the verbatim content is searched in order.
 * @throws DataError naming the message when its content cannot be located.
 */
export function renderChatTemplate(
  template: string,
  messages: readonly ChatMessage[],
  opts: ChatRenderOptions = {},
): RenderedChat {
  const text = applyChatTemplate(template, messages, opts);
  const noPrompt = opts.addGenerationPrompt
    ? applyChatTemplate(template, messages, { ...opts, addGenerationPrompt: false })
    : text;
  const generationPromptStart =
    opts.addGenerationPrompt && text.startsWith(noPrompt) ? noPrompt.length : text.length;

  let ranges: Array<[number, number]> | undefined;
  try {
    const skeleton = applyChatTemplate(
      template,
      messages.map((m, i) => ({ ...m, content: sentinel(i) })),
      opts,
    );
    ranges = alignBySentinels(text, skeleton, messages.length);
  } catch {
    ranges = undefined;
  }
  if (!ranges) {
    ranges = [];
    let cursor = 0;
    for (let i = 0; i < messages.length; i++) {
      const content = messages[i]!.content;
      let at = text.indexOf(content, cursor);
      let len = content.length;
      if (at < 0) {
        const trimmed = content.trim();
        at = text.indexOf(trimmed, cursor);
        len = trimmed.length;
      }
      if (at < 0) {
        throw new DataError(
          `cannot locate the content of message ${i} (${messages[i]!.role}) in the rendered chat template`,
          {
            field: `messages.${i}.content`,
          },
        );
      }
      ranges.push([at, at + len]);
      cursor = at + len;
    }
  }

  const markers = [
    ...(opts.endOfTurn ?? DEFAULT_END_OF_TURN),
    ...(opts.eosToken ? [opts.eosToken] : []),
  ].sort((a, b) => b.length - a.length);
  const spans: MessageSpan[] = [];
  let start = 0;
  for (let i = 0; i < messages.length; i++) {
    const [contentStart, contentEnd] = ranges[i]!;
    const limit = i + 1 < messages.length ? ranges[i + 1]![0] : generationPromptStart;
    const marker = markers.find(
      (m) => m !== '' && text.startsWith(m, contentEnd) && contentEnd + m.length <= limit,
    );
    const end = contentEnd + (marker?.length ?? 0);
    spans.push({ role: messages[i]!.role, start, end, contentStart, contentEnd });
    start = end;
  }
  return { text, spans, generationPromptStart };
}
