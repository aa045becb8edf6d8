import * as k8s from '@kubernetes/client-node';
import type { Admin, Consumer, EachBatchPayload, Kafka, Producer } from 'kafkajs';
import { classifyProduceError, describeError, FatalError, RetriableError, TerminalError } from '../shared/errors.js';
import { unreportedJobSelector } from '../shared/contract/identity.js';
import { createKafka } from '../shared/kafka/kafka-client.js';
import { KeyHashPartitioner } from '../shared/kafka/partitioner.js';
import type { KafkaConnection } from '../shared/kafka/kafka.js';
import type { Logger } from '../shared/logger.js';
import { PartitionReader, readOneMessage } from '../shared/kafka/read-message.js';
import { retryForever } from '../shared/retry.js';
import { waitFor } from '../shared/wait.js';
import { processBatch, type BatchDeps } from './intake/batch-processor.js';
import { Lifecycle } from './lifecycle.js';
import type { ControllerConfig } from './config.js';
import type { ValidationPolicy } from '../shared/contract/message.js';
import { DeadLetterRescan, uncommittedDeadLetters } from './reporting/dlq-dedup.js';
import { SkippedRecords } from './intake/skipped-records.js';
import type { EventRecorder } from './reporting/events.js';
import { GroupAdmin } from './intake/group-admin.js';
import { LagRefresher } from './intake/lag-refresher.js';
import { JobInformer, jobListWatch, slimJob } from './kube/job-informer.js';
import { jobTtlSeconds } from './jobs/job-builder.js';
import { makeJobClient, makeKeepAliveClient } from './kube/kube.js';
import { LegacyJobs } from './intake/legacy-jobs.js';
import { MessageHandler } from './intake/message-handler.js';
import { Pauses, type Metrics } from './reporting/metrics.js';
import { quarantineUndecodable, RetentionGapGuard } from './intake/loss-records.js';
import { OutcomeReporter } from './reporting/reporter.js';
import { ActiveJobSlots } from './intake/slots.js';

/** How often consumer_lag is read from the topic's end offsets: a Prometheus scrape or two (30 s ServiceMonitor). */
const LAG_REFRESH_MS = 30_000;

/** What the consumer fetches per partition: 8× Kafka's default max.message.bytes, so any record such a topic accepts is fetched whole. */
const CONSUMER_MAX_BYTES_PER_PARTITION = 8 * 1024 * 1024;

/** Everything the controller talks to, passed in so nothing connects at import time. */
export interface ControllerDeps {
  config: ControllerConfig;
  connection: KafkaConnection;
  kc: k8s.KubeConfig;
  batch: k8s.BatchV1Api;
  template?: k8s.V1Job;
  log: Logger;
  metrics: Metrics;
  /** What a message may make a Job do, built once from the settings and template (controllerPolicy). */
  policy: ValidationPolicy;
  /** Kubernetes Events on Jobs and on the controller's Pod (optional; fire-and-forget). */
  events?: EventRecorder;
  now?: () => Date;
}

/**
 * The controller: the consumer's lifecycle wired to the message handler (one Job or one
 * dead-letter record per message), the commit window (offsets committed only past messages whose
 * Job or record exists), the active-Job cap and the outcome reporter. The constructor builds the
 * parts and connects nothing; `start` connects and joins; `stop` drains and closes; `done` ends
 * with the controller, rejecting when it crashed. Its state and exits live in a Lifecycle.
 */
export class Controller {
  /** Resolves once the consumer has joined its group and the Job watch has listed (after start). */
  readonly ready: Promise<void>;
  /** Resolves after stop(); rejects with a FatalError when the controller cannot go on. */
  readonly done: Promise<void>;
  private readonly life: Lifecycle;
  private readonly cfg: ControllerConfig;
  private readonly log: Logger;
  private readonly kafka: Kafka;
  private readonly admin: Admin;
  private readonly producer: Producer;
  private readonly reader: PartitionReader;
  private readonly groupAdmin: GroupAdmin;
  private readonly reporter: OutcomeReporter;
  private readonly slots: ActiveJobSlots;
  private readonly jobClient: ReturnType<typeof makeJobClient>;
  private readonly informer: JobInformer<k8s.V1Job>;
  private readonly handler: MessageHandler;
  private readonly consumer: Consumer;
  private readonly gaps: RetentionGapGuard;
  private readonly rescan: DeadLetterRescan;
  private readonly skipped: SkippedRecords;
  private readonly lagRefresher: LagRefresher;
  private readonly batchDeps: BatchDeps;
  private started: (() => void) | undefined;

