import type * as k8s from '@kubernetes/client-node';
import { CompressionTypes, type Message, type ProducerRecord, type RecordMetadata } from 'kafkajs';
import {
  AbortedError,
  classifyApiError,
  classifyProduceError,
  describeError,
  FatalError,
  isConflict,
  isQuotaExceeded,
  kafkaErrorType,
  RetriableError,
  TerminalError,
} from '../../shared/errors.js';
import { Annotation, isFinished, isSameMessage, type Coordinates } from '../../shared/contract/identity.js';
import type { Logger } from '../../shared/logger.js';
import { parseMessage, type ValidationPolicy } from '../../shared/contract/message.js';
import { retryForever, type BackoffOptions } from '../../shared/retry.js';
import type { ControllerConfig } from '../config.js';
import { buildDeadLetter, truncateDeadLetter, type SourceRecord } from '../reporting/dead-letter.js';
import type { EventRecorder } from '../reporting/events.js';
import { buildJob, traceContextOf } from '../jobs/job-builder.js';
import { linkSignals } from './linked-signal.js';
import type { Metrics, Pauses } from '../reporting/metrics.js';

/** The two Job calls the handler makes (client-node's BatchV1Api has them). */
export interface JobsApi {
  createNamespacedJob(p: { namespace: string; body: k8s.V1Job }): Promise<{ metadata?: { uid?: string } } | undefined>;
  readNamespacedJob(p: { name: string; namespace: string }): Promise<k8s.V1Job>;
}

/** The one producer call the handler makes. */
export interface RecordSender {
  send(record: ProducerRecord): Promise<RecordMetadata[]>;
}

/** The active-Job cap, as the handler sees it. */
export interface Slots {
  acquire(signal?: AbortSignal, heartbeat?: () => Promise<void>): Promise<boolean>;
  settle(name: string | undefined, alreadyFinished?: boolean): void;
}

export type Outcome = { kind: 'job'; name: string; existed: boolean } | { kind: 'dead-lettered'; reason: string };

export interface HandlerDeps {
  config: ControllerConfig;
  policy: ValidationPolicy;
  jobs: JobsApi;
  producer: RecordSender;
  slots: Slots;
  pauses: Pauses;
  template?: k8s.V1Job;
  log: Logger;
  metrics: Metrics;
  /** Fires when the controller stops: waits and retries end with an AbortedError. */
  signal: AbortSignal;
  now?: () => Date;
  /** The dead-letter topic's `max.message.bytes`: a record over it is written truncated. */
  dlqMaxBytes?: () => number | Promise<number>;
  /** Kubernetes Events (fire-and-forget) for created Jobs and dead-lettered messages. */
  events?: Pick<EventRecorder, 'jobCreated' | 'deadLettered'>;
  /** Backoff between retries of a retriable failure; short so a recovered API server is used within seconds. */
  backoff?: BackoffOptions;
}

/**
 * What happens to one message: validate → build its Job → take a slot under the cap → create
 * it (a `409` for the same message is success: a redelivery finds the Job it made before) →
 * or, for what can never succeed, write one dead-letter record. Retriable failures are retried
 * for as long as it takes (nothing is committed meanwhile); it resolves only once the Job or
 * the record exists. Owns the set of messages dead-lettered but not yet committed, so a
 * redelivered one is not written twice.
 */
export class MessageHandler {
  /** Source offsets (`partition/offset`) with a dead-letter record but no commit yet. */
  private deadLettered = new Set<string>();

  constructor(private readonly d: HandlerDeps) {}

  /**
   * Dead-letter records written for messages not yet committed — by a previous run (found at
   * start) or by another member that owned the partition before a rebalance (found on a join).
   * Added to what is known, never replacing it: a record once written stays written.
   */
  seedDeadLettered(found: Set<string>): void {
    for (const k of found) this.deadLettered.add(k);
  }

  /** The offset `next` of `partition` is committed: records below it will not be redelivered. */
  committed(partition: number, next: string): void {
    for (const k of this.deadLettered) {
      const [p, o] = k.split('/');
      if (Number(p) === partition && BigInt(o!) < BigInt(next)) this.deadLettered.delete(k);
    }
  }

