import { SSEClientTransport, StreamableHTTPClientTransport, type Transport } from '@modelcontextprotocol/client';
import { oauthSecrets } from '../../../shared/contract/policy.js';
import type { RemoteServer } from '../../../shared/contract/servers.js';
import type { InitOptions } from '../result.js';
import { resolveSecretRefs } from '../secrets.js';
import { clientCredentialsProvider } from './oauth.js';
import type { policyFetch } from './remote-fetch.js';

export type PolicyFetch = Awaited<ReturnType<typeof policyFetch>>['fetch'];

export function remoteTransport(cfg: RemoteServer, opts: InitOptions, fetch: PolicyFetch, secrets: string[]): Transport {
  const headers = resolveSecretRefs(cfg.headers, true, opts, secrets);
  const url = new URL(cfg.url);
  if (!cfg.oauth) {
    const requestInit = { headers };
    return cfg.type === 'sse' ? new SSEClientTransport(url, { requestInit, fetch }) : new StreamableHTTPClientTransport(url, { requestInit, fetch });
  }
  // The SDK sends a transport's requestInit with every request, the authorization server's too:
  // the entry's headers (an API key, say) go only to the MCP server's own origin.
  const scoped: PolicyFetch = (target, init) =>
    new URL(String(target)).origin === url.origin && headers
      ? fetch(target, { ...init, headers: { ...headers, ...Object.fromEntries(new Headers(init?.headers).entries()) } })
      : fetch(target, init);
  const resolved = resolveSecretRefs(oauthSecrets(cfg.oauth), false, opts, secrets)!;
  const authProvider = clientCredentialsProvider(cfg.oauth, resolved, secrets);
  return cfg.type === 'sse'
    ? new SSEClientTransport(url, { authProvider, fetch: scoped })
    : new StreamableHTTPClientTransport(url, { authProvider, fetch: scoped });
}