  constructor(private readonly deps: ControllerDeps) {
    const { config: cfg, connection, batch, log, metrics } = deps;
    this.cfg = cfg;
    this.log = log;
    const now = deps.now ?? (() => new Date());
    const recorder = deps.events;
    this.life = new Lifecycle(log, (reason) => recorder?.crashed(reason));
    this.done = this.life.done;
    const signal = this.life.stopping.signal;
    metrics.activeJobsCap.set(cfg.MAX_ACTIVE_JOBS);
    metrics.queuedJobsCap.set(cfg.KUEUE_QUEUE_NAME ? cfg.MAX_QUEUED_JOBS : 0);
    const kafka = (this.kafka = createKafka(connection));
    const admin = (this.admin = kafka.admin());
    const pauses = new Pauses(metrics.paused, (on, reason) => recorder?.paused(on, reason));
    const crash = (err: unknown) => this.life.crash(err);

    // Idempotent, so a dead-letter or results send retried after a lost acknowledgement is written once.
    // A dead-letter record keeps its message's key, which may be near the topic's limit: hashed
    // by KeyHashPartitioner, as kafkajs' own hash takes minutes on such a key (see murmur2).
    const producer = (this.producer = kafka.producer({
      allowAutoTopicCreation: true,
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: KeyHashPartitioner,
    }));
    const readerConnection = { ...connection, clientId: `${connection.clientId}-reader` };
    this.reader = new PartitionReader({ connection: readerConnection });
    const groupAdmin = (this.groupAdmin = new GroupAdmin(admin, { group: cfg.KAFKA_CONSUMER_GROUP, topic: cfg.KAFKA_TOPIC, dlqTopic: cfg.DLQ_TOPIC, log }));
    const reporter = (this.reporter = new OutcomeReporter({
      config: cfg,
      ttlSeconds: jobTtlSeconds(cfg, deps.template),
      isCommitted: (at) => groupAdmin.isCommitted(at),
      batch,
      core: makeKeepAliveClient(deps.kc, k8s.CoreV1Api, { maxSockets: 4, timeoutMs: cfg.KUBE_REQUEST_TIMEOUT_MS }),
      log: log.child({ component: 'outcomes' }),
      metrics,
      events: recorder,
      signal,
      now,
      readMessage: (at) => readOneMessage(readerConnection, at),
      sendDeadLetter: (record, at) => this.handler.sendDeadLetter(record, at, async () => undefined),
      sendRecord: (topic, record, at) => this.handler.sendRecord(topic, record, at, async () => undefined),
      onFatal: crash,
    }));
    const slots = (this.slots = new ActiveJobSlots({
      cap: cfg.MAX_ACTIVE_JOBS,
      queuedCap: cfg.KUEUE_QUEUE_NAME ? cfg.MAX_QUEUED_JOBS : undefined,
      log: log.child({ component: 'slots' }),
      pauses,
      onCount: (n) => metrics.activeJobs.set(n),
      onQueued: (n) => metrics.queuedJobs.set(n),
      onFinished: (job) => reporter.enqueue(job),
    }));
    const selector = unreportedJobSelector(cfg.KAFKA_CONSUMER_GROUP);
    const legacyJobs = new LegacyJobs({ prefix: cfg.JOB_NAME_PREFIX, topic: cfg.KAFKA_TOPIC });
    // Creates and the informer's lists go over undici (see makeJobClient); the rare 409 read keeps client-node.
    const jobClient = (this.jobClient = makeJobClient(deps.kc, { timeoutMs: cfg.KUBE_REQUEST_TIMEOUT_MS }));
    this.informer = new JobInformer<k8s.V1Job>({
      source: jobListWatch(deps.kc, () => jobClient.list(cfg.JOB_NAMESPACE, selector, slimJob), cfg.JOB_NAMESPACE, selector, jobClient.watch),
      list: async () => (await jobClient.list(cfg.JOB_NAMESPACE, selector, slimJob)).items,
      handlers: {
        upsert: (j) => {
          legacyJobs.observe(j);
          slots.observe(j);
        },
        remove: (j) => {
          legacyJobs.forget(j);
          slots.forget(j.metadata?.name ?? '');
        },
        relisted: (all) => {
          legacyJobs.reconcile(all);
          slots.reconcile(all);
        },
      },
      log: log.child({ component: 'job-watch' }),
    });
    const handler = (this.handler = new MessageHandler({
      config: cfg,
      policy: deps.policy,
      jobs: {
        createNamespacedJob: (p) => jobClient.create(p),
        readNamespacedJob: (p) => batch.readNamespacedJob(p),
      },
      producer,
      slots,
      pauses,
      template: deps.template,
      log,
      metrics,
      events: recorder,
      signal,
      now,
      topicMaxBytes: (topic) => groupAdmin.recordLimit(topic),
      legacyJob: (at) => legacyJobs.find(at),
    }));
    this.consumer = kafka.consumer({
      groupId: cfg.KAFKA_CONSUMER_GROUP,
      sessionTimeout: cfg.KAFKA_SESSION_TIMEOUT_MS,
      heartbeatInterval: Math.max(500, Math.floor(cfg.KAFKA_SESSION_TIMEOUT_MS / 10)),
      // A consumer that crashed on something we judged fatal must not be restarted by kafkajs.
      retry: { retries: 10, restartOnFailure: async () => this.life.mayRestartConsumer() },
      // kafkajs asks for 1 MiB a partition by default, less than a topic at Kafka's default
      // max.message.bytes (1048588) accepts: a record between the two could stall its partition.
      maxBytesPerPartition: CONSUMER_MAX_BYTES_PER_PARTITION,
      maxBytes: 2 * CONSUMER_MAX_BYTES_PER_PARTITION,
    });
    const gaps = (this.gaps = new RetentionGapGuard({ groupAdmin, handler, log, metrics, now }));
    // After every join, not only at start: a partition that moved here may hold messages the last
    // owner dead-lettered but could not commit (its commit stopped at a message still waiting).
    const rescan = (this.rescan = new DeadLetterRescan({
      scan: () => this.scanDeadLetters(),
      remember: (found) => handler.seedDeadLettered(found),
      heartbeatMs: Math.max(500, Math.floor(cfg.KAFKA_SESSION_TIMEOUT_MS / 10)),
    }));
    const consumer = this.consumer;
    // kafkajs hands no transaction marker or aborted record to eachBatch: commit past batches of
    // nothing else, so a partition's committed offset reaches its end.
    this.skipped = new SkippedRecords({
      topic: cfg.KAFKA_TOPIC,
      commit: async (partition, next) => {
        await consumer.commitOffsets([{ topic: cfg.KAFKA_TOPIC, partition, offset: next }]);
        groupAdmin.noteCommitted(partition, next);
        handler.committed(partition, next);
      },
      knownCommitted: (p) => groupAdmin.knownCommitted(p),
      log,
    });
    this.batchDeps = {
      handler,
      limit: cfg.MAX_ACTIVE_JOBS > 0 ? Math.min(cfg.MAX_IN_FLIGHT, cfg.MAX_ACTIVE_JOBS) : cfg.MAX_IN_FLIGHT,
      stopping: signal,
      beforeBatch: async (topic, partition, first, heartbeat) => {
        await rescan.ready(heartbeat);
        await gaps.beforeBatch(topic, partition, first, heartbeat);
      },
      onCommitted: (partition, next) => groupAdmin.noteCommitted(partition, next),
      onFatal: crash,
      log,
      metrics,
    };
    this.lagRefresher = new LagRefresher({
      topic: cfg.KAFKA_TOPIC,
      endOffsets: () => admin.fetchTopicOffsets(cfg.KAFKA_TOPIC),
      committed: (p) => groupAdmin.knownCommitted(p),
      lag: metrics.lag,
      committedOffset: metrics.committedOffset,
      onError: () => metrics.retries.inc({ op: 'lag-refresh' }),
      log,
    });
    this.ready = new Promise<void>((resolve) => (this.started = resolve)).then(async () => {
      await this.informer.ready;
      await waitFor(() => this.life.ready(true), { timeoutMs: 120_000, description: 'consumer group join' });
    });
    this.ready.catch(() => undefined);
    this.watchConsumer();
  }

