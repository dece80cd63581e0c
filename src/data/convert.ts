// Pure conversions between the record shapes of records.ts: Alpaca instruction <-> chat <->
// prompt/completion, ranking -> pairwise preferences, task example -> prompt/completion or chat.
// Multi-turn chats are not flattened here: that needs a chat template (see the template modules).
import { ConfigError, DataError } from '../util/errors.ts';
import type {
  ChatMessage,
  ChatRecord,
  InstructionRecord,
  PreferenceRecord,
  PromptCompletionRecord,
  RankingRecord,
  RecordKind,
  TaskExample,
} from './records.ts';

/**
 * The Alpaca-style prompt layout used for instruction -> prompt/completion. Same structure as
 * Stanford Alpaca's (a one-sentence preamble, then `### ` headed sections, the response header
 * last), but the wording is ours. The completion is the bare output; the prompt ends with the
 * response header and a newline, so a model learns to start answering right after it.
 *
 * With input:
 * ```
 * The task below comes with some text to work on. Carry out the task and write the answer.
 *
 * ### Task:
 * {instruction}
 *
 * ### Text:
 * {input}
 *
 * ### Answer:
 * ```
 * Without input the preamble is the first sentence's short form and the Text section is absent.
 */
export const ALPACA_LAYOUT = {
  preambleWithInput:
    'The task below comes with some text to work on. Carry out the task and write the answer.',
  preambleNoInput: 'Carry out the task below and write the answer.',
  instructionHeader: '### Task:',
  inputHeader: '### Text:',
  responseHeader: '### Answer:',
} as const;

/** Options for conversions that build a chat. */
export interface ChatOptions {
  /** A system message to put first. Default: none. */
  system?: string;
  /** Joins instruction and a non-empty input in the user turn. Default '\n\n'. */
  inputSeparator?: string;
}

function userContent(instruction: string, input: string, sep: string): string {
  return input === '' ? instruction : `${instruction}${sep}${input}`;
}

/** Alpaca {instruction, input, output} -> chat [system?, user, assistant]. */
export function instructionToChat(r: InstructionRecord, opts: ChatOptions = {}): ChatRecord {
  const messages: ChatMessage[] = [];
  if (opts.system !== undefined) messages.push({ role: 'system', content: opts.system });
  messages.push({
    role: 'user',
    content: userContent(r.instruction, r.input ?? '', opts.inputSeparator ?? '\n\n'),
  });
  messages.push({ role: 'assistant', content: r.output });
  return { messages };
}

/** Renders the Alpaca-style prompt (ALPACA_LAYOUT) for an instruction and optional input. */
export function alpacaPrompt(instruction: string, input = ''): string {
  const L = ALPACA_LAYOUT;
  if (input === '') {
    return `${L.preambleNoInput}\n\n${L.instructionHeader}\n${instruction}\n\n${L.responseHeader}\n`;
  }
  return (
    `${L.preambleWithInput}\n\n${L.instructionHeader}\n${instruction}\n\n` +
    `${L.inputHeader}\n${input}\n\n${L.responseHeader}\n`
  );
}

/** Alpaca {instruction, input, output} -> {prompt: alpacaPrompt(...), completion: output}. */
export function instructionToPromptCompletion(r: InstructionRecord): PromptCompletionRecord {
  return { prompt: alpacaPrompt(r.instruction, r.input ?? ''), completion: r.output };
}

/**
 * Parses a prompt made by alpacaPrompt back into instruction and input; undefined when the
 * prompt does not follow ALPACA_LAYOUT.
 */
export function parseAlpacaPrompt(
  prompt: string,
): { instruction: string; input: string } | undefined {
  const L = ALPACA_LAYOUT;
  const tail = `\n\n${L.responseHeader}\n`;
  if (!prompt.endsWith(tail)) return undefined;
  const body = prompt.slice(0, -tail.length);
  const headNo = `${L.preambleNoInput}\n\n${L.instructionHeader}\n`;
  const headIn = `${L.preambleWithInput}\n\n${L.instructionHeader}\n`;
  if (body.startsWith(headNo)) return { instruction: body.slice(headNo.length), input: '' };
  if (!body.startsWith(headIn)) return undefined;
  const rest = body.slice(headIn.length);
  const mid = `\n\n${L.inputHeader}\n`;
  const at = rest.lastIndexOf(mid);
  if (at < 0) return undefined;
  return { instruction: rest.slice(0, at), input: rest.slice(at + mid.length) };
}

