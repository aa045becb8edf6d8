import * as k8s from '@kubernetes/client-node';
import { Partitioners, type Consumer, type EachBatchPayload, type Kafka, type Producer } from 'kafkajs';
import { AbortedError, describeError, RetriableError } from '../shared/errors.js';
import { unreportedJobSelector } from '../shared/identity.js';
import { createKafka, type KafkaConnection } from '../shared/kafka.js';
import type { Logger } from '../shared/logger.js';
import { validationPolicy } from '../shared/message.js';
import { PartitionReader, readOneMessage } from '../shared/read-message.js';
import { retryForever } from '../shared/retry.js';
import { waitFor } from '../shared/wait.js';
import { CommitWindow } from './commit-window.js';
import type { ControllerConfig } from './config.js';
import { uncommittedDeadLetters } from './dlq-dedup.js';
import { JobInformer, jobListWatch } from './job-informer.js';
import { makeKeepAliveClient } from './kube.js';
import { MessageHandler } from './message-handler.js';
import { Pauses, type Metrics } from './metrics.js';
import { OutcomeReporter } from './reporter.js';
import { ActiveJobSlots } from './slots.js';

/** Everything the controller talks to, passed in so nothing connects at import time. */
export interface ControllerDeps {
  config: ControllerConfig;
  connection: KafkaConnection;
  kc: k8s.KubeConfig;
  batch: k8s.BatchV1Api;
  template?: k8s.V1Job;
  log: Logger;
  metrics: Metrics;
  now?: () => Date;
}

export interface ControllerHandle {
  /** Resolves once the consumer has joined its group and the Job watch has listed. */
  ready: Promise<void>;
  /** True while the consumer is in its group and the API server answers its Job watch (for /readyz). */
  isReady: () => boolean;
  /** Stop fetching, let in-flight creates finish, commit, disconnect. */
  stop: () => Promise<void>;
  /** Rejects if the consumer crashes for good. */
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
  const kafka: Kafka = createKafka(connection);
  const pauses = new Pauses(metrics.paused);

  const producer: Producer = kafka.producer({ allowAutoTopicCreation: true, idempotent: false, createPartitioner: Partitioners.DefaultPartitioner });
  const readerConnection = { ...connection, clientId: `${connection.clientId}-reader` };
  const reader = new PartitionReader({ connection: readerConnection });
  const reporter = new OutcomeReporter({
    config: cfg,
    batch,
    core: makeKeepAliveClient(deps.kc, k8s.CoreV1Api, 4),
    producer,
    log: log.child({ component: 'outcomes' }),
    metrics,
    signal: stopping.signal,
    now,
    readMessage: (at) => readOneMessage(readerConnection, at),
  });
  const slots = new ActiveJobSlots({
    cap: cfg.MAX_ACTIVE_JOBS,
    log: log.child({ component: 'slots' }),
    pauses,
    onCount: (n) => metrics.activeJobs.set(n),
    onFinished: (job) => reporter.enqueue(job),
  });
  const selector = unreportedJobSelector(cfg.KAFKA_CONSUMER_GROUP);
  const informer = new JobInformer<k8s.V1Job>({
    source: jobListWatch(deps.kc, batch, cfg.JOB_NAMESPACE, selector),
    list: async () => (await batch.listNamespacedJob({ namespace: cfg.JOB_NAMESPACE, labelSelector: selector })).items,
    handlers: { upsert: (j) => slots.observe(j), remove: (j) => slots.forget(j.metadata?.name ?? ''), relisted: (all) => slots.reconcile(all) },
    log: log.child({ component: 'job-watch' }),
  });
  const handler = new MessageHandler({
    config: cfg,
    policy: validationPolicy(cfg),
    jobs: batch,
    producer,
    slots,
    pauses,
    template: deps.template,
    log,
    metrics,
    signal: stopping.signal,
    now,
  });
  const consumer: Consumer = kafka.consumer({
    groupId: cfg.KAFKA_CONSUMER_GROUP,
    sessionTimeout: cfg.KAFKA_SESSION_TIMEOUT_MS,
    heartbeatInterval: Math.max(500, Math.floor(cfg.KAFKA_SESSION_TIMEOUT_MS / 10)),
    retry: { retries: 10 },
  });

  async function commit(topic: string, partition: number, next: string): Promise<void> {
    try {
      await consumer.commitOffsets([{ topic, partition, offset: next }]);
      metrics.committedOffset.set({ topic, partition: String(partition) }, Number(next));
      handler.committed(partition, next);
      log.debug({ topic, partition, offset: next }, 'offset committed');
    } catch (err) {
      // The Jobs exist; a lost commit only means a redelivery, which the 409 path absorbs.
      log.warn({ topic, partition, offset: next, err: describeError(err) }, 'offset commit failed; messages will be redelivered');
    }
  }

