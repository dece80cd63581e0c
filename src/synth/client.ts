// Client for any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, Ollama, instructkit's
// own server): chat and legacy completions, a concurrency limit, retries with exponential backoff
// and jitter that honour Retry-After, a content-addressed disk cache, usage and cost accounting,
// and weighted fan-out over several endpoints with failover.
import { z } from 'zod';
import { parseConfig } from '../data/config.ts';
import { env } from '../util/env.ts';
import { ConfigError, EndpointError } from '../util/errors.ts';
import { Rng } from '../util/rng.ts';
import { cacheKey, ResponseCache } from './cache.ts';
import { ModelPrice, UsageMeter, type UsageReport } from './cost.ts';

export const EndpointConfig = z.strictObject({
  /** Base URL including the version prefix, e.g. `http://127.0.0.1:8000/v1`. */
  base_url: z.string().url(),
  /** Name of the environment variable that holds the API key (never the key itself). */
  api_key_env: z.string().optional(),
  /** Model name for this endpoint, when it differs from the client's `model`. */
  model: z.string().optional(),
  /** Share of requests sent here, relative to the other endpoints. @default 1 */
  weight: z.number().positive().default(1),
});
export type EndpointConfig = z.infer<typeof EndpointConfig>;

export const LlmClientConfig = z.strictObject({
  endpoints: z.array(EndpointConfig).min(1),
  /** Model name sent in requests (and used for cache keys and prices). */
  model: z.string().min(1),
  /** Requests in flight at once, over all endpoints. @default 8 */
  concurrency: z.number().int().positive().default(8),
  /** Per-request timeout, including reading the body. @default 120000 */
  timeout_ms: z.number().int().positive().default(120_000),
  /** Retries after the first attempt on 429, 5xx, timeouts and malformed bodies. @default 6 */
  max_retries: z.number().int().min(0).default(6),
  /** First backoff ceiling; doubles each retry (full jitter). @default 1000 */
  backoff_initial_ms: z.number().int().min(0).default(1000),
  /** Backoff ceiling cap. @default 60000 */
  backoff_max_ms: z.number().int().min(0).default(60_000),
  /** Directory of the response cache; no caching when absent. */
  cache_dir: z.string().optional(),
  /** USD prices per 1M tokens, by model name. */
  prices: z.record(z.string(), ModelPrice).default({}),
  /** Seed for endpoint choice and backoff jitter. @default 0 */
  seed: z.number().int().default(0),
});
export type LlmClientConfig = z.input<typeof LlmClientConfig>;

/** Parses a client config; unknown keys and wrong types are ConfigErrors naming the field. */
export function parseClientConfig(raw: unknown, file?: string): z.infer<typeof LlmClientConfig> {
  return parseConfig(LlmClientConfig, raw, { file });
}

// ---------------------------------------------------------------------------------------------
// OpenAI request and response shapes (the fields instructkit uses; others pass through)

interface SamplingParams {
  model?: string;
  n?: number;
  temperature?: number;
  top_p?: number;
  stop?: string | string[];
  max_tokens?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  logit_bias?: Record<string, number>;
  seed?: number;
  [extra: string]: unknown;
}

export interface ChatRequest extends SamplingParams {
  messages: { role: string; content: string; [k: string]: unknown }[];
  logprobs?: boolean;
  top_logprobs?: number;
}

export interface CompletionRequest extends SamplingParams {
  prompt: string | string[];
  logprobs?: number | null;
  echo?: boolean;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens?: number;
}

export interface ChatResponse {
  id?: string;
  object?: string;
  model?: string;
  choices: {
    index: number;
    message: { role: string; content: string | null; [k: string]: unknown };
    finish_reason: string | null;
    logprobs?: unknown;
  }[];
  usage?: Usage;
}

export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs?: (Record<string, number> | null)[] | null;
  text_offset?: number[];
}

