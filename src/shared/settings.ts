import type { Options } from 'yargs';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { parseCidr, SECRET_REFS_DIR } from './contract/policy.js';

/**
 * Settings are declared once each: the key is the environment variable, the zod schema holds
 * the type and the default, and `.describe()` the help line. The yargs flags (kebab-case of the
 * key), `--help` and the parsed config are all derived from that one declaration.
 */
export type SettingsShape = Record<string, z.ZodType>;

export const csv = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : v,
  z.array(z.string().min(1)),
);
/** A `;`-separated list (for values that contain commas or spaces, such as command patterns). */
export const semicolonList = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(';')
          .map((s) => s.trim().replace(/\s+/g, ' '))
          .filter(Boolean)
      : v,
  z.array(z.string().min(1)),
);
/** Comma-separated CIDRs (or single addresses). */
export const cidrs = csv.refine((a) => a.every((c) => parseCidr(c) !== undefined), 'comma-separated CIDRs such as 10.96.0.0/12 or fd00::/108');
export const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);
export const logLevelSetting = z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

/** `true`/`false` (and 1/0, yes/no) from flags and env, where a string is all there is. */
export const bool = z.preprocess((v) => (typeof v === 'string' ? /^(true|1|yes)$/i.test(v.trim()) : v), z.boolean());

export const SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;

/**
 * The MCP protocol generation the job speaks to a server: `auto` probes with `server/discover`
 * (2026-07-28) and falls back to the 2025 `initialize` handshake; `2025` and `2026-07-28` pin
 * one and skip the probe.
 */
export const MCP_PROTOCOLS = ['auto', '2025', '2026-07-28'] as const;
export const McpProtocolSchema = z.enum(MCP_PROTOCOLS);
export type McpProtocol = z.infer<typeof McpProtocolSchema>;

export const DEFAULT_ALLOWED_COMMANDS = ['node', 'npx', 'uv', 'uvx', 'python', 'python3'];

/** What both programs read, declared once: the controller passes these on to every Job. */
export const SHARED_SETTINGS = {
  KAFKA_BROKERS: csv.refine((a) => a.length > 0, 'at least one broker host:port').describe('Kafka bootstrap brokers, comma-separated host:port'),
  KAFKA_TOPIC: z.string().min(1).describe('Topic of the messages'),
  KAFKA_TLS: bool.default(false).describe('Connect to the brokers over TLS'),
  KAFKA_TLS_CA_FILE: z.string().min(1).optional().describe("PEM file of the CA that signed the brokers' certificates (default: the system's CAs)"),
  KAFKA_TLS_CERT_FILE: z.string().min(1).optional().describe('PEM client certificate, for brokers that require one (mTLS)'),
  KAFKA_TLS_KEY_FILE: z.string().min(1).optional().describe('PEM key of the client certificate'),
  KAFKA_TLS_SERVERNAME: z.string().min(1).optional().describe("Name to check the brokers' certificates against, when it is not the host dialled"),
  KAFKA_SASL_MECHANISM: z.enum(SASL_MECHANISMS).optional().describe('SASL mechanism: plain|scram-sha-256|scram-sha-512 (unset: no SASL)'),
  KAFKA_SASL_USERNAME: z.string().min(1).optional().describe('SASL user name'),
  KAFKA_SASL_PASSWORD_FILE: z.string().min(1).optional().describe('File holding the SASL password (mount it from a Secret; never set the password itself)'),
  ALLOWED_COMMANDS: csv.default(DEFAULT_ALLOWED_COMMANDS).describe('Commands a stdio MCP server may run, comma-separated (* for any)'),
  JOB_ALLOWED_SECRETS: csv
    .default([])
    .describe('Secrets a message may reference as secret_ref:<secret>:<key>: names or prefix-* globs, comma-separated (none: no references)'),
  ALLOWED_ENV_KEYS: csv
    .default([])
    .describe('Environment keys a server may set although they change how a runtime loads code (NODE_OPTIONS, LD_*, PYTHON*…): keys or PREFIX* patterns'),
  ALLOWED_COMMAND_PATTERNS: semicolonList
    .default([])
    .describe('When set, a stdio command line must match one of these ;-separated patterns, word by word (* within a word, ** last: any further arguments)'),
  ALLOWED_REMOTE_HOSTS: csv
    .default([])
    .describe(
      'CIDRs, addresses and host names (*.example.com) a remote url may reach even if refused by default (loopback, link-local, cluster ranges, API server)',
    ),
  CLUSTER_SERVICE_CIDR: cidrs.default([]).describe("The cluster's Service CIDRs, refused as remote urls"),
  CLUSTER_POD_CIDR: cidrs.default([]).describe("The cluster's pod CIDRs, refused as remote urls"),
  SECRETS_DIR: z
    .string()
    .startsWith('/', 'an absolute path')
    .default('/var/run/mcp-secrets')
    .describe('Folder mounted from a Secret; envFile paths must stay inside it'),
  MAX_MESSAGE_BYTES: int(1024, 64 * 1024 * 1024)
    .default(1024 * 1024)
    .describe('Largest message accepted'),
  MCP_INIT_TIMEOUT_MS: int(100)
    .default(30_000)
    .describe("Per-server deadline covering the server's start or connection, the MCP handshake and every list page"),
  MCP_PROTOCOL: McpProtocolSchema.default('auto').describe(
    'MCP protocol generation: auto (probe server/discover, fall back to 2025 initialize) | 2025 | 2026-07-28; a server entry\'s "protocol" overrides it',
  ),
  LOG_LEVEL: logLevelSetting.default('info').describe('fatal|error|warn|info|debug|trace|silent'),
} satisfies SettingsShape;

