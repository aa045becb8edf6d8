import { lookup } from 'node:dns/promises';
import { causeChain } from '../../../shared/errors.js';
import { connectChecker, type ValidationPolicy } from '../../../shared/contract/policy.js';
import type { ResponseGuard } from '../result.js';

/** A connection the remote-URL policy refused; nothing was sent. */
export class UrlRefusedError extends Error {
  override readonly name = 'UrlRefusedError';
  constructor(
    readonly host: string,
    readonly why: string,
  ) {
    super(`host ${JSON.stringify(host)} is refused (${why}); ALLOWED_REMOTE_HOSTS can allow it`);
  }
}

/** Every address a name resolves to, as the system resolver answers (what `net.connect` would pick from). */
export type Resolve = (host: string) => Promise<string[]>;
const systemResolve: Resolve = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

export type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

/** A reply larger than the response cap, dropped before it was parsed. */
export class ResponseTooLargeError extends Error {
  override readonly name = 'ResponseTooLargeError';
  constructor(readonly maxBytes: number) {
    super(`the server sent a reply larger than ${maxBytes} bytes; it was dropped`);
  }
}

/**
 * A `fetch` whose response bodies stop at `guard.maxBytes`: the SDK reads a JSON reply whole and
 * an SSE event whole before parsing, so without this one reply of a hostile server could take
 * any amount of memory. A JSON body counts as a whole; an event stream counts per event (it may
 * carry every reply of a session). Past the cap the body errors with ResponseTooLargeError and
 * `guard.tripped` says so to the list reader.
 */
export function guardedFetch(base: FetchLike, guard: ResponseGuard): FetchLike {
  return async (url, init) => {
    const res = await base(url, init);
    if (!res.body) return res;
    const events = (res.headers.get('content-type') ?? '').toLowerCase().startsWith('text/event-stream');
    // Bytes of the current reply: the whole body, or the current event since the last blank line.
    let pending = 0;
    let prev = -1;
    let prev2 = -1;
    const counted = res.body.pipeThrough(
      new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, ctl) {
          if (!events) pending += chunk.length;
          else
            for (const b of chunk) {
              // A blank line ends an event: "\n\n" or "\n\r\n".
              pending = b === 10 && (prev === 10 || (prev === 13 && prev2 === 10)) ? 0 : pending + 1;
              prev2 = prev;
              prev = b;
              if (pending > guard.maxBytes) break;
            }
          if (pending > guard.maxBytes) {
            guard.tripped = true;
            ctl.error(new ResponseTooLargeError(guard.maxBytes));
            return;
          }
          ctl.enqueue(chunk);
        },
      }),
    );
    return new Response(counted, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/**
 * A `fetch` for the MCP SDK's HTTP transports that checks every connection it opens — the first,
 * each redirect's, each reconnection's — against the remote-URL policy at connect time: the host
 * is resolved here, every address it resolves to is checked, and the socket is opened to the
 * checked address (so a second DNS answer cannot swap it: DNS rebinding). A refusal happens
 * before any socket exists. Built on undici's own `fetch` and `Agent`, whose connector hook is the
 * one place every connection of a fetch passes through (Node 20's global fetch exposes none).
 * undici is loaded here, on first use, so a job with only stdio servers does not pay for it.
 */
export async function policyFetch(
  policy: Pick<ValidationPolicy, 'remote'>,
  resolve: Resolve = systemResolve,
): Promise<{ fetch: FetchLike; close: () => Promise<void> }> {
  const { Agent, buildConnector, fetch: undiciFetch } = await import('undici');
  const check = connectChecker(policy);
  const connect = buildConnector({});
  const agent = new Agent({
    connect: (opts, callback) => {
      const host = opts.hostname;
      const byName = check.host(host);
      if (byName === 'allowed') return connect(opts, callback);
      if (byName !== undefined) return callback(new UrlRefusedError(host, byName), null);
      resolve(host).then(
        (addrs) => {
          const refused = addrs.map((a) => [a, check.address(a)] as const).find(([, why]) => why !== undefined);
          if (refused) return callback(new UrlRefusedError(host, `resolves to a ${refused[1]} address`), null);
          if (addrs.length === 0) return callback(new UrlRefusedError(host, 'resolves to no address'), null);
          // The TLS server name stays the host's (undici derives it from `host`, not `hostname`).
          return connect({ ...opts, hostname: addrs[0]! }, callback);
        },
        (err: Error) => callback(err, null),
      );
    },
  });
  const fetch: FetchLike = async (url, init) => asGlobalResponse((await undiciFetch(url, { ...(init as object), dispatcher: agent })) as unknown as Response);
  return { fetch, close: () => agent.close() };
}

/**
 * undici's own Response class is not Node's global one, and the SDK's OAuth error parser tests
 * `instanceof Response`: given undici's, it reads an authorization server's `invalid_client`
 * as the text "[object Response]" and reports a retriable `server_error`. An error reply is
 * handed on as a global Response (the body is still a stream, read once).
 */
function asGlobalResponse(res: Response): Response {
  if (res.status < 400 || (res as unknown) instanceof Response) return res;
  const out = new Response(res.body, { status: res.status, statusText: res.statusText, headers: res.headers });
  Object.defineProperty(out, 'url', { value: res.url });
  return out;
}

/** The policy's refusal in an error or its causes (the SDK and fetch wrap what the connector says). */
export function urlRefusalIn(err: unknown): UrlRefusedError | undefined {
  return [...causeChain(err)].find((e): e is UrlRefusedError => e instanceof UrlRefusedError);
}
