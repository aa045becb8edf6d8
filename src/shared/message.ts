import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { z } from 'zod';
import { TerminalError } from './errors.js';
import { McpProtocolSchema, type SharedConfig } from './settings.js';

/** The job types the design documents define. */
export const JOB_TYPES = ['server-init'] as const;

const stringMap = z.record(z.string(), z.string());

/** A per-server deadline from a client config file: milliseconds, as MCP_INIT_TIMEOUT_MS. */
const timeoutMs = z
  .number({ error: 'timeout is a number of milliseconds' })
  .int()
  .min(100, 'timeout is in milliseconds (at least 100)')
  .max(10 * 60_000, 'timeout is at most 600000 ms');
const httpUrl = z.url({ protocol: /^https?$/, error: 'url must be an http(s) URL' });

/**
 * The job's internal shape of one server, what every dialect below maps onto and what the
 * in-process `server_initialize` tool takes.
 */
export const StdioServerSchema = z.strictObject({
  type: z.literal('stdio').optional(),
  command: z.string().min(1, 'command must not be empty'),
  args: z.array(z.string()).default([]),
  env: stringMap.optional(),
  envFile: z.string().min(1).optional(),
  cwd: z.string().min(1).optional(),
  protocol: McpProtocolSchema.optional(),
  timeoutMs: timeoutMs.optional(),
});

export const RemoteServerSchema = z.strictObject({
  type: z.enum(['http', 'sse']),
  url: httpUrl,
  headers: stringMap.optional(),
  protocol: McpProtocolSchema.optional(),
  timeoutMs: timeoutMs.optional(),
  /** Fall back to SSE when Streamable HTTP answers 4xx, as clients do for a `url` without `type`. */
  sseFallback: z.boolean().optional(),
});

export const ServerConfigSchema = z.union([RemoteServerSchema, StdioServerSchema]);

/** Claude Desktop / Claude Code `mcpServers` and VS Code `servers` entry, stdio form. */
const StdioEntrySchema = z.strictObject({
  type: z.literal('stdio').optional(),
  command: z.string().min(1, 'command must not be empty'),
  args: z.array(z.string()).default([]),
  env: stringMap.optional(),
  envFile: z.string().min(1).optional(),
  cwd: z.string().min(1).optional(),
  timeout: timeoutMs.optional(),
  protocol: McpProtocolSchema.optional(),
});

/** The same files' remote form; `streamable-http` is another name for `http`. */
const RemoteEntrySchema = z.strictObject({
  type: z.enum(['http', 'streamable-http', 'sse']).optional(),
  url: httpUrl,
  headers: stringMap.optional(),
  timeout: timeoutMs.optional(),
  protocol: McpProtocolSchema.optional(),
});

/**
 * The design documents' URL provider (seed 003). Its `timeout` is in seconds, like its
 * `health_check` interval. `health_check` is accepted and not used: the MCP handshake the job
 * runs is the stronger check.
 */
const UrlProviderSchema = z.strictObject({
  type: z.literal('url'),
  endpoint: httpUrl,
  health_check: z
    .strictObject({ path: z.string().optional(), interval: z.number().positive().optional(), timeout: z.number().positive().optional() })
    .optional(),
  timeout: z.number().positive().max(600, 'timeout is at most 600 seconds').optional(),
  authentication: z.strictObject({ type: z.literal('bearer'), token: z.string().min(1) }).optional(),
  protocol: McpProtocolSchema.optional(),
});

const SECRET_REF = /^secret_ref:/;

/** Which dialect an entry is, from its `type` and fields, so a refusal names the right fields. */
function entrySchema(v: unknown): z.ZodType | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'a server entry must be an object';
  const e = v as Record<string, unknown>;
  if (e.type === 'url') return UrlProviderSchema;
  if (e.type === 'stdio') return StdioEntrySchema;
  if (e.type === 'http' || e.type === 'streamable-http' || e.type === 'sse') return RemoteEntrySchema;
  if (e.type === 'docker') return 'type "docker" (the container provider) is not supported by the job';
  if (e.type !== undefined) return `unknown type ${JSON.stringify(e.type)}; known: stdio, http, streamable-http, sse, url`;
  if ('command' in e) return StdioEntrySchema;
  if ('url' in e) return RemoteEntrySchema;
  return 'a server needs "command" (stdio), "url" (Streamable HTTP or SSE) or "type": "url" with "endpoint"';
}

