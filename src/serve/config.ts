import { z } from 'zod';
import type * as k8s from '@kubernetes/client-node';
import { initOptionsFrom, type InitOptions } from '../job/mcp/result.js';
import { JOB_KAFKA_SECRET_NAME_SETTING, JOB_SECRET_NAME_SETTING, JOB_TEMPLATE_SETTING, jobValidationPolicy } from '../shared/contract/job-policy.js';
import type { ValidationPolicy } from '../shared/contract/message.js';
import {
  ALLOWED_IMAGES_SETTING,
  int,
  KUBERNETES_SERVICE_HOST_SETTING,
  parseConfig,
  SECRET_REFS_DIR_SETTING,
  SHARED_SETTINGS,
  settingsInput,
  type SettingsShape,
} from '../shared/settings.js';

/**
 * The settings of `serve`, the MCP front door. Those it shares with the controller must hold the
 * controller's values (`KAFKA_TOPIC`, `JOB_NAMESPACE`, `JOB_NAME_PREFIX`, the allow-lists and
 * limits): they decide which Job a message becomes and whether it is accepted.
 */
export const SERVE_SETTINGS = {
  ...SHARED_SETTINGS,
  KAFKA_TOPIC: SHARED_SETTINGS.KAFKA_TOPIC.describe('Topic `submit` produces to: the controller consumes it'),
  DLQ_TOPIC: z.string().min(1).optional().describe("The controller's dead-letter topic, read by get_job (default <KAFKA_TOPIC>.dlq)"),
  ALLOWED_IMAGES: ALLOWED_IMAGES_SETTING,
  JOB_NAMESPACE: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a namespace name')
    .default('default')
    .describe("Namespace of the controller's Jobs"),
  JOB_NAME_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,15}$/, 'lower-case letters, digits and -, at most 16')
    .default('mcp')
    .describe("The controller's JOB_NAME_PREFIX: Job names are <prefix>-<topic>-<partition>-<offset>"),
  JOB_ACTIVE_DEADLINE_SECONDS: int(1).default(600).describe("The controller's Job activeDeadlineSeconds, for the same deadline check"),
  JOB_TEMPLATE: JOB_TEMPLATE_SETTING.describe("The controller's JOB_TEMPLATE: its activeDeadlineSeconds and the Secrets it gives Jobs count here too"),
  JOB_KAFKA_SECRET_NAME: JOB_KAFKA_SECRET_NAME_SETTING.describe("The controller's JOB_KAFKA_SECRET_NAME: never a message's secret_ref"),
  JOB_SECRET_NAME: JOB_SECRET_NAME_SETTING.describe("The controller's JOB_SECRET_NAME: never a message's secret_ref"),
  SERVE_PORT: int(0, 65535).default(8090).describe('Port of /mcp (Streamable HTTP) and /healthz'),
  SERVE_HOST: z.string().min(1).default('0.0.0.0').describe('Address to listen on'),
  SERVE_TOKEN_FILE: z.string().min(1).describe('File holding the bearer token clients must send (mount it from a Secret)'),
  SUBMIT_RATE_PER_SECOND: z.coerce.number().positive().default(2).describe('Messages `submit` may produce per second, on average'),
  SUBMIT_BURST: int(1).default(20).describe('Messages `submit` may produce at once before the rate applies'),
  DLQ_SCAN_RATE_PER_SECOND: z.coerce
    .number()
    .positive()
    .default(1)
    .describe('Dead-letter scans get_job may start per second, on average (each reads up to DLQ_SCAN_RECORDS per partition)'),
  DLQ_SCAN_BURST: int(1).default(5).describe('Dead-letter scans get_job may start at once before the rate applies'),
  INIT_RATE_PER_SECOND: z.coerce.number().positive().default(0.5).describe('Servers server_initialize may start or connect to per second, on average'),
  INIT_BURST: int(1).default(4).describe('Servers server_initialize may start or connect to at once before the rate applies'),
  SECRET_REFS_DIR: SECRET_REFS_DIR_SETTING.describe(
    'Where server_initialize reads referenced Secret keys, <dir>/<secret>/<key> (mount them here, or references fail secret-missing)',
  ),
  KUBERNETES_SERVICE_HOST: KUBERNETES_SERVICE_HOST_SETTING,
  DLQ_SCAN_RECORDS: int(1, 1_000_000)
    .default(1000)
    .describe("Dead-letter records get_job reads at most per dead-letter partition, newest first, to find a message's record"),
} satisfies SettingsShape;

export const ServeConfigSchema = z.object(SERVE_SETTINGS).transform((c) => ({ ...c, DLQ_TOPIC: c.DLQ_TOPIC ?? `${c.KAFKA_TOPIC}.dlq` }));
export type ServeConfig = z.output<typeof ServeConfigSchema>;

export function serveConfig(argv: Record<string, unknown>, env: NodeJS.ProcessEnv): ServeConfig {
  return parseConfig(ServeConfigSchema, settingsInput(SERVE_SETTINGS, argv, env));
}

/**
 * The controller's policy, rebuilt from the same settings and Job template: what `submit`
 * accepts, the controller accepts — the image allow-list, the Secrets the deployment gives Jobs,
 * the deadline check against the template's activeDeadlineSeconds. The API server as this pod
 * sees it (`KUBERNETES_SERVICE_HOST`) is refused as a remote url, as the job refuses it.
 */
export function servePolicy(cfg: ServeConfig, template?: k8s.V1Job): ValidationPolicy {
  return jobValidationPolicy(cfg, template, cfg.KUBERNETES_SERVICE_HOST ? [cfg.KUBERNETES_SERVICE_HOST] : []);
}

/**
 * How `server_initialize` runs one server: as the job does (a stdio server's stderr to `onStderr`,
 * as the job's goes to its log), with the whole policy applied again
 * at start or connect time — the remote-URL check after DNS included, which without `policy`
 * would fall back to the defaults and ignore the operator's allow-list and cluster ranges.
 */
export function serveInitOptions(cfg: ServeConfig, policy: ValidationPolicy, onStderr?: InitOptions['onStderr']): InitOptions {
  return { ...initOptionsFrom(cfg, policy), ...(onStderr ? { onStderr } : {}) };
}
