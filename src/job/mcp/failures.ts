import { STATUS_CODES } from 'node:http';
import {
  OAuthClientFlowError,
  UnauthorizedError,
  OAuthError,
  ProtocolError,
  SdkError,
  SdkErrorCode,
  SdkHttpError,
  SseError,
  UnsupportedProtocolVersionError,
} from '@modelcontextprotocol/client';
import { causeChain, describeError, TerminalError } from '../../shared/errors.js';
import type { ServerOutcome } from '../../shared/contract/exit-codes.js';
import { PolicyReason } from '../../shared/contract/rules.js';
import { ResponseTooLargeError, urlRefusalIn } from './transports/remote-fetch.js';

export class InitFailure extends Error {
  constructor(
    readonly outcome: Exclude<ServerOutcome, 'initialized'>,
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A probe the server ended by closing the connection: what servers that exit on it do. */
export function closedDuringProbe(err: unknown): boolean {
  return (
    err instanceof SdkError && (err.code === SdkErrorCode.ConnectionClosed || (err.code === SdkErrorCode.EraNegotiationFailed && /clos/i.test(err.message)))
  );
}

export function httpStatus(err: unknown): number | undefined {
  if (err instanceof SdkHttpError) return err.status;
  if (err instanceof SseError) return err.code;
  return undefined;
}

/** Whether an error or one of its causes is what `test` looks for. */
function inCauses(err: unknown, test: (e: unknown) => boolean): boolean {
  return [...causeChain(err)].some(test);
}

/** The HTTP status anywhere in an error's causes (the SDK wraps a failed probe around it). */
function httpStatusIn(err: unknown): number | undefined {
  for (const e of causeChain(err)) {
    const s = httpStatus(e);
    if (s !== undefined) return s;
  }
  return undefined;
}

/**
 * What a failure says, without what the server sent: the SDK puts a non-2xx response's body in
 * its error text (`Error POSTing to endpoint: <body>`), and a body may echo the request — its
 * headers, a token — or hold whatever the address answers (a metadata service, say). So an HTTP
 * failure is only its status and the standard reason phrase, and an unusable reply only that.
 */
function failureText(err: unknown, stage: string): string {
  const status = httpStatusIn(err);
  if (status !== undefined) return `${stage}: HTTP ${status} ${STATUS_CODES[status] ?? ''}`.trimEnd();
  // A reply that is not JSON: the parser's message quotes the body.
  if (inCauses(err, (e) => e instanceof SyntaxError)) return `${stage}: unusable reply (not JSON)`;
  const text = describeError(err);
  const unusable = text.indexOf('unusable reply');
  return `${stage}: ${unusable >= 0 ? `${text.slice(0, unusable)}unusable reply` : text}`;
}

/** A 4xx that a retry cannot change (408 and 429 can). */
function isPermanentHttp(status: number | undefined): boolean {
  return status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;
}

/** Sorts a failure: only what a retry could change is retriable. */
export function classify(err: unknown, stage: string): InitFailure {
  if (err instanceof InitFailure) return err;
  if (err instanceof TerminalError) return new InitFailure('failed-permanent', err.reason, err.message);
  if (err instanceof ResponseTooLargeError) return new InitFailure('failed-permanent', 'response-too-large', `${stage}: ${err.message}`);
  const refused = urlRefusalIn(err);
  if (refused) return new InitFailure('failed-permanent', PolicyReason.urlNotAllowed, `${stage}: ${refused.message}`);
  const msg = failureText(err, stage);
  const oauth = oauthFailure(err, stage);
  if (oauth) return oauth;
  const code = (err as NodeJS.ErrnoException)?.code;
  const failure = (outcome: InitFailure['outcome'], reason: string) => new InitFailure(outcome, reason, msg, { cause: err });
  if (code === 'ENOENT' || code === 'EACCES') return failure('failed-permanent', 'spawn-failed');
  if (err instanceof UnsupportedProtocolVersionError) return failure('failed-permanent', 'protocol-mismatch');
  if (isPermanentHttp(httpStatus(err))) return failure('failed-permanent', 'http-rejected');
  if (err instanceof SdkError) {
    if (err.code === SdkErrorCode.RequestTimeout) return failure('failed-retriable', 'timeout');
    if (err.code === SdkErrorCode.ConnectionClosed) return failure('failed-retriable', 'server-exited');
    // The SDK wraps every failed probe in one code: only a server that answered without the
    // generation asked for is a mismatch; a network failure or a closed connection may pass.
    if (err.code === SdkErrorCode.EraNegotiationFailed) {
      if (/did not offer|overlap|unusable reply/i.test(err.message)) return failure('failed-permanent', 'protocol-mismatch');
      if (httpStatus(err) === undefined && /clos/i.test(err.message)) return failure('failed-retriable', 'server-exited');
      return failure('failed-retriable', 'connect-failed');
    }
  }
  if (/protocol version is not supported/i.test(msg)) return failure('failed-permanent', 'protocol-mismatch');
  // Only a request the server calls malformed or unknown is permanent; -32603 and the server's
  // own -32000..-32099 range ("temporarily unavailable") may pass.
  if (err instanceof ProtocolError)
    return PERMANENT_JSONRPC.has(err.code) ? failure('failed-permanent', 'protocol-error') : failure('failed-retriable', 'protocol-error');
  // Node refused the spawn or a header (a NUL byte, a non-Latin-1 header value): the message is
  // at fault, and the error text would echo the value, a secret perhaps, so it is not kept.
  // (undici's "fetch failed" is a TypeError too, but a network failure: retriable, below.)
  if (
    code === 'ERR_INVALID_ARG_VALUE' ||
    code === 'ERR_INVALID_CHAR' ||
    code === 'ERR_INVALID_HTTP_TOKEN' ||
    (err instanceof TypeError && /invalid header value|null bytes/i.test(err.message))
  ) {
    return new InitFailure('failed-permanent', 'invalid-config', `${stage}: an argument, env value or header was refused as invalid`);
  }
  return failure('failed-retriable', 'connect-failed');
}

/**
 * An OAuth failure: the authorization server refused the client (`invalid_client`,
 * `unauthorized_client`, `invalid_scope`…), the server is protected by one the entry's `issuer`
 * excludes, or the token endpoint is plain HTTP off loopback — none of which a retry changes.
 * The server's own trouble (`server_error`, `temporarily_unavailable`) may pass.
 */
function oauthFailure(err: unknown, stage: string): InitFailure | undefined {
  for (let e = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof OAuthError) {
      const retriable = e.code === 'server_error' || e.code === 'temporarily_unavailable';
      return new InitFailure(retriable ? 'failed-retriable' : 'failed-permanent', 'auth-failed', `${stage}: authorization server: ${e.code}`, { cause: err });
    }
    if (e instanceof OAuthClientFlowError || e instanceof UnauthorizedError) {
      return new InitFailure('failed-permanent', 'auth-failed', `${stage}: ${e.message}`, { cause: err });
    }
  }
  return undefined;
}

/** JSON-RPC errors no retry fixes: parse error, invalid request, method not found, invalid params, unsupported version. */
const PERMANENT_JSONRPC = new Set([-32700, -32600, -32601, -32602, -32022]);
