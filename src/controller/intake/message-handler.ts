import type * as k8s from '@kubernetes/client-node';
import { CompressionTypes, type Message, type ProducerRecord, type RecordMetadata } from 'kafkajs';
import {
  AbortedError,
  classifyApiError,
  classifyProduceError,
  describeError,
  FatalError,
  isConflict,
  isNotFound,
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
import { buildDeadLetter, fitRecord, recordBatchBytes, type SourceRecord } from '../reporting/dead-letter.js';
import { KAFKA_DEFAULT_MAX_MESSAGE_BYTES } from './group-admin.js';
import type { EventRecorder } from '../reporting/events.js';
import { buildJob, traceContextOf } from '../jobs/job-builder.js';
import { linkSignals } from './linked-signal.js';
import type { Metrics, Pauses } from '../reporting/metrics.js';

/** How long a Job being deleted (a finalizer, a foreground delete) may hold a message's name: pods usually go within seconds. */
export const TERMINATING_WAIT_MS = 120_000;

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
  /** A topic's `max.message.bytes` (the dead-letter and results topics): a record over it is written cut to fit. */
  topicMaxBytes?: (topic: string) => number | Promise<number>;
  /** A Job made for `at` under the name releases before the injective naming gave it (see LegacyJobs). */
  legacyJob?: (at: Coordinates) => k8s.V1Job | undefined;
  /** How long a Job being deleted may hold the message's name before the message is dead-lettered `job-terminating`. */
  terminatingWaitMs?: number;
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

  /** The injected clock (tests drive it), else the wall clock. */
  private now(): Date {
    return (this.d.now ?? (() => new Date()))();
  }

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
    const terminating: { since?: number } = {};
    try {
      const r = await retryForever(() => this.createJob(job, at, checksum, terminating), this.retryOpts('create-job', heartbeat, at, sig)).finally(() =>
        this.d.pauses.set('quota', false),
      );
      created = r.name;
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

  private async createJob(
    job: k8s.V1Job,
    at: Coordinates,
    checksum: string,
    terminating: { since?: number },
  ): Promise<{ name: string; existed: boolean; finished?: boolean; uid?: string }> {
    const { config: cfg, jobs, metrics } = this.d;
    const name = job.metadata!.name!;
    const legacy = this.d.legacyJob?.(at);
    if (legacy && !legacy.metadata?.deletionTimestamp && isSameMessage(legacy, at, checksum, cfg.KAFKA_CONSUMER_GROUP)) {
      return { name: legacy.metadata!.name!, existed: true, finished: isFinished(legacy) };
    }
    const t0 = performance.now();
    try {
      const made = await jobs.createNamespacedJob({ namespace: cfg.JOB_NAMESPACE, body: job });
      metrics.createSeconds.observe((performance.now() - t0) / 1000);
      return { name, existed: false, uid: made?.metadata?.uid };
    } catch (err) {
      if (!isConflict(err)) throw classifyApiError(err, `create Job ${name}`);
    }
    let existing: k8s.V1Job;
    try {
      existing = await jobs.readNamespacedJob({ name, namespace: cfg.JOB_NAMESPACE });
    } catch (err) {
      // Deleted between the 409 and the read: the name is free, create again.
      if (isNotFound(err)) throw new RetriableError(`Job ${name} was deleted after its create met a conflict; creating it again`, { cause: err });
      throw classifyApiError(err, `read existing Job ${name}`);
    }
    if (existing.metadata?.deletionTimestamp) {
      // A Job being deleted is no Job for the message: committing over it would leave the
      // message with neither a Job nor a record once it is gone. Wait for the name to be free.
      const now = this.now().getTime();
      terminating.since ??= now;
      const waitMs = this.d.terminatingWaitMs ?? TERMINATING_WAIT_MS;
      if (now - terminating.since < waitMs) {
        throw new RetriableError(`Job ${name} is being deleted (since ${existing.metadata.deletionTimestamp.toString()}); creating it again once it is gone`);
      }
      throw new TerminalError(
        'job-terminating',
        `Job ${name} has been terminating for over ${Math.round(waitMs / 1000)} s (finalizers: ${JSON.stringify(existing.metadata.finalizers ?? [])}); the message cannot have its Job`,
      );
    }
    const group = existing.metadata?.annotations?.[Annotation.group];
    if (group !== undefined && group !== cfg.KAFKA_CONSUMER_GROUP) {
      // Two controllers (consumer groups) share JOB_NAME_PREFIX, topic and JOB_NAMESPACE: each would take
      // the other's Jobs for its own and never run its own messages. Nothing per message fixes that.
      throw new FatalError(
        `Job ${name} belongs to consumer group ${JSON.stringify(group)}, not ${JSON.stringify(cfg.KAFKA_CONSUMER_GROUP)}: give each controller its own JOB_NAME_PREFIX or JOB_NAMESPACE`,
      );
    }
    if (isSameMessage(existing, at, checksum, cfg.KAFKA_CONSUMER_GROUP)) return { name, existed: true, finished: isFinished(existing) };
    throw new TerminalError('job-name-conflict', `Job ${name} exists but was made for another message (topic recreated?)`);
  }

  private async deadLetter(m: SourceRecord, at: Coordinates, err: TerminalError, heartbeat: () => Promise<void>, signal: AbortSignal): Promise<Outcome> {
    const { log, metrics } = this.d;
    const key = `${at.partition}/${at.offset}`;
    if (this.deadLettered.has(key)) {
      log.info({ ...at, reason: err.reason }, 'dead-letter record already written; not writing it twice');
      return { kind: 'dead-lettered', reason: err.reason };
    }
    const record = buildDeadLetter(m, at, err.reason, err.message, this.now());
    await this.sendDeadLetter(record, at, heartbeat, signal);
    this.deadLettered.add(key);
    metrics.deadLettered.inc({ reason: err.reason });
    log.warn({ ...at, reason: err.reason, error: err.message, dlq: this.d.config.DLQ_TOPIC }, 'message dead-lettered');
    this.d.events?.deadLettered(at, err.reason, this.d.config.DLQ_TOPIC);
    return { kind: 'dead-lettered', reason: err.reason };
  }

  /** Writes one dead-letter record (see {@link sendRecord}). */
  async sendDeadLetter(record: Message, at: Coordinates, heartbeat: () => Promise<void>, signal?: AbortSignal): Promise<void> {
    await this.sendRecord(this.d.config.DLQ_TOPIC, record, at, heartbeat, signal);
  }

  /**
   * Writes one record the controller owes (dead-letter, results), compressed, retrying what a
   * retry can fix. A record the broker refuses for its size or contents is written again cut to
   * the topic's `max.message.bytes` (see fitRecord), and then as a minimal record — one record
   * never stops the controller. Only a refusal that says the topic or the principal is wrong
   * (authorization, an invalid topic, a limit too small for even the minimal record) is fatal:
   * skipping the message would lose it, and retrying for ever would stall its partition with
   * nobody told.
   */
  async sendRecord(topic: string, record: Message, at: Coordinates, heartbeat: () => Promise<void>, signal?: AbortSignal): Promise<void> {
    const { log, metrics } = this.d;
    let current = record;
    let stage: 'original' | 'fitted' | 'minimal' = 'original';
    const linked = linkSignals(this.d.signal, signal);
    await retryForever(
      async () => {
        try {
          const compression = stage === 'minimal' ? CompressionTypes.None : CompressionTypes.GZIP;
          await this.d.producer.send({ topic, acks: -1, compression, messages: [current] });
        } catch (e) {
          const err = classifyProduceError(e, `record for ${at.topic}/${at.partition}@${at.offset} on ${topic}`);
          if (!(err instanceof TerminalError)) throw err;
          const type = kafkaErrorType(e) ?? '';
          if (!PER_RECORD_REFUSALS.has(type) || stage === 'minimal') {
            throw new FatalError(`cannot write to the topic ${topic}: ${err.message}`, { cause: e });
          }
          // The limit is read when needed (an operator may have changed it); the broker has said
          // this record is over it, whatever the topic's setting claims (a broker-wide limit).
          const limit = Math.min(await this.topicLimit(topic), recordBatchBytes(record) - 1);
          const tooLarge = type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE';
          stage = stage === 'original' && tooLarge ? 'fitted' : 'minimal';
          current = fitRecord(record, limit, { minimal: stage === 'minimal' });
          metrics.deadLetterTruncated.inc();
          log.warn({ ...at, topic, limit, type, stage }, 'record refused by the topic; writing it cut to fit');
          throw new RetriableError(`record refused (${type}); sending it cut to fit`, { cause: e });
        }
      },
      this.retryOpts(topic === this.d.config.DLQ_TOPIC ? 'dead-letter' : 'record', heartbeat, at, linked.signal),
    ).finally(() => linked.release());
  }

  private async topicLimit(topic: string): Promise<number> {
    return (await this.d.topicMaxBytes?.(topic)) ?? KAFKA_DEFAULT_MAX_MESSAGE_BYTES;
  }
}

/** Refusals of one record's size or contents, which a smaller or plainer record gets past. */
const PER_RECORD_REFUSALS = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE', 'UNSUPPORTED_COMPRESSION_TYPE']);