  /**
   * Up to MAX_IN_FLIGHT messages of a partition are handled at once (a sliding window, so one
   * slow create does not idle the rest); the commit window decides what may be committed.
   */
  async function eachBatch({ batch: b, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { topic, partition } = b;
    const msgs = b.messages;
    const limit = cfg.MAX_ACTIVE_JOBS > 0 ? Math.min(cfg.MAX_IN_FLIGHT, cfg.MAX_ACTIVE_JOBS) : cfg.MAX_IN_FLIGHT;
    const window = new CommitWindow(
      msgs.map((m) => m.offset),
      { every: limit, intervalMs: 250, now: () => performance.now() },
    );
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    const commitFinished = async (force: boolean) => {
      const c = window.take(force);
      if (!c) return;
      resolveOffset(c.last);
      await commit(topic, partition, c.next);
      metrics.lag.set({ topic, partition: String(partition) }, Number(BigInt(b.highWatermark) - BigInt(c.next)));
    };
    for (const [i, m] of msgs.entries()) {
      if (!isRunning() || isStale() || stopping.signal.aborted || failure !== undefined) break;
      while (inFlight.size >= limit) await Promise.race(inFlight);
      if (failure !== undefined) break;
      const p: Promise<void> = handler
        .handle(m, { topic, partition, offset: m.offset }, heartbeat)
        .then(
          (r) => {
            window.finish(i);
            metrics.messagesConsumed.inc({ result: r.kind });
          },
          (err: unknown) => {
            if (err instanceof AbortedError || stopping.signal.aborted) return;
            log.error({ topic, partition, offset: m.offset, err: describeError(err) }, 'message handling failed; it will be redelivered');
            failure ??= err;
          },
        )
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
      await commitFinished(false);
      await heartbeat();
    }
    await Promise.all(inFlight);
    await commitFinished(true);
    // A bug, not a retriable error: stop here so the message is redelivered, never skipped.
    if (failure !== undefined) throw failure;
  }

  /** The dead-letter topic gets the source's partition count, so records spread the same way. */
  async function ensureDeadLetterTopic(): Promise<void> {
    const admin = kafka.admin();
    try {
      await admin.connect();
      const meta = await admin.fetchTopicMetadata({ topics: [cfg.KAFKA_TOPIC] }).catch(() => undefined);
      const partitions = meta?.topics[0]?.partitions.length ?? 1;
      const created = await admin.createTopics({ topics: [{ topic: cfg.DLQ_TOPIC, numPartitions: partitions }], waitForLeaders: true });
      if (created) log.info({ topic: cfg.DLQ_TOPIC, partitions }, 'dead-letter topic created');
    } catch (err) {
      // Without the right to create topics, the first dead-letter send finds out.
      log.warn({ topic: cfg.DLQ_TOPIC, err: describeError(err) }, 'could not make sure the dead-letter topic exists');
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }

  let joined = false;
  const events = consumer.events;
  consumer.on(events.GROUP_JOIN, (e) => {
    joined = true;
    log.info({ group: cfg.KAFKA_CONSUMER_GROUP, memberId: e.payload.memberId, assigned: e.payload.memberAssignment }, 'joined consumer group');
  });
  consumer.on(events.STOP, () => (joined = false));
  let crashed: (err: unknown) => void = () => undefined;
  const done = new Promise<void>((resolve, reject) => {
    crashed = reject;
    consumer.on(events.DISCONNECT, () => resolve());
  });
  consumer.on(events.CRASH, (e) => {
    joined = false;
    log.error({ err: describeError(e.payload.error), restart: e.payload.restart }, 'consumer crashed');
    if (!e.payload.restart) crashed(e.payload.error);
  });

  await informer.start();
  await ensureDeadLetterTopic();
  await producer.connect();
  handler.seedDeadLettered(
    await retryForever(
      async () => {
        try {
          return await uncommittedDeadLetters({ kafka, reader, group: cfg.KAFKA_CONSUMER_GROUP, topic: cfg.KAFKA_TOPIC, dlqTopic: cfg.DLQ_TOPIC, log });
        } catch (err) {
          throw new RetriableError(`scanning the dead-letter topic: ${describeError(err)}`, { cause: err });
        }
      },
      { signal: stopping.signal, onRetry: (err) => void log.warn({ err: describeError(err) }, 'retrying the dead-letter scan') },
    ),
  );
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

  const ready = (async () => {
    await informer.ready;
    await waitFor(() => joined, { timeoutMs: 120_000, description: 'consumer group join' });
  })();
  ready.catch(() => undefined);

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      log.info({}, 'stopping: finishing in-flight creates');
      stopping.abort();
      slots.wake();
      // consumer.stop() waits for the running eachBatch calls, which commit what they finished.
      await consumer.stop();
      await consumer.disconnect();
      await informer.stop();
      await producer.disconnect();
      await reader.close();
      log.info({}, 'stopped');
    })();
    return stopped;
  };
  return { ready, isReady: () => joined && informer.healthy, stop, done };
}
