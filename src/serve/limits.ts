// The limits a request is checked against before any job is built: the number of choices it
// asks for (prompts × n), max_tokens, and its prompt tokens (counted in the worker, with the
// counting itself bounded). The body size is checked before the body is read (app.ts).
import { ApiError } from './engine.ts';
import type { ServerContext } from './jobs.ts';

/**
 * Refuses a request for more choices than the server ever runs at once. Called on the raw
 * JSON before it is validated, so a body of 300,000 prompts is refused without walking them.
 */
export function checkChoices(ctx: ServerContext, prompts: number, n: number, param: string): void {
  const max = ctx.engine.maxConcurrent;
  if (prompts * n <= max) return;
  throw new ApiError(
    400,
    `this request asks for ${prompts * n} completions (${prompts} prompt${prompts === 1 ? '' : 's'} × n ${n}); the server runs at most ${max} at once`,
    'invalid_request_error',
    prompts > max ? param : 'n',
  );
}

/** Refuses a request whose prompt count (from the body's scan, if sure) is over the limit. */
export function refuseManyPrompts(ctx: ServerContext, prompts: number | null): void {
  const max = ctx.engine.maxConcurrent;
  if (prompts === null || prompts <= max) return;
  throw new ApiError(
    400,
    `this request has more than ${max} prompts; the server runs at most ${max} completions at once`,
    'invalid_request_error',
    'prompt',
  );
}

/** checkChoices on a body not yet validated (anything that is not a count is left to zod). */
export function checkRawChoices(ctx: ServerContext, body: unknown): void {
  if (typeof body !== 'object' || body === null) return;
  const { prompt, n } = body as { prompt?: unknown; n?: unknown };
  const choices = typeof n === 'number' && Number.isInteger(n) && n >= 1 ? n : 1;
  if (Array.isArray(prompt)) checkChoices(ctx, prompt.length, choices, 'prompt');
}

/**
 * Refuses, before validation and template rendering (which the main thread does), a chat of
 * more messages than the model has context tokens: chat templates mark each message's role,
 * so every message takes at least one token.
 */
export function checkRawMessages(ctx: ServerContext, body: unknown): void {
  if (typeof body !== 'object' || body === null) return;
  const { messages } = body as { messages?: unknown };
  const context = ctx.engine.info.maxPositions;
  if (Array.isArray(messages) && messages.length > context)
    throw new ApiError(
      400,
      `This model's maximum context length is ${context} tokens; this request has ${messages.length} messages, each of which takes at least one.`,
      'invalid_request_error',
      'messages',
      'context_length_exceeded',
    );
}

/** Refuses an explicit max_tokens over the server's cap or leaving no room for a prompt. */
export function checkMaxTokens(ctx: ServerContext, maxTokens: number, param: string): void {
  if (maxTokens > ctx.maxTokensCap)
    throw new ApiError(
      400,
      `max_tokens is ${maxTokens}; this server allows at most ${ctx.maxTokensCap}.`,
      'invalid_request_error',
      param,
    );
  // Every prompt has at least one token, so this request cannot fit whatever its prompt:
  // refuse it here, before any stream opens.
  if (maxTokens >= ctx.engine.info.maxPositions)
    throw new ApiError(
      400,
      `This model's maximum context length is ${ctx.engine.info.maxPositions} tokens; max_tokens ${maxTokens} leaves no room for the prompt.`,
      'invalid_request_error',
      param,
      'context_length_exceeded',
    );
}

/**
 * Counts the prompts' tokens and refuses an empty prompt, a prompt that does not fit the
 * context with `maxTokens` (1 when the client left it to the server), and prompts over the
 * server's total. Returns each prompt's token count.
 */
export async function countPromptTokens(
  ctx: ServerContext,
  prompts: string[],
  maxTokens: number,
  param: string,
): Promise<number[]> {
  const context = ctx.engine.info.maxPositions;
  const total = ctx.maxPromptTokens;
  const { tokens, atLeast } = await ctx.engine.countTokens(prompts, {
    perPrompt: context - maxTokens,
    total,
  });
  const where = (i: number) => (prompts.length > 1 ? `prompt ${i}` : 'the prompt');
  let sum = 0;
  for (const [i, k] of tokens.entries()) {
    sum += k;
    const has = atLeast && i === tokens.length - 1 ? `at least ${k}` : `${k}`;
    if (k === 0) throw new ApiError(400, `${where(i)} is empty`, 'invalid_request_error', param);
    if (k + maxTokens > context)
      throw new ApiError(
        400,
        `This model's maximum context length is ${context} tokens; ${where(i)} has ${has} and max_tokens is ${maxTokens}.`,
        'invalid_request_error',
        param,
        'context_length_exceeded',
      );
    if (sum > total)
      throw new ApiError(
        400,
        `the prompts of this request have ${atLeast ? 'at least ' : ''}${sum} tokens; this server accepts at most ${total} per request`,
        'invalid_request_error',
        param,
      );
  }
  return tokens;
}
