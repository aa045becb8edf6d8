import * as k8s from '@kubernetes/client-node';
import { Partitioners, type Admin, type Consumer, type EachBatchPayload, type Kafka, type Producer } from 'kafkajs';
import { classifyProduceError, describeError, FatalError, isUndecodable, RetriableError, TerminalError } from '../shared/errors.js';
import { unreportedJobSelector } from '../shared/contract/identity.js';
import { createKafka } from '../shared/kafka/kafka-client.js';
import type { KafkaConnection } from '../shared/kafka/kafka.js';
import type { Logger } from '../shared/logger.js';
import { PartitionReader, readOneMessage } from '../shared/kafka/read-message.js';
import { retryForever } from '../shared/retry.js';
import { waitFor } from '../shared/wait.js';
import { processBatch, type BatchDeps } from './intake/batch-processor.js';
import { controllerPolicy, type ControllerConfig } from './config.js';
import { DeadLetterRescan, uncommittedDeadLetters } from './reporting/dlq-dedup.js';
import type { EventRecorder } from './reporting/events.js';
import { GroupAdmin } from './intake/group-admin.js';
import { LagRefresher } from './intake/lag-refresher.js';
import { JobInformer, jobListWatch, slimJob } from './kube/job-informer.js';
import { jobTtlSeconds } from './jobs/job-builder.js';
import { makeJobClient, makeKeepAliveClient } from './kube/kube.js';
import { MessageHandler } from './intake/message-handler.js';
import { Pauses, type Metrics } from './reporting/metrics.js';
import { quarantineUndecodable, RetentionGapGuard } from './intake/loss-records.js';
import { OutcomeReporter } from './reporting/reporter.js';
import { ActiveJobSlots } from './intake/slots.js';
import { SkippedRecords } from './intake/skipped-records.js';

/** How often consumer_lag is read from the topic's end offsets: a Prometheus scrape or two (30 s ServiceMonitor). */
const LAG_REFRESH_MS = 30_000;

/** Everything the controller talks to, passed in so nothing connects at import time. */
export interface ControllerDeps {
  config: ControllerConfig;
  connection: KafkaConnection;
  kc: k8s.KubeConfig;
  batch: k8s.BatchV1Api;
  template?: k8s.V1Job;
  log: Logger;
  metrics: Metrics;
  /** Kubernetes Events on Jobs and on the controller's Pod (optional; fire-and-forget). */
  events?: EventRecorder;
  now?: () => Date;
}

export interface ControllerHandle {
  /** Resolves once the consumer has joined its group and the Job watch has listed. */
  ready: Promise<void>;
  /** True while the consumer is in its group and the API server answers its Job watch (for /readyz). */
  isReady: () => boolean;
  /** False once the controller cannot go on (for /healthz): the process is about to exit non-zero. */
  isLive: () => boolean;
  /** Stop taking new messages, let in-flight ones finish, commit what exists, then stop the consumer. */
  stop: () => Promise<void>;
  /** Resolves after stop(); rejects with a FatalError when the controller cannot go on. */
  done: Promise<void>;
}

/**
 * Runs the controller: wires the consumer's lifecycle to the message handler (one Job or one
 * dead-letter record per message), the commit window (offsets committed only past messages
 * whose Job or record exists), the active-Job cap and the outcome reporter.
 */