/**
 * {prompt, completion} -> Alpaca record. Prompts in ALPACA_LAYOUT are parsed back exactly;
 * any other prompt becomes the instruction with an empty input.
 */
export function promptCompletionToInstruction(r: PromptCompletionRecord): InstructionRecord {
  const parsed = parseAlpacaPrompt(r.prompt);
  if (parsed) return { ...parsed, output: r.completion };
  return { instruction: r.prompt, input: '', output: r.completion };
}

/** {prompt, completion} -> chat [system?, user: prompt, assistant: completion]. */
export function promptCompletionToChat(
  r: PromptCompletionRecord,
  opts: Pick<ChatOptions, 'system'> = {},
): ChatRecord {
  const messages: ChatMessage[] = [];
  if (opts.system !== undefined) messages.push({ role: 'system', content: opts.system });
  messages.push({ role: 'user', content: r.prompt }, { role: 'assistant', content: r.completion });
  return { messages };
}

/** Options for reading a single exchange out of a chat. */
export interface SingleTurnOptions {
  /**
   * What to do with a leading system message: 'error' (default, nothing is dropped silently),
   * 'drop' it, or 'prepend' it to the user text separated by a blank line.
   */
  onSystem?: 'error' | 'drop' | 'prepend';
}

/** The one user turn and one assistant turn of a chat, or a DataError saying why not. */
export function singleTurn(
  r: ChatRecord,
  opts: SingleTurnOptions = {},
): { user: string; assistant: string } {
  let msgs = r.messages;
  let prefix = '';
  if (msgs[0]?.role === 'system') {
    const mode = opts.onSystem ?? 'error';
    if (mode === 'error') {
      throw new DataError(
        'chat starts with a system message, which this conversion cannot keep',
        { field: 'messages.0.role' },
        {
          hint: "choose what to do with it: onSystem 'drop' or 'prepend' (--on-system drop|prepend)",
        },
      );
    }
    if (mode === 'prepend') prefix = `${msgs[0].content}\n\n`;
    msgs = msgs.slice(1);
  }
  const off = r.messages.length - msgs.length;
  if (msgs.length !== 2) {
    throw new DataError(
      `expected one user turn and one assistant turn, found ${msgs.length} non-system messages`,
      { field: 'messages' },
      { hint: 'render multi-turn chats with a chat template (instructkit data render)' },
    );
  }
  if (msgs[0]!.role !== 'user')
    throw new DataError(`expected role 'user', found '${msgs[0]!.role}'`, {
      field: `messages.${off}.role`,
    });
  if (msgs[1]!.role !== 'assistant')
    throw new DataError(`expected role 'assistant', found '${msgs[1]!.role}'`, {
      field: `messages.${off + 1}.role`,
    });
  return { user: prefix + msgs[0]!.content, assistant: msgs[1]!.content };
}

/** Single-turn chat -> {prompt: user text, completion: assistant text}. */
export function chatToPromptCompletion(
  r: ChatRecord,
  opts: SingleTurnOptions = {},
): PromptCompletionRecord {
  const t = singleTurn(r, opts);
  return { prompt: t.user, completion: t.assistant };
}

/** Options for chat -> instruction. */
export interface ChatToInstructionOptions extends SingleTurnOptions {
  /**
   * Split the user text at the first occurrence of this separator into instruction and input
   * (undoes instructionToChat when the instruction itself does not contain it; Alpaca inputs
   * often span paragraphs, instructions rarely do). Default: no split.
   */
  splitInput?: string;
}

/** Single-turn chat -> Alpaca record. */
export function chatToInstruction(
  r: ChatRecord,
  opts: ChatToInstructionOptions = {},
): InstructionRecord {
  const t = singleTurn(r, opts);
  if (opts.splitInput !== undefined && opts.splitInput !== '') {
    const at = t.user.indexOf(opts.splitInput);
    if (at >= 0) {
      return {
        instruction: t.user.slice(0, at),
        input: t.user.slice(at + opts.splitInput.length),
        output: t.assistant,
      };
    }
  }
  return { instruction: t.user, input: '', output: t.assistant };
}