/**
 * Images a `docker` server may use: the controller runs them in Jobs, and `serve` checks a
 * submitted message the same way. Not passed to Jobs: the job only connects to what is running.
 */
export const ALLOWED_IMAGES_SETTING = csv
  .default([])
  .describe('Image patterns a "docker" MCP server may use, comma-separated, * matching any run of characters (empty: every docker server is dead-lettered)');

/** Where a pod finds the message's referenced Secret keys, `<dir>/<secret>/<key>`: the job's and `serve`'s. */
export const SECRET_REFS_DIR_SETTING = z
  .string()
  .default(SECRET_REFS_DIR)
  .describe("Where the Job mounted the message's referenced Secret keys, <dir>/<secret>/<key>");

/**
 * Where a Job's pod has the shared package cache mounted (npm's cache under `npm/`, uv's under
 * `uv/`): the controller sets it when PACKAGE_CACHE_CLAIM is set or the Job template mounts a
 * volume there. Unset: each pod fetches into its own /tmp, as before.
 */
export const PACKAGE_CACHE_MOUNT_PATH = '/var/cache/mcp-packages';
export const PACKAGE_CACHE_DIR_SETTING = z
  .string()
  .startsWith('/', 'an absolute path')
  .optional()
  .describe('Folder of the package cache every Job shares (npm/ and uv/ inside); unset: a per-pod cache');

/** Set by the kubelet in every pod: the API server, which a remote url must not reach. */
export const KUBERNETES_SERVICE_HOST_SETTING = z.string().optional().describe('The API server address the kubelet gives every pod (refused as a remote url)');

export type SharedConfig = z.output<z.ZodObject<typeof SHARED_SETTINGS>>;

export function flagName(env: string): string {
  return env.toLowerCase().replace(/_/g, '-');
}

/** The default a setting's schema fills in, as help text; undefined when it has none. */
export function defaultText(schema: z.ZodType): string | undefined {
  const r = schema.safeParse(undefined);
  if (!r.success || r.data === undefined || (Array.isArray(r.data) && r.data.length === 0)) return undefined;
  return Array.isArray(r.data) ? r.data.join(',') : String(r.data);
}

/** yargs options for a settings shape; the help shows each one's environment variable and default. */
export function yargsOptions(shape: SettingsShape): Record<string, Options> {
  return Object.fromEntries(
    Object.entries(shape).map(([env, schema]) => {
      const dflt = defaultText(schema);
      const describe = `${schema.description ?? ''} [env ${env}]${dflt !== undefined ? ` (default ${dflt})` : ''}`;
      return [flagName(env), { type: 'string', describe } satisfies Options];
    }),
  );
}

/** Flags win over the environment; the result is keyed by env name, ready for the zod schema. */
export function settingsInput(shape: SettingsShape, argv: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(shape)) {
    const v = argv[flagName(key)] ?? env[key];
    if (v !== undefined && v !== '') out[key] = v;
  }
  return out;
}

/** Parses config, or throws a ConfigError naming each bad setting. */
export function parseConfig<S extends z.ZodType>(schema: S, input: Record<string, unknown>): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `  ${i.path.join('.') || '(config)'}: ${i.message}`);
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}
