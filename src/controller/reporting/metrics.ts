import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The controller's Prometheus metrics, on a registry of its own (tests make one each). */
export function createMetrics(registry = new Registry(), defaults = true) {
  if (defaults) collectDefaultMetrics({ register: registry, prefix: 'mcp_job_controller_' });
  const r = [registry];
  return {
    registry,
    messagesConsumed: new Counter({
      name: 'mcp_job_controller_messages_consumed_total',
      help: 'Messages read from the source topic, by result (job, dead-lettered).',
      labelNames: ['result'],
      registers: r,
    }),
    jobsCreated: new Counter({
      name: 'mcp_job_controller_jobs_created_total',
      help: 'Jobs created, by result (created, existed: a redelivery found its Job).',
      labelNames: ['result'],
      registers: r,
    }),
    createSeconds: new Histogram({
      name: 'mcp_job_controller_job_create_duration_seconds',
      help: 'Time for one Job create call to the API server.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    }),
    deadLettered: new Counter({
      name: 'mcp_job_controller_dead_lettered_total',
      help: 'Records written to the dead-letter topic, by reason.',
      labelNames: ['reason'],
      registers: r,
    }),
    deadLetterTruncated: new Counter({
      name: 'mcp_job_controller_dead_letter_truncated_total',
      help: 'Records the controller writes that the broker refused, written again cut to fit (key, value, headers) or as a minimal record.',
      registers: r,
    }),
    retentionGap: new Counter({
      name: 'mcp_job_controller_retention_gap_messages_total',
      help: 'Messages deleted by retention before the controller consumed them (recorded on the dead-letter topic).',
      labelNames: ['topic', 'partition'],
      registers: r,
    }),
    retries: new Counter({ name: 'mcp_job_controller_retries_total', help: 'Retriable failures met, by operation.', labelNames: ['op'], registers: r }),
    activeJobs: new Gauge({ name: 'mcp_job_controller_active_jobs', help: 'Jobs of this controller not yet finished.', registers: r }),
    activeJobsCap: new Gauge({ name: 'mcp_job_controller_active_jobs_cap', help: 'The cap on active Jobs (0: none).', registers: r }),
    queuedJobs: new Gauge({ name: 'mcp_job_controller_queued_jobs', help: 'Jobs of this controller Kueue holds suspended (KUEUE_QUEUE_NAME).', registers: r }),
    queuedJobsCap: new Gauge({ name: 'mcp_job_controller_queued_jobs_cap', help: 'The cap on queued Jobs (0: none or no Kueue).', registers: r }),
    events: new Counter({
      name: 'mcp_job_controller_events_total',
      help: 'Kubernetes Events recorded, by result (sent, failed, dropped: the queue was full, sampled: a routine Event over its rate).',
      labelNames: ['result'],
      registers: r,
    }),
    paused: new Gauge({ name: 'mcp_job_controller_paused', help: '1 while consumption waits for the active-Job cap or a quota.', registers: r }),
    lag: new Gauge({
      name: 'mcp_job_controller_consumer_lag',
      help: 'Messages behind the partition end, per partition.',
      labelNames: ['topic', 'partition'],
      registers: r,
    }),
    committedOffset: new Gauge({
      name: 'mcp_job_controller_committed_offset',
      help: 'Last committed offset per partition.',
      labelNames: ['topic', 'partition'],
      registers: r,
    }),
    jobOutcomes: new Counter({
      name: 'mcp_job_controller_job_outcomes_total',
      help: 'Finished Jobs seen, by outcome (succeeded, failed).',
      labelNames: ['outcome'],
      registers: r,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * The one owner of the `paused` gauge: consumption is paused while any reason holds (the
 * active-Job cap, a full quota), and resumes only when none does.
 */
export class Pauses {
  private readonly reasons = new Set<string>();
  constructor(
    private readonly gauge: { set(v: number): void },
    /** Called when consumption pauses (with the reason) or resumes. */
    private readonly onChange?: (paused: boolean, reason: string) => void,
  ) {}

  set(reason: 'cap' | 'quota', on: boolean): void {
    const was = this.reasons.size > 0;
    if (on) this.reasons.add(reason);
    else this.reasons.delete(reason);
    this.gauge.set(this.reasons.size > 0 ? 1 : 0);
    if (was !== this.reasons.size > 0) this.onChange?.(!was, reason);
  }

  get paused(): boolean {
    return this.reasons.size > 0;
  }
}