  /** Connects, scans what was dead-lettered but not committed, joins the group and starts consuming. */
  async start(): Promise<void> {
    const { cfg, log } = this;
    await this.informer.start();
    await this.admin.connect();
    await this.groupAdmin.ensureDeadLetterTopic();
    await this.producer.connect();
    this.handler.seedDeadLettered(await this.scanDeadLetters());
    // What the group had committed before kafkajs can reset anything (see GroupAdmin.retentionGapBefore).
    await this.groupAdmin.committedOffsets();
    // The Jobs that exist, listed once, before any message: the cap counts them, and a Job made
    // under the earlier naming scheme is found by its coordinates (LegacyJobs) rather than made again.
    await this.informer.ready;
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [cfg.KAFKA_TOPIC], fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 8,
      eachBatch: (payload: EachBatchPayload) => this.life.track(() => processBatch(this.batchDeps, payload)),
    });
    log.info(
      { topic: cfg.KAFKA_TOPIC, group: cfg.KAFKA_CONSUMER_GROUP, namespace: cfg.JOB_NAMESPACE, dlq: cfg.DLQ_TOPIC, cap: cfg.MAX_ACTIVE_JOBS },
      'controller started',
    );
    this.lagRefresher.start(LAG_REFRESH_MS);
    this.started?.();
  }

  /** True while the consumer is in its group and the API server answers its Job watch (for /readyz). */
  isReady(): boolean {
    return this.life.ready(this.informer.healthy);
  }

  /** False once the controller cannot go on (for /healthz): the process is about to exit non-zero. */
  isLive(): boolean {
    return this.life.live();
  }

  /** Stop taking new messages, let in-flight ones finish and commit, then close every client (consumer first). */
  stop(): Promise<void> {
    return this.life.shutdown(
      [
        ['commits past skipped records', () => this.skipped.settled()],
        ['consumer stop', () => this.consumer.stop()],
        ['consumer disconnect', () => this.consumer.disconnect()],
        ['reporter', () => this.reporter.stop()],
        ['lag refresher', () => this.lagRefresher.stop()],
        ['job watch', () => this.informer.stop()],
        ['job client', () => this.jobClient.close()],
        ['producer', () => this.producer.disconnect()],
        ['admin', () => this.admin.disconnect()],
        ['reader', () => this.reader.close()],
      ],
      () => this.slots.wake(),
    );
  }

  /** What was dead-lettered but not yet committed, so a redelivery is not dead-lettered twice. */
  private scanDeadLetters() {
    const { cfg, log } = this;
    return retryForever(
      async () => {
        try {
          return await uncommittedDeadLetters({
            kafka: this.kafka,
            reader: this.reader,
            group: cfg.KAFKA_CONSUMER_GROUP,
            topic: cfg.KAFKA_TOPIC,
            dlqTopic: cfg.DLQ_TOPIC,
            log,
          });
        } catch (err) {
          // Not allowed to read the dead-letter topic: no wait fixes that; say so and exit.
          const e = classifyProduceError(err, `scanning the dead-letter topic ${cfg.DLQ_TOPIC}`);
          throw e instanceof TerminalError ? new FatalError(e.message, { cause: err }) : new RetriableError(e.message, { cause: err });
        }
      },
      { signal: this.life.stopping.signal, onRetry: (err) => void log.warn({ err: describeError(err) }, 'retrying the dead-letter scan') },
    );
  }

  /** The consumer's group membership and crashes, fed to the lifecycle. */
  private watchConsumer(): void {
    const { cfg, log, consumer } = this;
    const events = consumer.events;
    consumer.on(events.GROUP_JOIN, (e) => {
      this.life.joinedGroup();
      this.gaps.joined();
      this.rescan.joined();
      this.lagRefresher.assigned(e.payload.memberAssignment[cfg.KAFKA_TOPIC] ?? []);
      void this.lagRefresher.refresh();
      log.info({ group: cfg.KAFKA_CONSUMER_GROUP, memberId: e.payload.memberId, assigned: e.payload.memberAssignment }, 'joined consumer group');
    });
    consumer.on(events.STOP, () => this.life.leftGroup());
    consumer.on(events.END_BATCH_PROCESS, (e) => {
      if (!this.life.stopping.signal.aborted) this.skipped.batchEnded(e.payload);
    });
    consumer.on(events.CRASH, (e) => this.consumerCrashed(e.payload.error, e.payload.restart));
  }

  private consumerCrashed(err: Error, restart: boolean): void {
    this.log.error({ err: describeError(err), restart }, 'consumer crashed');
    const verdict = this.life.consumerCrashed(err, restart);
    if (verdict === 'restarting') this.deps.events?.consumerRestarted(describeError(err));
    if (verdict === 'fatal') this.life.crash(new FatalError(`the consumer stopped for good: ${describeError(err)}`, { cause: err }));
    if (verdict !== 'undecodable') return;
    const { cfg, groupAdmin, reader, handler, log } = this;
    quarantineUndecodable({
      topic: cfg.KAFKA_TOPIC,
      cause: err,
      groupAdmin,
      reader,
      handler,
      log,
      metrics: this.deps.metrics,
      now: this.deps.now ?? (() => new Date()),
    }).then(
      (n) =>
        this.life.crash(
          new FatalError(`the consumer met ${n} record(s) it cannot decode; they are dead-lettered and skipped: ${describeError(err)}`, { cause: err }),
        ),
      (qErr: unknown) =>
        this.life.crash(new FatalError(`the consumer cannot decode a record, and recording it failed: ${describeError(qErr)}`, { cause: err })),
    );
  }
}
