import type * as k8s from '@kubernetes/client-node';
import type { IHeaders } from 'kafkajs';
import { ExitCode } from '../../shared/contract/exit-codes.js';
import { Annotation, JOB_CONTAINER, Label, MANAGED_BY, TERMINATION_MESSAGE_PATH, type Coordinates } from '../../shared/contract/identity.js';
import type { ValidMessage } from '../../shared/contract/message.js';
import { SECRET_REFS_DIR, type SecretRef } from '../../shared/contract/policy.js';
import { jobName, labelValue } from '../../shared/contract/naming.js';
import { PACKAGE_CACHE_MOUNT_PATH } from '../../shared/settings.js';
import type { ControllerConfig } from '../config.js';
import { KUEUE_QUEUE_LABEL } from './kueue.js';
import { buildSidecars } from './sidecars.js';

/** A re-run of a message: the job reads the bytes from `readFrom` (a dead-letter record, say). */
export interface Replay {
  readFrom: Coordinates;
  count: number;
}

export type JobBuildConfig = Pick<
  ControllerConfig,
  | 'KAFKA_CONSUMER_GROUP'
  | 'KAFKA_TLS'
  | 'KAFKA_TLS_CA_FILE'
  | 'KAFKA_TLS_CERT_FILE'
  | 'KAFKA_TLS_SERVERNAME'
  | 'KAFKA_SASL_MECHANISM'
  | 'JOB_KAFKA_SECRET_NAME'
  | 'JOB_KAFKA_SASL_USERNAME'
  | 'JOB_KAFKA_BROKERS'
  | 'JOB_NAMESPACE'
  | 'JOB_IMAGE'
  | 'JOB_NAME_PREFIX'
  | 'JOB_BACKOFF_LIMIT'
  | 'JOB_ACTIVE_DEADLINE_SECONDS'
  | 'JOB_TTL_SECONDS_AFTER_FINISHED'
  | 'JOB_SECRET_NAME'
  | 'SECRETS_DIR'
  | 'ALLOWED_COMMANDS'
  | 'JOB_ALLOWED_SECRETS'
  | 'ALLOWED_ENV_KEYS'
  | 'ALLOWED_COMMAND_PATTERNS'
  | 'ALLOWED_REMOTE_HOSTS'
  | 'CLUSTER_SERVICE_CIDR'
  | 'CLUSTER_POD_CIDR'
  | 'MAX_MESSAGE_BYTES'
  | 'MCP_INIT_TIMEOUT_MS'
  | 'MCP_PROTOCOL'
  | 'LOG_LEVEL'
  | 'KUEUE_QUEUE_NAME'
  | 'PACKAGE_CACHE_CLAIM'
>;

export const DEFAULT_RESOURCES: k8s.V1ResourceRequirements = {
  requests: { cpu: '100m', memory: '128Mi' },
  limits: { cpu: '500m', memory: '256Mi' },
};

/** What the PodSecurity `restricted` profile requires of a container. */
export const RESTRICTED_CONTAINER_SECURITY: k8s.V1SecurityContext = {
  allowPrivilegeEscalation: false,
  capabilities: { drop: ['ALL'] },
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  seccompProfile: { type: 'RuntimeDefault' },
};

/**
 * Builds the Job for one valid message. Pure: the same inputs give the same object, which is
 * what makes `render` equal what the controller creates. `template` is the user's editable
 * Job (resources, tolerations, volumes, service account…); identity, env, provenance and the
 * settings the guarantees depend on (`restartPolicy: Never`) are always ours.
 */
