// Request bodies of /v1/completions and /v1/chat/completions as zod schemas, following the
// OpenAI API reference's fields.
import { z } from 'zod';
import { ApiError } from './engine.ts';

const Stop = z.union([z.string(), z.array(z.string()).max(4)]).nullish();
const Sampling = {
  model: z.string(),
  max_tokens: z.number().int().min(0).nullish(),
  max_completion_tokens: z.number().int().min(0).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  top_k: z.number().int().min(0).nullish(),
  repetition_penalty: z.number().positive().nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  stop: Stop,
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
  seed: z.number().int().nullish(),
  user: z.string().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z
    .record(z.string().regex(/^\d+$/, 'keys must be token ids'), z.number().min(-100).max(100))
    .nullish(),
};
export const CompletionRequest = z.looseObject({
  ...Sampling,
  prompt: z.union([z.string(), z.array(z.string()).min(1)]),
  logprobs: z.number().int().min(0).max(20).nullish(),
  echo: z.boolean().nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;
export const ChatRequest = z.looseObject({
  ...Sampling,
  messages: z
    .array(
      z.looseObject({
        role: z.enum(['system', 'user', 'assistant', 'tool']),
        content: z.string().nullish(),
      }),
    )
    .min(1),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

/** Validates a request body; the first problem becomes a 400 naming its field in `param`. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const r = schema.safeParse(body);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const param = i.path.join('.') || null;
    throw new ApiError(
      400,
      param ? `${param}: ${i.message}` : i.message,
      'invalid_request_error',
      param,
    );
  }
  return r.data;
}
