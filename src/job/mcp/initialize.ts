import { Client, TRACEPARENT_META_KEY, TRACESTATE_META_KEY, type Transport } from '@modelcontextprotocol/client';
import { checkServer } from '../../shared/contract/checks.js';
import type { ServerConfig } from '../../shared/contract/servers.js';
import type { McpProtocol } from '../../shared/settings.js';
import { Deadline } from './deadline.js';
import { classify, closedDuringProbe, httpStatus } from './failures.js';
import { listAll, type ListKind } from './lists.js';
import { reap } from './processes.js';
import { CLIENT_INFO, responseGuard, type InitOptions, type ListCut, type ServerResult } from './result.js';
import { resolveSecretRefs, scrubSecrets } from './secrets.js';
import { firstTransport, transportKind } from './transports/index.js';
import { remoteTransport } from './transports/remote.js';
import { guardedFetch, policyFetch, ResponseTooLargeError, type FetchLike } from './transports/remote-fetch.js';
import { sidecarTransport } from './transports/sidecar.js';
import { packageSourceOf, stdioTransport } from './transports/stdio.js';

function negotiation(protocol: McpProtocol, timeoutMs: number): ConstructorParameters<typeof Client>[1] {
  if (protocol === '2025') return { versionNegotiation: { mode: 'legacy' } };
  // A short probe: a 2025 server that ignores requests before `initialize` must leave time for
  // the fallback (the SDK takes a probe timeout on stdio as "legacy").
  if (protocol === 'auto') return { versionNegotiation: { mode: 'auto', probe: { timeoutMs: Math.max(100, Math.min(5000, Math.floor(timeoutMs / 3))) } } };
  return { versionNegotiation: { mode: { pin: protocol } } };
}

/**
 * Read once the handshake (and the lists) are done: npm prints its fetch lines before it
 * starts the server, but its stderr and the server's stdout are separate pipes, read in no
 * fixed order, so the source is taken at the end rather than right after the spawn.
 */
function packageOf(t: Transport | undefined, cfg: ServerConfig): { package?: NonNullable<ServerResult['package']> } {
  const p = packageSourceOf(t, cfg);
  return p ? { package: p } : {};
}

/**
 * Starts (stdio) or connects to (http/sse) one MCP server, negotiates the protocol generation,
 * lists what it offers, and closes it — all within one deadline; the child process is gone when
 * this returns, whatever happened. Never throws for a server's failure: it is in the result.
 */
