// The handlers of POST /v1/completions and POST /v1/chat/completions: validate the body, build
// one job per prompt × choice, run them, and answer in OpenAI's shape (JSON or SSE chunks).
import type { Context } from 'hono';
import { applyChatTemplate } from '../data/templates/chat.ts';
import { ApiError } from './engine.ts';
import { toApiError } from './errors.ts';
import {
  finishReason,
  type Job,
  launch,
  randomId,
  requestAbort,
  requestSeed,
  type ServerContext,
  samplingParams,
  usage,
} from './jobs.ts';
import type { TokenInfo } from './protocol.ts';
import { ChatRequest, CompletionRequest, parseBody } from './schemas.ts';
import { streamChoices } from './sse.ts';

async function readJson(c: Context): Promise<unknown> {
  try {
    return await c.req.json();
  } catch {
    throw new ApiError(400, 'We could not parse the JSON body of your request.');
  }
}

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

export async function completions(ctx: ServerContext, c: Context): Promise<Response> {
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
      params: samplingParams(ctx, r, seed, lp, echo, k),
    })),
  );
  const abort = requestAbort(c);
  const run = launch(ctx.engine, jobs, abort.signal, () => abort.abort(), r.stream ?? false);
  if (r.stream) {
    await run.ready();
    return streamChoices(c, run, jobs, abort, {
      id,
      object: 'text_completion',
      created,
      model: ctx.modelName,
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
      onError: toApiError,
    });
  }
  const results = await run.all;
  return c.json({
    id,
    object: 'text_completion',
    created,
    model: ctx.modelName,
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
}

export async function chatCompletions(ctx: ServerContext, c: Context): Promise<Response> {
  const r = parseBody(ChatRequest, await readJson(c));
  const seed = requestSeed(r.seed);
  const { engine } = ctx;
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
    params: samplingParams(ctx, r, seed, lp, false, k),
  }));
  const abort = requestAbort(c);
  const run = launch(engine, jobs, abort.signal, () => abort.abort(), r.stream ?? false);
  if (r.stream) {
    await run.ready();
    return streamChoices(c, run, jobs, abort, {
      id,
      object: 'chat.completion.chunk',
      created,
      model: ctx.modelName,
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
      onError: toApiError,
    });
  }
  const results = await run.all;
  return c.json({
    id,
    object: 'chat.completion',
    created,
    model: ctx.modelName,
    choices: results.map((res, k) => ({
      index: k,
      message: { role: 'assistant', content: res.text },
      logprobs: lp >= 0 ? chatLogprobs(res.tokens) : null,
      finish_reason: finishReason(res),
    })),
    usage: usage(results, n),
  });
}
