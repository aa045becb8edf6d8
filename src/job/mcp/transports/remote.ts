import { SSEClientTransport, StreamableHTTPClientTransport, type Transport } from '@modelcontextprotocol/client';
import type { RemoteServer } from '../../../shared/contract/servers.js';
import type { InitOptions } from '../result.js';
import { resolveSecretRefs } from '../secrets.js';
import type { policyFetch } from './remote-fetch.js';

export type PolicyFetch = Awaited<ReturnType<typeof policyFetch>>['fetch'];

export function remoteTransport(cfg: RemoteServer, opts: InitOptions, fetch: PolicyFetch, secrets: string[]): Transport {
  const requestInit = { headers: resolveSecretRefs(cfg.headers, true, opts, secrets) };
  return cfg.type === 'sse'
    ? new SSEClientTransport(new URL(cfg.url), { requestInit, fetch })
    : new StreamableHTTPClientTransport(new URL(cfg.url), { requestInit, fetch });
}
