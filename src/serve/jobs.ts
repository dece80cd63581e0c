// The jobs of a request (one per prompt × choice), their sampling parameters, and starting them
// together on the engine so that one failure cancels the rest.
import { randomInt } from 'node:crypto';
import { ApiError, type Completion, type InferenceEngine } from './engine.ts';
import type { ServeLog } from './errors.ts';
import type { GenerateParams, TokenInfo } from './protocol.ts';
import type { ChatRequest, CompletionRequest } from './schemas.ts';

/** What the handlers need of the server. */
export interface ServerContext {
  engine: InferenceEngine;
  modelName: string;
  /** Largest max_tokens accepted. */
  maxTokensCap: number;
  /** Largest total of prompt tokens in one request. */
  maxPromptTokens: number;
  /** Where unexpected errors are reported. */
  log: ServeLog;
}

export interface Job {
  prompt: string;
  index: number;
  params: GenerateParams;
}
export type OnDelta = (job: Job, text: string, tokens: TokenInfo[]) => void;
export type Run = ReturnType<typeof launch>;

/**
 * The sampling seed of a request: the client's `seed` (reproducible), or else a fresh one, so
 * that repeated sampled requests differ, as with OpenAI.
 */
export const requestSeed = (seed: number | null | undefined): number =>
  seed ?? randomInt(0x7fffffff);

export const randomId = (prefix: string) => `${prefix}-${Math.random().toString(36).slice(2, 14)}`;

export function checkModel(ctx: ServerContext, model: string): void {
  if (model !== ctx.modelName)
    throw new ApiError(
      404,
      `The model \`${model}\` does not exist.`,
      'invalid_request_error',
      'model',
      'model_not_found',
    );
}

/** The generation parameters of choice `i` of a request (limits already checked). */
export function samplingParams(
  r: CompletionRequest | ChatRequest,
  maxTokens: number,
  seed: number,
  logprobs: number,
  echo: boolean,
  i: number,
): GenerateParams {
  return {
    maxTokens,
    temperature: r.temperature ?? 1,
    topP: r.top_p ?? 1,
    topK: r.top_k ?? 0,
    repetitionPenalty: r.repetition_penalty ?? 1,
    ...(r.presence_penalty ? { presencePenalty: r.presence_penalty } : {}),
    ...(r.frequency_penalty ? { frequencyPenalty: r.frequency_penalty } : {}),
    ...(r.logit_bias && Object.keys(r.logit_bias).length > 0 ? { logitBias: r.logit_bias } : {}),
    stop: r.stop === undefined || r.stop === null ? [] : Array.isArray(r.stop) ? r.stop : [r.stop],
    seed: seed + i,
    logprobs,
    echo,
  };
}

/** An abort controller that fires when the client goes away. */
export function requestAbort(c: { req: { raw: Request } }): AbortController {
  const abort = new AbortController();
  c.req.raw.signal.addEventListener('abort', () => abort.abort(), { once: true });
  return abort;
}

/** 429 when `jobs` more would pass the server's limit of requests in flight. */
export function checkCapacity(engine: InferenceEngine, jobs: number): void {
  if (engine.inFlight + jobs > engine.maxConcurrent)
    throw new ApiError(
      429,
      `The server is at its limit of ${engine.maxConcurrent} requests in flight; retry later.`,
      'rate_limit_error',
      null,
      'rate_limit_exceeded',
    );
}

/**
 * Starts every job of a request. A failed job cancels its siblings (no orphaned decoding).
 * For streams, deltas are held until `open` is given a writer, so that an error that comes
 * before the first token (over-long prompt, over capacity) can still be a plain HTTP error.
 */
export function launch(
  engine: InferenceEngine,
  jobs: Job[],
  signal: AbortSignal,
  abort: () => void,
  streaming: boolean,
) {
  if (jobs.length > engine.maxConcurrent)
    throw new ApiError(
      400,
      `this request asks for ${jobs.length} completions; the server runs at most ${engine.maxConcurrent} at once`,
      'invalid_request_error',
      'n',
    );
  checkCapacity(engine, jobs.length);
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

export function finishReason(res: Completion): 'stop' | 'length' {
  return res.finish === 'length' ? 'length' : 'stop';
}

export function usage(results: Completion[], n: number) {
  // Each prompt is counted once, however many choices it has.
  const prompt = results.filter((_, k) => k % n === 0).reduce((s, r) => s + r.promptTokens, 0);
  const completion = results.reduce((s, r) => s + r.completionTokens, 0);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
  };
}
