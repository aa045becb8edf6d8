import type * as k8s from '@kubernetes/client-node';
import type { Message } from 'kafkajs';
import { Annotation, JOB_CONTAINER, sourceOf, type Coordinates } from '../../shared/contract/identity.js';
import { JobSummarySchema, type JobSummary } from '../../shared/contract/summary.js';

export interface JobOutcome {
  job: string;
  /** The Job object's uid: two Jobs of one name (one deleted, one made again) are told apart by it. */
  uid?: string;
  namespace: string;
  jobID?: string;
  source?: Coordinates;
  status: 'succeeded' | 'failed';
  /** The Job's condition reason: PodFailurePolicy, BackoffLimitExceeded, DeadlineExceeded… */
  reason?: string;
  message?: string;
  /** Where the job read its message: the source, or what a replay pointed it at. */
  readFrom?: Coordinates;
  /** The job's termination message: its summary when it wrote a valid one, else the text (a log tail, or what a pod wrote). */
  summary?: JobSummary | string;
  exitCode?: number;
  finishedAt?: string;
}

/** When a pod was created, as a number; client-node gives Dates, a raw object gives strings. */
function createdAt(p: k8s.V1Pod): number {
  const t = p.metadata?.creationTimestamp as Date | string | undefined;
  const ms = t instanceof Date ? t.getTime() : t ? Date.parse(t) : NaN;
  return Number.isNaN(ms) ? 0 : ms;
}

/** The coordinates in a `replay-of` annotation (`topic/partition/offset`; the topic may hold `/`). */
export function parseReplayOf(v: string | undefined): Coordinates | undefined {
  const m = v ? /^(.+)\/(\d+)\/(\d+)$/.exec(v) : null;
  return m ? { topic: m[1]!, partition: Number(m[2]), offset: m[3]! } : undefined;
}

/**
 * Reads what happened to a finished Job from the Job and its newest pod. Pure. What the pod
 * wrote is not trusted: a termination message that is not a valid job summary is kept as text.
 */
export function buildOutcome(job: k8s.V1Job, pods: k8s.V1Pod[]): JobOutcome {
  const a = job.metadata?.annotations ?? {};
  const cond = (job.status?.conditions ?? []).find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
  const newest = [...pods].sort((x, y) => createdAt(y) - createdAt(x))[0];
  const cs = newest?.status?.containerStatuses?.find((c) => c.name === JOB_CONTAINER) ?? newest?.status?.containerStatuses?.[0];
  const term = cs?.state?.terminated;
  let summary: JobSummary | string | undefined = term?.message || undefined;
  if (typeof summary === 'string') {
    try {
      const parsed = JobSummarySchema.safeParse(JSON.parse(summary));
      if (parsed.success) summary = parsed.data;
    } catch {
      /* a plain-text message (log tail) stays text */
    }
  }
  const src = sourceOf(job);
  const readFrom = parseReplayOf(a[Annotation.replayOf]) ?? src;
  const finished = cond?.lastTransitionTime ?? job.status?.completionTime;
  return {
    job: job.metadata?.name ?? '',
    uid: job.metadata?.uid,
    namespace: job.metadata?.namespace ?? '',
    jobID: a[Annotation.jobID],
    source: src,
    readFrom,
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
  const s = o.summary;
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
