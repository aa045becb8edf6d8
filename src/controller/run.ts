import * as k8s from '@kubernetes/client-node';
import kafkajs, { Partitioners, type Admin, type Consumer, type EachBatchPayload, type Kafka, type Producer } from 'kafkajs';
import { AbortedError, describeError, FatalError, isUndecodable, RetriableError } from '../shared/errors.js';
import { unreportedJobSelector, type Coordinates } from '../shared/identity.js';
import { createKafka, type KafkaConnection } from '../shared/kafka.js';
import type { Logger } from '../shared/logger.js';
import { validationPolicy } from '../shared/message.js';
import { PartitionReader, readOneMessage } from '../shared/read-message.js';
import { retryForever } from '../shared/retry.js';
import { waitFor } from '../shared/wait.js';
import { CommitWindow } from './commit-window.js';
import type { ControllerConfig } from './config.js';
import { buildLossRecord } from './dead-letter.js';
import { uncommittedDeadLetters } from './dlq-dedup.js';
import { JobInformer, jobListWatch } from './job-informer.js';
import { jobTtlSeconds } from './job-builder.js';
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
  /** False once the controller cannot go on (for /healthz): the process is about to exit non-zero. */
  isLive: () => boolean;
  /** Stop taking new messages, let in-flight ones finish, commit what exists, then stop the consumer. */
  stop: () => Promise<void>;
  /** Resolves after stop(); rejects with a FatalError when the controller cannot go on. */
  done: Promise<void>;
}

