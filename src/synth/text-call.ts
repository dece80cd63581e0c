// One text-in, text-out call through either API style: legacy completions (the prompt is
// continued, as the Self-Instruct and Alpaca papers did) or chat (the prompt becomes one user
// message), so pipelines work with completion-only and chat-only servers alike.
import { z } from 'zod';
import type { LlmClient } from './client.ts';

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

export async function callText(
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
