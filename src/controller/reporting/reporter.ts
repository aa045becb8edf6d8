import * as k8s from '@kubernetes/client-node';
import type { Message } from 'kafkajs';
import type { ControllerConfig } from '../config.js';
import { buildDeadLetter } from './dead-letter.js';
import { AbortedError, classifyApiError, describeError, FatalError, isBug, isNotFound, RetriableError, TerminalError } from '../../shared/errors.js';
import { Label, podsOfJobSelector, type Coordinates } from '../../shared/contract/identity.js';
import type { Logger } from '../../shared/logger.js';
import type { OneMessage } from '../../shared/kafka/read-message.js';
import { retryForever } from '../../shared/retry.js';
import type { EventRecorder } from './events.js';
import type { Metrics } from './metrics.js';
import { buildOutcome, buildResultRecord, failureText } from './outcomes.js';

export interface ReporterDeps {
  config: Pick<ControllerConfig, 'JOB_NAMESPACE' | 'RESULTS_TOPIC' | 'DLQ_TOPIC'>;
  /** ttlSecondsAfterFinished, set on a Job only once its outcome is recorded and its offset committed. */
  ttlSeconds: number;
  /** True once the source offset of `at` is committed: the message can no longer be redelivered. */
  isCommitted: (at: Coordinates) => Promise<boolean>;
  /** How long to wait before looking again at a Job whose offset is not committed yet. */
  recheckMs?: number;
  batch: k8s.BatchV1Api;
  core: k8s.CoreV1Api;
  readMessage: (at: Coordinates) => Promise<OneMessage>;
  /** Writes a dead-letter record the way every other one is written (compressed, truncated if too large, fatal if refused). */
  sendDeadLetter: (record: Message, at: Coordinates) => Promise<void>;
  /** Writes a results record the same way (cut to fit the topic; fatal only if the topic or principal is wrong). */
  sendRecord: (topic: string, record: Message, at: Coordinates) => Promise<void>;
  /** Something no retry fixes (a topic the controller may not write): the process must end. */
  onFatal: (err: unknown) => void;
  log: Logger;
  metrics: Metrics;
  /** A Kubernetes Event on the Job for its outcome (fire-and-forget). */
  events?: Pick<EventRecorder, 'jobFinished'>;
  signal: AbortSignal;
  now?: () => Date;
}

const MERGE = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

/**
 * Records each finished Job once: a metric, a log line, a results-topic record (when
 * configured) and, for a Job that failed for good, its original message on the dead-letter
 * topic with the reason — so no work disappears when the Job is deleted. The Job is then
 * labelled as reported (a restarted controller skips it) and only then given its
 * `ttlSecondsAfterFinished`, and only once its message's offset is committed: a Job is never
 * deleted while its message can still be redelivered, so a redelivery always meets its `409`.
 * Reports run one at a time off the consumption path.
 */
export class OutcomeReporter {
  private chain: Promise<void> = Promise.resolve();
  private readonly queued = new Set<string>();

  constructor(private readonly d: ReporterDeps) {}

  enqueue(job: k8s.V1Job): void {
    const name = job.metadata?.name ?? '';
    if (job.metadata?.labels?.[Label.outcome] || this.queued.has(name)) return;
    this.queued.add(name);
    this.chain = this.chain
      .then(() => this.report(job))
      .catch((err) => {
        if (err instanceof AbortedError) return;
        if (err instanceof FatalError || isBug(err)) return this.d.onFatal(err);
        // Looked at again later: the watch reports a finished Job only once.
        this.d.log.warn({ job: name, err: describeError(err) }, 'recording a job outcome failed; retrying it later');
        this.defer(job);
      })
      .finally(() => this.queued.delete(name));
  }

  private readonly deferred = new Set<NodeJS.Timeout>();

  /** Looks at the Job again later: its offset is not committed yet. */
  private defer(job: k8s.V1Job): void {
    const t = setTimeout(() => {
      this.deferred.delete(t);
      if (!this.d.signal.aborted) this.enqueue(job);
    }, this.d.recheckMs ?? 2000);
    this.deferred.add(t);
  }

  /** Stops the re-checks of Jobs waiting for their commit (shutdown); a restart finds them again. */
  stop(): void {
    for (const t of this.deferred) clearTimeout(t);
    this.deferred.clear();
  }

  /** Resolves when everything queued so far is recorded (tests, shutdown). */
  idle(): Promise<void> {
    return this.chain;
  }

  private async report(job: k8s.V1Job): Promise<void> {
    const { config: cfg, log, metrics } = this.d;
    const name = job.metadata!.name!;
    const namespace = job.metadata?.namespace ?? cfg.JOB_NAMESPACE;
    const retry = {
      signal: this.d.signal,
      onRetry: (err: unknown, attempt: number) => void log.warn({ job: name, attempt, err: describeError(err) }, 'retrying a job outcome record'),
    };
    let pods: k8s.V1Pod[] = [];
    try {
      pods = (await this.d.core.listNamespacedPod({ namespace, labelSelector: podsOfJobSelector(name) })).items;
    } catch (err) {
      log.warn({ job: name, err: describeError(err) }, "cannot read the job's pods; recording the outcome without its termination message");
    }
    const outcome = buildOutcome(job, pods);
    if (
      outcome.source &&
      !(await retryForever(() => this.d.isCommitted(outcome.source!).catch((e) => Promise.reject(new RetriableError(describeError(e), { cause: e }))), retry))
    ) {
      log.debug({ job: name, ...outcome.source }, 'job finished before its offset was committed; recording it later');
      this.defer(job);
      return;
    }
    if (cfg.RESULTS_TOPIC) {
      const record = buildResultRecord(outcome);
      await this.d.sendRecord(cfg.RESULTS_TOPIC, record, outcome.source ?? { topic: cfg.RESULTS_TOPIC, partition: -1, offset: '-1' });
    }
    if (outcome.status === 'failed' && outcome.source) {
      let original: OneMessage = { key: null, value: null, headers: {}, timestamp: '' };
      try {
        original = await retryForever(() => this.d.readMessage(outcome.readFrom ?? outcome.source!), retry);
      } catch (err) {
        if (!(err instanceof TerminalError)) throw err;
        original.headers['mcp.dlq.original'] = `unavailable: ${err.message}`;
      }
      const record = buildDeadLetter(original, outcome.source, 'job-failed', failureText(outcome), (this.d.now ?? (() => new Date()))(), 'job');
      await this.d.sendDeadLetter(record, outcome.source);
      metrics.deadLettered.inc({ reason: 'job-failed' });
    }
    await retryForever(async () => {
      try {
        await this.d.batch.patchNamespacedJob(
          { name, namespace, body: { metadata: { labels: { [Label.outcome]: outcome.status } }, spec: { ttlSecondsAfterFinished: this.d.ttlSeconds } } },
          MERGE,
        );
      } catch (err) {
        if (isNotFound(err)) return; // already deleted: nothing left to mark
        throw classifyApiError(err, `mark Job ${name} reported`);
      }
    }, retry);
    metrics.jobOutcomes.inc({ outcome: outcome.status });
    this.d.events?.jobFinished(job, outcome, cfg.DLQ_TOPIC);
    const fields = { job: name, jobID: outcome.jobID, ...outcome.source, outcome: outcome.status, reason: outcome.reason, exitCode: outcome.exitCode };
    if (outcome.status === 'failed') log.warn({ ...fields, error: failureText(outcome) }, 'job failed; original message dead-lettered');
    else log.info(fields, 'job succeeded');
  }
}
