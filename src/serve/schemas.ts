// Request bodies of /v1/completions and /v1/chat/completions as zod schemas, following the
// OpenAI API reference's fields. Fields the server implements or that change nothing here
// (`user`, `metadata`, ...) are accepted; fields it does not implement are refused by name, so a
// client never gets a reply that silently ignored its `tools` or `response_format`; any other key
// is refused as OpenAI does ("Unrecognized request argument").
import { z } from 'zod';
import { ApiError } from './engine.ts';

const Stop = z.union([z.string(), z.array(z.string()).max(4)]).nullish();

/** Fields both endpoints share. `top_k` and `repetition_penalty` are vLLM's extensions. */
const Sampling = {
  model: z.string(),
  max_tokens: z.number().int().min(0).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  top_k: z.number().int().min(0).nullish(),
  repetition_penalty: z.number().positive().nullish(),
  n: z.number().int().min(1).max(16).nullish(),
  stop: Stop,
  stream: z.boolean().nullish(),
  // include_obfuscation pads chunks against length side channels; streams here are unpadded.
  stream_options: z
    .strictObject({
      include_usage: z.boolean().nullish(),
      include_obfuscation: z.boolean().nullish(),
    })
    .nullish(),
  seed: z.number().int().nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  logit_bias: z
    .record(z.string().regex(/^\d+$/, 'keys must be token ids'), z.number().min(-100).max(100))
    .nullish(),
  // Accepted and without effect here: an end-user id for abuse tracking.
  user: z.string().nullish(),
};

/**
 * Fields of the OpenAI API this server does not implement, with what the client would lose.
 * A field set to null (or to the value that means "off") is accepted: it asks for nothing.
 */
const UNSUPPORTED: Record<string, { off?: (v: unknown) => boolean; why: string }> = {
  // Completions (legacy).
  suffix: { why: 'insertion (suffix) is not supported' },
  best_of: { off: (v) => v === 1, why: 'best_of other than 1 is not supported' },
  // Chat completions.
  tools: { off: (v) => Array.isArray(v) && v.length === 0, why: 'tool calling is not supported' },
  tool_choice: { off: (v) => v === 'none', why: 'tool calling is not supported' },
  functions: {
    off: (v) => Array.isArray(v) && v.length === 0,
    why: 'function calling is not supported',
  },
  function_call: { off: (v) => v === 'none', why: 'function calling is not supported' },
  response_format: {
    off: (v) => typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'text',
    why: 'structured output (response_format) is not supported; only text',
  },
  audio: { why: 'audio output is not supported' },
  modalities: {
    off: (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text',
    why: 'only the text modality is supported',
  },
  prediction: { why: 'predicted outputs are not supported' },
  reasoning_effort: { why: 'reasoning_effort is for reasoning models; this one is not' },
  verbosity: { why: 'verbosity is not supported' },
  web_search_options: { why: 'web search is not supported' },
  store: { off: (v) => v === false, why: 'stored completions are not supported' },
};

/**
 * The unsupported fields of one endpoint, as the schema sees them: refuseUnsupported has
 * already refused any value that asks for something, so what is left (null, "off") passes.
 */
const off = (...keys: string[]) => Object.fromEntries(keys.map((k) => [k, z.unknown().optional()]));

/** Chat request fields that change nothing without the features above (accepted, ignored). */
const ChatHarmless = {
  parallel_tool_calls: z.boolean().nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  service_tier: z.enum(['auto', 'default']).nullish(),
  prompt_cache_key: z.string().nullish(),
  safety_identifier: z.string().nullish(),
};

export const CompletionRequest = z.strictObject({
  ...Sampling,
  ...off('suffix', 'best_of'),
  prompt: z.union([z.string(), z.array(z.string()).min(1)]),
  logprobs: z.number().int().min(0).max(20).nullish(),
  echo: z.boolean().nullish(),
});
export type CompletionRequest = z.infer<typeof CompletionRequest>;

const Message = z.strictObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.string().nullish(),
  // A participant's name: accepted; chat templates that know it may use it.
  name: z.string().nullish(),
  // A tool message answers a call by id; harmless without tools (which are refused).
  tool_call_id: z.string().nullish(),
});

export const ChatRequest = z.strictObject({
  ...Sampling,
  ...ChatHarmless,
  ...off(
    'tools',
    'tool_choice',
    'functions',
    'function_call',
    'response_format',
    'audio',
    'modalities',
    'prediction',
    'reasoning_effort',
    'verbosity',
    'web_search_options',
    'store',
  ),
  max_completion_tokens: z.number().int().min(0).nullish(),
  messages: z.array(Message).min(1),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(20).nullish(),
});
export type ChatRequest = z.infer<typeof ChatRequest>;

/** Refuses, by name, the first field of `body` that asks for something not implemented. */
function refuseUnsupported(body: unknown): void {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return;
  for (const [key, value] of Object.entries(body)) {
    const u = Object.hasOwn(UNSUPPORTED, key) ? UNSUPPORTED[key]! : undefined;
    if (!u || value === null || u.off?.(value)) continue;
    throw new ApiError(
      400,
      `${key}: ${u.why} by this server.`,
      'invalid_request_error',
      key,
      'unsupported_parameter',
    );
  }
  const messages = (body as { messages?: unknown }).messages;
  if (!Array.isArray(messages)) return;
  for (const [i, m] of messages.entries()) {
    if (typeof m !== 'object' || m === null) continue;
    for (const key of ['tool_calls', 'function_call', 'audio', 'refusal'])
      if (Object.hasOwn(m, key) && (m as Record<string, unknown>)[key] != null)
        throw new ApiError(
          400,
          `messages.${i}.${key}: not supported by this server (tool calling, audio and refusals are not implemented).`,
          'invalid_request_error',
          `messages.${i}.${key}`,
          'unsupported_parameter',
        );
  }
}

/** Validates a request body; the first problem becomes a 400 naming its field in `param`. */
export function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  refuseUnsupported(body);
  const r = schema.safeParse(body);
  if (!r.success) {
    const i = r.error.issues[0]!;
    const path = i.path.map(String);
    if (i.code === 'unrecognized_keys') {
      const param = [...path, i.keys[0]!].join('.');
      throw new ApiError(
        400,
        `Unrecognized request argument supplied: ${param}`,
        'invalid_request_error',
        param,
        'unknown_parameter',
      );
    }
    const param = path.join('.') || null;
    throw new ApiError(
      400,
      param ? `${param}: ${i.message}` : i.message,
      'invalid_request_error',
      param,
    );
  }
  return r.data;
}
