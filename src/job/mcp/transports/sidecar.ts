import { SSEClientTransport, StreamableHTTPClientTransport, type Transport } from '@modelcontextprotocol/client';
import type { DockerServer } from '../../../shared/contract/servers.js';
import type { FetchLike } from './remote-fetch.js';

/**
 * A container server runs as a sidecar in this pod, started and made ready by Kubernetes before
 * the job: it is reached on loopback at its port. Kept apart from `url` entries on purpose — the
 * address is the controller's choice, not the message's, so a remote-URL policy does not apply.
 */
export function sidecarUrl(cfg: DockerServer): URL {
  return new URL(`http://127.0.0.1:${cfg.port}${cfg.path}`);
}

/** `fetch`, when given, is the response-capped one (guardedFetch over the global fetch). */
export function sidecarTransport(cfg: DockerServer, kind: 'http' | 'sse', fetch?: FetchLike): Transport {
  const o = fetch ? { fetch } : {};
  return kind === 'sse' ? new SSEClientTransport(sidecarUrl(cfg), o) : new StreamableHTTPClientTransport(sidecarUrl(cfg), o);
}
