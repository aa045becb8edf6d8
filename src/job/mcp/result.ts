import { z } from 'zod';
import { ToolsChangeSchema } from '../../shared/contract/fingerprint.js';
import type { ValidationPolicy } from '../../shared/contract/policy.js';
import type { McpProtocol } from '../../shared/settings.js';
import { PackageSourceSchema } from '../../shared/contract/summary.js';
import type { PackageCache } from './package-source.js';
import { VERSION } from '../../shared/version.js';

export const CLIENT_INFO = { name: 'mcp-job-controller', version: VERSION };

/**
 * Why a list stopped before its end: `pages` (LIST_LIMITS.pages read, the cursor went on),
 * `names` (LIST_LIMITS.names kept), `bytes` (LIST_LIMITS.bytes of names kept), `response-bytes`
 * (one reply was larger than MAX_RESPONSE_BYTES and was dropped unread).
 */
export const ListCutSchema = z.enum(['pages', 'names', 'bytes', 'response-bytes']);
export type ListCut = z.infer<typeof ListCutSchema>;

/** What one server's initialization found: the summary's `serverDetails` (docs/messages.md), plus timing. */
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
  /** Lists that stopped early (at a cap of LIST_LIMITS or the response cap): the server offers more than reported. */
  capped: z.array(z.enum(['tools', 'prompts', 'resources'])).optional(),
  /** Why each list in `capped` stopped. */
  cut: z.object({ tools: ListCutSchema.optional(), prompts: ListCutSchema.optional(), resources: ListCutSchema.optional() }).optional(),
  /** Where a stdio server's code came from (cache, registry, installed path) and how long fetching it took. */
  package: PackageSourceSchema.optional(),
  /** sha256 of the whole tool list (see fingerprint.ts), to pin as the entry's `toolsDigest`. */
  toolsDigest: z.string().optional(),
  /** sha256 of each tool by name, to pin as the entry's `toolDigests`. */
  toolDigests: z.record(z.string(), z.string()).optional(),
  /** How the tools differ from the entry's pin (the server then failed `tools-changed`). */
  toolsChanged: ToolsChangeSchema.optional(),
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
  /** The response cap (MAX_RESPONSE_BYTES unless a test sets a smaller one). */
  maxResponseBytes?: number;
  /** The shared package cache npx and uvx use (openPackageCache), when the Job has one. */
  packageCache?: PackageCache;
}

/**
 * What one list keeps, across all its pages, whatever the server sends: a server must not be able
 * to grow the job's memory (a Job's limit is 256 Mi) or its result past these. `pages`: a cursor
 * that never ends must not hold the job. `names` and `bytes` bound what is kept (UTF-8 bytes of
 * the names), `nameChars` one name (longer ones end in `…`).
 */
export const LIST_LIMITS = { pages: 100, names: 10_000, bytes: 512 * 1024, nameChars: 512 } as const;
export const MAX_LIST_PAGES = LIST_LIMITS.pages;

/**
 * Largest reply read from a server: one JSON-RPC message on stdio, one HTTP response body (one
 * SSE event on an event stream). The SDK parses a reply whole, so this is what bounds the memory a
 * single page can take; a larger reply is dropped and the list ends there (`response-bytes`).
 */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** Set by a transport when it dropped a reply over MAX_RESPONSE_BYTES (one per server). */
export interface ResponseGuard {
  readonly maxBytes: number;
  tripped: boolean;
}

export function responseGuard(maxBytes = MAX_RESPONSE_BYTES): ResponseGuard {
  return { maxBytes, tripped: false };
}

/**
 * The policy a server is checked against at start or connect time: the caller's, over the
 * commands and secrets folder of its options. Absent parts are the defaults (see InitOptions.policy).
 */
export function policyOf(opts: InitOptions): ValidationPolicy {
  return { allowedCommands: opts.allowedCommands, secretsDir: opts.secretsDir, maxMessageBytes: 0, ...opts.policy };
}
