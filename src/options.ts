import type { Options } from 'yargs';

/** One row per setting: the env name (the config key) and its help. Flags are the kebab-case of the env name. */
export interface SettingDoc {
  env: string;
  desc: string;
  default?: string;
}

export const CONTROLLER_SETTINGS: SettingDoc[] = [
  { env: 'KAFKA_BROKERS', desc: 'Kafka bootstrap brokers, comma-separated host:port' },
  { env: 'KAFKA_TOPIC', desc: 'Topic to consume; one Job per message' },
  { env: 'KAFKA_CONSUMER_GROUP', desc: 'Consumer group (its committed offsets are the progress)', default: 'mcp-job-controller' },
  { env: 'KAFKA_CLIENT_ID', desc: 'Kafka client id', default: 'mcp-job-controller' },
  { env: 'KAFKA_SESSION_TIMEOUT_MS', desc: 'Consumer session timeout: how long a killed controller holds its partitions', default: '30000' },
  { env: 'JOB_KAFKA_BROKERS', desc: 'Brokers as the Job pods reach them, if not KAFKA_BROKERS' },
  { env: 'DLQ_TOPIC', desc: 'Dead-letter topic for invalid messages', default: '<KAFKA_TOPIC>.dlq' },
  { env: 'RESULTS_TOPIC', desc: 'Topic for one record per finished Job (optional)' },
  { env: 'JOB_NAMESPACE', desc: 'Namespace the Jobs are created in', default: 'default' },
  { env: 'JOB_IMAGE', desc: 'Image of the job container (unless the template sets one)', default: 'mcp-job-controller/job:dev' },
  { env: 'JOB_TEMPLATE', desc: 'YAML file of a Job to start from (resources, tolerations, volumes, serviceAccountName…)' },
  { env: 'JOB_NAME_PREFIX', desc: 'Prefix of Job names: <prefix>-<topic>-<partition>-<offset>', default: 'mcp' },
  { env: 'JOB_BACKOFF_LIMIT', desc: 'Job backoffLimit (retriable failures)', default: '2' },
  { env: 'JOB_ACTIVE_DEADLINE_SECONDS', desc: 'Job activeDeadlineSeconds', default: '600' },
  { env: 'JOB_TTL_SECONDS_AFTER_FINISHED', desc: 'Job ttlSecondsAfterFinished', default: '3600' },
  { env: 'JOB_SECRET_NAME', desc: 'Secret mounted at SECRETS_DIR in every Job (envFile sources)' },
  { env: 'SECRETS_DIR', desc: 'Where envFile paths must point', default: '/var/run/mcp-secrets' },
  { env: 'ALLOWED_COMMANDS', desc: 'Commands a stdio MCP server may run, comma-separated (* for any)', default: 'node,npx,uv,uvx,python,python3' },
  { env: 'MAX_MESSAGE_BYTES', desc: 'Largest message accepted', default: '1048576' },
  { env: 'MCP_INIT_TIMEOUT_MS', desc: 'Per-server initialize timeout passed to the job', default: '30000' },
  { env: 'MAX_IN_FLIGHT', desc: 'Job creates in flight at once per partition', default: '32' },
  { env: 'MAX_ACTIVE_JOBS', desc: 'Cap on unfinished Jobs; consumption pauses at it (0: no cap)', default: '100' },
  { env: 'METRICS_PORT', desc: 'Port for /metrics, /healthz, /readyz (0: off)', default: '8080' },
  { env: 'LOG_LEVEL', desc: 'fatal|error|warn|info|debug|trace|silent', default: 'info' },
  { env: 'SHUTDOWN_TIMEOUT_MS', desc: 'Longest a SIGTERM stop may take before exit', default: '25000' },
];

export function flagName(env: string): string {
  return env.toLowerCase().replace(/_/g, '-');
}

/** yargs options for a settings table; the help shows each one's environment variable. */
export function yargsOptions(settings: SettingDoc[]): Record<string, Options> {
  return Object.fromEntries(settings.map((s) => [flagName(s.env), {
    type: 'string',
    describe: `${s.desc} [env ${s.env}]${s.default ? ` (default ${s.default})` : ''}`,
  } satisfies Options]));
}

/** Flags win over the environment; the result is keyed by env name, ready for the zod schema. */
export function settingsInput(settings: SettingDoc[], argv: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const s of settings) {
    const v = argv[flagName(s.env)] ?? env[s.env];
    if (v !== undefined && v !== '') out[s.env] = v;
  }
  return out;
}
