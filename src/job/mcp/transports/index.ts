import type { Transport } from '@modelcontextprotocol/client';
import type { ServerConfig } from '../../../shared/contract/servers.js';
import type { InitOptions, ResponseGuard, ServerResult } from '../result.js';
import { remoteTransport, type PolicyFetch } from './remote.js';
import { sidecarTransport } from './sidecar.js';
import { stdioTransport } from './stdio.js';

/** The transport a server entry starts with: stdio, a sidecar's Streamable HTTP, or the entry's URL. */
export function firstTransport(name: string, cfg: ServerConfig, opts: InitOptions, fetch: PolicyFetch, secrets: string[], guard: ResponseGuard): Transport {
  if ('command' in cfg) return stdioTransport(name, cfg, opts, secrets, guard);
  return cfg.type === 'docker' ? sidecarTransport(cfg, 'http', fetch) : remoteTransport(cfg, opts, fetch, secrets);
}

/** How a server is reached, for its result. */
export function transportKind(cfg: ServerConfig): ServerResult['transport'] {
  if ('command' in cfg) return 'stdio';
  return cfg.type === 'docker' ? 'http' : cfg.type;
}