export async function runController(deps: ControllerDeps): Promise<ControllerHandle> {
  const { config: cfg, connection, batch, log, metrics } = deps;
  const now = deps.now ?? (() => new Date());
  const stopping = new AbortController();
  metrics.activeJobsCap.set(cfg.MAX_ACTIVE_JOBS);
  metrics.queuedJobsCap.set(cfg.KUEUE_QUEUE_NAME ? cfg.MAX_QUEUED_JOBS : 0);
  const recorder = deps.events;
  const kafka: Kafka = createKafka(connection);
  const admin: Admin = kafka.admin();
  const pauses = new Pauses(metrics.paused, (on, reason) => recorder?.paused(on, reason));
  let fatalError: FatalError | undefined;
  let resolveDone!: () => void;
  let rejectDone!: (err: FatalError) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  /** The controller cannot go on: say why once, and end `done` so the process exits non-zero. */
  const fatal = (err: unknown) => {
    if (fatalError) return;
    fatalError = err instanceof FatalError ? err : new FatalError(describeError(err), { cause: err });
    log.fatal({ err: describeError(fatalError) }, 'controller cannot go on; exiting');
    recorder?.crashed(describeError(fatalError));
    rejectDone(fatalError);
  };

  // Idempotent, so a dead-letter or results send retried after a lost acknowledgement is written once.
  const producer: Producer = kafka.producer({
    allowAutoTopicCreation: true,
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  const readerConnection = { ...connection, clientId: `${connection.clientId}-reader` };
  const reader = new PartitionReader({ connection: readerConnection });

  const groupAdmin = new GroupAdmin(admin, { group: cfg.KAFKA_CONSUMER_GROUP, topic: cfg.KAFKA_TOPIC, dlqTopic: cfg.DLQ_TOPIC, log });

  const reporter = new OutcomeReporter({
    config: cfg,
    ttlSeconds: jobTtlSeconds(cfg, deps.template),
    isCommitted: (at) => groupAdmin.isCommitted(at),
    batch,
    core: makeKeepAliveClient(deps.kc, k8s.CoreV1Api, { maxSockets: 4, timeoutMs: cfg.KUBE_REQUEST_TIMEOUT_MS }),
    producer,
    log: log.child({ component: 'outcomes' }),
    metrics,
    events: recorder,
    signal: stopping.signal,
    now,
    readMessage: (at) => readOneMessage(readerConnection, at),
    sendDeadLetter: (record, at) => handler.sendDeadLetter(record, at, async () => undefined),
    onFatal: (err) => fatal(err),
  });
  const slots = new ActiveJobSlots({
    cap: cfg.MAX_ACTIVE_JOBS,
    queuedCap: cfg.KUEUE_QUEUE_NAME ? cfg.MAX_QUEUED_JOBS : undefined,
    log: log.child({ component: 'slots' }),
    pauses,
    onCount: (n) => metrics.activeJobs.set(n),
    onQueued: (n) => metrics.queuedJobs.set(n),
    onFinished: (job) => reporter.enqueue(job),
  });
  const selector = unreportedJobSelector(cfg.KAFKA_CONSUMER_GROUP);
  // Creates and the informer's lists go over undici (see makeJobClient); the rare 409 read keeps client-node.
  const jobClient = makeJobClient(deps.kc, { timeoutMs: cfg.KUBE_REQUEST_TIMEOUT_MS });
  const informer = new JobInformer<k8s.V1Job>({
    source: jobListWatch(deps.kc, () => jobClient.list(cfg.JOB_NAMESPACE, selector, slimJob), cfg.JOB_NAMESPACE, selector, jobClient.watch),
    list: async () => (await jobClient.list(cfg.JOB_NAMESPACE, selector, slimJob)).items,
    handlers: { upsert: (j) => slots.observe(j), remove: (j) => slots.forget(j.metadata?.name ?? ''), relisted: (all) => slots.reconcile(all) },
    log: log.child({ component: 'job-watch' }),
  });
  const handler = new MessageHandler({
    config: cfg,
    policy: controllerPolicy(cfg, deps.template),
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
    signal: stopping.signal,
    now,
    dlqMaxBytes: () => groupAdmin.deadLetterLimit(),
  });
  const consumer: Consumer = kafka.consumer({
    groupId: cfg.KAFKA_CONSUMER_GROUP,
    sessionTimeout: cfg.KAFKA_SESSION_TIMEOUT_MS,
    heartbeatInterval: Math.max(500, Math.floor(cfg.KAFKA_SESSION_TIMEOUT_MS / 10)),
    // A consumer that crashed on something we judged fatal must not be restarted by kafkajs.
    retry: { retries: 10, restartOnFailure: async () => fatalError === undefined },
  });

  const gaps = new RetentionGapGuard({ groupAdmin, handler, log, metrics, now });
  const scanDeadLetters = () =>
    retryForever(
      async () => {
        try {
          return await uncommittedDeadLetters({ kafka, reader, group: cfg.KAFKA_CONSUMER_GROUP, topic: cfg.KAFKA_TOPIC, dlqTopic: cfg.DLQ_TOPIC, log });
        } catch (err) {
          // Not allowed to read the dead-letter topic: no wait fixes that; say so and exit.
          const e = classifyProduceError(err, `scanning the dead-letter topic ${cfg.DLQ_TOPIC}`);
          throw e instanceof TerminalError ? new FatalError(e.message, { cause: err }) : new RetriableError(e.message, { cause: err });
        }
      },
      { signal: stopping.signal, onRetry: (err) => void log.warn({ err: describeError(err) }, 'retrying the dead-letter scan') },
    );
  const rescan = new DeadLetterRescan({
    scan: scanDeadLetters,
    remember: (found) => handler.seedDeadLettered(found),
    heartbeatMs: Math.max(500, Math.floor(cfg.KAFKA_SESSION_TIMEOUT_MS / 10)),
  });
  const activeBatches = new Set<Promise<void>>();
  const batchDeps: BatchDeps = {
    handler,
    limit: cfg.MAX_ACTIVE_JOBS > 0 ? Math.min(cfg.MAX_IN_FLIGHT, cfg.MAX_ACTIVE_JOBS) : cfg.MAX_IN_FLIGHT,
    stopping: stopping.signal,
    beforeBatch: async (topic, partition, first, heartbeat) => {
      await rescan.ready(heartbeat);
      await gaps.beforeBatch(topic, partition, first, heartbeat);
    },
    onCommitted: (partition, next) => groupAdmin.noteCommitted(partition, next),
    onFatal: fatal,
    log,
    metrics,
  };
  /** Each batch is tracked, so a graceful stop can wait for it to drain and commit. */
  function eachBatch(payload: EachBatchPayload): Promise<void> {
    if (fatalError) return Promise.reject(fatalError);
    const p = processBatch(batchDeps, payload).finally(() => activeBatches.delete(p));
    activeBatches.add(p);
    return p;
  }

  const lagRefresher = new LagRefresher({
    topic: cfg.KAFKA_TOPIC,
    endOffsets: () => admin.fetchTopicOffsets(cfg.KAFKA_TOPIC),
    committed: (p) => groupAdmin.knownCommitted(p),
    lag: metrics.lag,
    committedOffset: metrics.committedOffset,
    onError: () => metrics.retries.inc({ op: 'lag-refresh' }),
    log,
  });

  let joined = false;
  let stopRequested = false;
  const events = consumer.events;
  const skipped = new SkippedRecords({
    topic: cfg.KAFKA_TOPIC,
    commit: async (partition, next) => {
      await consumer.commitOffsets([{ topic: cfg.KAFKA_TOPIC, partition, offset: next }]);
      groupAdmin.noteCommitted(partition, next);
      handler.committed(partition, next);
    },
    knownCommitted: (p) => groupAdmin.knownCommitted(p),
    log,
  });
  consumer.on(events.END_BATCH_PROCESS, (e) => {
    if (!stopRequested) skipped.batchEnded(e.payload);
  });
  consumer.on(events.GROUP_JOIN, (e) => {
    joined = true;
    gaps.joined();
    rescan.joined();
    lagRefresher.assigned(e.payload.memberAssignment[cfg.KAFKA_TOPIC] ?? []);
    void lagRefresher.refresh();
    log.info({ group: cfg.KAFKA_CONSUMER_GROUP, memberId: e.payload.memberId, assigned: e.payload.memberAssignment }, 'joined consumer group');
  });
  consumer.on(events.STOP, () => (joined = false));
  // kafkajs disconnects before it emits CRASH, and emits DISCONNECT on restarts too: only a CRASH
  // it will not restart from is final, and it must end the process, not leave it idle.
  consumer.on(events.CRASH, (e) => {
    joined = false;
    log.error({ err: describeError(e.payload.error), restart: e.payload.restart }, 'consumer crashed');
    if (e.payload.restart && !stopRequested && !fatalError) recorder?.consumerRestarted(describeError(e.payload.error));
    if (e.payload.restart || stopRequested || fatalError) return;
    const err = e.payload.error;
    if (!isUndecodable(err)) return fatal(new FatalError(`the consumer stopped for good: ${describeError(err)}`, { cause: err }));
    quarantineUndecodable({ topic: cfg.KAFKA_TOPIC, cause: err, groupAdmin, reader, handler, log, metrics, now }).then(
      (n) =>
        fatal(new FatalError(`the consumer met ${n} record(s) it cannot decode; they are dead-lettered and skipped: ${describeError(err)}`, { cause: err })),
      (qErr: unknown) => fatal(new FatalError(`the consumer cannot decode a record, and recording it failed: ${describeError(qErr)}`, { cause: err })),
    );
  });

  await informer.start();
  await admin.connect();
  await groupAdmin.ensureDeadLetterTopic();
  await producer.connect();
  // Once before joining, so a dead-letter topic the controller may not read stops it at start.
  handler.seedDeadLettered(await scanDeadLetters());
  // What the group had committed before kafkajs can reset anything (see GroupAdmin.retentionGapBefore).
  await groupAdmin.committedOffsets();
  await consumer.connect();
  await consumer.subscribe({ topics: [cfg.KAFKA_TOPIC], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 8,
    eachBatch,
  });
  log.info(
    { topic: cfg.KAFKA_TOPIC, group: cfg.KAFKA_CONSUMER_GROUP, namespace: cfg.JOB_NAMESPACE, dlq: cfg.DLQ_TOPIC, cap: cfg.MAX_ACTIVE_JOBS },
    'controller started',
  );
  lagRefresher.start(LAG_REFRESH_MS);

  const ready = (async () => {
    await informer.ready;
    await waitFor(() => joined, { timeoutMs: 120_000, description: 'consumer group join' });
  })();
  ready.catch(() => undefined);

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      stopRequested = true;
      log.info({ batches: activeBatches.size }, 'stopping: no new messages; finishing and committing the ones in flight');
      stopping.abort();
      slots.wake();
      // Drain and commit while the consumer still runs: after consumer.stop() kafkajs drops commits.
      await Promise.allSettled([...activeBatches]);
      await skipped.settled();
      await consumer.stop();
      await consumer.disconnect();
      reporter.stop();
      lagRefresher.stop();
      await informer.stop();
      await jobClient.close();
      await producer.disconnect();
      await admin.disconnect().catch(() => undefined);
      await reader.close();
      log.info({}, 'stopped');
      resolveDone();
    })();
    return stopped;
  };
  return { ready, isReady: () => joined && informer.healthy && !fatalError, isLive: () => !fatalError, stop, done };
}