export interface CompletionResponse {
  id?: string;
  object?: string;
  model?: string;
  choices: {
    index: number;
    text: string;
    finish_reason: string | null;
    logprobs?: CompletionLogprobs | null;
  }[];
  usage?: Usage;
}

const ChatBody = z.looseObject({
  choices: z
    .array(z.looseObject({ message: z.looseObject({ content: z.string().nullable().optional() }) }))
    .min(1),
});
const CompletionBody = z.looseObject({
  choices: z.array(z.looseObject({ text: z.string() })).min(1),
});

export interface CallMeta {
  cached: boolean;
  endpoint: string | null;
  attempts: number;
}

// ---------------------------------------------------------------------------------------------

class Semaphore {
  #free: number;
  #waiters: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return;
    }
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }
  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }
}

/** Retry-After in milliseconds: delta-seconds or an HTTP date (RFC 9110 section 10.2.3). */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const t = Date.parse(trimmed);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** The error object of an OpenAI-shaped error body (`{error: {...}}`, or vLLM's bare form). */
export interface ApiErrorDetail {
  message?: string;
  type?: string;
  param?: string | null;
  code?: string | number | null;
}

function parseErrorBody(text: string): ApiErrorDetail {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch {
    return {};
  }
  if (typeof j !== 'object' || j === null) return {};
  const outer = j as Record<string, unknown>;
  if (typeof outer.error === 'string') return { message: outer.error };
  const e = (
    typeof outer.error === 'object' && outer.error !== null ? outer.error : outer
  ) as Record<string, unknown>;
  const d: ApiErrorDetail = {};
  if (typeof e.message === 'string') d.message = e.message;
  if (typeof e.type === 'string') d.type = e.type;
  if (typeof e.param === 'string' || e.param === null) d.param = e.param as string | null;
  if (typeof e.code === 'string' || typeof e.code === 'number') d.code = e.code;
  return d;
}

/** The endpoint refused the request (a 4xx other than 408 / 429): sending it again cannot help. */
export class RequestRejectedError extends EndpointError {
  constructor(
    message: string,
    status: number,
    readonly detail: ApiErrorDetail,
  ) {
    super(message, status);
  }
}

class RetryableError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class LlmClient {
  readonly config: z.infer<typeof LlmClientConfig>;
  readonly #sem: Semaphore;
  readonly #cache: ResponseCache | undefined;
  readonly #meter: UsageMeter;
  readonly #rng: Rng;
  /** Requests sent over the network (attempts included), for tests and reports. */
  httpRequests = 0;

  constructor(config: LlmClientConfig) {
    this.config = parseClientConfig(config);
    this.#sem = new Semaphore(this.config.concurrency);
    this.#cache = this.config.cache_dir ? new ResponseCache(this.config.cache_dir) : undefined;
    this.#meter = new UsageMeter(this.config.prices);
    this.#rng = new Rng(this.config.seed);
  }

  /** POST /chat/completions. */
  async chat(req: ChatRequest): Promise<ChatResponse> {
    return (await this.chatWithMeta(req)).response;
  }

  /** POST /completions (legacy text completions, with echo / logprobs). */
  async complete(req: CompletionRequest): Promise<CompletionResponse> {
    return (await this.completeWithMeta(req)).response;
  }

  chatWithMeta(req: ChatRequest): Promise<{ response: ChatResponse; meta: CallMeta }> {
    return this.#call<ChatResponse>('chat/completions', req, ChatBody);
  }

  completeWithMeta(
    req: CompletionRequest,
  ): Promise<{ response: CompletionResponse; meta: CallMeta }> {
    return this.#call<CompletionResponse>('completions', req, CompletionBody);
  }

  usage(): UsageReport {
    return this.#meter.report();
  }

  #pickEndpoint(exclude: EndpointConfig | undefined): EndpointConfig {
    const eps = this.config.endpoints;
    const pool = eps.length > 1 && exclude ? eps.filter((e) => e !== exclude) : eps;
    return pool[this.#rng.weighted(pool.map((e) => e.weight))]!;
  }

  async #call<T extends { usage?: Usage }>(
    path: string,
    req: SamplingParams,
    schema: z.ZodType,
  ): Promise<{ response: T; meta: CallMeta }> {
    const model = req.model ?? this.config.model;
    const body = { ...req, model };
    const key = cacheKey(path, body);
    const hit = this.#cache?.get<T>(key);
    if (hit) {
      this.#meter.record(model, hit.usage, true);
      return { response: hit, meta: { cached: true, endpoint: null, attempts: 0 } };
    }
    await this.#sem.acquire();
    try {
      let last: EndpointConfig | undefined;
      let lastError: RetryableError | undefined;
      for (let attempt = 0; attempt <= this.config.max_retries; attempt++) {
        const ep = this.#pickEndpoint(lastError ? last : undefined);
        last = ep;
        try {
          const response = await this.#send<T>(
            ep,
            path,
            { ...body, model: ep.model ?? model },
            schema,
          );
          this.#meter.record(model, response.usage, false);
          this.#cache?.set(key, response);
          return {
            response,
            meta: { cached: false, endpoint: ep.base_url, attempts: attempt + 1 },
          };
        } catch (e) {
          if (!(e instanceof RetryableError)) throw e;
          lastError = e;
          if (attempt === this.config.max_retries) break;
          this.#meter.retry();
          const ceiling = Math.min(
            this.config.backoff_max_ms,
            this.config.backoff_initial_ms * 2 ** attempt,
          );
          const jitter = this.#rng.float() * ceiling;
          await sleep(Math.max(jitter, e.retryAfterMs ?? 0));
        }
      }
      throw new EndpointError(
        `${last?.base_url}/${path}: giving up after ${this.config.max_retries + 1} attempts: ${lastError?.message}`,
        lastError?.status,
        { hint: 'check the server, or raise max_retries / timeout_ms' },
      );
    } finally {
      this.#sem.release();
    }
  }

  async #send<T>(ep: EndpointConfig, path: string, body: unknown, schema: z.ZodType): Promise<T> {
    const url = `${ep.base_url.replace(/\/+$/, '')}/${path}`;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (ep.api_key_env) {
      const k = env.named(ep.api_key_env);
      if (!k) {
        throw new ConfigError(
          `environment variable ${ep.api_key_env} is not set`,
          { field: 'api_key_env' },
          {
            hint: `export ${ep.api_key_env}=<your key>`,
          },
        );
      }
      headers.authorization = `Bearer ${k}`;
    }
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), this.config.timeout_ms);
    this.httpRequests++;
    let status = 0;
    let text: string;
    let retryAfter: string | null = null;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers,
        body: JSON.stringify(body),
        signal: ctrl.signal,
      });
      status = res.status;
      retryAfter = res.headers.get('retry-after');
      text = await res.text();
    } catch (e) {
      const why = ctrl.signal.aborted
        ? `timed out after ${this.config.timeout_ms} ms`
        : (e as Error).message;
      throw new RetryableError(`${url}: ${why}`, status || undefined);
    } finally {
      clearTimeout(timer);
    }
    const snippet = text.length > 300 ? `${text.slice(0, 300)}...` : text;
    if (status === 429 || status === 408 || status >= 500) {
      throw new RetryableError(
        `${url}: HTTP ${status}: ${snippet}`,
        status,
        parseRetryAfter(retryAfter),
      );
    }
    if (status < 200 || status >= 300) {
      const detail = parseErrorBody(text);
      throw new RequestRejectedError(
        `${url}: HTTP ${status}: ${detail.message ?? snippet}`,
        status,
        detail,
      );
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new RetryableError(`${url}: malformed JSON body: ${snippet}`, status);
    }
    if (!schema.safeParse(json).success) {
      throw new RetryableError(`${url}: response has no usable choices: ${snippet}`, status);
    }
    return json as T;
  }
}