/** Kafka's default `max.message.bytes` (topic) / `message.max.bytes` (broker). */
const KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1048588;

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
  const admin: Admin = kafka.admin();
  const pauses = new Pauses(metrics.paused);
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

  /** Next offset committed per partition of the source topic, as far as this process knows. */
  const committed = new Map<number, bigint>();
  const refreshCommitted = async () => {
    const [t] = await admin.fetchOffsets({ groupId: cfg.KAFKA_CONSUMER_GROUP, topics: [cfg.KAFKA_TOPIC] });
    for (const p of t?.partitions ?? []) {
      const c = BigInt(p.offset);
      if (c >= 0n && c > (committed.get(p.partition) ?? -1n)) committed.set(p.partition, c);
    }
  };
  const isCommitted = async (at: Coordinates): Promise<boolean> => {
    if (at.topic !== cfg.KAFKA_TOPIC) return true;
    if ((committed.get(at.partition) ?? -1n) > BigInt(at.offset)) return true;
    await refreshCommitted();
    return (committed.get(at.partition) ?? -1n) > BigInt(at.offset);
  };

  const reporter = new OutcomeReporter({
    config: cfg,
    ttlSeconds: jobTtlSeconds(cfg, deps.template),
    isCommitted,
    batch,
    core: makeKeepAliveClient(deps.kc, k8s.CoreV1Api, { maxSockets: 4, timeoutMs: cfg.KUBE_REQUEST_TIMEOUT_MS }),
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
    dlqMaxBytes: async () => (await topicMaxMessageBytes(cfg.DLQ_TOPIC).catch(() => undefined)) ?? KAFKA_DEFAULT_MAX_MESSAGE_BYTES,
  });
  const consumer: Consumer = kafka.consumer({
    groupId: cfg.KAFKA_CONSUMER_GROUP,
    sessionTimeout: cfg.KAFKA_SESSION_TIMEOUT_MS,
    heartbeatInterval: Math.max(500, Math.floor(cfg.KAFKA_SESSION_TIMEOUT_MS / 10)),
    // A consumer that crashed on something we judged fatal must not be restarted by kafkajs.
    retry: { retries: 10, restartOnFailure: async () => fatalError === undefined },
  });

  /** Partitions whose committed offset was checked against the log start since the last join. */
  const gapChecked = new Set<number>();

  /**
   * Retention can delete messages the controller has not consumed (while it was down, or held
   * back by the cap); kafkajs then silently resumes at the log start. Before the first batch
   * of a partition after a join, compare the committed offset with the log start: a gap is
   * counted, logged with its range, and recorded on the dead-letter topic.
   */
  async function checkRetentionGap(topic: string, partition: number, firstOffset: string, heartbeat: () => Promise<void>): Promise<void> {
    if (gapChecked.has(partition)) return;
    const [t] = await admin.fetchOffsets({ groupId: cfg.KAFKA_CONSUMER_GROUP, topics: [topic] });
    const c = BigInt(t?.partitions.find((p) => p.partition === partition)?.offset ?? '-1');
    if (c >= 0n && BigInt(firstOffset) > c) {
      const low = BigInt((await admin.fetchTopicOffsets(topic)).find((p) => p.partition === partition)?.low ?? '0');
      if (c < low) {
        const at = { topic, partition, offset: c.toString() };
        const last = (low - 1n).toString();
        const count = Number(low - c);
        if (!handler.hasDeadLettered(at)) {
          const error = `offsets ${c}..${last} of ${topic}/${partition} were deleted by retention before the controller consumed them`;
          await handler.sendDeadLetter(buildLossRecord(at, 'retention-gap', error, now(), last), at, heartbeat);
          metrics.retentionGap.inc({ topic, partition: String(partition) }, count);
          metrics.deadLettered.inc({ reason: 'retention-gap' });
        }
        log.warn({ topic, partition, from: c.toString(), to: last, count }, 'retention gap: messages deleted before they were consumed');
      }
    }
    gapChecked.add(partition);
  }

  const activeBatches = new Set<Promise<void>>();

  /**
   * Up to MAX_IN_FLIGHT messages of a partition are handled at once (a sliding window, so one
   * slow create does not idle the rest); the commit window decides what may be committed. A
   * failed heartbeat (a rebalance) stops dispatching: what runs is drained and committed before
   * the error goes back to kafkajs, so the partition's next owner starts after it.
   */
  function eachBatch(payload: EachBatchPayload): Promise<void> {
    const p = processBatch(payload).finally(() => activeBatches.delete(p));
    activeBatches.add(p);
    return p;
  }

  async function processBatch({ batch: b, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary }: EachBatchPayload): Promise<void> {
    const { topic, partition } = b;
    const msgs = b.messages;
    if (msgs.length === 0 || stopping.signal.aborted || fatalError) return;
    const limit = cfg.MAX_ACTIVE_JOBS > 0 ? Math.min(cfg.MAX_IN_FLIGHT, cfg.MAX_ACTIVE_JOBS) : cfg.MAX_IN_FLIGHT;
    const window = new CommitWindow(
      msgs.map((m) => m.offset),
      { every: limit, intervalMs: 250, now: () => performance.now() },
    );
    const rebalance = new AbortController();
    let heartbeatError: unknown;
    const beat = async () => {
      if (heartbeatError !== undefined) throw heartbeatError;
      try {
        await heartbeat();
      } catch (err) {
        heartbeatError ??= err;
        rebalance.abort();
        throw err;
      }
    };
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    const commitFinished = async (force: boolean) => {
      const c = window.take(force);
      if (!c) return;
      resolveOffset(c.last);
      try {
        // Through the batch's own commit, which kafkajs sends even while the consumer is stopping.
        await commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition, offset: c.next }] }] });
        committed.set(partition, BigInt(c.next));
        metrics.committedOffset.set({ topic, partition: String(partition) }, Number(c.next));
        handler.committed(partition, c.next);
        log.debug({ topic, partition, offset: c.next }, 'offset committed');
      } catch (err) {
        // The Jobs exist; a lost commit only means a redelivery, which the 409 path absorbs.
        log.warn({ topic, partition, offset: c.next, err: describeError(err) }, 'offset commit failed; messages will be redelivered');
      }
      metrics.lag.set({ topic, partition: String(partition) }, Number(BigInt(b.highWatermark) - BigInt(c.next)));
    };
    try {
      await checkRetentionGap(topic, partition, msgs[0]!.offset, beat);
      for (const [i, m] of msgs.entries()) {
        if (!isRunning() || isStale() || stopping.signal.aborted || rebalance.signal.aborted || failure !== undefined) break;
        while (inFlight.size >= limit) await Promise.race(inFlight);
        if (failure !== undefined || rebalance.signal.aborted) break;
        const h: Promise<void> = handler
          .handle(m, { topic, partition, offset: m.offset }, beat, rebalance.signal)
          .then(
            (r) => {
              window.finish(i);
              metrics.messagesConsumed.inc({ result: r.kind });
            },
            (err: unknown) => {
              if (err instanceof AbortedError) return;
              failure ??= err;
            },
          )
          .finally(() => inFlight.delete(h));
        inFlight.add(h);
        await commitFinished(false);
        await beat().catch(() => undefined);
      }
    } catch (err) {
      failure ??= err;
    }
    await Promise.all(inFlight);
    await commitFinished(true);
    if (failure !== undefined && !(failure instanceof AbortedError)) {
      // A bug, or something no retry fixes (the dead-letter topic unwritable): nothing is
      // skipped — the message is redelivered to the restarted process.
      fatal(failure);
      throw failure;
    }
    if (heartbeatError !== undefined) {
      log.info({ topic, partition, err: describeError(heartbeatError) }, 'rebalance: stopped dispatching, drained and committed this batch');
      throw heartbeatError;
    }
  }

  /**
   * The dead-letter topic gets the source's partition count and `max.message.bytes`, so records
   * spread the same way and an original record fits; a record over the limit is written
   * truncated rather than retried for ever.
   */
  async function ensureDeadLetterTopic(): Promise<void> {
    try {
      const meta = await admin.fetchTopicMetadata({ topics: [cfg.KAFKA_TOPIC] }).catch(() => undefined);
      const partitions = meta?.topics[0]?.partitions.length ?? 1;
      const sourceMax = await topicMaxMessageBytes(cfg.KAFKA_TOPIC).catch(() => undefined);
      const created = await admin.createTopics({
        topics: [
          {
            topic: cfg.DLQ_TOPIC,
            numPartitions: partitions,
            configEntries: sourceMax ? [{ name: 'max.message.bytes', value: String(sourceMax) }] : [],
          },
        ],
        waitForLeaders: true,
      });
      if (created) log.info({ topic: cfg.DLQ_TOPIC, partitions, maxMessageBytes: sourceMax }, 'dead-letter topic created');
    } catch (err) {
      // Without the right to create topics, the operator creates it; the first send finds out.
      log.warn({ topic: cfg.DLQ_TOPIC, err: describeError(err) }, 'could not make sure the dead-letter topic exists');
    }
  }

  /** A topic's `max.message.bytes` (DescribeConfigs). */
  async function topicMaxMessageBytes(topic: string): Promise<number | undefined> {
    const r = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: ['max.message.bytes'] }],
    });
    const v = r.resources[0]?.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue;
    return v ? Number(v) : undefined;
  }

  /**
   * kafkajs could not decode a batch at a partition's committed offset: it will fail the same way
   * every time. Record each offset it cannot read on the dead-letter topic (no bytes to keep),
   * move the group's offset past them — the consumer has left the group, so it may — and let the
   * process exit; the restarted one goes on after them.
   */
  async function quarantineUndecodable(cause: unknown): Promise<number> {
    const [t] = await admin.fetchOffsets({ groupId: cfg.KAFKA_CONSUMER_GROUP, topics: [cfg.KAFKA_TOPIC] });
    let recorded = 0;
    for (const end of await admin.fetchTopicOffsets(cfg.KAFKA_TOPIC)) {
      const c = BigInt(t?.partitions.find((p) => p.partition === end.partition)?.offset ?? '-1');
      let o = c >= 0n ? c : BigInt(end.low);
      const start = o;
      while (o < BigInt(end.high)) {
        try {
          await reader.fetch(cfg.KAFKA_TOPIC, end.partition, o, 1024 * 1024);
          break;
        } catch (err) {
          if (!isUndecodable(err)) throw err;
          const at = { topic: cfg.KAFKA_TOPIC, partition: end.partition, offset: o.toString() };
          if (!handler.hasDeadLettered(at)) {
            await handler.sendDeadLetter(buildLossRecord(at, 'undecodable-record', describeError(cause), now()), at, async () => undefined);
            metrics.deadLettered.inc({ reason: 'undecodable-record' });
          }
          recorded++;
          o++;
        }
      }
      if (o > start) {
        log.error({ topic: cfg.KAFKA_TOPIC, partition: end.partition, from: start.toString(), to: (o - 1n).toString() }, 'undecodable records dead-lettered');
        await admin.setOffsets({ groupId: cfg.KAFKA_CONSUMER_GROUP, topic: cfg.KAFKA_TOPIC, partitions: [{ partition: end.partition, offset: o.toString() }] });
      }
    }
    return recorded;
  }

  let joined = false;
  let stopRequested = false;
  const events = consumer.events;
  consumer.on(events.GROUP_JOIN, (e) => {
    joined = true;
    gapChecked.clear();
    log.info({ group: cfg.KAFKA_CONSUMER_GROUP, memberId: e.payload.memberId, assigned: e.payload.memberAssignment }, 'joined consumer group');
  });
  consumer.on(events.STOP, () => (joined = false));
  // kafkajs disconnects before it emits CRASH, and emits DISCONNECT on restarts too: only a CRASH
  // it will not restart from is final, and it must end the process, not leave it idle.
  consumer.on(events.CRASH, (e) => {
    joined = false;
    log.error({ err: describeError(e.payload.error), restart: e.payload.restart }, 'consumer crashed');
    if (e.payload.restart || stopRequested || fatalError) return;
    const err = e.payload.error;
    if (!isUndecodable(err)) return fatal(new FatalError(`the consumer stopped for good: ${describeError(err)}`, { cause: err }));
    quarantineUndecodable(err).then(
      (n) =>
        fatal(new FatalError(`the consumer met ${n} record(s) it cannot decode; they are dead-lettered and skipped: ${describeError(err)}`, { cause: err })),
      (qErr: unknown) => fatal(new FatalError(`the consumer cannot decode a record, and recording it failed: ${describeError(qErr)}`, { cause: err })),
    );
  });

  await informer.start();
  await admin.connect();
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
      stopRequested = true;
      log.info({ batches: activeBatches.size }, 'stopping: no new messages; finishing and committing the ones in flight');
      stopping.abort();
      slots.wake();
      // Drain and commit while the consumer still runs: after consumer.stop() kafkajs drops commits.
      await Promise.allSettled([...activeBatches]);
      await consumer.stop();
      await consumer.disconnect();
      reporter.stop();
      await informer.stop();
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
