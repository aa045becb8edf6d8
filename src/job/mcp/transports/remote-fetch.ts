import { lookup } from 'node:dns/promises';
import { remoteChecker, type RemotePolicy } from '../../../shared/contract/policy.js';

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

type FetchLike = (url: string | URL, init?: RequestInit) => Promise<Response>;

/**
 * A `fetch` for the MCP SDK's HTTP transports that checks every connection it opens — the first,
 * each redirect's, each reconnection's — against the remote-URL policy at connect time: the host
 * is resolved here, every address it resolves to is checked, and the socket is opened to the
 * checked address (so a second DNS answer cannot swap it: DNS rebinding). A refusal happens
 * before any socket exists. Built on undici's own `fetch` and `Agent`, whose connector hook is the
 * one place every connection of a fetch passes through (Node 20's global fetch exposes none).
 * undici is loaded here, on first use, so a job with only stdio servers does not pay for it.
 */
export async function policyFetch(policy: RemotePolicy, resolve: Resolve = systemResolve): Promise<{ fetch: FetchLike; close: () => Promise<void> }> {
  const { Agent, buildConnector, fetch: undiciFetch } = await import('undici');
  const check = remoteChecker(policy);
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
  for (let e = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof UrlRefusedError) return e;
  }
  return undefined;
}
