/**
 * Every kind of failure the two programs tell apart, in one place, as in controller-runtime and
 * kafkajs: retriable ones are retried with backoff and nothing is committed; terminal ones will
 * fail the same way every time, so the work is dead-lettered (controller) or failed for good
 * (job); an aborted wait is a stop, not a failure; a config error ends the process at start;
 * and a bug (TypeError, RangeError…) is never retried, because retrying a bug only hides it.
 */
export class RetriableError extends Error {
  override readonly name: string = 'RetriableError';
  readonly retriable = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Reasons a message or job can never succeed; each is a stable, documented code. */
export const TERMINAL_REASONS = [
  'invalid-json',
  'invalid-envelope',
  'invalid-payload',
  'unknown-job-type',
  'command-not-allowed',
  'image-not-allowed',
  'env-file-outside-secrets',
  'empty-message',
  'message-too-large',
  'message-gone',
  'checksum-mismatch',
  'invalid-job',
  'job-name-conflict',
  'job-rejected',
  'job-terminating',
  'undecodable-record',
  'deadline-too-short',
  'unwritable-record',
  'secret-not-allowed',
  'env-key-not-allowed',
  'command-args-not-allowed',
  'url-not-allowed',
] as const;

export type TerminalReason = (typeof TERMINAL_REASONS)[number];

export class TerminalError extends Error {
  override readonly name: string = 'TerminalError';
  readonly retriable = false;
  constructor(
    readonly reason: TerminalReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A wait or retry cut short because the process is stopping: neither success nor failure. */
export class AbortedError extends Error {
  override readonly name = 'AbortedError';
}

/**
 * The process cannot go on doing its job correctly (a bug in a handler, a consumer kafkajs will
 * not restart, a dead-letter topic it may not write): it ends with a non-zero code, so
 * Kubernetes restarts it and the failure is visible, never a live process doing nothing.
 */
export class FatalError extends Error {
  override readonly name = 'FatalError';
}

/** A setting is missing or wrong: the process says which and exits at start. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** A programming error: never retried, never dead-lettered as if the message were at fault. */
export function isBug(err: unknown): boolean {
  return err instanceof TypeError || err instanceof RangeError || err instanceof SyntaxError || err instanceof ReferenceError;
}

/** True for what a retry may fix; terminal errors, aborts and bugs are not. */
export function isRetriable(err: unknown): boolean {
  if (err instanceof TerminalError || err instanceof AbortedError || err instanceof ConfigError || err instanceof FatalError) return false;
  if (err instanceof RetriableError) return true;
  if (isBug(err)) return false;
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

// --- Kubernetes API errors ---------------------------------------------------------------

/** The parts of a client-node ApiException (or a network error) that decide what to do. */
interface MaybeApiError {
  code?: number | string;
  body?: unknown;
  message?: string;
}

/** The HTTP status of a client-node ApiException; undefined for network errors. */
export function apiStatus(err: unknown): number | undefined {
  const code = (err as MaybeApiError | undefined)?.code;
  // Only an HTTP status: a DOMException (an aborted or timed-out call) has a numeric `code` too.
  return typeof code === 'number' && code >= 100 && code <= 599 ? code : undefined;
}

export const isNotFound = (err: unknown): boolean => apiStatus(err) === 404;
export const isConflict = (err: unknown): boolean => apiStatus(err) === 409;

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

/** A `count/jobs.batch` ResourceQuota refused the create: pause, do not drop. */
export function isQuotaExceeded(err: unknown): boolean {
  return apiStatus(err) === 403 && /exceeded quota/i.test(statusMessage(err));
}

/**
 * A create an admission controller refused: a webhook (Gatekeeper, Kyverno, any other) or a
 * ValidatingAdmissionPolicy. The wording is the API server's own, whatever the webhook answered
 * (it prefixes `admission webhook "<name>" denied the request` to the webhook's message, or adds
 * `without explanation`, and keeps the webhook's code, at least 400), so it is the same for every
 * webhook framework. Only a 4xx denial other than 429 is taken as final (see classifyApiError).
 * The same object is refused every time, unlike an RBAC 403, which names the user and the verb.
 */
export function isAdmissionDenial(err: unknown): boolean {
  if (apiStatus(err) === undefined) return false;
  const msg = statusMessage(err);
  return /admission webhook "[^"]*" denied the request/i.test(msg) || /ValidatingAdmissionPolicy '[^']*' with binding '[^']*' denied request/i.test(msg);
}

/** The API server refused the controller itself (RBAC): `... is forbidden: User "..." cannot create resource ...`. */
export function isRbacDenial(err: unknown): boolean {
  return apiStatus(err) === 403 && !isQuotaExceeded(err) && !isAdmissionDenial(err) && /\bcannot [a-z]+ resource\b/i.test(statusMessage(err));
}

/**
 * The object is too large to store: the API server's own limit (413, or a request body over
 * 3 MiB) or etcd's (`etcdserver: request is too large`, a 500 whose cause is the object, not the
 * cluster: the same Job is refused every time).
 */
export function isObjectTooLarge(err: unknown): boolean {
  const code = apiStatus(err);
  return code === 413 || (code !== undefined && code >= 500 && /request is too large|request entity too large/i.test(statusMessage(err)));
}

/**
 * Sorts an error from a Kubernetes API call. Terminal, per message (the message is dead-lettered
 * with the API server's words): a request the server judged invalid (400/422, `invalid-job`),
 * refused by admission or too large to store (`job-rejected`). Fatal: an RBAC denial, which says
 * the controller's own Role is wrong — no message fixes that, and retrying it in silence would
 * stall every partition. Retried: everything cluster-wide (quota, throttling, 5xx, timeouts, a
 * missing namespace), because an operator fixing it must not find the messages gone.
 */
export function classifyApiError(err: unknown, what: string): RetriableError | TerminalError | FatalError {
  const code = apiStatus(err);
  const msg = statusMessage(err);
  // First: a ValidatingAdmissionPolicy answers with the code its validation's `reason` names (422 by default, 403 for Forbidden).
  // A denial answered 429 or 5xx says the webhook is overloaded or broken, not that the object is wrong: retried below.
  if (isAdmissionDenial(err) && code !== undefined && code < 500 && code !== 429)
    return new TerminalError('job-rejected', `${what}: admission denied it (${code}): ${msg}`, { cause: err });
  if (code === 400 || code === 422) return new TerminalError('invalid-job', `${what}: the API server rejected it (${code}): ${msg}`, { cause: err });
  if (isObjectTooLarge(err)) return new TerminalError('job-rejected', `${what}: too large to store (${code}): ${msg}`, { cause: err });
  if (isQuotaExceeded(err)) return new RetriableError(`${what}: quota exceeded: ${msg}`, { cause: err });
  if (isRbacDenial(err)) return new FatalError(`${what}: the controller's Role does not allow it (${code}): ${msg}`, { cause: err });
  if (code !== undefined) return new RetriableError(`${what}: API server answered ${code}: ${msg}`, { cause: err });
  return new RetriableError(`${what}: API server unreachable: ${msg}`, { cause: err });
}

// --- Kafka errors -------------------------------------------------------------------------

/**
 * kafkajs error types that no retry of the same request fixes: the record is too large for
 * the broker or topic, or the principal lacks the right. Everything else from a producer
 * (leader moves, timeouts, a broker restarting) is worth retrying.
 */
const TERMINAL_KAFKA_TYPES = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'CORRUPT_MESSAGE',
  'TOPIC_AUTHORIZATION_FAILED',
  'GROUP_AUTHORIZATION_FAILED',
  'CLUSTER_AUTHORIZATION_FAILED',
  'TRANSACTIONAL_ID_AUTHORIZATION_FAILED',
  'SASL_AUTHENTICATION_FAILED',
  'INVALID_TOPIC_EXCEPTION',
  'UNSUPPORTED_COMPRESSION_TYPE',
]);

/**
 * kafkajs could not decode a record batch: a codec it lacks (`KafkaJSNotImplemented`) or bytes
 * it cannot parse. No retry reads it differently.
 */
export function isUndecodable(err: unknown): boolean {
  for (const e of causeChain(err)) {
    const { name, message } = e as { name?: unknown; message?: unknown };
    if (name === 'KafkaJSNotImplemented' || /compression not implemented|unsupported compression/i.test(String(message ?? ''))) return true;
  }
  return false;
}

/**
 * An error and its causes, outermost first: `cause`, kafkajs' `originalError`, and the first of
 * an aggregate's `errors` (KafkaJSAggregateError keeps one per broker). Bounded, since a cause
 * chain can loop.
 */
export function* causeChain(err: unknown, depth = 8): Generator<unknown> {
  let cur: unknown = err;
  for (let i = 0; cur && i < depth; i++) {
    yield cur;
    const e = cur as { cause?: unknown; originalError?: unknown; errors?: unknown[] };
    cur = e.originalError ?? e.cause ?? (Array.isArray(e.errors) ? e.errors[0] : undefined);
  }
}

/** The Kafka protocol error type of a kafkajs error or of any of its causes. */
export function kafkaErrorType(err: unknown): string | undefined {
  for (const e of causeChain(err)) {
    const { type } = e as { type?: unknown };
    if (typeof type === 'string') return type;
  }
  return undefined;
}

/**
 * Sorts a producer failure: "too large" and authorization errors are terminal (retrying them
 * forever would wedge a partition); everything else is retriable.
 */
export function classifyProduceError(err: unknown, what: string): RetriableError | TerminalError {
  if (err instanceof RetriableError || err instanceof TerminalError) return err;
  const type = kafkaErrorType(err);
  if (type && TERMINAL_KAFKA_TYPES.has(type)) return new TerminalError('unwritable-record', `${what}: ${type}: ${describeError(err)}`, { cause: err });
  return new RetriableError(`${what}: ${describeError(err)}`, { cause: err });
}
