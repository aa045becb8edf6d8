import type * as k8s from '@kubernetes/client-node';
import { labelValue } from './naming.js';

/**
 * A Job's identity and provenance: what the controller writes on every Job and what anyone
 * (the controller after a restart, `replay`, `kubectl`) reads back to find the message behind
 * it. Names come from naming.ts; this module holds the annotation and label scheme.
 */
export const ANNOTATION_DOMAIN = 'mcp-job-controller.io';

/** Name of the job's container in every Job's pod. */
export const JOB_CONTAINER = 'job';

/** Where the job writes its summary; the kubelet keeps it as the pod's termination message. */
export const TERMINATION_MESSAGE_PATH = '/dev/termination-log';

/** Where a message lives. Offsets stay strings, as Kafka clients give them (they pass 2^53). */
export interface Coordinates {
  topic: string;
  partition: number;
  offset: string;
}

/** Provenance annotations: enough to find the message behind any Job, and to rebuild state from the cluster. */
export const Annotation = {
  topic: `${ANNOTATION_DOMAIN}/topic`,
  partition: `${ANNOTATION_DOMAIN}/partition`,
  offset: `${ANNOTATION_DOMAIN}/offset`,
  jobID: `${ANNOTATION_DOMAIN}/job-id`,
  jobType: `${ANNOTATION_DOMAIN}/job-type`,
  checksum: `${ANNOTATION_DOMAIN}/checksum`,
  group: `${ANNOTATION_DOMAIN}/consumer-group`,
  replayOf: `${ANNOTATION_DOMAIN}/replay-of`,
  replayCount: `${ANNOTATION_DOMAIN}/replay-count`,
} as const;

export const Label = {
  name: 'app.kubernetes.io/name',
  component: 'app.kubernetes.io/component',
  managedBy: 'app.kubernetes.io/managed-by',
  partOf: 'app.kubernetes.io/part-of',
  group: `${ANNOTATION_DOMAIN}/consumer-group`,
  topic: `${ANNOTATION_DOMAIN}/topic`,
  partition: `${ANNOTATION_DOMAIN}/partition`,
  jobID: `${ANNOTATION_DOMAIN}/job-id`,
  /**
   * Set once a finished Job's outcome is recorded: a restarted controller does not record it
   * twice, and the controller's watch leaves it out (`!outcome`), so what the controller holds
   * in memory grows with its active Jobs, not with every Job the TTL has not deleted yet.
   */
  outcome: `${ANNOTATION_DOMAIN}/outcome`,
} as const;

export const MANAGED_BY = 'mcp-job-controller';

/** `kubectl get jobs -l <this>` lists the Jobs one controller (consumer group) made. */
/** The pods of one Job, by the label the Job controller sets on them. */
export function podsOfJobSelector(jobName: string): string {
  return `batch.kubernetes.io/job-name=${jobName}`;
}

export function jobSelector(group: string): string {
  return `${Label.managedBy}=${MANAGED_BY},${Label.group}=${labelValue(group)}`;
}

/** The controller's own Jobs whose outcome is not recorded yet: what its watch holds. */
export function unreportedJobSelector(group: string): string {
  return `${jobSelector(group)},!${Label.outcome}`;
}

/**
 * True when an existing Job was made for the message at `at` with these very bytes, by this
 * consumer group: a message's identity is its group, topic, partition, offset and checksum.
 */
export function isSameMessage(job: k8s.V1Job, at: Coordinates, checksum: string, group: string): boolean {
  const a = job.metadata?.annotations ?? {};
  return (
    a[Annotation.group] === group &&
    a[Annotation.topic] === at.topic &&
    a[Annotation.partition] === String(at.partition) &&
    a[Annotation.offset] === at.offset &&
    a[Annotation.checksum] === checksum
  );
}

/** A Job whose Complete or Failed condition is true. */
export function isFinished(job: k8s.V1Job): boolean {
  return (job.status?.conditions ?? []).some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
}

/** The source coordinates recorded on a Job, if it has them. */
export function sourceOf(job: k8s.V1Job): Coordinates | undefined {
  const a = job.metadata?.annotations ?? {};
  if (a[Annotation.topic] === undefined) return undefined;
  return { topic: a[Annotation.topic]!, partition: Number(a[Annotation.partition]), offset: a[Annotation.offset]! };
}