  hasDeadLettered(at: Pick<Coordinates, 'partition' | 'offset'>): boolean {
    return this.deadLettered.has(`${at.partition}/${at.offset}`);
  }

  /** A record for `at` was written outside `handle` (a loss record): do not write it again before the commit. */
  markDeadLettered(at: Pick<Coordinates, 'partition' | 'offset'>): void {
    this.deadLettered.add(`${at.partition}/${at.offset}`);
  }

  /**
   * Resolves once the message's Job or dead-letter record exists. `signal` (a rebalance, say)
   * ends its waits and retries early with an AbortedError, as the controller's stop does.
   */
  async handle(m: SourceRecord, at: Coordinates, heartbeat: () => Promise<void>, signal?: AbortSignal): Promise<Outcome> {
    const linked = linkSignals(this.d.signal, signal);
    try {
      return await this.handleUntil(m, at, heartbeat, linked.signal);
    } finally {
      linked.release();
    }
  }

  private async handleUntil(m: SourceRecord, at: Coordinates, heartbeat: () => Promise<void>, sig: AbortSignal): Promise<Outcome> {
    const { config: cfg, metrics, log } = this.d;
    let job: k8s.V1Job;
    let checksum: string;
    let jobID: string;
    try {
      const msg = parseMessage(m.value, this.d.policy);
      checksum = msg.checksum;
      jobID = msg.jobID;
      job = buildJob(at, msg, cfg, this.d.template, undefined, traceContextOf(m.headers));
    } catch (err) {
      if (err instanceof TerminalError) return this.deadLetter(m, at, err, heartbeat, sig);
      throw err;
    }
    if (!(await this.d.slots.acquire(sig, heartbeat))) throw new AbortedError('stopped while waiting for the active-job cap');
    let created: string | undefined;
    let finished = false;
    try {
      const r = await retryForever(() => this.createJob(job, at, checksum), this.retryOpts('create-job', heartbeat, at, sig)).finally(() =>
        this.d.pauses.set('quota', false),
      );
      created = job.metadata!.name!;
      finished = r.finished === true;
      metrics.jobsCreated.inc({ result: r.existed ? 'existed' : 'created' });
      log.info({ job: created, ...at, existed: r.existed }, r.existed ? 'job already existed' : 'job created');
      if (!r.existed) this.d.events?.jobCreated({ name: created, namespace: cfg.JOB_NAMESPACE, uid: r.uid }, at, jobID);
      return { kind: 'job', name: created, existed: r.existed };
    } catch (err) {
      if (err instanceof TerminalError) return this.deadLetter(m, at, err, heartbeat, sig);
      throw err;
    } finally {
      this.d.slots.settle(created, finished);
    }
  }

  private retryOpts(op: string, heartbeat: () => Promise<void>, at: Coordinates, signal: AbortSignal) {
    const { log, metrics } = this.d;
    return {
      signal,
      maxMs: 5000,
      ...this.d.backoff,
      onRetry: async (err: unknown, attempt: number, delayMs: number) => {
        metrics.retries.inc({ op });
        if (isQuotaExceeded((err as Error).cause)) {
          this.d.pauses.set('quota', true);
          log.warn({ ...at, delayMs }, 'paused: namespace quota exceeded; retrying the create');
        } else {
          (attempt < 3 ? log.warn.bind(log) : log.error.bind(log))(
            { op, ...at, attempt, delayMs, err: describeError(err) },
            'retrying after a retriable failure',
          );
        }
        await heartbeat().catch(() => undefined);
      },
    };
  }

