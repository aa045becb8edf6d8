import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import type { PolicySettings } from './policy.js';
import { int } from '../settings.js';

/**
 * The settings that decide what a Job is given, and so what a message may not take from it.
 * Declared once here: the controller builds Jobs from them, and `serve` must refuse what the
 * controller refuses, so it reads the same ones.
 */
export const JOB_TEMPLATE_SETTING = z
  .string()
  .min(1)
  .optional()
  .describe('YAML file of a Job to start from (resources, tolerations, volumes, serviceAccountName…)');
export const JOB_KAFKA_SECRET_NAME_SETTING = z
  .string()
  .min(1)
  .optional()
  .describe("Secret mounted in every Job with the job's Kafka credentials: keys password, and ca.crt / tls.crt / tls.key when TLS needs them");
export const JOB_NAMESPACE_SETTING = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a namespace name')
  .default('default')
  .describe('Namespace the Jobs are created in');
export const JOB_NAME_PREFIX_SETTING = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,15}$/, 'lower-case letters, digits and -, at most 16')
  .default('mcp')
  .describe('Prefix of Job names: <prefix>-<topic>-<hash of prefix and topic>-<partition>-<offset>');
export const DLQ_TOPIC_SETTING = z.string().min(1).optional().describe('Dead-letter topic for invalid messages (default <KAFKA_TOPIC>.dlq)');
export const JOB_SECRET_NAME_SETTING = z.string().min(1).optional().describe('Secret mounted at SECRETS_DIR in every Job (envFile sources)');

/**
 * The Job spec fields a setting also decides. A setting the operator sets wins over JOB_TEMPLATE's
 * value; left unset, the template's value holds, and without either the default does. (Before,
 * the template won, so the shipped template, which sets all three, made the settings do nothing.)
 */
export const JOB_SPEC_DEFAULTS = { backoffLimit: 2, activeDeadlineSeconds: 600, ttlSecondsAfterFinished: 3600 } as const;
const overTemplate = (field: keyof typeof JOB_SPEC_DEFAULTS) =>
  `; set, it wins over JOB_TEMPLATE's ${field} (unset: the template's, else ${JOB_SPEC_DEFAULTS[field]})`;
export const JOB_BACKOFF_LIMIT_SETTING = int(0, 100)
  .optional()
  .describe(`Job backoffLimit: retries after a retriable failure${overTemplate('backoffLimit')}`);
export const JOB_ACTIVE_DEADLINE_SECONDS_SETTING = int(1)
  .optional()
  .describe(`Job activeDeadlineSeconds, also the limit a message's servers must fit in${overTemplate('activeDeadlineSeconds')}`);
export const JOB_TTL_SECONDS_AFTER_FINISHED_SETTING = int(0)
  .optional()
  .describe(
    `Job ttlSecondsAfterFinished, set once the Job's outcome is recorded and its message's offset committed (never on a new Job)${overTemplate('ttlSecondsAfterFinished')}`,
  );

/** The settings behind JOB_SPEC_DEFAULTS' fields, as parsed: undefined when the operator left one unset. */
export interface JobSpecSettings {
  JOB_BACKOFF_LIMIT?: number | undefined;
  JOB_ACTIVE_DEADLINE_SECONDS?: number | undefined;
  JOB_TTL_SECONDS_AFTER_FINISHED?: number | undefined;
}

/**
 * The backoffLimit, activeDeadlineSeconds and ttlSecondsAfterFinished a Job gets: the operator's
 * setting, else the template's, else the default. The one place that decides them, so the Job,
 * the deadline check and the TTL the reporter sets after the commit agree.
 */
export function jobSpecLimits(
  cfg: JobSpecSettings,
  template?: k8s.V1Job,
): { backoffLimit: number; activeDeadlineSeconds: number; ttlSecondsAfterFinished: number } {
  const t = template?.spec;
  return {
    backoffLimit: cfg.JOB_BACKOFF_LIMIT ?? t?.backoffLimit ?? JOB_SPEC_DEFAULTS.backoffLimit,
    activeDeadlineSeconds: cfg.JOB_ACTIVE_DEADLINE_SECONDS ?? t?.activeDeadlineSeconds ?? JOB_SPEC_DEFAULTS.activeDeadlineSeconds,
    ttlSecondsAfterFinished: cfg.JOB_TTL_SECONDS_AFTER_FINISHED ?? t?.ttlSecondsAfterFinished ?? JOB_SPEC_DEFAULTS.ttlSecondsAfterFinished,
  };
}

/** What the Jobs' validation policy is built from, beyond the shared policy settings. */
export type JobPolicySettings = PolicySettings & {
  ALLOWED_IMAGES: readonly string[];
  JOB_ACTIVE_DEADLINE_SECONDS?: number | undefined;
  MCP_INIT_TIMEOUT_MS: number;
  JOB_KAFKA_SECRET_NAME?: string | undefined;
  JOB_SECRET_NAME?: string | undefined;
};

/**
 * The Secrets the deployment itself gives every Job — its Kafka credentials, the envFile Secret,
 * any the Job template mounts or reads — which no `secret_ref:` may name, however broad
 * JOB_ALLOWED_SECRETS is. (The controller's own Secrets are not known here: a dedicated prefix
 * such as `mcp-ref-*` keeps them out.)
 */
export function deploymentSecrets(cfg: Pick<JobPolicySettings, 'JOB_KAFKA_SECRET_NAME' | 'JOB_SECRET_NAME'>, template?: k8s.V1Job): string[] {
  const pod = template?.spec?.template?.spec;
  const names = [cfg.JOB_KAFKA_SECRET_NAME, cfg.JOB_SECRET_NAME];
  for (const v of pod?.volumes ?? []) {
    names.push(v.secret?.secretName, ...(v.projected?.sources ?? []).map((s) => s.secret?.name));
  }
  for (const c of [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])]) {
    names.push(...(c.envFrom ?? []).map((e) => e.secretRef?.name), ...(c.env ?? []).map((e) => e.valueFrom?.secretKeyRef?.name));
  }
  return [...new Set(names.filter((n): n is string => !!n))].sort();
}

/** Reads JOB_TEMPLATE, a batch/v1 Job in YAML; a ConfigError names the setting when it is not one. */
export function loadJobTemplate(path: string | undefined): k8s.V1Job | undefined {
  if (!path) return undefined;
  let obj: unknown;
  try {
    obj = k8s.loadYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`JOB_TEMPLATE ${path}: ${(err as Error).message}`);
  }
  const o = obj as { kind?: string; apiVersion?: string } | null;
  if (!o || typeof o !== 'object' || (o.kind && o.kind !== 'Job')) throw new ConfigError(`JOB_TEMPLATE ${path}: expected a batch/v1 Job`);
  return obj as k8s.V1Job;
}
