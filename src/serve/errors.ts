// Errors in OpenAI's shape: {error: {message, type, param, code}}.
import { ApiError } from './engine.ts';

export const errorBody = (e: ApiError) => ({
  error: { message: e.message, type: e.type, param: e.param, code: e.code },
});

/** The ApiError a thrown value answers with. */
export function toApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(500, (e as Error).message);
}
