import { readFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { parseEnv } from 'node:util';
import {
  Client,
  InMemoryTransport,
  ProtocolError,
  SdkError,
  SdkErrorCode,
  SdkHttpError,
  SSEClientTransport,
  SseError,
  StreamableHTTPClientTransport,
  TRACEPARENT_META_KEY,
  TRACESTATE_META_KEY,
  UnsupportedProtocolVersionError,
  type Transport,
} from '@modelcontextprotocol/client';
import { getDefaultEnvironment, StdioClientTransport, type StdioServerParameters } from '@modelcontextprotocol/client/stdio';
import { McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { describeError, TerminalError } from '../../shared/errors.js';
import type { ServerOutcome } from '../../shared/contract/exit-codes.js';
import {
  checkServer,
  isCommandAllowed,
  resolveEnvFile,
  ServerConfigSchema,
  type DockerServer,
  type RemoteServer,
  type ServerConfig,
  SERVER_MARGIN_MS,
  type ValidationPolicy,
} from '../../shared/contract/message.js';
import { envKeyRefusal, PolicyReason, SECRET_REFS_DIR, secretRefIn, secretRefPath } from '../../shared/contract/policy.js';
import type { McpProtocol } from '../../shared/settings.js';
import { sleep } from '../../shared/wait.js';
import { policyFetch, urlRefusalIn } from './remote-fetch.js';

export const CLIENT_INFO = { name: 'mcp-job-controller', version: '0.1.0' };

/** What one server's initialization found; the design documents' `serverDetails`, plus timing. */
export const ServerResultSchema = z.object({
  name: z.string(),
  status: z.enum(['initialized', 'failed-retriable', 'failed-permanent']),
  reason: z.string().optional(),
  error: z.string().optional(),
  transport: z.enum(['stdio', 'http', 'sse']),
  serverInfo: z.object({ name: z.string(), version: z.string() }).optional(),
  protocolVersion: z.string().optional(),
  capabilities: z.record(z.string(), z.unknown()).optional(),
  instructions: z.string().optional(),
  tools: z.array(z.string()).optional(),
  prompts: z.array(z.string()).optional(),
  resources: z.array(z.string()).optional(),
  durationMs: z.number(),
  /** The protocol generation that answered: the 2025 `initialize` handshake, or 2026-07-28 `server/discover`. */
  generation: z.enum(['2025', '2026-07-28']).optional(),
  /** Milliseconds per phase; spawn for stdio, connect for http/sse. */
  phases: z.object({ spawn: z.number().optional(), connect: z.number().optional(), handshake: z.number().optional(), lists: z.number().optional() }).optional(),
  /** Lists that stopped at the page cap: the server offers more than reported. */
  capped: z.array(z.enum(['tools', 'prompts', 'resources'])).optional(),
});
export type ServerResult = z.infer<typeof ServerResultSchema>;

/**
 * The options every caller builds from its settings (the job from its env, `serve` from its
 * own): the whole policy goes in, so the connect-time checks use the operator's settings.
 */
export function initOptionsFrom(
  cfg: { MCP_INIT_TIMEOUT_MS: number; SECRETS_DIR: string; ALLOWED_COMMANDS: string[]; MCP_PROTOCOL: McpProtocol; SECRET_REFS_DIR: string },
  policy: NonNullable<InitOptions['policy']>,
): InitOptions {
  return {
    timeoutMs: cfg.MCP_INIT_TIMEOUT_MS,
    secretsDir: cfg.SECRETS_DIR,
    allowedCommands: cfg.ALLOWED_COMMANDS,
    protocol: cfg.MCP_PROTOCOL,
    policy,
    secretRefsDir: cfg.SECRET_REFS_DIR,
  };
}

export interface InitOptions {
  /** One deadline per server, covering start, handshake and every list page. */
  timeoutMs: number;
  secretsDir: string;
  allowedCommands: readonly string[];
  /** The generation to speak unless the server's entry names one (`MCP_PROTOCOL`). */
  protocol: McpProtocol;
  /** W3C trace context for each request's `_meta` on the 2026-07-28 generation. */
  trace?: { traceparent?: string; tracestate?: string };
  /** Receives the server's stderr lines (stdio only), for the job's log. */
  onStderr?: (server: string, line: string) => void;
  /**
   * The message policy, applied again before a server is started or reached (the job's own check,
   * whoever called it); absent parts are the defaults: no Secret references, code-loading env keys
   * refused, no command patterns, the default remote-URL refusals.
   */
  policy?: Pick<ValidationPolicy, 'allowedSecrets' | 'allowedEnvKeys' | 'commandPatterns' | 'remote'>;
  /** Where the Job mounted the referenced Secret keys (`<dir>/<secret>/<key>`). */
  secretRefsDir?: string;
}

/** Pages read per list before giving up: a server whose cursor never ends must not hold the job. */
export const MAX_LIST_PAGES = 100;

class InitFailure extends Error {
  constructor(
    readonly outcome: Exclude<ServerOutcome, 'initialized'>,
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The SDK's own stdio transport probes `server/discover` on a disposable sibling process (one
 * extra spawn per connect), because some servers exit on an unknown pre-`initialize` request. A
 * subclass probes in place (the SDK recognises only its exact class for the sibling). Measured
 * here (test/bench-mcp.ts and the commit that chose this), the sibling roughly doubles a stdio
 * connect (≈ +400 ms) while the v1 fixture, server-everything and a serveStdio server all answer
 * the probe in place and keep serving. So the job probes in place and, only if the server closes
 * the connection during the probe, starts it again with the 2025 handshake.
 */
class InPlaceStdioClientTransport extends StdioClientTransport {}

/** A probe the server ended by closing the connection: what servers that exit on it do. */
function closedDuringProbe(err: unknown): boolean {
  return (
    err instanceof SdkError && (err.code === SdkErrorCode.ConnectionClosed || (err.code === SdkErrorCode.EraNegotiationFailed && /clos/i.test(err.message)))
  );
}

function negotiation(protocol: McpProtocol, timeoutMs: number): ConstructorParameters<typeof Client>[1] {
  if (protocol === '2025') return { versionNegotiation: { mode: 'legacy' } };
  // A short probe: a 2025 server that ignores requests before `initialize` must leave time for
  // the fallback (the SDK takes a probe timeout on stdio as "legacy").
  if (protocol === 'auto') return { versionNegotiation: { mode: 'auto', probe: { timeoutMs: Math.max(100, Math.min(5000, Math.floor(timeoutMs / 3))) } } };
  return { versionNegotiation: { mode: { pin: protocol } } };
}

function stdioTransport(name: string, cfg: Extract<ServerConfig, { command: string }>, opts: InitOptions, secrets: string[]): StdioClientTransport {
  if (!isCommandAllowed(cfg.command, opts.allowedCommands)) {
    throw new InitFailure('failed-permanent', 'command-not-allowed', `command ${JSON.stringify(cfg.command)} is not in the allow-list`);
  }
  let fileEnv: Record<string, string> = {};
  if (cfg.envFile) {
    let path: string;
    try {
      path = resolveEnvFile(cfg.envFile, opts.secretsDir);
    } catch (err) {
      throw new InitFailure('failed-permanent', 'env-file-outside-secrets', (err as Error).message);
    }
    try {
      fileEnv = parseEnv(readFileSync(path, 'utf8')) as Record<string, string>;
    } catch (err) {
      throw new InitFailure(
        'failed-permanent',
        'env-file-unreadable',
        `envFile ${cfg.envFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    // The file is read here, at run time: its keys meet the same policy as the message's `env`.
    for (const key of Object.keys(fileEnv)) {
      const why = envKeyRefusal(`envFile ${cfg.envFile}:`, key, opts.policy?.allowedEnvKeys);
      if (why) throw new InitFailure('failed-permanent', PolicyReason.envKeyNotAllowed, why);
    }
  }
  const params: StdioServerParameters = {
    command: cfg.command,
    args: cfg.args,
    env: {
      ...getDefaultEnvironment(),
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      ...fileEnv,
      ...resolveSecretRefs(cfg.env, false, opts, secrets),
    },
    ...(cfg.cwd ? { cwd: cfg.cwd } : {}),
    stderr: 'pipe',
  };
  const t = new InPlaceStdioClientTransport(params);
  const stderr = t.stderr;
  if (stderr && opts.onStderr) {
    let buf = '';
    stderr.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        opts.onStderr!(name, buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
      if (buf.length > 8192) buf = buf.slice(-8192);
    });
  }
  return t;
}

function httpStatus(err: unknown): number | undefined {
  if (err instanceof SdkHttpError) return err.status;
  if (err instanceof SseError) return err.code;
  return undefined;
}

/** Whether an error or one of its causes is what `test` looks for. */
function inCauses(err: unknown, test: (e: unknown) => boolean): boolean {
  for (let e = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) if (test(e)) return true;
  return false;
}

/** The HTTP status anywhere in an error's causes (the SDK wraps a failed probe around it). */
function httpStatusIn(err: unknown): number | undefined {
  for (let e = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
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

/** What a header value may hold: printable Latin-1 and tab (the rule the message schema applies). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The value of each `secret_ref:<secret>:<key>` among `values`, read from the file the Job mounted
 * for it, and added to `secrets` so a failure's text can be scrubbed of it. A key the Secret lacks
 * (the volume is optional, so the pod starts anyway) fails for good, and so does a value Node
 * would refuse (a NUL in an env value; CR, LF, NUL or a non-Latin-1 character in a header), whose
 * error would quote it: both naming the Secret and the key, never the value.
 */
function resolveSecretRefs(
  values: Record<string, string> | undefined,
  schemeAllowed: boolean,
  opts: InitOptions,
  secrets: string[],
): Record<string, string> | undefined {
  if (!values) return values;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) {
    const ref = secretRefIn(v, schemeAllowed);
    if (ref === undefined || typeof ref === 'string') {
      out[k] = v;
      continue;
    }
    let value: string;
    try {
      value = readFileSync(secretRefPath(opts.secretRefsDir ?? SECRET_REFS_DIR, ref), 'utf8');
    } catch (err) {
      throw new InitFailure(
        'failed-permanent',
        'secret-missing',
        `${k}: Secret ${JSON.stringify(ref.secret)} has no key ${JSON.stringify(ref.key)} in this Job (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      );
    }
    secrets.push(value);
    if (schemeAllowed ? !HEADER_VALUE.test(value) : value.includes('\0')) {
      throw new InitFailure(
        'failed-permanent',
        PolicyReason.secretInvalid,
        `${k}: the value of Secret ${JSON.stringify(ref.secret)} key ${JSON.stringify(ref.key)} cannot be ${schemeAllowed ? 'a header value (printable Latin-1, no CR, LF or NUL)' : 'an environment value (it holds a NUL byte)'}`,
      );
    }
    out[k] = ref.scheme ? `${ref.scheme} ${value}` : value;
  }
  return out;
}

/**
 * A failure's text with every resolved secret value replaced by `[secret]`: the second guard,
 * behind the checks of resolveSecretRefs, against an error that quotes what it was given.
 */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  const forms = secrets.flatMap((v) => [v, v.trim(), JSON.stringify(v).slice(1, -1)]).filter((v) => v.length > 0);
  let out = text;
  for (const v of [...new Set(forms)].sort((a, b) => b.length - a.length)) out = out.split(v).join('[secret]');
  return out;
}

/** A 4xx that a retry cannot change (408 and 429 can). */
function isPermanentHttp(status: number | undefined): boolean {
  return status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;
}

/** Sorts a failure: only what a retry could change is retriable. */
function classify(err: unknown, stage: string): InitFailure {
  if (err instanceof InitFailure) return err;
  if (err instanceof TerminalError) return new InitFailure('failed-permanent', err.reason, err.message);
  const refused = urlRefusalIn(err);
  if (refused) return new InitFailure('failed-permanent', PolicyReason.urlNotAllowed, `${stage}: ${refused.message}`);
  const msg = failureText(err, stage);
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

/** JSON-RPC errors no retry fixes: parse error, invalid request, method not found, invalid params, unsupported version. */
const PERMANENT_JSONRPC = new Set([-32700, -32600, -32601, -32602, -32022]);

class DeadlineExpired extends Error {
  override readonly name = 'DeadlineExpired';
}

/**
 * One server's single deadline. The SDK's own timeouts cover requests, not a transport's start
 * (an SSE endpoint that never sends its `endpoint` event waits forever), so every phase is raced
 * against this clock, and on expiry `onExpire` closes the transport so nothing keeps running.
 */
class Deadline {
  private readonly started = performance.now();
  private timer?: NodeJS.Timeout;
  private readonly expired: Promise<never>;
  constructor(
    readonly ms: number,
    onExpire: () => void,
  ) {
    this.expired = new Promise((_, reject) => {
      this.timer = setTimeout(() => {
        reject(new DeadlineExpired());
        onExpire();
      }, ms);
    });
    this.expired.catch(() => undefined);
  }
  /** What is left, for the SDK's own request timeouts (at least 1 ms: 0 would mean none). */
  remaining(): number {
    return Math.max(1, Math.round(this.ms - (performance.now() - this.started)));
  }
  async run<T>(phase: string, work: Promise<T>): Promise<T> {
    work.catch(() => undefined);
    try {
      return await Promise.race([work, this.expired]);
    } catch (err) {
      if (err instanceof DeadlineExpired) {
        throw new InitFailure('failed-retriable', 'timeout', `${phase}: no answer within the ${this.ms} ms deadline`);
      }
      throw err;
    }
  }
  clear(): void {
    clearTimeout(this.timer);
  }
}

type ListKind = 'tools' | 'prompts' | 'resources';
const LIST_METHODS = { tools: 'tools/list', prompts: 'prompts/list', resources: 'resources/list' } as const;

/**
 * Every page of one list, following `nextCursor` up to MAX_LIST_PAGES. Pages are requested one by
 * one (not the SDK's aggregate walk, which throws at its cap and keeps nothing) so a capped list
 * still reports what it read.
 */
async function listAll(client: Client, kind: ListKind, meta: Record<string, string>, deadline: Deadline): Promise<{ names: string[]; capped: boolean }> {
  const names: string[] = [];
  let cursor: string | undefined;
  for (let pageNo = 0; pageNo < MAX_LIST_PAGES; pageNo++) {
    const params = { ...(cursor !== undefined ? { cursor } : {}), ...(Object.keys(meta).length ? { _meta: meta } : {}) };
    const page = (await deadline.run(
      `${LIST_METHODS[kind]} page ${pageNo + 1}`,
      client.request({ method: LIST_METHODS[kind], params }, { timeout: deadline.remaining() }),
    )) as { tools?: { name: string }[]; prompts?: { name: string }[]; resources?: { uri: string }[]; nextCursor?: string };
    if (kind === 'resources') names.push(...(page.resources ?? []).map((r) => r.uri));
    else names.push(...(page[kind] ?? []).map((x) => x.name));
    if (page.nextCursor === undefined || page.nextCursor === cursor) return { names, capped: false };
    cursor = page.nextCursor;
  }
  return { names, capped: true };
}

type PolicyFetch = Awaited<ReturnType<typeof policyFetch>>['fetch'];

function remoteTransport(cfg: RemoteServer, opts: InitOptions, fetch: PolicyFetch, secrets: string[]): Transport {
  const requestInit = { headers: resolveSecretRefs(cfg.headers, true, opts, secrets) };
  return cfg.type === 'sse'
    ? new SSEClientTransport(new URL(cfg.url), { requestInit, fetch })
    : new StreamableHTTPClientTransport(new URL(cfg.url), { requestInit, fetch });
}

/**
 * A container server runs as a sidecar in this pod, started and made ready by Kubernetes before
 * the job: it is reached on loopback at its port. Kept apart from `url` entries on purpose — the
 * address is the controller's choice, not the message's, so a remote-URL policy does not apply.
 */
export function sidecarUrl(cfg: DockerServer): URL {
  return new URL(`http://127.0.0.1:${cfg.port}${cfg.path}`);
}

function sidecarTransport(cfg: DockerServer, kind: 'http' | 'sse'): Transport {
  return kind === 'sse' ? new SSEClientTransport(sidecarUrl(cfg)) : new StreamableHTTPClientTransport(sidecarUrl(cfg));
}

/** The transport a server entry starts with: stdio, a sidecar's Streamable HTTP, or the entry's URL. */
function firstTransport(name: string, cfg: ServerConfig, opts: InitOptions, fetch: PolicyFetch | undefined, secrets: string[]): Transport {
  if ('command' in cfg) return stdioTransport(name, cfg, opts, secrets);
  return cfg.type === 'docker' ? sidecarTransport(cfg, 'http') : remoteTransport(cfg, opts, fetch!, secrets);
}

/** How a server is reached, for its result. */
function transportKind(cfg: ServerConfig): ServerResult['transport'] {
  if ('command' in cfg) return 'stdio';
  return cfg.type === 'docker' ? 'http' : cfg.type;
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
  /** Every secret value resolved for this server, scrubbed out of its failure's text. */
  const secrets: string[] = [];
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
    transport = firstTransport(name, cfg, opts, remote?.fetch, secrets);
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
        transport = stdioTransport(name, cfg, opts, secrets);
      } else {
        kind = 'sse';
        transport = cfg.type === 'docker' ? sidecarTransport(cfg, 'sse') : remoteTransport({ ...cfg, type: 'sse' }, opts, remote!.fetch, secrets);
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
    for (const k of ['tools', 'prompts', 'resources'] as const) {
      if (!caps[k]) continue;
      const r = await listAll(client, k, meta, deadline);
      lists[k] = r.names;
      if (r.capped) capped.push(k);
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
      ...(capped.length ? { capped } : {}),
      phases,
      durationMs: Math.round(performance.now() - started),
    };
  } catch (err) {
    const f = classify(err, stage);
    return {
      name,
      status: f.outcome,
      reason: f.reason,
      error: scrubSecrets(f.message, secrets).slice(0, 1000),
      transport: kind,
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

/** True while a process with this pid exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The SDK's Client closes a failed connection without awaiting it, and its transport's own
 * SIGTERM/SIGKILL timers do not hold the process open; so a server that ignores stdin closing
 * would outlive the job. Make sure the child is gone: SIGTERM, then SIGKILL.
 */
async function reap(pid: number): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 20 && alive(pid); i++) await sleep(100);
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/**
 * The embedded MCP logic: an in-process MCP server (the SDK's v2 server package) offering
 * `server_initialize`, reached by an in-process client. The job calls it through the MCP protocol
 * itself, so the same tool can later be served over HTTP without change. `initialize` never
 * throws for one server's failure: a failed or lost tool call becomes that server's result, so
 * the other servers' results are never lost.
 */
export async function createInitService(
  opts: InitOptions,
): Promise<{ initialize: (name: string, cfg: ServerConfig) => Promise<ServerResult>; close: () => Promise<void> }> {
  const server = new McpServer({ name: 'mcp-job', version: CLIENT_INFO.version });
  server.registerTool(
    'server_initialize',
    {
      description: 'Start or connect to one MCP server, negotiate the protocol generation, and list its tools, prompts and resources.',
      inputSchema: z.object({ serverName: z.string(), config: ServerConfigSchema }),
      outputSchema: ServerResultSchema,
    },
    async ({ serverName, config }) => {
      const result = await initializeServer(serverName, config, opts);
      return { content: [{ type: 'text', text: JSON.stringify(result) }], structuredContent: result, isError: result.status !== 'initialized' };
    },
  );
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: 'mcp-job', version: CLIENT_INFO.version });
  await client.connect(clientSide);
  // initializeServer is bounded by its own deadline; the margin covers reaping a stubborn child
  // (SIGTERM, 2 s, SIGKILL) and the in-process round trip.
  const callTimeout = (cfg: ServerConfig) => (cfg.timeoutMs ?? opts.timeoutMs) + SERVER_MARGIN_MS;
  return {
    initialize: async (name, cfg) => {
      const started = performance.now();
      const lost = (reason: string, error: string): ServerResult => ({
        name,
        status: 'failed-retriable',
        reason,
        error: error.slice(0, 1000),
        transport: transportKind(cfg),
        durationMs: Math.round(performance.now() - started),
      });
      let r: Awaited<ReturnType<typeof client.callTool>>;
      try {
        r = await client.callTool({ name: 'server_initialize', arguments: { serverName: name, config: cfg } }, { timeout: callTimeout(cfg) });
      } catch (err) {
        const timedOut = err instanceof SdkError && err.code === SdkErrorCode.RequestTimeout;
        return lost(timedOut ? 'timeout' : 'internal-error', `server_initialize: ${describeError(err)}`);
      }
      const parsed = ServerResultSchema.safeParse(r.structuredContent);
      return parsed.success
        ? parsed.data
        : lost('internal-error', `server_initialize returned an unexpected result: ${JSON.stringify(r.content).slice(0, 300)}`);
    },
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}
