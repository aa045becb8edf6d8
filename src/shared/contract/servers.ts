import { z } from 'zod';
import { ENV_KEY, HEADER_VALUE } from './rules.js';
import { McpProtocolSchema } from '../settings.js';
import { ToolPinFields } from './fingerprint.js';
import { secretRefIn } from './rules.js';

// Values Node refuses at spawn or in a header would come back in an error that echoes them —
// a secret, perhaps — so they are refused here, naming the key and never the value.
export const noNul = (what: string) => z.string().refine((v) => !v.includes('\0'), `${what} must not contain a NUL byte`);

/**
 * Bounds on what a message puts into its Job: a container server's `environment` and `args`
 * become the sidecar's spec, and each entry costs the stored object far more than its bytes
 * (an env var, its managedFields entry). Tens of thousands of keys inside a 1 MiB message made
 * a Job etcd refuses ("request is too large"); these keep every valid message's Job small.
 */
export const MAX_ENV_ENTRIES = 256;
export const MAX_ARGS = 256;
export const MAX_ENTRY_BYTES = 16 * 1024;
/** All container servers' environment and args together, in bytes (etcd stores up to 1.5 MiB per object). */
export const MAX_CONTAINER_SPEC_BYTES = 256 * 1024;

const bounded = (what: string) => noNul(what).refine((v) => Buffer.byteLength(v) <= MAX_ENTRY_BYTES, `${what} is at most ${MAX_ENTRY_BYTES} bytes`);
const boundedMap = <K extends z.ZodType<string>>(key: K, what: string) =>
  z.record(key, bounded(what)).refine((m) => Object.keys(m).length <= MAX_ENV_ENTRIES, `at most ${MAX_ENV_ENTRIES} ${what}s`);
export const boundedArgs = (what: string) => z.array(bounded(what)).max(MAX_ARGS, `at most ${MAX_ARGS} ${what}s`);
const stringMap = boundedMap(z.string(), 'env value');
export const headerMap = z.record(
  z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'a header name is an HTTP token'),
  z.string().refine((v) => HEADER_VALUE.test(v), 'a header value must be printable Latin-1, without CR, LF or NUL'),
);

/** A per-server deadline from a client config file: milliseconds, as MCP_INIT_TIMEOUT_MS. */
export const timeoutMs = z
  .number({ error: 'timeout is a number of milliseconds' })
  .int()
  .min(100, 'timeout is in milliseconds (at least 100)')
  .max(10 * 60_000, 'timeout is at most 600000 ms');
export const httpUrl = z.url({ protocol: /^https?$/, error: 'url must be an http(s) URL' });

/**
 * The job's internal shape of one server, what every dialect (dialects.ts) maps onto and what the
 * in-process `server_initialize` tool takes.
 */
export const StdioServerSchema = z.strictObject({
  type: z.literal('stdio').optional(),
  command: z.string().min(1, 'command must not be empty'),
  args: boundedArgs('argument').default([]),
  env: stringMap.optional(),
  envFile: z.string().min(1).optional(),
  cwd: z.string().min(1).optional(),
  protocol: McpProtocolSchema.optional(),
  timeoutMs: timeoutMs.optional(),
  /** The tools the user reviewed (see fingerprint.ts): a server whose tools differ fails `tools-changed`. */
  ...ToolPinFields,
});

/** A credential that is never in a message: only a reference to a Secret key the Job mounts. */
const secretRefOnly = (what: string) =>
  z.string().refine((v) => typeof secretRefIn(v) === 'object', `${what} is a secret_ref:<secret>:<key>, never the value itself`);

/**
 * OAuth 2.0 client credentials (the MCP authorization spec's machine-to-machine grant): the job
 * finds the authorization server from the MCP server's protected-resource metadata (RFC 9728,
 * then RFC 8414), asks it for a token and sends it. `issuer`, when given, is the only
 * authorization server the credentials may go to.
 */
export const clientCredentialsShape = {
  method: z.enum(['client_secret_basic', 'private_key_jwt'], { error: 'method is client_secret_basic or private_key_jwt' }),
  clientId: z
    .string()
    .min(1, 'clientId must not be empty')
    .max(255)
    .refine((v) => /^[\x20-\x7e]+$/.test(v), 'clientId is printable ASCII'),
  clientSecret: secretRefOnly('clientSecret').optional(),
  privateKey: secretRefOnly('privateKey').optional(),
  /** The JWS algorithm of the client assertion (private_key_jwt); the key is PKCS#8 PEM. */
  algorithm: z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512']).optional(),
  scopes: z
    .array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]+$/, 'a scope is printable ASCII without spaces, quotes or backslashes'))
    .max(64)
    .optional(),
  issuer: httpUrl.optional(),
};
/** The pairing each method needs: a secret for basic, a key for a signed assertion. */
export function checkClientCredentials(c: { method: string; clientSecret?: string; privateKey?: string; algorithm?: string }, ctx: z.RefinementCtx): void {
  if (c.method === 'client_secret_basic' && (!c.clientSecret || c.privateKey || c.algorithm)) {
    ctx.addIssue({ code: 'custom', message: 'client_secret_basic takes clientSecret (and no privateKey or algorithm)' });
  }
  if (c.method === 'private_key_jwt' && (!c.privateKey || c.clientSecret)) {
    ctx.addIssue({ code: 'custom', message: 'private_key_jwt takes privateKey (and no clientSecret)' });
  }
}
export const ClientCredentialsSchema = z.strictObject(clientCredentialsShape).superRefine(checkClientCredentials);
export type ClientCredentials = z.infer<typeof ClientCredentialsSchema>;

