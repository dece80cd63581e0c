// The handlers of POST /v1/completions and POST /v1/chat/completions: validate the body, build
// one job per prompt × choice, run them, and answer in OpenAI's shape (JSON or SSE chunks).
import type { Context } from 'hono';
import { applyChatTemplate } from '../data/templates/chat.ts';
import { DataError } from '../util/errors.ts';
import { ApiError, type ModelInfo } from './engine.ts';
import { requestOf, toApiError } from './errors.ts';
import {
  checkCapacity,
  checkModel,
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
import {
  checkChoices,
  checkMaxTokens,
  checkRawChoices,
  checkRawMessages,
  countPromptTokens,
  refuseManyPrompts,
} from './limits.ts';
import { countPrompts } from './prescan.ts';
import type { TokenInfo } from './protocol.ts';
import { ChatRequest, CompletionRequest, parseBody } from './schemas.ts';
import { streamChoices } from './sse.ts';

/** Turns an error after a stream opened into its reply (unexpected ones are logged). */
const streamFailure = (ctx: ServerContext, c: Context) => (e: unknown) =>
  toApiError(e, requestOf(c), ctx.log);

async function readText(c: Context): Promise<string> {
  return await c.req.text();
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
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
  const text = await readText(c);
  // Before the body is parsed: 300,000 prompts are refused for the cost of a scan.
  refuseManyPrompts(ctx, countPrompts(text, ctx.engine.maxConcurrent));
  const body = parseJson(text);
  // Before validation walks the prompts (the scan may have been unsure of them).
  checkRawChoices(ctx, body);
  const r = parseBody(CompletionRequest, body);
  checkModel(ctx, r.model);
  const prompts = Array.isArray(r.prompt) ? r.prompt : [r.prompt];
  const n = r.n ?? 1;
  checkChoices(ctx, prompts.length, n, 'prompt');
  // OpenAI's legacy completions default.
  const maxTokens = r.max_tokens ?? 16;
  checkMaxTokens(ctx, maxTokens, 'max_tokens');
  // An over-capacity server does not count tokens it cannot serve (launch checks again).
  checkCapacity(ctx.engine, prompts.length * n);
  await countPromptTokens(ctx, prompts, maxTokens, 'prompt');
  const seed = requestSeed(r.seed);
  const lp = r.logprobs ?? -1;
  const echo = r.echo ?? false;
  const id = randomId('cmpl');
  const created = Math.floor(Date.now() / 1000);
  const jobs: Job[] = prompts.flatMap((p, pi) =>
    Array.from({ length: n }, (_, k) => ({
      prompt: p,
      index: pi * n + k,
      params: samplingParams(r, maxTokens, seed, lp, echo, k),
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
      onError: streamFailure(ctx, c),
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

/** The chat prompt; a template that refuses the messages (raise_exception) is a 400. */
function renderChat(template: string, r: ChatRequest, info: ModelInfo): string {
  try {
    return applyChatTemplate(
      template,
      // OpenAI's `developer` role is its newer name for `system`, which templates know.
      r.messages.map((m) => ({
        role: m.role === 'developer' ? 'system' : m.role,
        content: m.content ?? '',
      })),
      { addGenerationPrompt: true, bosToken: info.bos, eosToken: info.eos },
    );
  } catch (e) {
    if (e instanceof DataError)
      throw new ApiError(400, e.message, 'invalid_request_error', 'messages');
    throw e;
  }
}

export async function chatCompletions(ctx: ServerContext, c: Context): Promise<Response> {
  const body = parseJson(await readText(c));
  checkRawMessages(ctx, body);
  const r = parseBody(ChatRequest, body);
  checkModel(ctx, r.model);
  const { engine } = ctx;
  const n = r.n ?? 1;
  checkChoices(ctx, 1, n, 'n');
  const asked = r.max_completion_tokens ?? r.max_tokens;
  const askedParam = r.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  if (asked != null) checkMaxTokens(ctx, asked, askedParam);
  const template = engine.info.chatTemplate;
  if (!template) throw new ApiError(400, 'this model has no chat template; use /v1/completions');
  checkCapacity(engine, n);
  const prompt = renderChat(template, r, engine.info);
  const [promptTokens] = await countPromptTokens(ctx, [prompt], asked ?? 1, 'messages');
  // As OpenAI: without max_tokens the reply may use the rest of the context (capped by the
  // server's max_tokens limit), so chat clients do not get replies cut off at 16 tokens.
  const maxTokens = asked ?? Math.min(engine.info.maxPositions - promptTokens!, ctx.maxTokensCap);
  const seed = requestSeed(r.seed);
  const lp = r.logprobs ? (r.top_logprobs ?? 0) : -1;
  const id = randomId('chatcmpl');
  const created = Math.floor(Date.now() / 1000);
  const jobs: Job[] = Array.from({ length: n }, (_, k) => ({
    prompt,
    index: k,
    params: samplingParams(r, maxTokens, seed, lp, false, k),
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
      onError: streamFailure(ctx, c),
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
