// Record shapes that every stage reads and writes, named by their fields as in TRL / Alpaca.
// Validation is zod; conversions between shapes live in convert.ts.
import { z } from 'zod';

/** Alpaca / Self-Instruct: {instruction, input, output}. `input` may be empty. */
export const InstructionRecord = z.strictObject({
  instruction: z.string(),
  input: z.string().default(''),
  output: z.string(),
});
export type InstructionRecord = z.infer<typeof InstructionRecord>;

/** TRL "prompt-completion" (standard, non-conversational). */
export const PromptCompletionRecord = z.strictObject({
  prompt: z.string(),
  completion: z.string(),
});
export type PromptCompletionRecord = z.infer<typeof PromptCompletionRecord>;

export const Role = z.enum(['system', 'user', 'assistant', 'tool']);
export type Role = z.infer<typeof Role>;

export const ChatMessage = z.object({
  role: Role,
  content: z.string(),
  /** OpenAI-style tool calls, kept opaque here. */
  tool_calls: z.array(z.unknown()).optional(),
  name: z.string().optional(),
  tool_call_id: z.string().optional(),
});
export type ChatMessage = z.infer<typeof ChatMessage>;

/** TRL "conversational language modeling": {messages:[{role, content}]}. */
export const ChatRecord = z.strictObject({
  messages: z.array(ChatMessage).min(1),
});
export type ChatRecord = z.infer<typeof ChatRecord>;

/** Pairwise preference (DPO, reward model): {prompt, chosen, rejected}. */
export const PreferenceRecord = z.strictObject({
  prompt: z.string(),
  chosen: z.string(),
  rejected: z.string(),
});
export type PreferenceRecord = z.infer<typeof PreferenceRecord>;

/**
 * K-way ranking (InstructGPT labelers rank K outputs): `ranking[i]` is the rank of
 * `completions[i]`, 0 = best. Ties share a rank.
 */
export const RankingRecord = z
  .strictObject({
    prompt: z.string(),
    completions: z.array(z.string()).min(2),
    ranking: z.array(z.number().int().min(0)),
  })
  .superRefine((r, ctx) => {
    if (r.ranking.length !== r.completions.length) {
      ctx.addIssue({
        code: 'custom',
        path: ['ranking'],
        message: `has ${r.ranking.length} entries but there are ${r.completions.length} completions`,
      });
    }
  });
export type RankingRecord = z.infer<typeof RankingRecord>;

/** A rendered example from a task collection: input text, target text, plus provenance. */
export const TaskExample = z.strictObject({
  task: z.string(),
  category: z.string().optional(),
  template: z.string().optional(),
  input: z.string(),
  target: z.string(),
  /** Alternative correct targets (Super-NI lists several references). */
  references: z.array(z.string()).optional(),
  /** Answer options for multiple-choice scoring. */
  choices: z.array(z.string()).optional(),
  id: z.string().optional(),
});
export type TaskExample = z.infer<typeof TaskExample>;

export const recordSchemas = {
  instruction: InstructionRecord,
  prompt_completion: PromptCompletionRecord,
  chat: ChatRecord,
  preference: PreferenceRecord,
  ranking: RankingRecord,
  task: TaskExample,
} as const;

export type RecordKind = keyof typeof recordSchemas;
export type RecordOf<K extends RecordKind> = z.infer<(typeof recordSchemas)[K]>;

/** Guesses a record's kind from its keys; undefined when none fits. */
export function detectKind(value: unknown): RecordKind | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const o = value as Record<string, unknown>;
  if ('messages' in o) return 'chat';
  if ('chosen' in o && 'rejected' in o) return 'preference';
  if ('completions' in o && 'ranking' in o) return 'ranking';
  if ('instruction' in o && 'output' in o) return 'instruction';
  if ('prompt' in o && 'completion' in o) return 'prompt_completion';
  if ('task' in o && 'input' in o && 'target' in o) return 'task';
  return undefined;
}
