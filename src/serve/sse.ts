// Streaming a request's choices as server-sent events in OpenAI's chunk format.
import { type SSEStreamingApi, streamSSE } from 'hono/streaming';
import type { Completion } from './engine.ts';
import { errorBody, type toApiError } from './errors.ts';
import { type Job, type Run, usage } from './jobs.ts';
import type { TokenInfo } from './protocol.ts';

export interface StreamShape {
  id: string;
  object: string;
  created: number;
  model: string;
  n: number;
  withUsage: boolean;
  opening?: (j: Job) => Record<string, unknown>;
  delta: (j: Job, text: string, tokens: TokenInfo[]) => Record<string, unknown>;
  finish: (j: Job, res: Completion) => Record<string, unknown>;
  /** Turns an unexpected error into its generic reply (and logs it). */
  onError: (e: unknown) => ReturnType<typeof toApiError>;
}

/** An error after the stream opened, as vLLM and OpenAI send it: a data event with `error`. */
async function streamError(s: SSEStreamingApi, e: unknown, o: StreamShape): Promise<void> {
  await s.writeSSE({ data: JSON.stringify(errorBody(o.onError(e))) });
  await s.writeSSE({ data: '[DONE]' });
}

/**
 * Streams a request's choices as OpenAI chunks: optional opening chunks, one delta per piece
 * of text, a finish chunk per choice, usage when asked for, then [DONE].
 */
export function streamChoices(
  c: Parameters<typeof streamSSE>[0],
  run: Run,
  jobs: Job[],
  abort: AbortController,
  o: StreamShape,
) {
  const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
    JSON.stringify({
      id: o.id,
      object: o.object,
      created: o.created,
      model: o.model,
      choices,
      ...(o.withUsage ? { usage: null } : {}),
      ...extra,
    });
  return streamSSE(c, async (s) => {
    s.onAbort(() => abort.abort());
    if (o.opening) for (const j of jobs) await s.writeSSE({ data: chunk([o.opening(j)]) });
    run.open((j, text, tokens) => {
      void s.writeSSE({ data: chunk([o.delta(j, text, tokens)]) });
    });
    let results: Completion[];
    try {
      results = await run.all;
    } catch (e) {
      return streamError(s, e, o);
    }
    for (const [k, res] of results.entries())
      await s.writeSSE({ data: chunk([o.finish(jobs[k]!, res)]) });
    if (o.withUsage) await s.writeSSE({ data: chunk([], { usage: usage(results, o.n) }) });
    await s.writeSSE({ data: '[DONE]' });
  });
}
