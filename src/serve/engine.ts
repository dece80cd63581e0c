// The main thread's handle on the inference worker: starts it, routes its messages to the
// request that asked, and enforces the limit on requests in flight.
import type { Worker } from 'node:worker_threads';
import { spawnTsWorker } from '../util/ts-worker.ts';
import type { CountLimits, FromWorker, GenerateParams, TokenInfo, ToWorker } from './protocol.ts';

export interface ModelInfo {
  modelType: string;
  maxPositions: number;
  chatTemplate: string | null;
  bos: string | null;
  eos: string | null;
}

export interface Completion {
  text: string;
  tokens: TokenInfo[];
  finish: 'stop' | 'length' | 'cancelled';
  promptTokens: number;
  completionTokens: number;
  echo?: TokenInfo[];
}

/** An error with an HTTP status and OpenAI error fields. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type = status === 429
      ? 'rate_limit_error'
      : status >= 500
        ? 'server_error'
        : 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

/** What became of a finished request (kept for introspection: /health, tests). */
export interface FinishedRequest {
  finish: Completion['finish'];
  maxTokens: number;
  promptTokens: number;
  completionTokens: number;
}

interface Waiter {
  maxTokens: number;
  onDelta?: (text: string, tokens: TokenInfo[]) => void;
  resolve: (c: Completion) => void;
  reject: (e: Error) => void;
  text: string;
  tokens: TokenInfo[];
}

export class InferenceEngine {
  readonly info: ModelInfo;
  readonly maxConcurrent: number;
  readonly #worker: Worker;
  readonly #waiters = new Map<number, Waiter>();
  readonly #counts = new Map<
    number,
    { resolve: (c: { tokens: number[]; atLeast: boolean }) => void; reject: (e: Error) => void }
  >();
  /** The last 100 finished requests, oldest first. */
  readonly finished: FinishedRequest[] = [];
  #nextId = 1;
  #closed = false;
  #closing: Promise<void> | undefined;
  /** Requests cancelled by close() that the worker has not yet reported finished. */
  readonly #draining = new Set<number>();
  #drained: (() => void) | undefined;

  private constructor(worker: Worker, info: ModelInfo, maxConcurrent: number) {
    this.#worker = worker;
    this.info = info;
    this.maxConcurrent = maxConcurrent;
    worker.on('message', (m: FromWorker) => this.#onMessage(m));
  }

  /** Starts the worker and waits until the model is loaded. */
  static start(opts: {
    model: string;
    adapter?: string;
    maxBatch?: number;
    maxConcurrent?: number;
  }): Promise<InferenceEngine> {
    const worker = spawnTsWorker(new URL('./worker-entry.ts', import.meta.url), {
      model: opts.model,
      adapter: opts.adapter,
      maxBatch: opts.maxBatch ?? 32,
    });
    return new Promise((resolve, reject) => {
      const onMsg = (m: FromWorker) => {
        if (m.type === 'ready') {
          worker.off('message', onMsg);
          resolve(new InferenceEngine(worker, m, opts.maxConcurrent ?? 64));
        } else if (m.type === 'fatal') {
          void worker.terminate();
          reject(new Error(m.message));
        }
      };
      worker.on('message', onMsg);
      worker.once('error', reject);
    });
  }

  get inFlight(): number {
    return this.#waiters.size;
  }

  #onMessage(m: FromWorker): void {
    if (m.type === 'ready' || m.type === 'fatal') return;
    if (m.type === 'counted') {
      const w = this.#counts.get(m.id);
      this.#counts.delete(m.id);
      w?.resolve({ tokens: m.tokens, atLeast: m.atLeast });
      return;
    }
    if (m.type !== 'delta' && this.#draining.delete(m.id) && this.#draining.size === 0)
      this.#drained?.();
    const w = this.#waiters.get(m.id);
    if (!w) return;
    if (m.type === 'delta') {
      w.text += m.text;
      w.tokens.push(...m.tokens);
      w.onDelta?.(m.text, m.tokens);
    } else if (m.type === 'done') {
      this.#waiters.delete(m.id);
      this.finished.push({
        finish: m.finish,
        maxTokens: w.maxTokens,
        promptTokens: m.promptTokens,
        completionTokens: m.completionTokens,
      });
      if (this.finished.length > 100) this.finished.shift();
      w.resolve({
        text: w.text,
        tokens: w.tokens,
        finish: m.finish,
        promptTokens: m.promptTokens,
        completionTokens: m.completionTokens,
        ...(m.echo ? { echo: m.echo } : {}),
      });
    } else {
      this.#waiters.delete(m.id);
      // OpenAI's code for a prompt plus max_tokens over the context, which clients key on.
      const code = /maximum context length/.test(m.message) ? 'context_length_exceeded' : null;
      w.reject(new ApiError(m.status, m.message, undefined, null, code));
    }
  }

  /**
   * Generates a completion. `signal` cancels it (a disconnected client frees its slot).
   * @throws ApiError 429 when maxConcurrent requests are already in flight.
   */
  generate(
    prompt: string,
    params: GenerateParams,
    onDelta?: Waiter['onDelta'],
    signal?: AbortSignal,
  ): Promise<Completion> {
    if (this.#closed) return Promise.reject(new ApiError(503, 'server shutting down'));
    if (this.#waiters.size >= this.maxConcurrent) {
      return Promise.reject(
        new ApiError(429, `too many requests in flight (limit ${this.maxConcurrent}); retry later`),
      );
    }
    const id = this.#nextId++;
    const done = new Promise<Completion>((resolve, reject) => {
      this.#waiters.set(id, {
        maxTokens: params.maxTokens,
        onDelta,
        resolve,
        reject,
        text: '',
        tokens: [],
      });
    });
    this.#post({ type: 'generate', id, prompt, params });
    if (signal?.aborted) this.#post({ type: 'cancel', id });
    else
      signal?.addEventListener('abort', () => this.#post({ type: 'cancel', id }), { once: true });
    return done;
  }

  /**
   * Counts the tokens of prompts in the worker, stopping at the first that is empty or over
   * `limits.perPrompt`, or once the total passes `limits.total` (see CountLimits). Not a job:
   * it does not count toward maxConcurrent.
   */
  countTokens(
    prompts: string[],
    limits: CountLimits,
  ): Promise<{ tokens: number[]; atLeast: boolean }> {
    if (this.#closed) return Promise.reject(new ApiError(503, 'server shutting down'));
    const id = this.#nextId++;
    const done = new Promise<{ tokens: number[]; atLeast: boolean }>((resolve, reject) => {
      this.#counts.set(id, { resolve, reject });
    });
    this.#post({ type: 'count', id, prompts, limits });
    return done;
  }

  #post(m: ToWorker): void {
    if (!this.#closed) this.#worker.postMessage(m);
  }

  /**
   * Stops the worker. onnxruntime aborts the whole process when a worker thread is terminated
   * inside a session run, so requests in flight are first cancelled and the worker is
   * terminated once it has reported them all finished (it is then idle between steps).
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    for (const [id, w] of this.#waiters) {
      w.reject(new ApiError(503, 'server shutting down'));
      this.#draining.add(id);
      this.#worker.postMessage({ type: 'cancel', id } satisfies ToWorker);
    }
    this.#waiters.clear();
    for (const w of this.#counts.values()) w.reject(new ApiError(503, 'server shutting down'));
    this.#counts.clear();
    this.#closing = (async () => {
      if (this.#draining.size > 0)
        await new Promise<void>((resolve) => {
          this.#drained = resolve;
          setTimeout(resolve, 10_000).unref();
        });
      await this.#worker.terminate();
    })();
    return this.#closing;
  }
}
