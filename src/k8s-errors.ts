import { RetriableError, TerminalError } from './errors.js';

/** The parts of a client-node ApiException (or a network error) that decide what to do. */
interface MaybeApiError {
  code?: number | string;
  body?: unknown;
  message?: string;
}

/** The `V1Status.message` of an API error body, which client-node leaves as raw text. */
export function statusMessage(err: unknown): string {
  const e = err as MaybeApiError;
  if (typeof e?.body === 'string') {
    try {
      const s = JSON.parse(e.body) as { message?: string };
      if (s.message) return s.message;
    } catch {
      return e.body.slice(0, 500);
    }
  }
  if (e?.body && typeof e.body === 'object' && 'message' in e.body) return String((e.body as { message: unknown }).message);
  return e?.message ?? String(err);
}

export function isQuotaExceeded(err: unknown): boolean {
  return (err as MaybeApiError)?.code === 403 && /exceeded quota/i.test(statusMessage(err));
}

/**
 * Sorts an error from a Kubernetes API call into retriable or terminal. Only a request the
 * server judged invalid (400/422) is terminal; a quota, an RBAC denial or a missing namespace
 * is retried, because an operator fixing it must not find the messages gone.
 */
export function classifyApiError(err: unknown, what: string): RetriableError | TerminalError {
  const e = err as MaybeApiError;
  const code = typeof e?.code === 'number' ? e.code : undefined;
  const msg = statusMessage(err);
  if (code === 400 || code === 422) return new TerminalError('invalid-job', `${what}: the API server rejected it (${code}): ${msg}`, { cause: err });
  if (code === 403 && /exceeded quota/i.test(msg)) return new RetriableError(`${what}: quota exceeded: ${msg}`, { cause: err });
  if (code !== undefined) return new RetriableError(`${what}: API server answered ${code}: ${msg}`, { cause: err });
  return new RetriableError(`${what}: API server unreachable: ${msg}`, { cause: err });
}
