import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { z } from 'zod';
import { TerminalError } from '../errors.js';
import {
  commandMatches,
  envKeyRefusal,
  globMatch,
  isSecretAllowed,
  PolicyReason,
  secretRefIn,
  urlRefusal,
  type RemotePolicy,
  type SecretRef,
} from './policy.js';
import { McpProtocolSchema, type SharedConfig } from '../settings.js';

/** The job types the design documents define. */
export const JOB_TYPES = ['server-init'] as const;

// Values Node refuses at spawn or in a header would come back in an error that echoes them —
// a secret, perhaps — so they are refused here, naming the key and never the value.
const noNul = (what: string) => z.string().refine((v) => !v.includes('\0'), `${what} must not contain a NUL byte`);

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
const boundedArgs = (what: string) => z.array(bounded(what)).max(MAX_ARGS, `at most ${MAX_ARGS} ${what}s`);
const stringMap = boundedMap(z.string(), 'env value');
const headerMap = z.record(
  z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'a header name is an HTTP token'),
  z.string().refine((v) => /^[\t\x20-\x7e\x80-\xff]*$/.test(v), 'a header value must be printable Latin-1, without CR, LF or NUL'),
);

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
  args: boundedArgs('argument').default([]),
  env: stringMap.optional(),
  envFile: z.string().min(1).optional(),
  cwd: z.string().min(1).optional(),
  protocol: McpProtocolSchema.optional(),
  timeoutMs: timeoutMs.optional(),
});

