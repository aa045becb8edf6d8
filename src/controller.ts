import * as k8sApi from '@kubernetes/client-node';
import type * as k8s from '@kubernetes/client-node';
import { Partitioners, type Consumer, type EachBatchPayload, type Kafka, type KafkaMessage, type Producer } from 'kafkajs';
import { ActiveJobs, isFinished } from './active-jobs.js';
import type { ControllerConfig } from './config.js';
import { buildDeadLetter } from './dead-letter.js';
import { describeError, TerminalError } from './errors.js';
import { buildJob, isSameMessage, unreportedJobSelector, type Coordinates } from './job-builder.js';
import { classifyApiError } from './k8s-errors.js';
import { uncommittedDeadLetters } from './dlq-dedup.js';
import { makeKeepAliveClient } from './kube.js';
import { kafkaLevel, kafkaLogCreator, type Logger } from './logger.js';
import { isQuotaExceeded } from './k8s-errors.js';
import { PartitionReader, readOneMessage } from './read-message.js';
import { OutcomeReporter } from './reporter.js';
import { parseMessage } from './message.js';
import type { Metrics } from './metrics.js';
import { AbortedError, retryForever } from './retry.js';

/** Everything the controller talks to, passed in so nothing connects at import time. */
export interface ControllerDeps {
  config: ControllerConfig;
  kafka: Kafka;
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

type Outcome = { kind: 'job'; name: string; existed: boolean } | { kind: 'dead-lettered'; reason: string };

/**
 * Runs the controller: for each message, a Job (or a dead-letter record), and the offset
 * committed only once every earlier message of its partition has its Job or record.
 */
export async function runController(deps: ControllerDeps): Promise<ControllerHandle> {
  const { config: cfg, kafka, batch, log, metrics } = deps;
  const now = deps.now ?? (() => new Date());
  const stopping = new AbortController();
  const policy = { allowedCommands: cfg.ALLOWED_COMMANDS, secretsDir: cfg.SECRETS_DIR, maxMessageBytes: cfg.MAX_MESSAGE_BYTES };
  metrics.activeJobsCap.set(cfg.MAX_ACTIVE_JOBS);

  const producer: Producer = kafka.producer({ allowAutoTopicCreation: true, idempotent: false, createPartitioner: Partitioners.DefaultPartitioner });
  const reader = new PartitionReader({ brokers: cfg.KAFKA_BROKERS, clientId: `${cfg.KAFKA_CLIENT_ID}-reader`, logCreator: kafkaLogCreator(log), logLevel: kafkaLevel(cfg.LOG_LEVEL) });
  const reporter = new OutcomeReporter({
    config: cfg, batch, core: makeKeepAliveClient(deps.kc, k8sApi.CoreV1Api, 4), producer, log: log.child({ component: 'outcomes' }), metrics, signal: stopping.signal, now,
    readMessage: (at) => readOneMessage({ brokers: cfg.KAFKA_BROKERS, clientId: `${cfg.KAFKA_CLIENT_ID}-reader`, ...at, logCreator: kafkaLogCreator(log), logLevel: kafkaLevel(cfg.LOG_LEVEL) }),
  });
  const jobs = new ActiveJobs({
    kc: deps.kc, namespace: cfg.JOB_NAMESPACE, labelSelector: unreportedJobSelector(cfg.KAFKA_CONSUMER_GROUP), cap: cfg.MAX_ACTIVE_JOBS, log: log.child({ component: 'job-watch' }), metrics,
    onFinished: (job) => reporter.enqueue(job),
  });
  /** Source offsets (`partition/offset`) with a dead-letter record but no commit yet. */
  let deadLettered = new Set<string>();
  const consumer: Consumer = kafka.consumer({
    groupId: cfg.KAFKA_CONSUMER_GROUP,
    sessionTimeout: cfg.KAFKA_SESSION_TIMEOUT_MS,
    heartbeatInterval: Math.max(500, Math.floor(cfg.KAFKA_SESSION_TIMEOUT_MS / 10)),
    retry: { retries: 10 },
  });

  const retryOpts = (op: string, heartbeat: () => Promise<void>, at: Coordinates) => ({
    signal: stopping.signal,
    // Short enough that a recovered API server is used within seconds; jitter spreads the retriers.
    maxMs: 5000,
    onRetry: async (err: unknown, attempt: number, delayMs: number) => {
      metrics.retries.inc({ op });
      if (isQuotaExceeded((err as Error).cause)) {
        metrics.paused.set(1);
        log.warn({ ...at, delayMs }, 'paused: namespace quota exceeded; retrying the create');
        await heartbeat().catch(() => undefined);
        return;
      }
      (attempt < 3 ? log.warn.bind(log) : log.error.bind(log))({ op, ...at, attempt, delayMs, err: describeError(err) }, 'retrying after a retriable failure');
      await heartbeat().catch(() => undefined);
    },
  });

  async function deadLetter(m: KafkaMessage, at: Coordinates, err: TerminalError, heartbeat: () => Promise<void>): Promise<Outcome> {
    const key = `${at.partition}/${at.offset}`;
    if (deadLettered.has(key)) {
      log.info({ ...at, reason: err.reason }, 'dead-letter record already written; not writing it twice');
      return { kind: 'dead-lettered', reason: err.reason };
    }
    const record = buildDeadLetter(m, at, err.reason, err.message, now());
    await retryForever(async () => {
      try {
        await producer.send({ topic: cfg.DLQ_TOPIC, acks: -1, messages: [record] });
      } catch (e) {
        throw Object.assign(new Error(`dead-letter produce failed: ${describeError(e)}`, { cause: e }), { retriable: true });
      }
    }, retryOpts('dead-letter', heartbeat, at));
    deadLettered.add(key);
    metrics.deadLettered.inc({ reason: err.reason });
    log.warn({ ...at, reason: err.reason, error: err.message, dlq: cfg.DLQ_TOPIC }, 'message dead-lettered');
    return { kind: 'dead-lettered', reason: err.reason };
  }

  async function createJob(job: k8s.V1Job, at: Coordinates, checksum: string): Promise<{ existed: boolean; finished?: boolean }> {
    const name = job.metadata!.name!;
    const t0 = performance.now();
    try {
      await batch.createNamespacedJob({ namespace: cfg.JOB_NAMESPACE, body: job });
      metrics.createSeconds.observe((performance.now() - t0) / 1000);
      return { existed: false };
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw classifyApiError(err, `create Job ${name}`);
    }
    // A redelivered message finds the Job it made before: that is success, not a duplicate.
    let existing: k8s.V1Job;
    try {
      existing = await batch.readNamespacedJob({ name, namespace: cfg.JOB_NAMESPACE });
    } catch (err) {
      throw classifyApiError(err, `read existing Job ${name}`);
    }
    if (isSameMessage(existing, at, checksum)) return { existed: true, finished: isFinished(existing) };
    throw new TerminalError('job-name-conflict', `Job ${name} exists but was made for another message (topic recreated?)`);
  }

  async function handle(m: KafkaMessage, at: Coordinates, heartbeat: () => Promise<void>): Promise<Outcome> {
    let job: k8s.V1Job;
    let checksum: string;
    try {
      const msg = parseMessage(m.value, policy);
      checksum = msg.checksum;
      job = buildJob(at, msg, cfg, deps.template);
    } catch (err) {
      if (err instanceof TerminalError) return deadLetter(m, at, err, heartbeat);
      throw err;
    }
    if (!(await jobs.acquire(stopping.signal, heartbeat))) throw new AbortedError('stopped while waiting for the active-job cap');
    let created: string | undefined;
    let finished = false;
    try {
      const r = await retryForever(() => createJob(job, at, checksum), retryOpts('create-job', heartbeat, at));
      metrics.paused.set(0);
      created = job.metadata!.name!;
      finished = r.finished === true;
      metrics.jobsCreated.inc({ result: r.existed ? 'existed' : 'created' });
      log.info({ job: created, ...at, existed: r.existed }, r.existed ? 'job already existed' : 'job created');
      return { kind: 'job', name: created, existed: r.existed };
    } catch (err) {
      if (err instanceof TerminalError) return deadLetter(m, at, err, heartbeat);
      throw err;
    } finally {
      jobs.settle(created, finished);
    }
  }

  async function commit(topic: string, partition: number, next: string): Promise<void> {
    try {
      await consumer.commitOffsets([{ topic, partition, offset: next }]);
      metrics.committedOffset.set({ topic, partition: String(partition) }, Number(next));
      for (const k of deadLettered) {
        const [p, o] = k.split('/');
        if (Number(p) === partition && BigInt(o!) < BigInt(next)) deadLettered.delete(k);
      }
      log.debug({ topic, partition, offset: next }, 'offset committed');
    } catch (err) {
      // The Jobs exist; a lost commit only means a redelivery, which the 409 path absorbs.
      log.warn({ topic, partition, offset: next, err: describeError(err) }, 'offset commit failed; messages will be redelivered');
    }
  }

  /**
   * Up to MAX_IN_FLIGHT messages of a partition are handled at once (a sliding window, so one
   * slow create does not idle the rest); the committed offset only ever moves past a
   * contiguous run of finished messages.
   */
  async function eachBatch({ batch: b, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const { topic, partition } = b;
    const msgs = b.messages;
    const window = cfg.MAX_ACTIVE_JOBS > 0 ? Math.min(cfg.MAX_IN_FLIGHT, cfg.MAX_ACTIVE_JOBS) : cfg.MAX_IN_FLIGHT;
    const done: (boolean | undefined)[] = new Array(msgs.length);
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    let prefix = 0; // messages [0, prefix) are finished
    let committed = 0;
    let lastCommit = performance.now();
    const commitPrefix = async (force: boolean) => {
      while (prefix < msgs.length && done[prefix] === true) prefix++;
      if (prefix === committed) return;
      if (!force && prefix - committed < window && performance.now() - lastCommit < 250) return;
      const last = msgs[prefix - 1]!.offset;
      resolveOffset(last);
      committed = prefix;
      lastCommit = performance.now();
      await commit(topic, partition, (BigInt(last) + 1n).toString());
      metrics.lag.set({ topic, partition: String(partition) }, Number(BigInt(b.highWatermark) - BigInt(last) - 1n));
    };
    for (const [i, m] of msgs.entries()) {
      if (!isRunning() || isStale() || stopping.signal.aborted || failure !== undefined) break;
      while (inFlight.size >= window) await Promise.race(inFlight);
      if (failure !== undefined) break;
      const p: Promise<void> = handle(m, { topic, partition, offset: m.offset }, heartbeat).then((r) => {
        done[i] = true;
        metrics.messagesConsumed.inc({ result: r.kind });
      }, (err: unknown) => {
        done[i] = false;
        if (err instanceof AbortedError || stopping.signal.aborted) return;
        log.error({ topic, partition, offset: m.offset, err: describeError(err) }, 'message handling failed; it will be redelivered');
        failure ??= err;
      }).finally(() => inFlight.delete(p));
      inFlight.add(p);
      await commitPrefix(false);
      await heartbeat();
    }
    await Promise.all(inFlight);
    await commitPrefix(true);
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

  await jobs.start();
  await ensureDeadLetterTopic();
  await producer.connect();
  deadLettered = await retryForever(async () => {
    try {
      return await uncommittedDeadLetters({ kafka, reader, group: cfg.KAFKA_CONSUMER_GROUP, topic: cfg.KAFKA_TOPIC, dlqTopic: cfg.DLQ_TOPIC, log });
    } catch (err) {
      throw Object.assign(new Error(`scanning the dead-letter topic: ${describeError(err)}`, { cause: err }), { retriable: true });
    }
  }, { signal: stopping.signal, onRetry: (err) => void log.warn({ err: describeError(err) }, 'retrying the dead-letter scan') });
  await consumer.connect();
  await consumer.subscribe({ topics: [cfg.KAFKA_TOPIC], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 8,
    eachBatch,
  });
  log.info({ topic: cfg.KAFKA_TOPIC, group: cfg.KAFKA_CONSUMER_GROUP, namespace: cfg.JOB_NAMESPACE, dlq: cfg.DLQ_TOPIC, cap: cfg.MAX_ACTIVE_JOBS }, 'controller started');

  const ready = (async () => {
    await jobs.ready;
    const { waitFor } = await import('./wait.js');
    await waitFor(() => joined, { timeoutMs: 120_000, description: 'consumer group join' });
  })();
  ready.catch(() => undefined);

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      log.info({}, 'stopping: finishing in-flight creates');
      stopping.abort();
      // consumer.stop() waits for the running eachBatch calls, which commit what they finished.
      await consumer.stop();
      await consumer.disconnect();
      await jobs.stop();
      await producer.disconnect();
      await reader.close();
      log.info({}, 'stopped');
    })();
    return stopped;
  };
  return { ready, isReady: () => joined && jobs.healthy, stop, done };
}
