// Turns training records into token ids with a loss mask: prompt/completion pairs, Alpaca
// instruction records (rendered with the instruction_template: the Alpaca layout, the chat
// template, or a Jinja prompt template), task examples, chat conversations (through the
// model's chat template, loss on assistant turns and their end-of-turn marker) and plain text
// ({text} records or .txt lines, loss on everything). Bad records name the file, line and field.
import { readFileSync } from 'node:fs';
import { instructionToChat, instructionToPromptCompletion } from '../data/convert.ts';
import { formatOf } from '../data/io.ts';
import { readJsonArray } from '../data/json-array.ts';
import { readParquetRows } from '../data/parquet.ts';
import {
  ChatRecord,
  InstructionRecord,
  PromptCompletionRecord,
  TaskExample,
} from '../data/records.ts';
import { renderChatTemplate } from '../data/templates/chat.ts';
import { JinjaTemplate } from '../data/templates/jinja.ts';
import type { Tokenizer } from '../models/tokenizer.ts';
import { ConfigError, DataError, TrainingError } from '../util/errors.ts';
import { readJsonl } from '../util/jsonl.ts';
import { type TokenizedExample, type TokenizeOptions, tokenizePair, tokenizeText } from './data.ts';

/** A file path, or records in memory. */
export type ExampleSource = string | readonly Record<string, unknown>[];

/** Built-in ways to render {instruction, input, output} records. */
export const INSTRUCTION_TEMPLATES = ['alpaca', 'chat'] as const;

/**
 * How instruction records become training text: 'alpaca' (ALPACA_LAYOUT prompt, the output as
 * completion), 'chat' (a user turn and an assistant turn through the model's chat template), or
 * a prompt renderer built from a Jinja template over {instruction, input}.
 */
export type InstructionFormat =
  | { kind: 'alpaca' }
  | { kind: 'chat' }
  | { kind: 'jinja'; source: string; render: (r: InstructionRecord) => string };

/**
 * Resolves the instruction_template setting: a built-in name, or a Jinja template string
 * (anything with `{{` or `{%`) that renders the prompt and uses `instruction`.
 * @throws ConfigError naming instruction_template for an unknown name or a template that does
 *   not parse, fails to render, or ignores the instruction.
 */
export function instructionFormat(spec: string): InstructionFormat {
  const r = tryInstructionFormat(spec);
  if (typeof r === 'string') throw new ConfigError(r, { field: 'instruction_template' });
  return r;
}

