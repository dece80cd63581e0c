// Errors in OpenAI's shape: {error: {message, type, param, code}}. Errors the server throws on
// purpose (ApiError) and typed input errors (ConfigError, DataError: their field becomes
// `param`) reach the client; anything else is a bug or an environment failure whose details
// (which may name files or internals) go to the log only, and the client gets a generic message
// with the request id (also in the x-request-id header) to quote.
import { ConfigError, DataError } from '../util/errors.ts';
import { ApiError } from './engine.ts';

// Kept beside the request rather than as a typed Hono variable, so that createApp stays a plain
// `Hono` for callers that hold it as one.
// Keyed by the request's Hono context, the one object that lives from the first middleware to
// the error handler (c.req.raw is replaced when the body limit wraps the body).
const requestIds = new WeakMap<object, string>();

export function setRequestId(c: object, id: string): void {
  requestIds.set(c, id);
}

/** The request's id and what the log says of where it failed. */
export function requestOf(c: { req: { method: string; path: string } }) {
  return {
    requestId: requestIds.get(c) ?? 'unknown',
    method: c.req.method,
    path: c.req.path,
  };
}

/** One log record of the server (JSON lines on stderr unless the app is given a logger). */
export interface ServeLogEntry {
  level: 'error';
  requestId: string;
  method: string;
  path: string;
  message: string;
  stack?: string;
}
export type ServeLog = (entry: ServeLogEntry) => void;

export const stderrLog: ServeLog = (entry) =>
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);

export const errorBody = (e: ApiError) => ({
  error: { message: e.message, type: e.type, param: e.param, code: e.code },
});

/** The ApiError a thrown value answers with; unexpected errors are logged, not shown. */
export function toApiError(
  e: unknown,
  req: { requestId: string; method: string; path: string },
  log: ServeLog,
): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof ConfigError || e instanceof DataError)
    return new ApiError(400, e.message, 'invalid_request_error', e.field ?? null);
  const err = e instanceof Error ? e : new Error(String(e));
  log({
    level: 'error',
    ...req,
    message: err.message,
    ...(err.stack ? { stack: err.stack } : {}),
  });
  return new ApiError(
    500,
    `The server had an error while processing your request (request id ${req.requestId}). Quote the request id if you report it.`,
    'server_error',
  );
}
