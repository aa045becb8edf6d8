import { AbortedError, isRetriable } from './errors.js';
import { sleep } from './wait.js';

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  /** Random share of each delay, so many retriers do not hit a recovering server in step. */
  jitter?: number;
  random?: () => number;
}

/** Exponential backoff with jitter: attempt 0 → ~initial, doubling up to max. */
export function backoffMs(attempt: number, { initialMs = 200, maxMs = 30_000, jitter = 0.2, random = Math.random }: BackoffOptions = {}): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  const spread = base * jitter;
  return Math.max(0, Math.round(base - spread + random() * 2 * spread));
}

/**
 * Runs `fn` until it succeeds, retrying retriable errors with backoff for as long as it takes
 * (nothing may be skipped); terminal errors and bugs are thrown at once. `signal` ends the
 * waiting with an AbortedError so shutdown is not held up by an unreachable server.
 */
export async function retryForever<T>(
  fn: (attempt: number) => Promise<T>,
  opts: BackoffOptions & { signal?: AbortSignal; onRetry?: (err: unknown, attempt: number, delayMs: number) => void | Promise<void> } = {},
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    if (opts.signal?.aborted) throw new AbortedError('stopped while retrying');
    try {
      return await fn(attempt);
    } catch (err) {
      if (!isRetriable(err)) throw err;
      const delay = backoffMs(attempt, opts);
      await opts.onRetry?.(err, attempt, delay);
      await sleep(delay, opts.signal);
      if (opts.signal?.aborted) throw new AbortedError('stopped while retrying', { cause: err });
    }
  }
}