export const RemoteServerSchema = z.strictObject({
  type: z.enum(['http', 'sse']),
  url: httpUrl,
  headers: headerMap.optional(),
  protocol: McpProtocolSchema.optional(),
  timeoutMs: timeoutMs.optional(),
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
 * A container server (seed 003's `docker` provider) as the job and the controller share it: the
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
  environment: boundedMap(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name'), 'environment value').optional(),
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
});

export const ServerConfigSchema = z.union([RemoteServerSchema, DockerServerSchema, StdioServerSchema]);

/**
 * Claude Desktop / Claude Code `mcpServers` and VS Code `servers` entry, stdio form: the internal
 * shape but for the deadline, which these files call `timeout`.
 */
const StdioEntrySchema = StdioServerSchema.omit({ timeoutMs: true }).extend({ timeout: timeoutMs.optional() });

/** The same files' remote form; `streamable-http` is another name for `http`. */
const RemoteEntrySchema = z.strictObject({
  type: z.enum(['http', 'streamable-http', 'sse']).optional(),
  url: httpUrl,
  headers: headerMap.optional(),
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
  timeout: z.number().min(0.1, 'timeout is in seconds (at least 0.1)').max(600, 'timeout is at most 600 seconds').optional(),
  authentication: z.strictObject({ type: z.literal('bearer'), token: z.string().min(1) }).optional(),
  protocol: McpProtocolSchema.optional(),
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
  if (e.type === 'url') return UrlProviderSchema;
  if (e.type === 'stdio') return StdioEntrySchema;
  if (e.type === 'http' || e.type === 'streamable-http' || e.type === 'sse') return RemoteEntrySchema;
  if (e.type === 'docker') return DockerEntrySchema;
  if (e.type !== undefined) return `unknown type ${JSON.stringify(e.type)}; known: stdio, http, streamable-http, sse, url, docker`;
  if ('command' in e) return StdioEntrySchema;
  if ('url' in e) return RemoteEntrySchema;
  return 'a server needs "command" (stdio), "url" (Streamable HTTP or SSE) or "type": "url" with "endpoint"';
}

/** Maps one parsed dialect entry onto the internal shape. */
function toInternal(e: Record<string, unknown>): ServerConfig | string {
  if (e.type === 'docker') return dockerToInternal(e as z.infer<typeof DockerEntrySchema>);
  if (e.type === 'url') {
    const u = e as z.infer<typeof UrlProviderSchema>;
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

/** A container server's entry (its `environment`'s secret references are checked by checkServer). */
function dockerToInternal(d: z.infer<typeof DockerEntrySchema>): DockerServer {
  const { command, timeout, ...rest } = d;
  return { ...rest, ...(command ? { args: command } : {}), ...(timeout ? { timeoutMs: Math.round(timeout * 1000) } : {}) };
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
export type DockerServer = z.infer<typeof DockerServerSchema>;
export type ServerConfig = z.infer<typeof ServerConfigSchema>;
export type MCPServersConfig = z.output<typeof MCPServersConfigSchema>;

/** A message that passed validation. */
export interface ValidMessage {
  jobID: string;
  jobType: (typeof JOB_TYPES)[number];
  config: MCPServersConfig;
  /** sha256 of the raw value, hex: the job checks it read the very bytes the controller saw. */
  checksum: string;
  /** Every Secret key the servers reference, once each, sorted: what the Job mounts. */
  secretRefs?: SecretRef[];
}

/** What the controller and the job both check beyond shape. */
export interface ValidationPolicy {
  /** Commands a stdio server may run (basename or full path); `*` allows any. */
  allowedCommands: readonly string[];
  /** Folder mounted from a Secret; envFile paths must resolve inside it. */
  secretsDir: string;
  /** Largest accepted value, in bytes. */
  maxMessageBytes: number;
  /**
   * Image patterns a container server may use (`*` matches any run of characters). The
   * controller, which runs the images, checks them; undefined means not checked here (the job,
   * which only connects to what the controller started).
   */
  allowedImages?: readonly string[];
  /**
   * The controller's check that a message can finish in time: the Job's activeDeadlineSeconds
   * in ms, and the per-server deadline a server without its own `timeout` gets. The job does
   * not check (its Job's deadline is already set).
   */
  deadline?: { jobMs: number; serverTimeoutMs: number };
  /** Secrets `secret_ref:` may name (names or `prefix-*`); none when absent. */
  allowedSecrets?: readonly string[];
  /** Secrets the deployment itself uses, refused whatever `allowedSecrets` says. */
  reservedSecrets?: readonly string[];
  /** Keys allowed despite the default refusal of code-loading keys (see policy.ts). */
  allowedEnvKeys?: readonly string[];
  /** When set, a stdio command line must match one of these (see `commandMatches`). */
  commandPatterns?: readonly string[];
  /** Addresses a remote `url` may reach; the default refusals apply when absent. */
  remote?: RemotePolicy;
}

const NO_REMOTE_EXCEPTIONS: RemotePolicy = { allow: [], serviceCidrs: [], podCidrs: [], apiServerHosts: [] };

function secretRefsOf(where: string, values: Record<string, string> | undefined, schemeAllowed: boolean, policy: ValidationPolicy): SecretRef[] {
  const refs: SecretRef[] = [];
  for (const [k, v] of Object.entries(values ?? {})) {
    const r = secretRefIn(v, schemeAllowed);
    if (r === undefined) continue;
    if (typeof r === 'string') throw new TerminalError('invalid-payload', `${where}.${k}: ${r}`);
    if (!isSecretAllowed(r.secret, policy.allowedSecrets ?? [], policy.reservedSecrets)) {
      const allowed = (policy.allowedSecrets ?? []).some((a) => globMatch(a, r.secret));
      throw new TerminalError(
        PolicyReason.secretNotAllowed,
        allowed
          ? `${where}.${k}: Secret ${JSON.stringify(r.secret)} is one the deployment itself uses (or a service-account token) and is never referenced`
          : `${where}.${k}: Secret ${JSON.stringify(r.secret)} is not one the operator allowed (JOB_ALLOWED_SECRETS: ${(policy.allowedSecrets ?? []).join(', ') || 'none'})`,
      );
    }
    refs.push({ secret: r.secret, key: r.key });
  }
  return refs;
}

/**
 * What a message's server may do, checked the same way by the controller (before any Job exists)
 * and by the job (before it starts or connects): the command and what follows it, its environment
 * keys, its envFile's place, the Secrets it references and the address its `url` names. Throws a
 * TerminalError with a stable reason; returns the secret references it found. `sidecar` marks a
 * server the controller places in the Job's own pod (`type: docker`): its url is not checked here,
 * before DNS; the job's connect-time check (remote-fetch.ts) still applies to it.
 */
export function checkServer(name: string, server: ServerConfig, policy: ValidationPolicy, opts: { sidecar?: boolean } = {}): SecretRef[] {
  const where = `server ${name}`;
  if (server.type === 'docker') {
    // An operator-allowed image still runs its own runtime: the same keys would load code into it.
    checkEnvKeys(where, server.environment, policy);
    // The sidecar gets them as secretKeyRef env (the kubelet resolves them); the job mounts the
    // same keys, so a missing one fails the Job for good by name instead of a silent empty value.
    return secretRefsOf(`${where}: environment`, server.environment, false, policy);
  }
  if ('command' in server) {
    if (!isCommandAllowed(server.command, policy.allowedCommands)) {
      throw new TerminalError(
        'command-not-allowed',
        `${where}: command ${JSON.stringify(server.command)} is not in the allow-list (${policy.allowedCommands.join(', ')})`,
      );
    }
    if (policy.commandPatterns?.length && !policy.commandPatterns.some((p) => commandMatches(server.command, server.args, p))) {
      throw new TerminalError(
        PolicyReason.commandArgsNotAllowed,
        `${where}: the command line matches none of ALLOWED_COMMAND_PATTERNS (${policy.commandPatterns.join('; ')})`,
      );
    }
    checkEnvKeys(where, server.env, policy);
    if (server.envFile !== undefined) resolveEnvFile(server.envFile, policy.secretsDir);
    return secretRefsOf(`${where}: env`, server.env, false, policy);
  }
  if (!opts.sidecar) {
    const why = urlRefusal(server.url, policy.remote ?? NO_REMOTE_EXCEPTIONS);
    if (why) {
      throw new TerminalError(
        PolicyReason.urlNotAllowed,
        `${where}: url host ${JSON.stringify(new URL(server.url).hostname)} is refused (${why}); ALLOWED_REMOTE_HOSTS can allow it`,
      );
    }
  }
  return secretRefsOf(`${where}: headers`, server.headers, true, policy);
}

function checkEnvKeys(where: string, env: Record<string, string> | undefined, policy: ValidationPolicy): void {
  for (const key of Object.keys(env ?? {})) {
    const why = envKeyRefusal('env', key, policy.allowedEnvKeys);
    if (why) throw new TerminalError(PolicyReason.envKeyNotAllowed, `${where}: ${why}`);
  }
}

/** References once each, in a stable order (the Job's volume is then the same on every build). */
function uniqueRefs(refs: SecretRef[]): SecretRef[] {
  const seen = new Map(refs.map((r) => [`${r.secret}\0${r.key}`, r]));
  return [...seen.values()].sort((a, b) => (a.secret === b.secret ? (a.key < b.key ? -1 : 1) : a.secret < b.secret ? -1 : 1));
}

/** Servers a job initializes at once. */
export const INIT_CONCURRENCY = 4;

/** What one server may take past its deadline: the in-process call's margin, closing, reaping. */
export const SERVER_MARGIN_MS = 5_000;

/** Time a Job needs besides its servers (pod start, reading its message), kept out of its budget. */
export const JOB_START_ALLOWANCE_MS = 30_000;

/**
 * What one container server adds to a Job's start: native sidecars start one after another and
 * the job container waits until each is ready by its probe (an image pull not included).
 */
export const SIDECAR_START_ALLOWANCE_MS = 15_000;

/**
 * The longest a job can spend on its servers: each server's deadline, run
 * {@link INIT_CONCURRENCY} at a time in message order, as the job runs them. Pure.
 */
export function serversWorstCaseMs(timeouts: readonly number[]): number {
  const lanes = new Array<number>(INIT_CONCURRENCY).fill(0);
  for (const t of timeouts) {
    const i = lanes.indexOf(Math.min(...lanes));
    lanes[i]! += t;
  }
  return Math.max(...lanes);
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

/** True when an image matches one of the operator's patterns; `*` matches any run of characters. */
export function isImageAllowed(image: string, patterns: readonly string[]): boolean {
  return patterns.some((p) =>
    new RegExp(
      `^${p
        .split('*')
        .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    ).test(image),
  );
}

/** Checks what the contract cannot say per entry: the images are allowed, and sidecars in one pod do not share a port. */
function checkContainerServers(servers: Record<string, ServerConfig>, policy: ValidationPolicy): void {
  const ports = new Map<number, string>();
  let specBytes = 0;
  for (const [name, server] of Object.entries(servers)) {
    if (server.type !== 'docker') continue;
    for (const [k, v] of Object.entries(server.environment ?? {})) specBytes += Buffer.byteLength(k) + Buffer.byteLength(v);
    for (const a of server.args ?? []) specBytes += Buffer.byteLength(a);
    if (specBytes > MAX_CONTAINER_SPEC_BYTES) {
      throw new TerminalError(
        'invalid-payload',
        `the container servers' environment and args pass ${MAX_CONTAINER_SPEC_BYTES} bytes (at server ${name}); the Job would be too large to store`,
      );
    }
    if (policy.allowedImages && !isImageAllowed(server.image, policy.allowedImages)) {
      throw new TerminalError(
        'image-not-allowed',
        `server ${name}: image ${JSON.stringify(server.image)} is not in the allow-list (${policy.allowedImages.join(', ') || 'empty: no container servers'})`,
      );
    }
    const other = ports.get(server.port);
    if (other !== undefined) throw new TerminalError('invalid-payload', `servers ${other} and ${name} both use port ${server.port}; one pod has one network`);
    ports.set(server.port, name);
  }
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
  const refs = Object.entries(cfg.data.mcpServers).flatMap(([name, server]) => checkServer(name, server, policy));
  checkContainerServers(cfg.data.mcpServers, policy);
  if (policy.deadline) {
    const { jobMs, serverTimeoutMs } = policy.deadline;
    const servers = Object.values(cfg.data.mcpServers);
    const worst = serversWorstCaseMs(servers.map((s) => (s.timeoutMs ?? serverTimeoutMs) + SERVER_MARGIN_MS));
    const start = JOB_START_ALLOWANCE_MS + SIDECAR_START_ALLOWANCE_MS * servers.filter((s) => s.type === 'docker').length;
    if (worst + start > jobMs) {
      throw new TerminalError(
        'deadline-too-short',
        `the servers' deadlines need up to ${Math.ceil(worst / 1000)} s (${INIT_CONCURRENCY} at a time), more than the Job's activeDeadlineSeconds (${Math.floor(jobMs / 1000)} s) less ${start / 1000} s to start`,
      );
    }
  }
  return {
    jobID,
    jobType: jobType as ValidMessage['jobType'],
    config: cfg.data,
    checksum: checksumOf(value),
    ...(refs.length ? { secretRefs: uniqueRefs(refs) } : {}),
  };
}

export type PolicySettings = Pick<
  SharedConfig,
  | 'ALLOWED_COMMANDS'
  | 'SECRETS_DIR'
  | 'MAX_MESSAGE_BYTES'
  | 'JOB_ALLOWED_SECRETS'
  | 'ALLOWED_ENV_KEYS'
  | 'ALLOWED_COMMAND_PATTERNS'
  | 'ALLOWED_REMOTE_HOSTS'
  | 'CLUSTER_SERVICE_CIDR'
  | 'CLUSTER_POD_CIDR'
>;

/**
 * The validation policy both programs derive from their (shared) settings. `apiServerHosts` is the
 * API server as this process sees it (`KUBERNETES_SERVICE_HOST`), refused as a remote URL.
 */
export function validationPolicy(cfg: PolicySettings, apiServerHosts: readonly string[] = []): ValidationPolicy {
  return {
    allowedCommands: cfg.ALLOWED_COMMANDS,
    secretsDir: cfg.SECRETS_DIR,
    maxMessageBytes: cfg.MAX_MESSAGE_BYTES,
    allowedSecrets: cfg.JOB_ALLOWED_SECRETS,
    allowedEnvKeys: cfg.ALLOWED_ENV_KEYS,
    commandPatterns: cfg.ALLOWED_COMMAND_PATTERNS,
    remote: { allow: cfg.ALLOWED_REMOTE_HOSTS, serviceCidrs: cfg.CLUSTER_SERVICE_CIDR, podCidrs: cfg.CLUSTER_POD_CIDR, apiServerHosts },
  };
}
