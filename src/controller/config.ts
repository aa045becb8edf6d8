import type * as k8s from '@kubernetes/client-node';
import { z } from 'zod';
import { JOB_KAFKA_SECRET_NAME_SETTING, JOB_SECRET_NAME_SETTING, JOB_TEMPLATE_SETTING, jobValidationPolicy } from '../shared/contract/job-policy.js';
import type { ValidationPolicy } from '../shared/contract/message.js';
import { ALLOWED_IMAGES_SETTING, csv, int, parseConfig, SHARED_SETTINGS, settingsInput, type SettingsShape } from '../shared/settings.js';

/**
 * The controller's settings, one declaration each (see shared/settings.ts). Keys are the
 * environment variable names (the design documents' names), so an error names the setting a
 * user has to fix.
 */
export const CONTROLLER_SETTINGS = {
  ...SHARED_SETTINGS,
  KAFKA_TOPIC: SHARED_SETTINGS.KAFKA_TOPIC.describe('Topic to consume; one Job per message'),
  KAFKA_CONSUMER_GROUP: z.string().min(1).default('mcp-job-controller').describe('Consumer group (its committed offsets are the progress)'),
  KAFKA_CLIENT_ID: z.string().min(1).default('mcp-job-controller').describe('Kafka client id'),
  KAFKA_SESSION_TIMEOUT_MS: int(6000, 300_000).default(30_000).describe('Consumer session timeout: how long a killed controller holds its partitions'),
  JOB_KAFKA_BROKERS: csv.optional().describe('Brokers as the Job pods reach them, if not KAFKA_BROKERS'),
  DLQ_TOPIC: z.string().min(1).optional().describe('Dead-letter topic for invalid messages (default <KAFKA_TOPIC>.dlq)'),
  RESULTS_TOPIC: z.string().min(1).optional().describe('Topic for one record per finished Job (optional)'),
  JOB_NAMESPACE: z
    .string()
    .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a namespace name')
    .default('default')
    .describe('Namespace the Jobs are created in'),
  JOB_IMAGE: z.string().min(1).default('mcp-job-controller/job:dev').describe('Image of the job container (unless the template sets one)'),
  JOB_TEMPLATE: JOB_TEMPLATE_SETTING,
  JOB_NAME_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,15}$/, 'lower-case letters, digits and -, at most 16')
    .default('mcp')
    .describe('Prefix of Job names: <prefix>-<topic>-<partition>-<offset>'),
  JOB_BACKOFF_LIMIT: int(0, 100).default(2).describe('Job backoffLimit (retriable failures)'),
  JOB_ACTIVE_DEADLINE_SECONDS: int(1).default(600).describe('Job activeDeadlineSeconds'),
  JOB_TTL_SECONDS_AFTER_FINISHED: int(0)
    .default(3600)
    .describe("Job ttlSecondsAfterFinished, set once the Job's outcome is recorded and its message's offset committed"),
  JOB_KAFKA_SECRET_NAME: JOB_KAFKA_SECRET_NAME_SETTING,
  JOB_KAFKA_SASL_USERNAME: z
    .string()
    .min(1)
    .optional()
    .describe("The job's own Kafka principal (read-only on the topic); its password is the Secret's key password"),
  ALLOWED_IMAGES: ALLOWED_IMAGES_SETTING,
  JOB_SECRET_NAME: JOB_SECRET_NAME_SETTING,
  PACKAGE_CACHE_CLAIM: z
    .preprocess(
      (v) => (v === '' ? undefined : v),
      z
        .string()
        .regex(/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/, 'a PersistentVolumeClaim name')
        .optional(),
    )
    .describe(
      'PersistentVolumeClaim (ReadWriteMany, in JOB_NAMESPACE) every Job mounts as its npm and uv package cache; the registry is asked only for what it lacks (unset: each pod downloads its servers)',
    ),
  MAX_IN_FLIGHT: int(1, 1000).default(32).describe('Job creates in flight at once per partition'),
  MAX_ACTIVE_JOBS: int(0).default(100).describe('Cap on unfinished Jobs; consumption pauses at it (0: no cap)'),
  KUEUE_QUEUE_NAME: z
    .preprocess(
      (v) => (v === '' ? undefined : v),
      z
        .string()
        .regex(/^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/, 'a LocalQueue name')
        .optional(),
    )
    .describe('Kueue LocalQueue for the Jobs: created suspended with the label kueue.x-k8s.io/queue-name, Kueue admits them (unset: no Kueue)'),
  MAX_QUEUED_JOBS: int(0)
    .default(100)
    .describe('With KUEUE_QUEUE_NAME: cap on Jobs Kueue holds suspended, apart from MAX_ACTIVE_JOBS; consumption pauses at it (0: no cap)'),
  POD_NAME: z
    .string()
    .min(1)
    .optional()
    .describe("The controller's own Pod (downward API): Events about the controller are recorded on it (unset: not recorded)"),
  POD_NAMESPACE: z.string().min(1).optional().describe("The controller Pod's namespace (downward API)"),
  POD_UID: z.string().min(1).optional().describe("The controller Pod's uid (downward API): `kubectl describe pod` finds its Events by it"),
  METRICS_PORT: int(0, 65535).default(8080).describe('Port for /metrics, /healthz, /readyz (0: off)'),
  KUBE_REQUEST_TIMEOUT_MS: int(1000).default(15_000).describe('Longest one Kubernetes API call may take before it is abandoned and retried'),
  SHUTDOWN_TIMEOUT_MS: int(0).default(25_000).describe('Longest a SIGTERM stop may take before exit'),
} satisfies SettingsShape;

