// The OpenAI-compatible HTTP API as a Hono app: GET /v1/models, POST /v1/completions and
// /v1/chat/completions (streaming as server-sent events in OpenAI's chunk format, n, sampling
// controls, stop, logprobs / top_logprobs, echo, usage), GET /health, and OpenAI-shaped errors
// for bad JSON, unknown models, over-long prompts, limits and missing keys. Request schemas are
// in schemas.ts, the handlers in handlers.ts, SSE streaming in sse.ts.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { ApiError, type InferenceEngine } from './engine.ts';
import {
  errorBody,
  requestOf,
  type ServeLog,
  setRequestId,
  stderrLog,
  toApiError,
} from './errors.ts';
import { chatCompletions, completions } from './handlers.ts';
import type { ServerContext } from './jobs.ts';

export interface ServeOptions {
  /** Name clients use in `model`. @default 'instructkit' */
  modelName?: string;
  /** Bearer token required in Authorization; none when absent. */
  apiKey?: string;
  /** Largest accepted request body in bytes. @default 1_000_000 */
  maxBodyBytes?: number;
  /** Largest max_tokens accepted (also caps chat's default, the rest of the context). @default 1024 */
  maxTokens?: number;
  /** Largest total of prompt tokens in one request (all its prompts). @default 65_536 */
  maxPromptTokens?: number;
  /** Receives the details of unexpected errors (clients get a request id). @default JSON lines on stderr */
  log?: ServeLog;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/**
 * Whether an Authorization header carries the key. Compared in constant time over SHA-256
 * digests (equal lengths whatever the header), so response timing reveals nothing of the key.
 */
function keyMatches(header: string | undefined, apiKey: string): boolean {
  return timingSafeEqual(digest(header ?? ''), digest(`Bearer ${apiKey}`));
}

/** Builds the app; `engine` runs the model in its worker. */
export function createApp(engine: InferenceEngine, opts: ServeOptions = {}): Hono {
  const ctx: ServerContext = {
    engine,
    modelName: opts.modelName ?? 'instructkit',
    maxTokensCap: opts.maxTokens ?? 1024,
    maxPromptTokens: opts.maxPromptTokens ?? 65_536,
    log: opts.log ?? stderrLog,
  };
  const app = new Hono();

  // Every reply carries a request id, as OpenAI's do; a 500 quotes it and the log has the rest.
  app.use('*', async (c, next) => {
    const id = `req_${randomBytes(12).toString('hex')}`;
    setRequestId(c, id);
    c.header('x-request-id', id);
    await next();
  });

  app.onError((err, c) => {
    const req = requestOf(c);
    const e = toApiError(err, req, ctx.log);
    c.header('x-request-id', req.requestId);
    // Over capacity clears as soon as a request finishes: tell clients to come back shortly.
    if (e.status === 429) c.header('Retry-After', '1');
    return c.json(errorBody(e), e.status as 400);
  });
  app.notFound((c) =>
    c.json(errorBody(new ApiError(404, `no route ${c.req.method} ${c.req.path}`)), 404),
  );

  app.get('/health', (c) => c.json({ status: 'ok', in_flight: engine.inFlight }));

  app.use('/v1/*', async (c, next) => {
    if (opts.apiKey && !keyMatches(c.req.header('authorization'), opts.apiKey)) {
      throw new ApiError(
        401,
        'Incorrect API key provided.',
        'invalid_request_error',
        null,
        'invalid_api_key',
      );
    }
    await next();
  });
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: opts.maxBodyBytes ?? 1_000_000,
      onError: (c) =>
        c.json(
          errorBody(
            new ApiError(413, `request body larger than ${opts.maxBodyBytes ?? 1_000_000} bytes`),
          ),
          413,
        ),
    }),
  );

  app.get('/v1/models', (c) =>
    c.json({
      object: 'list',
      data: [{ id: ctx.modelName, object: 'model', created: 0, owned_by: 'instructkit' }],
    }),
  );
  app.post('/v1/completions', (c) => completions(ctx, c));
  app.post('/v1/chat/completions', (c) => chatCompletions(ctx, c));

  return app;
}
