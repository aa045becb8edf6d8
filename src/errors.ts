/**
 * Two kinds of failure, as in controller-runtime and kafkajs: retriable ones are retried with
 * backoff and nothing is committed; terminal ones will fail the same way every time, so the
 * work is dead-lettered (controller) or failed for good (job).
 */
export class RetriableError extends Error {
  override readonly name: string = 'RetriableError';
  readonly retriable = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Reasons a message or job can never succeed; each is a stable, documented code. */
export type TerminalReason =
  | 'invalid-json'
  | 'invalid-envelope'
  | 'invalid-payload'
  | 'unknown-job-type'
  | 'command-not-allowed'
  | 'env-file-outside-secrets'
  | 'empty-message'
  | 'message-too-large'
  | 'message-gone'
  | 'checksum-mismatch'
  | 'invalid-job'
  | 'job-name-conflict';

export class TerminalError extends Error {
  override readonly name: string = 'TerminalError';
  readonly retriable = false;
  constructor(readonly reason: TerminalReason, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Bugs (TypeError, RangeError…) are never retried: retrying a bug only hides it. */
export function isRetriable(err: unknown): boolean {
  if (err instanceof TerminalError) return false;
  if (err instanceof RetriableError) return true;
  if (err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError) return false;
  const e = err as { retriable?: unknown } | undefined;
  return e?.retriable === true;
}

/** The message of an error and its causes, for one log field or a DLQ header. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let cur: unknown = err;
  for (let depth = 0; cur && depth < 4; depth++) {
    parts.push(cur instanceof Error ? cur.message : String(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join(': ');
}
