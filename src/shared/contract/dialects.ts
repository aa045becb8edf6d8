import { z } from 'zod';
import { McpProtocolSchema } from '../settings.js';
import { SERVER_NAME, SERVER_NAME_RULE } from './rules.js';
import { ToolPinFields } from './fingerprint.js';
import { RegistryEntrySchema, RegistryRefusal, registryToInternal } from './registry.js';
import {
  checkClientCredentials,
  clientCredentialsShape,
  DockerServerSchema,
  boundedArgs,
  headerMap,
  httpUrl,
  StdioServerSchema,
  timeoutMs,
  type DockerServer,
  type ServerConfig,
} from './servers.js';

/**
 * Claude Desktop / Claude Code `mcpServers` and VS Code `servers` entry, stdio form: the internal
 * shape but for the deadline, which these files call `timeout`.
 */
const StdioEntrySchema = StdioServerSchema.omit({ timeoutMs: true }).extend({ timeout: timeoutMs.optional() });

/** An entry's OAuth client-credentials `authentication` (mapped to the internal `oauth`). */
const oauthAuthentication = z
  .strictObject({
    type: z.literal('oauth2'),
    grant: z.literal('client_credentials', { error: 'grant is client_credentials (the job has no user to send through a browser)' }),
    ...clientCredentialsShape,
  })
  .superRefine(checkClientCredentials)
  .transform(({ type: _type, grant: _grant, ...rest }) => rest);

/** The same files' remote form; `streamable-http` is another name for `http`. */
const RemoteEntrySchema = z.strictObject({
  type: z.enum(['http', 'streamable-http', 'sse']).optional(),
  url: httpUrl,
  headers: headerMap.optional(),
  authentication: oauthAuthentication.optional(),
  timeout: timeoutMs.optional(),
  protocol: McpProtocolSchema.optional(),
  ...ToolPinFields,
});

/**
 * The message contract's URL provider. Its `timeout` is in seconds, like its
 * `health_check` interval. `health_check` is accepted and not used: the MCP handshake the job
 * runs is the stronger check.
 */
const UrlProviderSchema = z.strictObject({
  type: z.literal('url'),
  endpoint: httpUrl,
  health_check: z
    .strictObject({ path: z.string().optional(), interval: z.number().positive().optional(), timeout: z.number().positive().optional() })
    .optional(),
  timeout: z.number().min(0.1, 'timeout is in seconds (at least 0.1)').max(600, 'timeout is at most 600 seconds').optional(),
  authentication: z.union([z.strictObject({ type: z.literal('bearer'), token: z.string().min(1) }), oauthAuthentication]).optional(),
  protocol: McpProtocolSchema.optional(),
  ...ToolPinFields,
});

/** The seed's container provider as messages carry it: `command` (Docker's CMD) and `timeout` in seconds. */
const DockerEntrySchema = DockerServerSchema.omit({ timeoutMs: true, args: true }).extend({
  command: boundedArgs('command argument').optional(),
  timeout: z.number().min(0.1, 'timeout is in seconds (at least 0.1)').max(600, 'timeout is at most 600 seconds').optional(),
});

/** Which dialect an entry is, from its `type` and fields, so a refusal names the right fields. */
function entrySchema(v: unknown): z.ZodType | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'a server entry must be an object';
  const e = v as Record<string, unknown>;
  if (e.type === 'registry' || (e.type === undefined && 'server' in e)) return RegistryEntrySchema;
  if (e.type === 'url') return UrlProviderSchema;
  if (e.type === 'stdio') return StdioEntrySchema;
  if (e.type === 'http' || e.type === 'streamable-http' || e.type === 'sse') return RemoteEntrySchema;
  if (e.type === 'docker') return DockerEntrySchema;
  if (e.type !== undefined) return `unknown type ${JSON.stringify(e.type)}; known: stdio, http, streamable-http, sse, url, docker, registry`;
  if ('command' in e) return StdioEntrySchema;
  if ('url' in e) return RemoteEntrySchema;
  return 'a server needs "command" (stdio), "url" (Streamable HTTP or SSE) or "type": "url" with "endpoint"';
}

/** Maps one parsed dialect entry onto the internal shape. */
function toInternal(e: Record<string, unknown>): ServerConfig | string {
  if ('server' in e) {
    try {
      return registryToInternal(e as z.infer<typeof RegistryEntrySchema>);
    } catch (err) {
      if (err instanceof RegistryRefusal) return err.message;
      throw err;
    }
  }
  if (e.type === 'docker') return dockerToInternal(e as z.infer<typeof DockerEntrySchema>);
  if (e.type === 'url') {
    const u = e as z.infer<typeof UrlProviderSchema>;
    return {
      type: 'http',
      url: u.endpoint,
      sseFallback: true,
      ...(u.authentication && 'token' in u.authentication ? { headers: { Authorization: `Bearer ${u.authentication.token}` } } : {}),
      ...(u.authentication && !('token' in u.authentication) ? { oauth: u.authentication } : {}),
      ...(u.timeout ? { timeoutMs: Math.round(u.timeout * 1000) } : {}),
      ...(u.protocol ? { protocol: u.protocol } : {}),
      ...(u.toolsDigest ? { toolsDigest: u.toolsDigest } : {}),
      ...(u.toolDigests ? { toolDigests: u.toolDigests } : {}),
    };
  }
  if ('command' in e) {
    const { timeout, ...rest } = e as z.infer<typeof StdioEntrySchema>;
    return { ...rest, ...(timeout ? { timeoutMs: timeout } : {}) };
  }
  const { type, timeout, authentication, ...rest } = e as z.infer<typeof RemoteEntrySchema>;
  return {
    ...rest,
    ...(authentication ? { oauth: authentication } : {}),
    type: type === 'sse' ? 'sse' : 'http',
    ...(type === undefined ? { sseFallback: true } : {}),
    ...(timeout ? { timeoutMs: timeout } : {}),
  };
}

/** A container server's entry (its `environment`'s secret references are checked by checkServer). */
function dockerToInternal(d: z.infer<typeof DockerEntrySchema>): DockerServer {
  const { command, timeout, ...rest } = d;
  return { ...rest, ...(command ? { args: command } : {}), ...(timeout ? { timeoutMs: Math.round(timeout * 1000) } : {}) };
}

/**
 * One server entry in any dialect users already have: Claude Desktop / Claude Code `mcpServers`,
 * VS Code `servers`, the seed's URL provider, and the MCP Registry's `server.json` with its input
 * values (registry.ts); unknown fields are refused by name.
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
  .record(z.string().regex(SERVER_NAME, SERVER_NAME_RULE), ServerEntrySchema)
  .refine((m) => Object.keys(m).length > 0, 'name at least one server')
  .refine((m) => Object.keys(m).length <= 32, 'at most 32 servers per message');

/** The payload: `mcpServers` (Claude) or `servers` (VS Code), normalised to `mcpServers`. */
export const MCPServersConfigSchema = z
  .strictObject({ mcpServers: serverMap.optional(), servers: serverMap.optional() })
  .refine((c) => (c.mcpServers === undefined) !== (c.servers === undefined), 'give exactly one of mcpServers or servers')
  .transform((c) => ({ mcpServers: (c.mcpServers ?? c.servers)! }));

export type MCPServersConfig = z.output<typeof MCPServersConfigSchema>;