export async function initializeServer(name: string, cfg: ServerConfig, opts: InitOptions): Promise<ServerResult> {
  const started = performance.now();
  let kind = transportKind(cfg);
  let protocol = cfg.protocol ?? opts.protocol;
  const newClient = () => new Client(CLIENT_INFO, { capabilities: {}, ...negotiation(protocol, cfg.timeoutMs ?? opts.timeoutMs) });
  let client = newClient();
  let transport: Transport | undefined;
  /** The stdio child's pid, kept so the job can make sure it is gone before exiting. */
  let pid: number | undefined;
  const deadline = new Deadline(cfg.timeoutMs ?? opts.timeoutMs, () => {
    void client.close().catch(() => undefined);
    void transport?.close().catch(() => undefined);
  });
  const phases: NonNullable<ServerResult['phases']> = {};
  let stage = kind === 'stdio' ? 'spawn' : 'connect';
  let remote: Awaited<ReturnType<typeof policyFetch>> | undefined;
  let fetching: Transport | undefined;
  /** Every secret value resolved for this server, scrubbed out of its failure's text. */
  const secrets: string[] = [];
  /** Set when a reply over MAX_RESPONSE_BYTES was dropped (every transport of this server counts). */
  const guard = responseGuard(opts.maxResponseBytes);
  /** Starts the transport and runs the handshake, timing the two apart. */
  const connect = async (t: Transport): Promise<void> => {
    // The transport's start is the spawn (stdio) or the connection (an SSE GET waits for the
    // server's `endpoint` event); connect() runs the handshake around it.
    const start = t.start.bind(t);
    let startMs = 0;
    t.start = async () => {
      const t0 = performance.now();
      await start();
      startMs = performance.now() - t0;
      pid = (t as { pid?: number | null }).pid ?? undefined;
    };
    const t1 = performance.now();
    stage = 'handshake';
    await deadline.run(protocol === '2025' ? 'initialize' : 'server/discover', client.connect(t, { timeout: deadline.remaining() }));
    phases[kind === 'stdio' ? 'spawn' : 'connect'] = Math.round(startMs);
    phases.handshake = Math.round(performance.now() - t1 - startMs);
  };
  try {
    checkServer(
      name,
      cfg,
      { allowedCommands: opts.allowedCommands, secretsDir: opts.secretsDir, maxMessageBytes: 0, ...opts.policy },
      { sidecar: cfg.type === 'docker' },
    );
    // The sidecar got its references from the kubelet; the job checks the same keys are there.
    if (cfg.type === 'docker') resolveSecretRefs(cfg.environment, false, opts, secrets);
    // A sidecar's loopback address is the controller's choice, not the message's: no remote-URL policy.
    if (!('command' in cfg) && cfg.type !== 'docker')
      remote = await policyFetch(opts.policy?.remote ?? { allow: [], serviceCidrs: [], podCidrs: [], apiServerHosts: [] });
    const fetch = guardedFetch(remote?.fetch ?? (globalThis.fetch as FetchLike), guard);
    transport = firstTransport(name, cfg, opts, fetch, secrets, guard);
    // The first start is the one that fetches; a 2025 restart after the probe finds it cached.
    fetching = transport;
    try {
      await connect(transport);
    } catch (err) {
      const status = httpStatus(err);
      // A server that exits on the in-place probe is a 2025 server: start it again, 2025 only.
      const probeKilled = 'command' in cfg && protocol === 'auto' && closedDuringProbe(err);
      // A `url` without `type`, and a sidecar, are Streamable HTTP first, then SSE on a 4xx, as clients do.
      const sseFallback = !('command' in cfg) && (cfg.type === 'docker' || cfg.sseFallback) && status !== undefined && status >= 400 && status < 500;
      if (!probeKilled && !sseFallback) throw err;
      await client.close().catch(() => undefined);
      await transport.close().catch(() => undefined);
      if (pid) await reap(pid);
      if ('command' in cfg) {
        protocol = '2025';
        transport = stdioTransport(name, cfg, opts, secrets, guard);
      } else {
        kind = 'sse';
        transport = cfg.type === 'docker' ? sidecarTransport(cfg, 'sse', fetch) : remoteTransport({ ...cfg, type: 'sse' }, opts, fetch, secrets);
      }
      client = newClient();
      await connect(transport);
    }
    const modern = client.getProtocolEra() === 'modern';
    // Trace context rides in `_meta` only on 2026-07-28, which reserves those keys for it.
    const meta: Record<string, string> = {};
    if (modern && opts.trace?.traceparent) meta[TRACEPARENT_META_KEY] = opts.trace.traceparent;
    if (modern && opts.trace?.tracestate) meta[TRACESTATE_META_KEY] = opts.trace.tracestate;
    const caps = client.getServerCapabilities() ?? {};
    stage = 'lists';
    const t2 = performance.now();
    const lists: Partial<Record<ListKind, string[]>> = {};
    const capped: ListKind[] = [];
    const cut: Partial<Record<ListKind, ListCut>> = {};
    for (const k of ['tools', 'prompts', 'resources'] as const) {
      if (!caps[k]) continue;
      // A dropped reply closed the stdio connection (the SDK ends it on an oversized line): the
      // lists after it are not read, and say so.
      if (kind === 'stdio' && guard.tripped) {
        lists[k] = [];
        capped.push(k);
        cut[k] = 'response-bytes';
        continue;
      }
      const r = await listAll(client, k, meta, deadline, guard);
      lists[k] = r.names;
      if (r.cut) {
        capped.push(k);
        cut[k] = r.cut;
      }
    }
    phases.lists = Math.round(performance.now() - t2);
    const info = client.getServerVersion();
    return {
      name,
      status: 'initialized',
      transport: kind,
      serverInfo: info ? { name: info.name, version: info.version } : undefined,
      protocolVersion: client.getNegotiatedProtocolVersion(),
      generation: modern ? '2026-07-28' : '2025',
      capabilities: caps as Record<string, unknown>,
      instructions: client.getInstructions(),
      ...lists,
      ...(capped.length ? { capped, cut } : {}),
      ...packageOf(fetching, cfg),
      phases,
      durationMs: Math.round(performance.now() - started),
    };
  } catch (err) {
    // A handshake reply over the cap: the server's answer, not the network, is at fault.
    const f = guard.tripped ? classify(new ResponseTooLargeError(guard.maxBytes), stage) : classify(err, stage);
    return {
      name,
      status: f.outcome,
      reason: f.reason,
      error: scrubSecrets(f.message, secrets).slice(0, 1000),
      transport: kind,
      ...packageOf(fetching, cfg),
      ...(Object.keys(phases).length ? { phases } : {}),
      durationMs: Math.round(performance.now() - started),
    };
  } finally {
    deadline.clear();
    await client.close().catch(() => undefined);
    await transport?.close().catch(() => undefined);
    await remote?.close().catch(() => undefined);
    if (pid) await reap(pid);
  }
}