/** The controller's whole configuration, from flags and environment, parsed once at start. */
export const ControllerConfigSchema = z
  .object(CONTROLLER_SETTINGS)
  .superRefine((c, ctx) => {
    // A graceful stop waits for the creates in flight: one call must not outlast the stop.
    if (c.SHUTDOWN_TIMEOUT_MS > 0 && c.KUBE_REQUEST_TIMEOUT_MS >= c.SHUTDOWN_TIMEOUT_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['KUBE_REQUEST_TIMEOUT_MS'],
        message: 'must be less than SHUTDOWN_TIMEOUT_MS, so a stop can wait for the calls in flight',
      });
    }
    // A Job must be able to read its message: its credentials come from JOB_KAFKA_SECRET_NAME.
    if (c.KAFKA_SASL_MECHANISM && !(c.JOB_KAFKA_SASL_USERNAME && c.JOB_KAFKA_SECRET_NAME)) {
      ctx.addIssue({
        code: 'custom',
        path: ['JOB_KAFKA_SASL_USERNAME'],
        message: 'with KAFKA_SASL_MECHANISM, Jobs need JOB_KAFKA_SASL_USERNAME and JOB_KAFKA_SECRET_NAME',
      });
    }
    if (c.KAFKA_TLS && (c.KAFKA_TLS_CA_FILE || c.KAFKA_TLS_CERT_FILE) && !c.JOB_KAFKA_SECRET_NAME) {
      ctx.addIssue({
        code: 'custom',
        path: ['JOB_KAFKA_SECRET_NAME'],
        message: 'with KAFKA_TLS_CA_FILE or KAFKA_TLS_CERT_FILE, Jobs need JOB_KAFKA_SECRET_NAME (keys ca.crt, tls.crt, tls.key)',
      });
    }
  })
  .transform((c) => ({ ...c, DLQ_TOPIC: c.DLQ_TOPIC ?? `${c.KAFKA_TOPIC}.dlq`, JOB_KAFKA_BROKERS: c.JOB_KAFKA_BROKERS ?? c.KAFKA_BROKERS }));

export type ControllerConfig = z.output<typeof ControllerConfigSchema>;

/** Parses the controller's config from flags and environment; throws a ConfigError naming bad settings. */
export function controllerConfig(argv: Record<string, unknown>, env: NodeJS.ProcessEnv, overrides: Record<string, unknown> = {}): ControllerConfig {
  return parseConfig(ControllerConfigSchema, { ...settingsInput(CONTROLLER_SETTINGS, argv, env), ...overrides });
}

/**
 * The controller's validation policy: the shared one, plus the Secrets no reference may name
 * (deploymentSecrets) and the check that a message's servers can finish within the Job's
 * activeDeadlineSeconds (the template's, when it sets one).
 */
export function controllerPolicy(
  cfg: ControllerConfig,
  template?: k8s.V1Job,
  // In a pod, the kubelet's address of the API server: refused as a remote url like its names.
  apiServerHosts: readonly string[] = process.env.KUBERNETES_SERVICE_HOST ? [process.env.KUBERNETES_SERVICE_HOST] : [],
): ValidationPolicy {
  return jobValidationPolicy(cfg, template, apiServerHosts);
}

export { deploymentSecrets } from '../shared/contract/job-policy.js';
