import { createHash } from 'node:crypto';
import { z } from 'zod';
import { TerminalError } from '../errors.js';
import { INIT_CONCURRENCY, JOB_START_ALLOWANCE_MS, SERVER_MARGIN_MS, serversWorstCaseMs, SIDECAR_START_ALLOWANCE_MS } from './budget.js';
import { checkContainerServers, checkServer, uniqueRefs } from './checks.js';
import { MCPServersConfigSchema, type MCPServersConfig } from './dialects.js';
import type { RemotePolicy, SecretRef } from './policy.js';
import type { SharedConfig } from '../settings.js';

/** The job types the design documents define. */
export const JOB_TYPES = ['server-init'] as const;

export const EnvelopeSchema = z.object({
  jobID: z.string().min(1, 'jobID must not be empty').max(253, 'jobID is at most 253 characters'),
  jobType: z.string().min(1),
  payload: z.union([z.string(), z.record(z.string(), z.unknown())], { error: 'payload must be a JSON string or an object' }),
});

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

export function checksumOf(value: Buffer): string {
  return createHash('sha256').update(value).digest('hex');
}

function zodReason(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
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