export function buildJob(
  at: Coordinates,
  msg: ValidMessage,
  cfg: JobBuildConfig,
  template: k8s.V1Job = {},
  replay?: Replay,
  trace: TraceContext = {},
): k8s.V1Job {
  const readFrom = replay?.readFrom ?? at;
  const name = jobName(cfg.JOB_NAME_PREFIX, at.topic, at.partition, at.offset);
  const labels: Record<string, string> = {
    [Label.name]: 'mcp-job',
    [Label.component]: msg.jobType,
    [Label.managedBy]: MANAGED_BY,
    [Label.partOf]: 'mcp-job-controller',
    [Label.group]: labelValue(cfg.KAFKA_CONSUMER_GROUP),
    [Label.topic]: labelValue(at.topic),
    [Label.partition]: String(at.partition),
  };
  const jobIdLabel = labelValue(msg.jobID);
  if (jobIdLabel) labels[Label.jobID] = jobIdLabel;
  const annotations: Record<string, string> = {
    [Annotation.topic]: at.topic,
    [Annotation.partition]: String(at.partition),
    [Annotation.offset]: at.offset,
    [Annotation.jobID]: msg.jobID,
    [Annotation.jobType]: msg.jobType,
    [Annotation.checksum]: msg.checksum,
    [Annotation.group]: cfg.KAFKA_CONSUMER_GROUP,
  };
  if (replay) {
    annotations[Annotation.replayOf] = `${replay.readFrom.topic}/${replay.readFrom.partition}/${replay.readFrom.offset}`;
    annotations[Annotation.replayCount] = String(replay.count);
  }

  const tSpec = template.spec ?? { template: {} };
  const tPod = tSpec.template?.spec ?? { containers: [] };
  const tContainers = tPod.containers ?? [];
  const tJob = tContainers.find((c) => c.name === JOB_CONTAINER) ?? tContainers[0];
  const sidecars = tContainers.filter((c) => c !== tJob);

  const ours: k8s.V1EnvVar[] = [
    { name: 'KAFKA_BROKERS', value: cfg.JOB_KAFKA_BROKERS.join(',') },
    { name: 'KAFKA_TOPIC', value: readFrom.topic },
    { name: 'KAFKA_PARTITION', value: String(readFrom.partition) },
    { name: 'KAFKA_OFFSET', value: readFrom.offset },
    { name: 'MCP_MESSAGE_SHA256', value: msg.checksum },
    { name: 'MCP_JOB_ID', value: msg.jobID },
    { name: 'ALLOWED_COMMANDS', value: cfg.ALLOWED_COMMANDS.join(',') },
    { name: 'SECRETS_DIR', value: cfg.SECRETS_DIR },
    ...policyEnv(cfg),
    { name: 'MAX_MESSAGE_BYTES', value: String(cfg.MAX_MESSAGE_BYTES) },
    { name: 'MCP_INIT_TIMEOUT_MS', value: String(cfg.MCP_INIT_TIMEOUT_MS) },
    { name: 'MCP_PROTOCOL', value: cfg.MCP_PROTOCOL },
    { name: 'TERMINATION_MESSAGE_PATH', value: TERMINATION_MESSAGE_PATH },
    ...(msg.secretRefs?.length ? [{ name: 'SECRET_REFS_DIR', value: SECRET_REFS_DIR }] : []),
    { name: 'HOME', value: '/tmp' },
    ...jobKafkaSecurityEnv(cfg),
    // The OpenTelemetry environment carrier: the job sends it on in each MCP request's _meta.
    ...(trace.traceparent ? [{ name: 'TRACEPARENT', value: trace.traceparent }] : []),
    ...(trace.tracestate ? [{ name: 'TRACESTATE', value: trace.tracestate }] : []),
  ];
  const cache = packageCache(cfg, tJob?.volumeMounts ?? []);
  if (cache.env) ours.push(cache.env);
  const ourNames = new Set(ours.map((e) => e.name));
  const env = [...(tJob?.env ?? []).filter((e) => !ourNames.has(e.name)), ...ours];
  if (!env.some((e) => e.name === 'LOG_LEVEL')) env.push({ name: 'LOG_LEVEL', value: cfg.LOG_LEVEL === 'silent' ? 'info' : cfg.LOG_LEVEL });

  const volumes: k8s.V1Volume[] = [...(tPod.volumes ?? [])];
  const mounts: k8s.V1VolumeMount[] = [...(tJob?.volumeMounts ?? [])];
  if (!mounts.some((m) => m.mountPath === '/tmp')) {
    volumes.push({ name: 'tmp', emptyDir: { sizeLimit: '256Mi' } });
    mounts.push({ name: 'tmp', mountPath: '/tmp' });
  }
  if (cfg.JOB_KAFKA_SECRET_NAME && !mounts.some((m) => m.mountPath === JOB_KAFKA_DIR)) {
    volumes.push({ name: 'mcp-kafka', secret: { secretName: cfg.JOB_KAFKA_SECRET_NAME, defaultMode: 0o440 } });
    mounts.push({ name: 'mcp-kafka', mountPath: JOB_KAFKA_DIR, readOnly: true });
  }
  if (cfg.JOB_SECRET_NAME && !mounts.some((m) => m.mountPath === cfg.SECRETS_DIR)) {
    volumes.push({ name: 'mcp-secrets', secret: { secretName: cfg.JOB_SECRET_NAME, defaultMode: 0o440 } });
    mounts.push({ name: 'mcp-secrets', mountPath: cfg.SECRETS_DIR, readOnly: true });
  }
  if (cache.volume) {
    volumes.push(cache.volume);
    mounts.push(cache.mount);
  }
  if (msg.secretRefs?.length) {
    volumes.push(secretRefsVolume(msg.secretRefs));
    mounts.push({ name: SECRET_REFS_VOLUME, mountPath: SECRET_REFS_DIR, readOnly: true });
  }

  const containerServers = buildSidecars(msg.config.mcpServers, RESTRICTED_CONTAINER_SECURITY);
  volumes.push(...containerServers.volumes);

  const container: k8s.V1Container = {
    ...tJob,
    name: JOB_CONTAINER,
    image: tJob?.image ?? cfg.JOB_IMAGE,
    env,
    volumeMounts: mounts,
    resources: tJob?.resources ?? DEFAULT_RESOURCES,
    securityContext: { ...RESTRICTED_CONTAINER_SECURITY, ...tJob?.securityContext },
    terminationMessagePath: TERMINATION_MESSAGE_PATH,
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };

  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      ...template.metadata,
      name,
      namespace: cfg.JOB_NAMESPACE,
      labels: { ...template.metadata?.labels, ...labels, ...(cfg.KUEUE_QUEUE_NAME && { [KUEUE_QUEUE_LABEL]: cfg.KUEUE_QUEUE_NAME }) },
      annotations: { ...template.metadata?.annotations, ...annotations },
    },
    spec: {
      ...withoutTtl(tSpec),
      // Born suspended, Kueue admits it by resuming it (what Kueue's webhook would otherwise enforce).
      ...(cfg.KUEUE_QUEUE_NAME && { suspend: true }),
      completions: 1,
      parallelism: 1,
      backoffLimit: tSpec.backoffLimit ?? cfg.JOB_BACKOFF_LIMIT,
      activeDeadlineSeconds: tSpec.activeDeadlineSeconds ?? cfg.JOB_ACTIVE_DEADLINE_SECONDS,
      podFailurePolicy: tSpec.podFailurePolicy ?? {
        rules: [
          { action: 'FailJob', onExitCodes: { containerName: JOB_CONTAINER, operator: 'In', values: [ExitCode.PERMANENT] } },
          // A pod evicted or preempted says nothing about the message: do not count it.
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
        ],
      },
      template: {
        ...tSpec.template,
        metadata: {
          ...tSpec.template?.metadata,
          labels: { ...tSpec.template?.metadata?.labels, ...labels },
          annotations: { ...tSpec.template?.metadata?.annotations, ...annotations },
        },
        spec: {
          ...tPod,
          restartPolicy: 'Never',
          automountServiceAccountToken: tPod.automountServiceAccountToken ?? false,
          enableServiceLinks: tPod.enableServiceLinks ?? false,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 1000,
            runAsGroup: 1000,
            fsGroup: 1000,
            seccompProfile: { type: 'RuntimeDefault' },
            ...tPod.securityContext,
          },
          volumes,
          ...(tPod.initContainers || containerServers.containers.length
            ? { initContainers: [...(tPod.initContainers ?? []), ...containerServers.containers] }
            : {}),
          containers: [container, ...sidecars],
        },
      },
    },
  };
}

