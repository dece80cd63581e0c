// One text-in, text-out call through either API style: legacy completions (the prompt is
// continued, as the Self-Instruct and Alpaca papers did) or chat (the prompt becomes one user
// message), so pipelines work with completion-only and chat-only servers alike.
import { z } from 'zod';
import { ConfigError } from '../util/errors.ts';
import { type LlmClient, RequestRejectedError } from './client.ts';

export const DecodingParams = z.strictObject({
  max_tokens: z.number().int().positive(),
  temperature: z.number().min(0),
  top_p: z.number().min(0).max(1).default(1),
  presence_penalty: z.number().default(0),
  frequency_penalty: z.number().default(0),
  stop: z.array(z.string()).max(4).default([]),
  logit_bias: z.record(z.string(), z.number()).optional(),
});
export type DecodingParams = z.infer<typeof DecodingParams>;

export type ApiStyle = 'completions' | 'chat';

export interface TextResult {
  text: string;
  finishReason: string | null;
  cached: boolean;
}

/**
 * Whether a refusal is about the request's length: OpenAI (code context_length_exceeded), vLLM
 * ("maximum context length"), llama.cpp ("context size"), and servers that cap max_tokens.
 */
export function isLengthRejection(e: unknown): e is RequestRejectedError {
  if (!(e instanceof RequestRejectedError) || e.status !== 400) return false;
  const d = e.detail;
  return (
    d.code === 'context_length_exceeded' ||
    d.param === 'max_tokens' ||
    d.param === 'max_completion_tokens' ||
    /context (length|size|window)|max_tokens/i.test(d.message ?? '')
  );
}

/**
 * Sends `prompt` and returns the first choice's text. `setting` names the pipeline's config
 * key for `params` (e.g. `decoding.instructions`): when the endpoint refuses the request's
 * length, every later request would be refused too, so the run stops with a ConfigError that
 * names `<setting>.max_tokens` instead of retrying or skipping.
 */
export async function callText(
  client: LlmClient,
  api: ApiStyle,
  prompt: string,
  params: DecodingParams,
  seed: number,
  setting = 'decoding',
): Promise<TextResult> {
  try {
    return await send(client, api, prompt, params, seed);
  } catch (e) {
    if (!isLengthRejection(e)) throw e;
    throw new ConfigError(
      `the endpoint refused max_tokens ${params.max_tokens}: ${e.detail.message ?? e.message}`,
      { field: `${setting}.max_tokens` },
      {
        hint: `set ${setting}.max_tokens lower (under 'pipeline:' in --config) so that the prompt plus max_tokens fit the model's context, or use a model with a longer context`,
        cause: e,
      },
    );
  }
}

async function send(
  client: LlmClient,
  api: ApiStyle,
  prompt: string,
  params: DecodingParams,
  seed: number,
): Promise<TextResult> {
  const common = {
    max_tokens: params.max_tokens,
    temperature: params.temperature,
    top_p: params.top_p,
    presence_penalty: params.presence_penalty,
    frequency_penalty: params.frequency_penalty,
    ...(params.stop.length > 0 ? { stop: params.stop } : {}),
    ...(params.logit_bias ? { logit_bias: params.logit_bias } : {}),
    seed,
  };
  if (api === 'chat') {
    const { response, meta } = await client.chatWithMeta({
      ...common,
      messages: [{ role: 'user', content: prompt }],
    });
    const c = response.choices[0]!;
    return { text: c.message.content ?? '', finishReason: c.finish_reason, cached: meta.cached };
  }
  const { response, meta } = await client.completeWithMeta({ ...common, prompt });
  const c = response.choices[0]!;
  return { text: c.text, finishReason: c.finish_reason, cached: meta.cached };
}