/** Maps one parsed dialect entry onto the internal shape. */
function toInternal(e: Record<string, unknown>): ServerConfig | string {
  if (e.type === 'url') {
    const u = e as z.infer<typeof UrlProviderSchema>;
    if (u.authentication && SECRET_REF.test(u.authentication.token)) return 'authentication.token: secret references are not resolved by the job yet';
    return {
      type: 'http',
      url: u.endpoint,
      sseFallback: true,
      ...(u.authentication ? { headers: { Authorization: `Bearer ${u.authentication.token}` } } : {}),
      ...(u.timeout ? { timeoutMs: Math.round(u.timeout * 1000) } : {}),
      ...(u.protocol ? { protocol: u.protocol } : {}),
    };
  }
  if ('command' in e) {
    const { timeout, ...rest } = e as z.infer<typeof StdioEntrySchema>;
    return { ...rest, ...(timeout ? { timeoutMs: timeout } : {}) };
  }
  const { type, timeout, ...rest } = e as z.infer<typeof RemoteEntrySchema>;
  return {
    ...rest,
    type: type === 'sse' ? 'sse' : 'http',
    ...(type === undefined ? { sseFallback: true } : {}),
    ...(timeout ? { timeoutMs: timeout } : {}),
  };
}

/**
 * One server entry in any dialect users already have: Claude Desktop / Claude Code `mcpServers`,
 * VS Code `servers`, and the seed's URL provider; unknown fields are refused by name.
 */
export const ServerEntrySchema = z.unknown().transform((v, ctx): ServerConfig => {
  const schema = entrySchema(v);
  if (typeof schema === 'string') {
    ctx.addIssue({ code: 'custom', message: schema });
    return z.NEVER;
  }
  const r = schema.safeParse(v);
  if (!r.success) {
    for (const i of r.error.issues) ctx.addIssue({ code: 'custom', message: i.message, path: i.path });
    return z.NEVER;
  }
  const out = toInternal(r.data as Record<string, unknown>);
  if (typeof out === 'string') {
    ctx.addIssue({ code: 'custom', message: out });
    return z.NEVER;
  }
  return out;
});

const serverMap = z
  .record(z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'server names are 1-64 letters, digits, _ . -'), ServerEntrySchema)
  .refine((m) => Object.keys(m).length > 0, 'name at least one server')
  .refine((m) => Object.keys(m).length <= 32, 'at most 32 servers per message');

/** The payload: `mcpServers` (Claude) or `servers` (VS Code), normalised to `mcpServers`. */
export const MCPServersConfigSchema = z
  .strictObject({ mcpServers: serverMap.optional(), servers: serverMap.optional() })
  .refine((c) => (c.mcpServers === undefined) !== (c.servers === undefined), 'give exactly one of mcpServers or servers')
  .transform((c) => ({ mcpServers: (c.mcpServers ?? c.servers)! }));

export const EnvelopeSchema = z.object({
  jobID: z.string().min(1, 'jobID must not be empty').max(253, 'jobID is at most 253 characters'),
  jobType: z.string().min(1),
  payload: z.union([z.string(), z.record(z.string(), z.unknown())], { error: 'payload must be a JSON string or an object' }),
});

export type StdioServer = z.infer<typeof StdioServerSchema>;
export type RemoteServer = z.infer<typeof RemoteServerSchema>;
export type ServerConfig = z.infer<typeof ServerConfigSchema>;
export type MCPServersConfig = z.output<typeof MCPServersConfigSchema>;

/** A message that passed validation. */
export interface ValidMessage {
  jobID: string;
  jobType: (typeof JOB_TYPES)[number];
  config: MCPServersConfig;
  /** sha256 of the raw value, hex: the job checks it read the very bytes the controller saw. */
  checksum: string;
}