/** The policy settings the job applies again at run time, as its environment. */
function policyEnv(cfg: JobBuildConfig): k8s.V1EnvVar[] {
  const env: [string, string][] = [
    ['JOB_ALLOWED_SECRETS', cfg.JOB_ALLOWED_SECRETS.join(',')],
    ['ALLOWED_ENV_KEYS', cfg.ALLOWED_ENV_KEYS.join(',')],
    ['ALLOWED_COMMAND_PATTERNS', cfg.ALLOWED_COMMAND_PATTERNS.join(';')],
    ['ALLOWED_REMOTE_HOSTS', cfg.ALLOWED_REMOTE_HOSTS.join(',')],
    ['CLUSTER_SERVICE_CIDR', cfg.CLUSTER_SERVICE_CIDR.join(',')],
    ['CLUSTER_POD_CIDR', cfg.CLUSTER_POD_CIDR.join(',')],
  ];
  return env.filter(([, v]) => v !== '').map(([name, value]) => ({ name, value }));
}

export const PACKAGE_CACHE_VOLUME = 'mcp-package-cache';

/**
 * The shared package cache: PACKAGE_CACHE_CLAIM mounted read-write at PACKAGE_CACHE_MOUNT_PATH,
 * and PACKAGE_CACHE_DIR telling the job to point npm and uv at it. A template that mounts its
 * own volume there (a hostPath where Pod Security allows it, an inline NFS volume…) gets the
 * env without our volume; neither: nothing changes.
 */
function packageCache(
  cfg: JobBuildConfig,
  templateMounts: readonly k8s.V1VolumeMount[],
): { env?: k8s.V1EnvVar } & ({ volume: k8s.V1Volume; mount: k8s.V1VolumeMount } | { volume?: undefined; mount?: undefined }) {
  const env = { name: 'PACKAGE_CACHE_DIR', value: PACKAGE_CACHE_MOUNT_PATH };
  if (templateMounts.some((m) => m.mountPath === PACKAGE_CACHE_MOUNT_PATH)) return { env };
  if (!cfg.PACKAGE_CACHE_CLAIM) return {};
  return {
    env,
    volume: { name: PACKAGE_CACHE_VOLUME, persistentVolumeClaim: { claimName: cfg.PACKAGE_CACHE_CLAIM } },
    mount: { name: PACKAGE_CACHE_VOLUME, mountPath: PACKAGE_CACHE_MOUNT_PATH },
  };
}

