import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { validationPolicy, type PolicySettings, type ValidationPolicy } from './message.js';

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
export const JOB_SECRET_NAME_SETTING = z.string().min(1).optional().describe('Secret mounted at SECRETS_DIR in every Job (envFile sources)');

/** What the Jobs' validation policy is built from, beyond the shared policy settings. */
export type JobPolicySettings = PolicySettings & {
  ALLOWED_IMAGES: readonly string[];
  JOB_ACTIVE_DEADLINE_SECONDS: number;
  MCP_INIT_TIMEOUT_MS: number;
  JOB_KAFKA_SECRET_NAME?: string | undefined;
  JOB_SECRET_NAME?: string | undefined;
};

/**
 * The validation policy of messages that become Jobs: the shared one, plus the Secrets no
 * reference may name (deploymentSecrets) and the check that a message's servers can finish
 * within the Job's activeDeadlineSeconds (the template's, when it sets one). Pure.
 */
export function jobValidationPolicy(cfg: JobPolicySettings, template: k8s.V1Job | undefined, apiServerHosts: readonly string[]): ValidationPolicy {
  const seconds = template?.spec?.activeDeadlineSeconds ?? cfg.JOB_ACTIVE_DEADLINE_SECONDS;
  return {
    ...validationPolicy(cfg, apiServerHosts),
    allowedImages: cfg.ALLOWED_IMAGES,
    reservedSecrets: deploymentSecrets(cfg, template),
    deadline: { jobMs: seconds * 1000, serverTimeoutMs: cfg.MCP_INIT_TIMEOUT_MS },
  };
}

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