export const RemoteServerSchema = z.strictObject({
  type: z.enum(['http', 'sse']),
  url: httpUrl,
  headers: headerMap.optional(),
  oauth: ClientCredentialsSchema.optional(),
  protocol: McpProtocolSchema.optional(),
  timeoutMs: timeoutMs.optional(),
  /** The tools the user reviewed (see fingerprint.ts): a server whose tools differ fails `tools-changed`. */
  ...ToolPinFields,
  /** Fall back to SSE when Streamable HTTP answers 4xx, as clients do for a `url` without `type`. */
  sseFallback: z.boolean().optional(),
});

/** A Docker-style size: a number and an optional unit b, k, m or g (binary, as Docker reads them). */
const DOCKER_SIZE = /^(\d+(?:\.\d+)?)([bkmg]?)$/i;
const MIN_MEMORY_BYTES = 6 * 1024 * 1024;

/** Bytes of a Docker-style size ("256m", "1g"), or undefined when it is not one. */
export function dockerSizeBytes(size: string): number | undefined {
  const m = DOCKER_SIZE.exec(size.trim());
  if (!m) return undefined;
  const power = { '': 0, b: 0, k: 1, m: 2, g: 3 }[m[2]!.toLowerCase() as '' | 'b' | 'k' | 'm' | 'g'];
  return Math.ceil(Number(m[1]) * 1024 ** power);
}

/** An image reference as a container runtime takes it: `[registry[:port]/]path[:tag][@digest]`. */
const imageRef = z
  .string()
  .max(255, 'image is at most 255 characters')
  .regex(/^[a-z0-9][a-z0-9._\-/:@]*$/i, 'image is a container image reference such as registry.example.com/mcp/server:1.0');

/**
 * A container server (the `docker` provider of the message contract) as the job and the controller share it: the
 * controller runs `image` as a native sidecar of the Job's pod, the job connects to
 * `http://127.0.0.1:<port><path>`. The seed's `command` (Docker's CMD) is kept as `args`, what
 * Kubernetes calls it, so `'command' in server` still means stdio.
 */
export const DockerServerSchema = z.strictObject({
  type: z.literal('docker'),
  image: imageRef,
  port: z.number({ error: 'port is a number' }).int().min(1, 'port is 1-65535').max(65535, 'port is 1-65535'),
  /** The MCP endpoint's path on the sidecar (default `/mcp`, the SDKs' and most servers' choice). */
  path: z
    .string()
    .regex(/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/, 'path is an absolute URL path such as /mcp')
    .default('/mcp'),
  environment: boundedMap(z.string().regex(ENV_KEY, 'an environment variable name'), 'environment value').optional(),
  args: boundedArgs('command argument').optional(),
  resources: z
    .strictObject({
      memory_limit: z
        .string()
        .refine((v) => (dockerSizeBytes(v) ?? 0) >= MIN_MEMORY_BYTES, 'memory_limit is a Docker size of at least 6m, such as "256m" or "1g"')
        .optional(),
      cpu_limit: z
        .union([z.string().regex(/^\d+(\.\d+)?$/, 'cpu_limit is a number of CPUs such as "0.5"'), z.number()])
        .refine((v) => Number(v) >= 0.001 && Number(v) <= 64, 'cpu_limit is between 0.001 and 64 CPUs')
        .optional(),
    })
    .optional(),
  /** Seconds, as in the seed; without `path` the probe is a TCP connect to `port`. */
  health_check: z
    .strictObject({
      path: z.string().startsWith('/', 'health_check.path is an absolute path such as /health').optional(),
      interval: z.number().int('health_check.interval is whole seconds').min(1).max(3600).optional(),
      timeout: z.number().int('health_check.timeout is whole seconds').min(1).max(3600).optional(),
    })
    .optional(),
  protocol: McpProtocolSchema.optional(),
  timeoutMs: timeoutMs.optional(),
  /** The tools the user reviewed (see fingerprint.ts): a server whose tools differ fails `tools-changed`. */
  ...ToolPinFields,
});

export const ServerConfigSchema = z.union([RemoteServerSchema, DockerServerSchema, StdioServerSchema]);

export type StdioServer = z.infer<typeof StdioServerSchema>;
export type RemoteServer = z.infer<typeof RemoteServerSchema>;
export type DockerServer = z.infer<typeof DockerServerSchema>;
export type ServerConfig = z.infer<typeof ServerConfigSchema>;