export const SECRET_REFS_VOLUME = 'mcp-secret-refs';

/**
 * One projected volume holding exactly the Secret keys the message references, at
 * `<secret>/<key>` under SECRET_REFS_DIR: one source per Secret, its `items` the referenced keys,
 * `optional` so a missing key does not keep the pod from starting — the job then fails for good,
 * naming the Secret and key. Only names go into the Job; the values stay in the Secrets.
 */
export function secretRefsVolume(refs: readonly SecretRef[]): k8s.V1Volume {
  const bySecret = new Map<string, string[]>();
  for (const r of refs) bySecret.set(r.secret, [...(bySecret.get(r.secret) ?? []), r.key]);
  return {
    name: SECRET_REFS_VOLUME,
    projected: {
      defaultMode: 0o440,
      sources: [...bySecret].map(([secret, keys]) => ({
        secret: { name: secret, optional: true, items: keys.map((key) => ({ key, path: `${secret}/${key}` })) },
      })),
    },
  };
}

/** W3C trace context a producer put on the record (headers `traceparent`, `tracestate`). */
export interface TraceContext {
  traceparent?: string;
  tracestate?: string;
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The trace context of a record's headers; a malformed one is dropped, as the W3C spec says, never failing the message. */
export function traceContextOf(headers: IHeaders | undefined): TraceContext {
  const text = (v: IHeaders[string]) => (Array.isArray(v) ? v[0] : v)?.toString().trim();
  const traceparent = text(headers?.traceparent);
  if (!traceparent || !TRACEPARENT.test(traceparent)) return {};
  const tracestate = text(headers?.tracestate);
  return { traceparent, ...(tracestate && tracestate.length <= 512 ? { tracestate } : {}) };
}

/** Where a Job finds its own Kafka credentials: JOB_KAFKA_SECRET_NAME, mounted read-only. */
export const JOB_KAFKA_DIR = '/var/run/mcp-kafka';

/**
 * How the job connects to Kafka: the controller's TLS settings, and the job's own read-only
 * principal, whose password (and CA, client certificate) are files of JOB_KAFKA_SECRET_NAME.
 * Only names of files go into the Job; the Secret's values never do.
 */
export function jobKafkaSecurityEnv(cfg: JobBuildConfig): k8s.V1EnvVar[] {
  const env: k8s.V1EnvVar[] = [];
  if (cfg.KAFKA_TLS) {
    env.push({ name: 'KAFKA_TLS', value: 'true' });
    if (cfg.KAFKA_TLS_CA_FILE) env.push({ name: 'KAFKA_TLS_CA_FILE', value: `${JOB_KAFKA_DIR}/ca.crt` });
    if (cfg.KAFKA_TLS_CERT_FILE) {
      env.push({ name: 'KAFKA_TLS_CERT_FILE', value: `${JOB_KAFKA_DIR}/tls.crt` }, { name: 'KAFKA_TLS_KEY_FILE', value: `${JOB_KAFKA_DIR}/tls.key` });
    }
    if (cfg.KAFKA_TLS_SERVERNAME) env.push({ name: 'KAFKA_TLS_SERVERNAME', value: cfg.KAFKA_TLS_SERVERNAME });
  }
  if (cfg.KAFKA_SASL_MECHANISM && cfg.JOB_KAFKA_SASL_USERNAME) {
    env.push(
      { name: 'KAFKA_SASL_MECHANISM', value: cfg.KAFKA_SASL_MECHANISM },
      { name: 'KAFKA_SASL_USERNAME', value: cfg.JOB_KAFKA_SASL_USERNAME },
      { name: 'KAFKA_SASL_PASSWORD_FILE', value: `${JOB_KAFKA_DIR}/password` },
    );
  }
  return env;
}

/**
 * Jobs are created without `ttlSecondsAfterFinished`: the outcome reporter sets it once the
 * Job's outcome is recorded and its message's offset committed, so a Job is never deleted while
 * its message can still be redelivered. This is the value it sets.
 */
export function jobTtlSeconds(cfg: Pick<ControllerConfig, 'JOB_TTL_SECONDS_AFTER_FINISHED'>, template: k8s.V1Job = {}): number {
  return template.spec?.ttlSecondsAfterFinished ?? cfg.JOB_TTL_SECONDS_AFTER_FINISHED;
}

function withoutTtl(spec: k8s.V1JobSpec): k8s.V1JobSpec {
  const { ttlSecondsAfterFinished: _ttl, ...rest } = spec;
  return rest;
}
