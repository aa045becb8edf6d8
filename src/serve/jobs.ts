import type * as k8s from '@kubernetes/client-node';
import { z } from 'zod';
import { Annotation, JOB_CONTAINER } from '../shared/contract/identity.js';

/** What a Job's state reads as for an MCP client; `pending`/`running` come from its pod. */
export const JobStatusSchema = z.enum(['pending', 'running', 'succeeded', 'failed']);

export const ConditionSchema = z.object({ type: z.string(), status: z.string(), reason: z.string().optional(), message: z.string().optional() });

export const PodViewSchema = z.object({
  name: z.string(),
  phase: z.string().optional(),
  exitCode: z.number().optional(),
  /** The job's termination summary (JSON), as `kubectl get pod -o jsonpath='{..terminated.message}'` shows it. */
  summary: z.record(z.string(), z.unknown()).optional(),
  /** The termination message when it is not JSON (a crash's log tail). */
  message: z.string().optional(),
  /** Container servers (native sidecars): whether each is ready or how it stopped. */
  sidecars: z.array(z.object({ name: z.string(), ready: z.boolean(), exitCode: z.number().optional() })).optional(),
});

export const JobBriefSchema = z.object({
  name: z.string(),
  jobID: z.string().optional(),
  status: JobStatusSchema,
  partition: z.number().optional(),
  offset: z.string().optional(),
  created: z.string().optional(),
  finished: z.string().optional(),
});

export type JobStatus = z.infer<typeof JobStatusSchema>;
export type PodView = z.infer<typeof PodViewSchema>;
export type JobBrief = z.infer<typeof JobBriefSchema>;

const iso = (d: Date | string | undefined) => (d === undefined ? undefined : new Date(d).toISOString());

/** A Job's status from its conditions, and from its pod while it runs. Pure. */
export function jobStatus(job: k8s.V1Job, pod?: k8s.V1Pod): JobStatus {
  const cond = (t: string) => job.status?.conditions?.some((c) => c.type === t && c.status === 'True');
  if (cond('Complete')) return 'succeeded';
  if (cond('Failed')) return 'failed';
  if (pod?.status?.phase === 'Running' || (job.status?.ready ?? 0) > 0) return 'running';
  return 'pending';
}

/** One line of list_jobs. Pure. */
export function jobBrief(job: k8s.V1Job): JobBrief {
  const a = job.metadata?.annotations ?? {};
  const partition = a[Annotation.partition];
  return {
    name: job.metadata?.name ?? '',
    ...(a[Annotation.jobID] !== undefined ? { jobID: a[Annotation.jobID] } : {}),
    status: jobStatus(job),
    ...(partition !== undefined ? { partition: Number(partition) } : {}),
    ...(a[Annotation.offset] !== undefined ? { offset: a[Annotation.offset] } : {}),
    ...(job.metadata?.creationTimestamp ? { created: iso(job.metadata.creationTimestamp) } : {}),
    ...(job.status?.completionTime ? { finished: iso(job.status.completionTime) } : {}),
  };
}

/** The pod's summary: the job container's exit and termination message, and its sidecars' state. Pure. */
export function podView(pod: k8s.V1Pod): PodView {
  const job = pod.status?.containerStatuses?.find((c) => c.name === JOB_CONTAINER) ?? pod.status?.containerStatuses?.[0];
  const term = job?.state?.terminated;
  let summary: Record<string, unknown> | undefined;
  let message: string | undefined;
  if (term?.message) {
    try {
      const parsed: unknown = JSON.parse(term.message);
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) summary = parsed as Record<string, unknown>;
      else message = term.message;
    } catch {
      message = term.message;
    }
  }
  const sidecarNames = new Set((pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always').map((c) => c.name));
  const sidecars = (pod.status?.initContainerStatuses ?? [])
    .filter((s) => sidecarNames.has(s.name))
    .map((s) => ({ name: s.name, ready: s.ready, ...(s.state?.terminated ? { exitCode: s.state.terminated.exitCode } : {}) }));
  return {
    name: pod.metadata?.name ?? '',
    ...(pod.status?.phase ? { phase: pod.status.phase } : {}),
    ...(term ? { exitCode: term.exitCode } : {}),
    ...(summary ? { summary } : {}),
    ...(message ? { message } : {}),
    ...(sidecars.length ? { sidecars } : {}),
  };
}

/** The newest pod of a Job (a retry makes another). */
export function newestPod(pods: k8s.V1Pod[]): k8s.V1Pod | undefined {
  return [...pods].sort((a, b) => String(iso(b.metadata?.creationTimestamp) ?? '').localeCompare(String(iso(a.metadata?.creationTimestamp) ?? '')))[0];
}

export function conditionsOf(job: k8s.V1Job): z.infer<typeof ConditionSchema>[] {
  return (job.status?.conditions ?? []).map((c) => ({
    type: c.type,
    status: c.status,
    ...(c.reason ? { reason: c.reason } : {}),
    ...(c.message ? { message: c.message } : {}),
  }));
}
