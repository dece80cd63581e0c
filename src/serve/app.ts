// The OpenAI-compatible HTTP API as a Hono app: GET /v1/models, POST /v1/completions and
// /v1/chat/completions (streaming as server-sent events in OpenAI's chunk format, n, sampling
// controls, stop, logprobs / top_logprobs, echo, usage), GET /health, and OpenAI-shaped errors
// for bad JSON, unknown models, over-long prompts, limits and missing keys.
import { randomInt } from 'node:crypto';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { type SSEStreamingApi, streamSSE } from 'hono/streaming';
import { z } from 'zod';
import { applyChatTemplate } from '../data/templates/chat.ts';
import { ApiError, type Completion, type InferenceEngine } from './engine.ts';
import type { GenerateParams, TokenInfo } from './protocol.ts';

export interface ServeOptions {
  /** Name clients use in `model`. @default 'instructkit' */
  modelName?: string;
  /** Bearer token required in Authorization; none when absent. */
  apiKey?: string;
  /** Largest accepted request body in bytes. @default 1_000_000 */
  maxBodyBytes?: number;
  /** Largest max_tokens accepted. @default 1024 */
  maxTokens?: number;
}

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
const CompletionRequest = z.looseObject({
  ...Sampling,
  prompt: z.union([z.string(), z.array(z.string()).min(1)]),
  logprobs: z.number().int().min(0).max(20).nullish(),
  echo: z.boolean().nullish(),
});
const ChatRequest = z.looseObject({
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

const errorBody = (e: ApiError) => ({
  error: { message: e.message, type: e.type, param: e.param, code: e.code },
});

function parseBody<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
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

/**
 * The sampling seed of a request: the client's `seed` (reproducible), or else a fresh one, so
 * that repeated sampled requests differ, as with OpenAI.
 */
const requestSeed = (seed: number | null | undefined): number => seed ?? randomInt(0x7fffffff);

const randomId = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 14)}`;

function completionLogprobs(tokens: TokenInfo[]) {
  return {
    tokens: tokens.map((t) => t.text),
    token_logprobs: tokens.map((t) => t.logprob),
    top_logprobs: tokens.map((t) =>
      t.top ? Object.fromEntries(t.top.map((x) => [x.text, x.logprob])) : null,
    ),
    text_offset: tokens.map((t) => t.offset),
  };
}

function chatLogprobs(tokens: TokenInfo[]) {
  const bytes = (s: string) => [...Buffer.from(s, 'utf8')];
  return {
    content: tokens.map((t) => ({
      token: t.text,
      logprob: t.logprob ?? 0,
      bytes: bytes(t.text),
      top_logprobs: (t.top ?? []).map((x) => ({
        token: x.text,
        logprob: x.logprob,
        bytes: bytes(x.text),
      })),
    })),
  };
}

/** Builds the app; `engine` runs the model in its worker. */
export function createApp(engine: InferenceEngine, opts: ServeOptions = {}): Hono {
  const modelName = opts.modelName ?? 'instructkit';
  const maxTokensCap = opts.maxTokens ?? 1024;
  const app = new Hono();

  app.onError((err, c) => {
    const e = err instanceof ApiError ? err : new ApiError(500, err.message);
    // Over capacity clears as soon as a request finishes: tell clients to come back shortly.
    if (e.status === 429) c.header('Retry-After', '1');
    return c.json(errorBody(e), e.status as 400);
  });
  app.notFound((c) =>
    c.json(errorBody(new ApiError(404, `no route ${c.req.method} ${c.req.path}`)), 404),
  );

  app.get('/health', (c) => c.json({ status: 'ok', in_flight: engine.inFlight }));

  app.use('/v1/*', async (c, next) => {
    if (opts.apiKey && c.req.header('authorization') !== `Bearer ${opts.apiKey}`) {
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
      data: [{ id: modelName, object: 'model', created: 0, owned_by: 'instructkit' }],
    }),
  );

  async function readJson(c: { req: { json(): Promise<unknown> } }): Promise<unknown> {
    try {
      return await c.req.json();
    } catch {
      throw new ApiError(400, 'We could not parse the JSON body of your request.');
    }
  }

  function params(
    r: z.infer<typeof CompletionRequest> | z.infer<typeof ChatRequest>,
    seed: number,
    logprobs: number,
    echo: boolean,
    i: number,
  ): GenerateParams {
    if (r.model !== modelName)
      throw new ApiError(
        404,
        `The model \`${r.model}\` does not exist.`,
        'invalid_request_error',
        'model',
        'model_not_found',
      );
    const maxTokens = r.max_tokens ?? r.max_completion_tokens ?? 16;
    if (maxTokens > maxTokensCap)
      throw new ApiError(
        400,
        `max_tokens is ${maxTokens}; this server allows at most ${maxTokensCap}.`,
        'invalid_request_error',
        'max_tokens',
      );
    // Every prompt has at least one token, so this request cannot fit whatever its prompt:
    // refuse it here, before any stream opens.
    if (maxTokens >= engine.info.maxPositions)
      throw new ApiError(
        400,
        `This model's maximum context length is ${engine.info.maxPositions} tokens; max_tokens ${maxTokens} leaves no room for the prompt.`,
        'invalid_request_error',
        'max_tokens',
        'context_length_exceeded',
      );
    return {
      maxTokens,
      temperature: r.temperature ?? 1,
      topP: r.top_p ?? 1,
      topK: r.top_k ?? 0,
      repetitionPenalty: r.repetition_penalty ?? 1,
      ...(r.presence_penalty ? { presencePenalty: r.presence_penalty } : {}),
      ...(r.frequency_penalty ? { frequencyPenalty: r.frequency_penalty } : {}),
      ...(r.logit_bias && Object.keys(r.logit_bias).length > 0 ? { logitBias: r.logit_bias } : {}),
      stop:
        r.stop === undefined || r.stop === null ? [] : Array.isArray(r.stop) ? r.stop : [r.stop],
      seed: seed + i,
      logprobs,
      echo,
    };
  }

  interface Job {
    prompt: string;
    index: number;
    params: GenerateParams;
  }
  type OnDelta = (job: Job, text: string, tokens: TokenInfo[]) => void;

  /**
   * Starts every job of a request. A failed job cancels its siblings (no orphaned decoding).
   * For streams, deltas are held until `open` is given a writer, so that an error that comes
   * before the first token (over-long prompt, over capacity) can still be a plain HTTP error.
   */
  function launch(jobs: Job[], signal: AbortSignal, abort: () => void, streaming: boolean) {
    if (jobs.length > engine.maxConcurrent)
      throw new ApiError(
        400,
        `this request asks for ${jobs.length} completions; the server runs at most ${engine.maxConcurrent} at once`,
        'invalid_request_error',
        'n',
      );
    if (engine.inFlight + jobs.length > engine.maxConcurrent)
      throw new ApiError(
        429,
        `The server is at its limit of ${engine.maxConcurrent} requests in flight; retry later.`,
        'rate_limit_error',
        null,
        'rate_limit_exceeded',
      );
    const held: [Job, string, TokenInfo[]][] = [];
    let writer: OnDelta | undefined;
    let firstDelta!: () => void;
    const started = new Promise<void>((r) => {
      firstDelta = r;
    });
    let failure: unknown;
    const all = Promise.all(
      jobs.map((j) =>
        engine.generate(
          j.prompt,
          j.params,
          streaming
            ? (text, tokens) => {
                if (writer) writer(j, text, tokens);
                else {
                  held.push([j, text, tokens]);
                  firstDelta();
                }
              }
            : undefined,
          signal,
        ),
      ),
    );
    const settled = all.then(
      () => undefined,
      (e: unknown) => {
        failure = e;
        abort();
      },
    );
    return {
      all,
      /** Resolves at the first delta or when every job is settled; rejects if a job failed first. */
      async ready(): Promise<void> {
        await Promise.race([started, settled]);
        if (failure !== undefined && held.length === 0) throw failure;
      },
      open(w: OnDelta): void {
        writer = w;
        for (const [j, text, tokens] of held.splice(0)) w(j, text, tokens);
      },
    };
  }

  /** An error after the stream opened, as vLLM and OpenAI send it: a data event with `error`. */
  async function streamError(s: SSEStreamingApi, e: unknown): Promise<void> {
    const err = e instanceof ApiError ? e : new ApiError(500, (e as Error).message);
    await s.writeSSE({ data: JSON.stringify(errorBody(err)) });
    await s.writeSSE({ data: '[DONE]' });
  }

  function requestAbort(c: { req: { raw: Request } }): AbortController {
    const abort = new AbortController();
    c.req.raw.signal.addEventListener('abort', () => abort.abort(), { once: true });
    return abort;
  }

  /**
   * Streams a request's choices as OpenAI chunks: optional opening chunks, one delta per piece
   * of text, a finish chunk per choice, usage when asked for, then [DONE].
   */
  function streamChoices(
    c: Parameters<typeof streamSSE>[0],
    run: ReturnType<typeof launch>,
    jobs: Job[],
    abort: AbortController,
    o: {
      id: string;
      object: string;
      created: number;
      n: number;
      withUsage: boolean;
      opening?: (j: Job) => Record<string, unknown>;
      delta: (j: Job, text: string, tokens: TokenInfo[]) => Record<string, unknown>;
      finish: (j: Job, res: Completion) => Record<string, unknown>;
    },
  ) {
    const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
      JSON.stringify({
        id: o.id,
        object: o.object,
        created: o.created,
        model: modelName,
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
        return streamError(s, e);
      }
      for (const [k, res] of results.entries())
        await s.writeSSE({ data: chunk([o.finish(jobs[k]!, res)]) });
      if (o.withUsage) await s.writeSSE({ data: chunk([], { usage: usage(results, o.n) }) });
      await s.writeSSE({ data: '[DONE]' });
    });
  }

  app.post('/v1/completions', async (c) => {
    const r = parseBody(CompletionRequest, await readJson(c));
    const seed = requestSeed(r.seed);
    const prompts = Array.isArray(r.prompt) ? r.prompt : [r.prompt];
    const n = r.n ?? 1;
    const lp = r.logprobs ?? -1;
    const echo = r.echo ?? false;
    const id = randomId('cmpl');
    const created = Math.floor(Date.now() / 1000);
    const jobs: Job[] = prompts.flatMap((p, pi) =>
      Array.from({ length: n }, (_, k) => ({
        prompt: p,
        index: pi * n + k,
        params: params(r, seed, lp, echo, k),
      })),
    );
    const abort = requestAbort(c);
    const run = launch(jobs, abort.signal, () => abort.abort(), r.stream ?? false);
    if (r.stream) {
      await run.ready();
      return streamChoices(c, run, jobs, abort, {
        id,
        object: 'text_completion',
        created,
        n,
        withUsage: r.stream_options?.include_usage ?? false,
        delta: (j, text, tokens) => ({
          index: j.index,
          text,
          logprobs: lp >= 0 ? completionLogprobs(tokens) : null,
          finish_reason: null,
        }),
        finish: (j, res) => ({
          index: j.index,
          text: '',
          logprobs: null,
          finish_reason: finishReason(res),
        }),
      });
    }
    const results = await run.all;
    return c.json({
      id,
      object: 'text_completion',
      created,
      model: modelName,
      choices: results.map((res, k) => {
        const toks = [...(res.echo ?? []), ...res.tokens];
        return {
          index: jobs[k]!.index,
          text: (echo ? jobs[k]!.prompt : '') + res.text,
          logprobs: lp >= 0 ? completionLogprobs(toks) : null,
          finish_reason: finishReason(res),
        };
      }),
      usage: usage(results, n),
    });
  });

  app.post('/v1/chat/completions', async (c) => {
    const r = parseBody(ChatRequest, await readJson(c));
    const seed = requestSeed(r.seed);
    const template = engine.info.chatTemplate;
    if (!template) throw new ApiError(400, 'this model has no chat template; use /v1/completions');
    const prompt = applyChatTemplate(
      template,
      r.messages.map((m) => ({ role: m.role, content: m.content ?? '' })),
      { addGenerationPrompt: true, bosToken: engine.info.bos, eosToken: engine.info.eos },
    );
    const n = r.n ?? 1;
    const lp = r.logprobs ? (r.top_logprobs ?? 0) : -1;
    const id = randomId('chatcmpl');
    const created = Math.floor(Date.now() / 1000);
    const jobs: Job[] = Array.from({ length: n }, (_, k) => ({
      prompt,
      index: k,
      params: params(r, seed, lp, false, k),
    }));
    const abort = requestAbort(c);
    const run = launch(jobs, abort.signal, () => abort.abort(), r.stream ?? false);
    if (r.stream) {
      await run.ready();
      return streamChoices(c, run, jobs, abort, {
        id,
        object: 'chat.completion.chunk',
        created,
        n,
        withUsage: r.stream_options?.include_usage ?? false,
        opening: (j) => ({
          index: j.index,
          delta: { role: 'assistant', content: '' },
          logprobs: null,
          finish_reason: null,
        }),
        delta: (j, text, tokens) => ({
          index: j.index,
          delta: { content: text },
          logprobs: lp >= 0 ? chatLogprobs(tokens) : null,
          finish_reason: null,
        }),
        finish: (j, res) => ({
          index: j.index,
          delta: {},
          logprobs: null,
          finish_reason: finishReason(res),
        }),
      });
    }
    const results = await run.all;
    return c.json({
      id,
      object: 'chat.completion',
      created,
      model: modelName,
      choices: results.map((res, k) => ({
        index: k,
        message: { role: 'assistant', content: res.text },
        logprobs: lp >= 0 ? chatLogprobs(res.tokens) : null,
        finish_reason: finishReason(res),
      })),
      usage: usage(results, n),
    });
  });

  return app;
}

function finishReason(res: Completion): 'stop' | 'length' {
  return res.finish === 'length' ? 'length' : 'stop';
}

function usage(results: Completion[], n: number) {
  // Each prompt is counted once, however many choices it has.
  const prompt = results.filter((_, k) => k % n === 0).reduce((s, r) => s + r.promptTokens, 0);
  const completion = results.reduce((s, r) => s + r.completionTokens, 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
  };
}
