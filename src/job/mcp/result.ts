import { z } from 'zod';
import type { ValidationPolicy } from '../../shared/contract/message.js';
import type { McpProtocol } from '../../shared/settings.js';
import { PackageSourceSchema } from '../../shared/contract/summary.js';
import type { PackageCache } from './package-source.js';

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
  /** Where a stdio server's code came from (cache, registry, installed path) and how long fetching it took. */
  package: PackageSourceSchema.optional(),
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
  /** The shared package cache npx and uvx use (openPackageCache), when the Job has one. */
  packageCache?: PackageCache;
}

/** Pages read per list before giving up: a server whose cursor never ends must not hold the job. */
export const MAX_LIST_PAGES = 100;