/** The format, or what is wrong with the setting (for config validation). */
export function tryInstructionFormat(spec: string): InstructionFormat | string {
  if (spec === 'alpaca' || spec === 'chat') return { kind: spec };
  if (!/\{\{|\{%/.test(spec))
    return `unknown instruction template '${spec}' (use ${INSTRUCTION_TEMPLATES.join(', ')}, or a Jinja template of the prompt such as "{{ instruction }}\\n{{ input }}\\nAnswer:")`;
  let t: JinjaTemplate;
  try {
    t = new JinjaTemplate(spec);
  } catch (e) {
    return `Jinja syntax error: ${(e as Error).message}`;
  }
  const render = (r: InstructionRecord) =>
    t.render({ instruction: r.instruction, input: r.input ?? '' });
  const probe = '\u0001instruction\u0001';
  try {
    if (!render({ instruction: probe, input: 'x', output: '' }).includes(probe))
      return 'the template does not use {{ instruction }}';
  } catch (e) {
    return `the template fails to render: ${(e as Error).message}`;
  }
  return { kind: 'jinja', source: spec, render };
}

function chatExample(
  tok: Tokenizer,
  template: string,
  r: ChatRecord,
  where: string,
  completionOnly: boolean,
): TokenizedExample {
  let rendered: ReturnType<typeof renderChatTemplate>;
  try {
    rendered = renderChatTemplate(template, r.messages, {
      bosToken: tok.bos?.token ?? null,
      eosToken: tok.eos?.token ?? null,
    });
  } catch (e) {
    // A template that drops a message's content cannot be masked: name the example.
    if (e instanceof DataError)
      throw new TrainingError(`${where}: ${e.message}`, undefined, {
        cause: e,
        hint: 'the chat template must render every message content verbatim',
      });
    throw e;
  }
  const ids: number[] = [];
  const mask: number[] = [];
  const push = (text: string, inLoss: boolean) => {
    if (text === '') return;
    for (const id of tok.encode(text, { addSpecialTokens: false })) {
      ids.push(id);
      mask.push(inLoss || !completionOnly ? 1 : 0);
    }
  };
  let cursor = 0;
  let assistant = 0;
  for (const [i, s] of rendered.spans.entries()) {
    if (s.role !== 'assistant') continue;
    if (s.contentEnd <= s.contentStart)
      throw new TrainingError(
        `${where}: assistant message ${i} renders empty (an empty reply, or a template that leaves the assistant span empty), so there is nothing to learn from it`,
      );
    if (s.end === s.contentEnd) {
      throw new TrainingError(
        `${where}: the chat template leaves no end-of-turn marker after the assistant reply, so the model could not learn to stop`,
      );
    }
    push(rendered.text.slice(cursor, s.contentStart), false);
    push(rendered.text.slice(s.contentStart, s.end), true);
    cursor = s.end;
    assistant++;
  }
  if (assistant === 0)
    throw new TrainingError(`${where}: the conversation has no assistant message to learn from`);
  push(rendered.text.slice(cursor), false);
  return { ids, lossMask: mask };
}

/** Tokenisation settings plus how instruction records are rendered. */
export interface ExampleOptions extends TokenizeOptions {
  /** @default alpaca */
  instructionFormat?: InstructionFormat;
}

function toExample(
  raw: Record<string, unknown>,
  tok: Tokenizer,
  o: ExampleOptions,
  chatTemplate: string | null,
  loc: { file?: string; line?: number },
): TokenizedExample {
  const parse = <T>(schema: {
    safeParse(
      v: unknown,
    ):
      | { success: true; data: T }
      | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
  }): T => {
    const r = schema.safeParse(raw);
    if (!r.success) {
      const i = r.error.issues[0]!;
      throw new DataError(i.message, { ...loc, field: i.path.join('.') });
    }
    return r.data;
  };
  const where = loc.file ? `${loc.file}:${loc.line}` : `record ${loc.line}`;
  if ('text' in raw && Object.keys(raw).length === 1) {
    if (typeof raw.text !== 'string')
      throw new DataError('text must be a string', { ...loc, field: 'text' });
    return tokenizeText(tok, raw.text, o.eosId);
  }
  if ('messages' in raw) {
    if (!chatTemplate)
      throw new DataError('chat records need a tokenizer with a chat_template', {
        ...loc,
        field: 'messages',
      });
    return chatExample(tok, chatTemplate, parse(ChatRecord), where, o.completionOnly ?? true);
  }
  if ('instruction' in raw) {
    const r = parse(InstructionRecord);
    const f = o.instructionFormat ?? { kind: 'alpaca' };
    if (f.kind === 'chat') {
      if (!chatTemplate)
        throw new ConfigError(
          "instruction_template 'chat' needs a tokenizer with a chat_template",
          { field: 'instruction_template' },
        );
      return chatExample(tok, chatTemplate, instructionToChat(r), where, o.completionOnly ?? true);
    }
    let prompt: string;
    try {
      prompt = f.kind === 'jinja' ? f.render(r) : instructionToPromptCompletion(r).prompt;
    } catch (e) {
      throw new DataError(
        `instruction_template fails on this record: ${(e as Error).message}`,
        loc,
      );
    }
    return tokenizePair(tok, prompt, r.output, o);
  }
  if ('prompt' in raw) {
    const pc = parse(PromptCompletionRecord);
    return tokenizePair(tok, pc.prompt, pc.completion, o);
  }
  if ('target' in raw && 'input' in raw) {
    const t = parse(TaskExample);
    return tokenizePair(tok, t.input, t.target, o);
  }
  throw new DataError(
    'not a training record: expected text, prompt/completion, instruction, messages or input/target',
    loc,
  );
}

/** Loads and tokenises every record of a source. */
export async function loadExamples(
  source: ExampleSource,
  tok: Tokenizer,
  o: ExampleOptions,
  chatTemplate: string | null,
): Promise<TokenizedExample[]> {
  const out: TokenizedExample[] = [];
  if (typeof source !== 'string') {
    for (const [i, r] of source.entries())
      out.push(toExample(r, tok, o, chatTemplate, { line: i + 1 }));
    return out;
  }
  if (source.endsWith('.txt')) {
    const lines = readFileSync(source, 'utf8').split('\n');
    for (const l of lines) if (l.trim() !== '') out.push(tokenizeText(tok, l, o.eosId));
    return out;
  }
  const take = (value: unknown, line: number) => {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new DataError('expected a JSON object', { file: source, line });
    }
    out.push(
      toExample(value as Record<string, unknown>, tok, o, chatTemplate, { file: source, line }),
    );
  };
  const format = formatOf(source);
  if (format === 'jsonl') for await (const l of readJsonl(source)) take(l.value, l.line);
  else if (format === 'json') {
    for await (const e of readJsonArray(source)) {
      if (e.error) throw new DataError(`invalid JSON: ${e.error}`, { file: source, line: e.line });
      take(e.value, e.line);
    }
  } else for await (const r of readParquetRows(source)) take(r.value, r.row + 1);
  return out;
}
