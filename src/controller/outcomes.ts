import type * as k8s from '@kubernetes/client-node';
import type { Message } from 'kafkajs';
import { Annotation, JOB_CONTAINER, type Coordinates } from '../shared/identity.js';

export interface JobOutcome {
  job: string;
  namespace: string;
  jobID?: string;
  source?: Coordinates;
  status: 'succeeded' | 'failed';
  /** The Job's condition reason: PodFailurePolicy, BackoffLimitExceeded, DeadlineExceeded… */
  reason?: string;
  message?: string;
  /** The job's termination message: its JSON summary when it wrote one. */
  summary?: unknown;
  exitCode?: number;
  finishedAt?: string;
}

/** Reads what happened to a finished Job from the Job and its newest pod. Pure. */
export function buildOutcome(job: k8s.V1Job, pods: k8s.V1Pod[]): JobOutcome {
  const a = job.metadata?.annotations ?? {};
  const cond = (job.status?.conditions ?? []).find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
  const newest = [...pods].sort((x, y) => String(y.metadata?.creationTimestamp ?? '').localeCompare(String(x.metadata?.creationTimestamp ?? '')))[0];
  const cs = newest?.status?.containerStatuses?.find((c) => c.name === JOB_CONTAINER) ?? newest?.status?.containerStatuses?.[0];
  const term = cs?.state?.terminated;
  let summary: unknown = term?.message || undefined;
  if (typeof summary === 'string') {
    try {
      summary = JSON.parse(summary);
    } catch {
      /* a plain-text message (log tail) stays text */
    }
  }
  const src =
    a[Annotation.topic] !== undefined ? { topic: a[Annotation.topic]!, partition: Number(a[Annotation.partition]), offset: a[Annotation.offset]! } : undefined;
  const finished = cond?.lastTransitionTime ?? job.status?.completionTime;
  return {
    job: job.metadata?.name ?? '',
    namespace: job.metadata?.namespace ?? '',
    jobID: a[Annotation.jobID],
    source: src,
    status: cond?.type === 'Complete' ? 'succeeded' : 'failed',
    reason: cond?.reason,
    message: cond?.message,
    summary,
    exitCode: term?.exitCode,
    finishedAt: finished ? new Date(finished as unknown as string).toISOString() : undefined,
  };
}

/** The results-topic record for an outcome, keyed by Job name. */
export function buildResultRecord(o: JobOutcome): Message {
  return {
    key: o.job,
    value: JSON.stringify(o),
    headers: { 'mcp.result.status': o.status, 'mcp.result.job': o.job },
  };
}

/** Why a Job failed for good, in one line for a dead-letter header. */
export function failureText(o: JobOutcome): string {
  const s = o.summary as { reason?: string; error?: string; servers?: Record<string, { status?: string; reason?: string }> } | string | undefined;
  let detail = '';
  if (typeof s === 'string') detail = s.slice(-500);
  else if (s) {
    const bad = Object.entries(s.servers ?? {})
      .filter(([, v]) => v.status !== 'initialized')
      .map(([k, v]) => `${k}: ${v.reason}`);
    detail = [s.reason, s.error, bad.length ? `servers ${bad.join(', ')}` : ''].filter(Boolean).join('; ');
  }
  return [`Job ${o.job} failed: ${o.reason ?? 'Failed'}`, o.message, o.exitCode !== undefined ? `exit code ${o.exitCode}` : '', detail]
    .filter(Boolean)
    .join('; ');
}
