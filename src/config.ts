import { z } from 'zod';

const csv = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v),
  z.array(z.string().min(1)),
);
const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

/** Names of the Job's container and of the provenance annotations' domain. */
export const JOB_CONTAINER = 'job';
export const ANNOTATION_DOMAIN = 'mcp-job-controller.io';

/**
 * The controller's whole configuration, from flags and environment, parsed once at start.
 * Keys are the environment variable names (the design documents' names), so an error names
 * the setting a user has to fix.
 */
export const ControllerConfigSchema = z
  .object({
    KAFKA_BROKERS: csv.refine((a) => a.length > 0, 'at least one broker host:port'),
    KAFKA_TOPIC: z.string().min(1),
    KAFKA_CONSUMER_GROUP: z.string().min(1).default('mcp-job-controller'),
    KAFKA_CLIENT_ID: z.string().min(1).default('mcp-job-controller'),
    /** A killed controller's partitions wait this long before its successor gets them. */
    KAFKA_SESSION_TIMEOUT_MS: int(6000, 300_000).default(30_000),
    /** Brokers as the job pods must reach them, when they differ from the controller's view. */
    JOB_KAFKA_BROKERS: csv.optional(),
    DLQ_TOPIC: z.string().min(1).optional(),
    RESULTS_TOPIC: z.string().min(1).optional(),
    JOB_NAMESPACE: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a namespace name').default('default'),
    JOB_IMAGE: z.string().min(1).default('mcp-job-controller/job:dev'),
    JOB_TEMPLATE: z.string().min(1).optional(),
    JOB_NAME_PREFIX: z.string().regex(/^[a-z][a-z0-9-]{0,15}$/, 'lower-case letters, digits and -, at most 16').default('mcp'),
    JOB_BACKOFF_LIMIT: int(0, 100).default(2),
    JOB_ACTIVE_DEADLINE_SECONDS: int(1).default(600),
    JOB_TTL_SECONDS_AFTER_FINISHED: int(0).default(3600),
    /** Name of a Secret mounted at SECRETS_DIR in every Job: the files an envFile may name. */
    JOB_SECRET_NAME: z.string().min(1).optional(),
    SECRETS_DIR: z.string().startsWith('/', 'an absolute path').default('/var/run/mcp-secrets'),
    ALLOWED_COMMANDS: csv.default(['node', 'npx', 'uv', 'uvx', 'python', 'python3']),
    MAX_MESSAGE_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
    MCP_INIT_TIMEOUT_MS: int(100).default(30_000),
    /** Most Jobs created at once (per partition batch); creates are the controller's hot path. */
    MAX_IN_FLIGHT: int(1, 1000).default(32),
    /** Most Jobs not yet finished at once; consumption pauses at the cap. 0 = no cap. */
    MAX_ACTIVE_JOBS: int(0).default(100),
    METRICS_PORT: int(0, 65535).default(8080),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    SHUTDOWN_TIMEOUT_MS: int(0).default(25_000),
  })
  .transform((c) => ({ ...c, DLQ_TOPIC: c.DLQ_TOPIC ?? `${c.KAFKA_TOPIC}.dlq`, JOB_KAFKA_BROKERS: c.JOB_KAFKA_BROKERS ?? c.KAFKA_BROKERS }));

export type ControllerConfig = z.output<typeof ControllerConfigSchema>;

/** The job's configuration: the coordinates the controller put in its env, and its own limits. */
export const JobConfigSchema = z.object({
  KAFKA_BROKERS: csv.refine((a) => a.length > 0, 'at least one broker host:port'),
  KAFKA_TOPIC: z.string().min(1),
  KAFKA_PARTITION: int(0),
  KAFKA_OFFSET: z.string().regex(/^\d+$/, 'a non-negative integer'),
  MCP_MESSAGE_SHA256: z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 hex digest').optional(),
  ALLOWED_COMMANDS: csv.default(['node', 'npx', 'uv', 'uvx', 'python', 'python3']),
  SECRETS_DIR: z.string().startsWith('/', 'an absolute path').default('/var/run/mcp-secrets'),
  MAX_MESSAGE_BYTES: int(1024, 64 * 1024 * 1024).default(1024 * 1024),
  MCP_INIT_TIMEOUT_MS: int(100).default(30_000),
  TERMINATION_MESSAGE_PATH: z.string().default('/dev/termination-log'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type JobConfig = z.output<typeof JobConfigSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Parses config, or throws a ConfigError naming each bad setting. */
export function parseConfig<S extends z.ZodType>(schema: S, input: Record<string, unknown>): z.output<S> {
  const r = schema.safeParse(input);
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => `  ${i.path.join('.') || '(config)'}: ${i.message}`);
  throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
}