  private async createJob(job: k8s.V1Job, at: Coordinates, checksum: string): Promise<{ existed: boolean; finished?: boolean; uid?: string }> {
    const { config: cfg, jobs, metrics } = this.d;
    const name = job.metadata!.name!;
    const t0 = performance.now();
    try {
      const made = await jobs.createNamespacedJob({ namespace: cfg.JOB_NAMESPACE, body: job });
      metrics.createSeconds.observe((performance.now() - t0) / 1000);
      return { existed: false, uid: made?.metadata?.uid };
    } catch (err) {
      if (!isConflict(err)) throw classifyApiError(err, `create Job ${name}`);
    }
    let existing: k8s.V1Job;
    try {
      existing = await jobs.readNamespacedJob({ name, namespace: cfg.JOB_NAMESPACE });
    } catch (err) {
      throw classifyApiError(err, `read existing Job ${name}`);
    }
    const group = existing.metadata?.annotations?.[Annotation.group];
    if (group !== undefined && group !== cfg.KAFKA_CONSUMER_GROUP) {
      // Two controllers (consumer groups) share JOB_NAME_PREFIX and JOB_NAMESPACE: each would take
      // the other's Jobs for its own and never run its own messages. Nothing per message fixes that.
      throw new FatalError(
        `Job ${name} belongs to consumer group ${JSON.stringify(group)}, not ${JSON.stringify(cfg.KAFKA_CONSUMER_GROUP)}: give each controller its own JOB_NAME_PREFIX or JOB_NAMESPACE`,
      );
    }
    if (isSameMessage(existing, at, checksum, cfg.KAFKA_CONSUMER_GROUP)) return { existed: true, finished: isFinished(existing) };
    throw new TerminalError('job-name-conflict', `Job ${name} exists but was made for another message (topic recreated?)`);
  }

  private async deadLetter(m: SourceRecord, at: Coordinates, err: TerminalError, heartbeat: () => Promise<void>, signal: AbortSignal): Promise<Outcome> {
    const { log, metrics } = this.d;
    const key = `${at.partition}/${at.offset}`;
    if (this.deadLettered.has(key)) {
      log.info({ ...at, reason: err.reason }, 'dead-letter record already written; not writing it twice');
      return { kind: 'dead-lettered', reason: err.reason };
    }
    const record = buildDeadLetter(m, at, err.reason, err.message, (this.d.now ?? (() => new Date()))());
    await this.sendDeadLetter(record, at, heartbeat, signal);
    this.deadLettered.add(key);
    metrics.deadLettered.inc({ reason: err.reason });
    log.warn({ ...at, reason: err.reason, error: err.message, dlq: this.d.config.DLQ_TOPIC }, 'message dead-lettered');
    this.d.events?.deadLettered(at, err.reason, this.d.config.DLQ_TOPIC);
    return { kind: 'dead-lettered', reason: err.reason };
  }

  /**
   * Writes one dead-letter record, compressed, retrying what a retry can fix. A record over the
   * topic's size limit is written again truncated (headers say so); any other error no retry
   * fixes — the controller may not write the topic, say — is fatal: skipping the message would
   * lose it, and retrying for ever would stall its partition with nobody told.
   */
  async sendDeadLetter(record: Message, at: Coordinates, heartbeat: () => Promise<void>, signal?: AbortSignal): Promise<void> {
    const { config: cfg, log, metrics } = this.d;
    let current = record;
    let limit: number | undefined;
    const linked = linkSignals(this.d.signal, signal);
    await retryForever(
      async () => {
        try {
          await this.d.producer.send({ topic: cfg.DLQ_TOPIC, acks: -1, compression: CompressionTypes.GZIP, messages: [current] });
        } catch (e) {
          const err = classifyProduceError(e, `dead-letter record for ${at.topic}/${at.partition}@${at.offset}`);
          if (!(err instanceof TerminalError)) throw err;
          const type = kafkaErrorType(e);
          const tooLarge = type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE';
          // The limit is read when needed (an operator may have changed it), then halved if the
          // broker still says no: its framing overhead is not ours to know exactly.
          if (tooLarge && (limit === undefined || limit > 4096)) {
            const first = limit === undefined;
            limit = first ? await this.dlqLimit() : Math.floor(limit! / 2);
            current = truncateDeadLetter(record, limit);
            if (first) metrics.deadLetterTruncated.inc();
            log.warn({ ...at, limit, size: record.value?.length ?? 0 }, 'dead-letter record over the topic limit; writing it truncated');
            throw new RetriableError('dead-letter record over the topic limit; sending it truncated', { cause: e });
          }
          throw new FatalError(`cannot write to the dead-letter topic ${cfg.DLQ_TOPIC}: ${err.message}`, { cause: e });
        }
      },
      this.retryOpts('dead-letter', heartbeat, at, linked.signal),
    ).finally(() => linked.release());
  }

  private async dlqLimit(): Promise<number> {
    return (await this.d.dlqMaxBytes?.()) ?? 1024 * 1024;
  }
}