/**
 * K-way ranking -> every pair (i, j) with different ranks as {prompt, chosen, rejected}, the
 * better-ranked (lower number) completion chosen. InstructGPT (Ouyang et al. 2022, sec. 3.5)
 * trains the reward model on all C(K,2) pairs of one ranking; tied pairs carry no preference
 * and are left out, so the result has C(K,2) minus the number of tied pairs.
 * Pairs come in (i, j) order with i < j.
 */
export function rankingToPreferences(r: RankingRecord): PreferenceRecord[] {
  const out: PreferenceRecord[] = [];
  const k = r.completions.length;
  for (let i = 0; i < k; i++) {
    for (let j = i + 1; j < k; j++) {
      const ri = r.ranking[i]!;
      const rj = r.ranking[j]!;
      if (ri === rj) continue;
      const [chosen, rejected] = ri < rj ? [i, j] : [j, i];
      out.push({
        prompt: r.prompt,
        chosen: r.completions[chosen]!,
        rejected: r.completions[rejected]!,
      });
    }
  }
  return out;
}

/** Preference -> prompt/completion on the chosen answer (for SFT on the preferred outputs). */
export function preferenceToPromptCompletion(r: PreferenceRecord): PromptCompletionRecord {
  return { prompt: r.prompt, completion: r.chosen };
}

/** Options for task example conversions. */
export interface TaskExampleOptions {
  /** Prepended to the target, e.g. ' ' for LM-style continuation. Default ''. */
  completionPrefix?: string;
  /** A system message to put first in chats. */
  system?: string;
}

/** Task example -> {prompt: input, completion: target}; provenance fields are dropped. */
export function taskToPromptCompletion(
  r: TaskExample,
  opts: TaskExampleOptions = {},
): PromptCompletionRecord {
  return { prompt: r.input, completion: `${opts.completionPrefix ?? ''}${r.target}` };
}

/** Task example -> chat [system?, user: input, assistant: target]. */
export function taskToChat(r: TaskExample, opts: TaskExampleOptions = {}): ChatRecord {
  return promptCompletionToChat({ prompt: r.input, completion: r.target }, opts);
}

/** Options accepted by convertRecord; each conversion reads the fields it knows. */
export type ConvertOptions = ChatOptions &
  ChatToInstructionOptions &
  Omit<TaskExampleOptions, 'system'>;

type Converter = (r: never, o: ConvertOptions) => unknown[];

/** Supported (from -> to) pairs. Each returns zero or more output records. */
const CONVERTERS: Partial<Record<RecordKind, Partial<Record<RecordKind, Converter>>>> = {
  instruction: {
    chat: (r: InstructionRecord, o) => [instructionToChat(r, o)],
    prompt_completion: (r: InstructionRecord) => [instructionToPromptCompletion(r)],
  },
  prompt_completion: {
    chat: (r: PromptCompletionRecord, o) => [promptCompletionToChat(r, o)],
    instruction: (r: PromptCompletionRecord) => [promptCompletionToInstruction(r)],
  },
  chat: {
    prompt_completion: (r: ChatRecord, o) => [chatToPromptCompletion(r, o)],
    instruction: (r: ChatRecord, o) => [chatToInstruction(r, o)],
  },
  ranking: { preference: (r: RankingRecord) => rankingToPreferences(r) },
  preference: { prompt_completion: (r: PreferenceRecord) => [preferenceToPromptCompletion(r)] },
  task: {
    prompt_completion: (r: TaskExample, o) => [taskToPromptCompletion(r, o)],
    chat: (r: TaskExample, o) => [taskToChat(r, { ...o, system: o.system })],
  },
};

/** Kinds a record of kind `from` converts to. */
export function conversionTargets(from: RecordKind): RecordKind[] {
  return Object.keys(CONVERTERS[from] ?? {}) as RecordKind[];
}

/**
 * Returns a function converting one validated record of kind `from` to zero or more records of
 * kind `to` (identity when equal). Throws ConfigError for an unsupported pair.
 */
export function converter(
  from: RecordKind,
  to: RecordKind,
  opts: ConvertOptions = {},
): (record: unknown) => unknown[] {
  if (from === to) return (r) => [r];
  const fn = CONVERTERS[from]?.[to];
  if (!fn) {
    const ok = conversionTargets(from);
    throw new ConfigError(
      `cannot convert ${from} records to ${to}`,
      { field: 'to' },
      {
        hint: ok.length ? `${from} converts to: ${ok.join(', ')}` : `${from} converts to nothing`,
      },
    );
  }
  return (r) => fn(r as never, opts);
}
