import type * as k8s from '@kubernetes/client-node';

/** The label Kueue reads to put a Job in a LocalQueue (its webhook would also suspend the Job). */
export const KUEUE_QUEUE_LABEL = 'kueue.x-k8s.io/queue-name';

/**
 * A Job Kueue holds: in a queue and suspended. Kueue admits it by setting `suspend: false`
 * (and may suspend it again to preempt it); until then it runs nothing, so it is queued, not
 * active.
 */
export function isHeldByKueue(job: k8s.V1Job): boolean {
  return job.spec?.suspend === true && Boolean(job.metadata?.labels?.[KUEUE_QUEUE_LABEL]);
}
