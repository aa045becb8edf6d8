import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { getDefaultEnvironment, StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { describeError, TerminalError } from '../shared/errors.js';
import type { ServerOutcome } from '../shared/exit-codes.js';
import { isCommandAllowed, resolveEnvFile, ServerConfigSchema, type ServerConfig } from '../shared/message.js';
import { sleep } from '../shared/wait.js';

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

export interface InitOptions {
  timeoutMs: number;
  secretsDir: string;
  allowedCommands: readonly string[];
  /** Receives the server's stderr lines (stdio only), for the job's log. */
  onStderr?: (server: string, line: string) => void;
}

/**
 * Forwards a transport and remembers the protocol version the server answered `initialize`
 * with; the SDK's Client negotiates it but does not expose it.
 */
class ObservingTransport implements Transport {
  onclose?: Transport['onclose'];
  onerror?: Transport['onerror'];
  onmessage?: Transport['onmessage'];
  protocolVersion?: string;
  /** The stdio child's pid, kept so the job can make sure it is gone before exiting. */
  pid?: number;
  constructor(readonly inner: Transport) {
    inner.onmessage = (m, extra) => {
      const r = (m as { result?: { protocolVersion?: unknown } }).result;
      if (!this.protocolVersion && typeof r?.protocolVersion === 'string') this.protocolVersion = r.protocolVersion;
      this.onmessage?.(m, extra);
    };
    inner.onclose = () => this.onclose?.();
    inner.onerror = (e) => this.onerror?.(e);
  }
  get sessionId() {
    return this.inner.sessionId;
  }
  async start() {
    await this.inner.start();
    this.pid = (this.inner as { pid?: number | null }).pid ?? undefined;
  }
  send(...args: Parameters<Transport['send']>) {
    return this.inner.send(...args);
  }
  close() {
    return this.inner.close();
  }
  setProtocolVersion(v: string) {
    this.inner.setProtocolVersion?.(v);
  }
}

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

function stdioTransport(name: string, cfg: Extract<ServerConfig, { command: string }>, opts: InitOptions): StdioClientTransport {
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
  }
  const t = new StdioClientTransport({
    command: cfg.command,
    args: cfg.args,
    env: { ...getDefaultEnvironment(), ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}), ...fileEnv, ...cfg.env },
    stderr: 'pipe',
  });
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

/** Sorts a failed handshake: only what a retry could change is retriable. */
function classify(err: unknown, stage: string): InitFailure {
  if (err instanceof InitFailure) return err;
  const msg = `${stage}: ${describeError(err)}`;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'EACCES') return new InitFailure('failed-permanent', 'spawn-failed', msg, { cause: err });
  if (err instanceof McpError && err.code === ErrorCode.RequestTimeout) return new InitFailure('failed-retriable', 'timeout', msg, { cause: err });
  if (err instanceof McpError && err.code === ErrorCode.ConnectionClosed) return new InitFailure('failed-retriable', 'server-exited', msg, { cause: err });
  if (err instanceof StreamableHTTPError && err.code !== undefined && err.code >= 400 && err.code < 500 && err.code !== 408 && err.code !== 429) {
    return new InitFailure('failed-permanent', 'http-rejected', msg, { cause: err });
  }
  if (/protocol version is not supported/i.test(msg)) return new InitFailure('failed-permanent', 'protocol-mismatch', msg, { cause: err });
  if (err instanceof McpError) return new InitFailure('failed-permanent', 'protocol-error', msg, { cause: err });
  return new InitFailure('failed-retriable', 'connect-failed', msg, { cause: err });
}

/**
 * Starts (stdio) or connects to (http/sse) one MCP server, runs the real initialize handshake
 * with a timeout, lists what it offers, and closes it — the child process is gone when this
 * returns, whatever happened.
 */
export async function initializeServer(name: string, cfg: ServerConfig, opts: InitOptions): Promise<ServerResult> {
  const started = performance.now();
  const kind = 'command' in cfg ? 'stdio' : cfg.type;
  const client = new Client(CLIENT_INFO, { capabilities: {} });
  let transport: ObservingTransport | undefined;
  let stage = 'start';
  try {
    const inner: Transport =
      'command' in cfg
        ? stdioTransport(name, cfg, opts)
        : cfg.type === 'sse'
          ? new SSEClientTransport(new URL(cfg.url), { requestInit: { headers: cfg.headers } })
          : new StreamableHTTPClientTransport(new URL(cfg.url), { requestInit: { headers: cfg.headers } });
    transport = new ObservingTransport(inner);
    stage = 'initialize';
    await client.connect(transport, { timeout: opts.timeoutMs });
    const caps = client.getServerCapabilities() ?? {};
    const req = { timeout: opts.timeoutMs };
    stage = 'list';
    const tools = caps.tools ? (await client.listTools(undefined, req)).tools.map((t) => t.name) : undefined;
    const prompts = caps.prompts ? (await client.listPrompts(undefined, req)).prompts.map((p) => p.name) : undefined;
    const resources = caps.resources ? (await client.listResources(undefined, req)).resources.map((r) => r.uri) : undefined;
    const info = client.getServerVersion();
    return {
      name,
      status: 'initialized',
      transport: kind,
      serverInfo: info ? { name: info.name, version: info.version } : undefined,
      protocolVersion: transport.protocolVersion,
      capabilities: caps as Record<string, unknown>,
      instructions: client.getInstructions(),
      tools,
      prompts,
      resources,
      durationMs: Math.round(performance.now() - started),
    };
  } catch (err) {
    const f = classify(err, stage);
    return { name, status: f.outcome, reason: f.reason, error: f.message.slice(0, 1000), transport: kind, durationMs: Math.round(performance.now() - started) };
  } finally {
    await client.close().catch(() => undefined);
    await transport?.close().catch(() => undefined);
    if (transport?.pid) await reap(transport.pid);
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
 * The embedded MCP logic: an in-process MCP server offering `server_initialize`, reached by an
 * in-process client. The job calls it through the MCP protocol itself, so the same tool can
 * later be served over HTTP without change.
 */
export async function createInitService(
  opts: InitOptions,
): Promise<{ initialize: (name: string, cfg: ServerConfig) => Promise<ServerResult>; close: () => Promise<void> }> {
  const server = new McpServer({ name: 'mcp-job', version: CLIENT_INFO.version });
  server.registerTool(
    'server_initialize',
    {
      description: 'Start or connect to one MCP server, run the initialize handshake, and list its tools, prompts and resources.',
      inputSchema: { serverName: z.string(), config: ServerConfigSchema },
      outputSchema: ServerResultSchema.shape,
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
  return {
    initialize: async (name, cfg) => {
      const r = await client.callTool({ name: 'server_initialize', arguments: { serverName: name, config: cfg } }, undefined, {
        timeout: opts.timeoutMs * 4 + 10_000,
      });
      const parsed = ServerResultSchema.safeParse(r.structuredContent);
      if (!parsed.success)
        throw new TerminalError('invalid-payload', `server_initialize returned an unexpected result: ${JSON.stringify(r.content).slice(0, 300)}`);
      return parsed.data;
    },
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}