/** What the controller and the job both check beyond shape. */
export interface ValidationPolicy {
  /** Commands a stdio server may run (basename or full path); `*` allows any. */
  allowedCommands: readonly string[];
  /** Folder mounted from a Secret; envFile paths must resolve inside it. */
  secretsDir: string;
  /** Largest accepted value, in bytes. */
  maxMessageBytes: number;
}

export function checksumOf(value: Buffer): string {
  return createHash('sha256').update(value).digest('hex');
}

function zodReason(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

export function isCommandAllowed(command: string, allowed: readonly string[]): boolean {
  if (allowed.includes('*')) return true;
  return allowed.includes(command) || (!command.includes('/') && allowed.includes(posix.basename(command)));
}

/** Resolves an envFile path inside the secrets folder, or throws if it escapes it. */
export function resolveEnvFile(envFile: string, secretsDir: string): string {
  const root = posix.resolve(secretsDir);
  const full = posix.resolve(root, envFile);
  if (full !== root && full.startsWith(`${root}/`)) return full;
  throw new TerminalError('env-file-outside-secrets', `envFile ${JSON.stringify(envFile)} is outside the secrets directory ${root}`);
}

/**
 * Validates a Kafka message value against the contract in the design documents. Throws a
 * TerminalError whose `reason` is a stable code and whose message says what is wrong.
 */
export function parseMessage(value: Buffer | null, policy: ValidationPolicy): ValidMessage {
  if (!value || value.length === 0) throw new TerminalError('empty-message', 'message has no value');
  if (value.length > policy.maxMessageBytes) {
    throw new TerminalError('message-too-large', `message is ${value.length} bytes; the limit is ${policy.maxMessageBytes}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(value));
  } catch (err) {
    throw new TerminalError('invalid-json', `message value is not UTF-8 JSON: ${(err as Error).message}`);
  }
  const env = EnvelopeSchema.safeParse(json);
  if (!env.success) throw new TerminalError('invalid-envelope', `message envelope is invalid: ${zodReason(env.error)}`);
  const { jobID, jobType, payload } = env.data;
  if (!(JOB_TYPES as readonly string[]).includes(jobType)) {
    throw new TerminalError('unknown-job-type', `unknown jobType ${JSON.stringify(jobType.slice(0, 64))}; known: ${JOB_TYPES.join(', ')}`);
  }
  let payloadObj: unknown = payload;
  if (typeof payload === 'string') {
    try {
      payloadObj = JSON.parse(payload);
    } catch (err) {
      throw new TerminalError('invalid-payload', `payload string is not JSON: ${(err as Error).message}`);
    }
  }
  const cfg = MCPServersConfigSchema.safeParse(payloadObj);
  if (!cfg.success) throw new TerminalError('invalid-payload', `payload is not an MCPServersConfig: ${zodReason(cfg.error)}`);
  for (const [name, server] of Object.entries(cfg.data.mcpServers)) {
    if ('command' in server) {
      if (!isCommandAllowed(server.command, policy.allowedCommands)) {
        throw new TerminalError(
          'command-not-allowed',
          `server ${name}: command ${JSON.stringify(server.command)} is not in the allow-list (${policy.allowedCommands.join(', ')})`,
        );
      }
      if (server.envFile !== undefined) resolveEnvFile(server.envFile, policy.secretsDir);
    }
  }
  return { jobID, jobType: jobType as ValidMessage['jobType'], config: cfg.data, checksum: checksumOf(value) };
}

/** The validation policy both programs derive from their (shared) settings. */
export function validationPolicy(cfg: Pick<SharedConfig, 'ALLOWED_COMMANDS' | 'SECRETS_DIR' | 'MAX_MESSAGE_BYTES'>): ValidationPolicy {
  return { allowedCommands: cfg.ALLOWED_COMMANDS, secretsDir: cfg.SECRETS_DIR, maxMessageBytes: cfg.MAX_MESSAGE_BYTES };
}
