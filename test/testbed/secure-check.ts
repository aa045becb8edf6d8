import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Kafka, logLevel, type Admin, type KafkaConfig } from 'kafkajs';
import { createProductAcls, kafkaAclsCommands, type AclRule } from './acls.js';
import { cacheRoot, versions } from './cache.js';
import { compressions, javaProduce, javaSecurity, type Compression, type ProducedRecord } from './java-producer.js';
import { waitFor } from '../../src/shared/wait.js';
import { ensureKafka, KafkaBroker, type KafkaClientOptions } from './kafka.js';
import { makeCa } from './pki.js';

const require = createRequire(import.meta.url);

/** What a refused or failed call looked like from kafkajs. */
export interface ErrorSeen {
  name: string;
  message: string;
  type?: string;
  code?: number;
  retriable?: boolean;
  /** The error kafkajs wrapped (originalError / cause / first of errors), if any. */
  cause?: { name: string; message: string; type?: string; code?: number };
  /** From the call to its failure. */
  ms: number;
}

export interface SecureCheckReport {
  kafkaVersion: string;
  start: { formatMs?: number; readyMs?: number; totalMs?: number };
  topics: { source: string; deadLetter: string; results: string; group: string };
  acls: string[];
  /** Java producer as `producer`, one batch per codec, over SASL_SSL. */
  javaProduced: { compression: Compression; mechanism: string; records: ProducedRecord[] }[];
  /** The batches as the broker stored them (read from its log segment). */
  storedBatches: { baseOffset: string; count: number; codec: string }[];
  /** `job` over SCRAM-SHA-256: ListOffsets, and values read back with one Fetch per batch. */
  jobRead: { low: string; high: string; decoded: Record<string, string[]>; notDecoded: Record<string, ErrorSeen> };
  /** The controller's rights, exercised as `controller`. */
  controllerAllowed: string[];
  /** A successful admin connect as `job` (TLS + SCRAM-SHA-256), to compare the failures with. */
  goodConnectMs: number;
  refused: Record<string, ErrorSeen>;
  /** Wall time of each phase of the check. */
  phasesMs: Record<string, number>;
}

interface RawBroker {
  fetch(
    req: object,
  ): Promise<{ responses: { partitions: { partition: number; errorCode: number; messages: { offset: string; value: Buffer | null }[] }[] }[] }>;
  offsetCommit(req: object): Promise<unknown>;
  findGroupCoordinator(req: { groupId: string; coordinatorType: number }): Promise<unknown>;
  produce(req: object): Promise<unknown>;
}
interface RawCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
  findBroker(q: { nodeId: string }): Promise<RawBroker>;
  findGroupCoordinator(q: { groupId: string }): Promise<RawBroker>;
}

/**
 * kafkajs' own cluster and broker classes, the way the job reads one record (a Fetch to the
 * partition leader, no group), here with TLS and SASL, and also used to send single requests
 * (OffsetCommit, Produce) whose refusal the check records.
 */
export function rawCluster(opts: KafkaClientOptions): RawCluster {
  const Cluster = require('kafkajs/src/cluster/index.js') as new (o: object) => RawCluster;
  const { createLogger } = require('kafkajs/src/loggers/index.js') as { createLogger: (o: object) => unknown };
  const socketFactory = (require('kafkajs/src/network/socketFactory.js') as () => unknown)();
  return new Cluster({
    logger: createLogger({ level: logLevel.NOTHING, logCreator: () => () => undefined }),
    brokers: opts.brokers,
    ssl: opts.ssl,
    sasl: opts.sasl,
    socketFactory,
    clientId: 'secure-check-raw',
    connectionTimeout: 5000,
    requestTimeout: 10_000,
    retry: { retries: 0 },
    allowAutoTopicCreation: false,
    maxInFlightRequests: null,
    isolationLevel: 1,
  });
}

export async function leaderOf(cluster: RawCluster, topic: string, partition: number): Promise<RawBroker> {
  await cluster.addTargetTopic(topic);
  const nodeId = Object.keys(cluster.findLeaderForPartitions(topic, [partition]))[0];
  if (nodeId === undefined) throw new Error(`no leader for ${topic}/${partition}`);
  return cluster.findBroker({ nodeId });
}

/** One Fetch with a 1-byte limit: the broker returns exactly the first batch at `offset`. */
async function fetchBatch(cluster: RawCluster, topic: string, partition: number, offset: string): Promise<{ offset: string; value: string }[]> {
  const broker = await leaderOf(cluster, topic, partition);
  const res = await broker.fetch({
    maxWaitTime: 100,
    minBytes: 1,
    maxBytes: 1,
    isolationLevel: 1,
    topics: [{ topic, partitions: [{ partition, fetchOffset: offset, maxBytes: 1 }] }],
  });
  const part = res.responses.flatMap((r) => r.partitions).find((p) => p.partition === partition);
  return (part?.messages ?? []).map((m) => ({ offset: m.offset, value: m.value?.toString('utf8') ?? '' }));
}

function errorSeen(err: unknown, ms: number): ErrorSeen {
  const e = err as Error & { type?: string; code?: number; retriable?: boolean; originalError?: unknown; errors?: unknown[] };
  const inner = (e.originalError ?? e.cause ?? e.errors?.[0]) as (Error & { type?: string; code?: number }) | undefined;
  return {
    name: e.name,
    message: e.message,
    ms: Math.round(ms),
    ...(e.type !== undefined ? { type: e.type } : {}),
    ...(e.code !== undefined ? { code: e.code } : {}),
    ...(e.retriable !== undefined ? { retriable: e.retriable } : {}),
    ...(inner
      ? {
          cause: {
            name: inner.name,
            message: inner.message,
            ...(inner.type !== undefined ? { type: inner.type } : {}),
            ...(inner.code !== undefined ? { code: inner.code } : {}),
          },
        }
      : {}),
  };
}

/** Runs `fn`, which must fail; returns what the failure looked like. */
async function mustFail(what: string, fn: () => Promise<unknown>): Promise<ErrorSeen> {
  const t0 = performance.now();
  try {
    await fn();
  } catch (err) {
    return errorSeen(err, performance.now() - t0);
  }
  throw new Error(`secure-check: ${what} succeeded but must be refused`);
}

function expectType(seen: ErrorSeen, type: string, what: string): void {
  if (seen.type !== type && seen.cause?.type !== type) throw new Error(`secure-check: ${what}: expected ${type}, got ${JSON.stringify(seen)}`);
}

const codecNames = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];

/**
 * The record batches in a log segment file, as stored: base offset, record count and codec
 * (attributes bits 0–2) of each v2 batch. Read from the broker's own files, so the codec is
 * what the broker kept, not what a client claims.
 */
export function readSegmentBatches(file: string): { baseOffset: string; count: number; codec: string }[] {
  const buf = readFileSync(file);
  const out: { baseOffset: string; count: number; codec: string }[] = [];
  for (let pos = 0; pos + 61 <= buf.length;) {
    const length = buf.readInt32BE(pos + 8);
    if (length <= 0) break;
    out.push({
      baseOffset: buf.readBigInt64BE(pos).toString(),
      count: buf.readInt32BE(pos + 57),
      codec: codecNames[buf.readInt16BE(pos + 21) & 7] ?? 'unknown',
    });
    pos += 12 + length;
  }
  return out;
}

export interface SecureCheckOptions {
  log?: (line: string) => void;
  /**
   * A started secure broker to check (e.g. a test bed's, started with `secureKafka`); it is
   * left running. Without it the check starts its own and stops it: start no other broker
   * meanwhile on a 2-core machine.
   */
  broker?: KafkaBroker;
  /** Keep the check's folder (the broker's logs and data, when it started one). */
  keep?: boolean;
}

/**
 * Exercises the product's principals against a secure broker and records what every refusal
 * looks like from kafkajs. Throws if anything allowed is refused or anything refused is
 * allowed. Topic, group names are fresh on every run.
 */
export async function runSecureCheck(o: SecureCheckOptions = {}): Promise<SecureCheckReport> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (o.broker && !o.broker.secure) throw new Error('secure-check: the broker given is not in secure mode');
  const dir = join(cacheRoot, 'run', `secure-check-${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
  const t0 = performance.now();
  const broker = o.broker ?? (await KafkaBroker.create(ensureKafka(versions.kafka), join(dir, 'kafka'), { secure: true }));
  const home = broker.home;
  const clients: { disconnect(): Promise<void> }[] = [];
  const client = (user: string, mechanism: 'scram-sha-256' | 'scram-sha-512' | 'plain', extra: Partial<KafkaConfig> = {}) =>
    new Kafka({ clientId: `secure-check-${user}`, logLevel: logLevel.NOTHING, ...broker.kafkaOptions(user, mechanism), ...extra });
  const connected = async (admin: Admin) => {
    clients.push(admin);
    await admin.connect();
    return admin;
  };
  try {
    if (!o.broker) await broker.start();
    const report: Partial<SecureCheckReport> & { refused: Record<string, ErrorSeen> } = {
      // From the jars, which KAFKA_HOME may have chosen instead of the bed's version setting.
      kafkaVersion:
        readdirSync(join(home, 'libs'))
          .map((f) => /^kafka-clients-(.+)\.jar$/.exec(f)?.[1])
          .find(Boolean) ?? 'unknown',
      // A broker given was started by the caller: its timings, and no total of ours.
      start: { ...broker.startTimings, ...(o.broker ? {} : { totalMs: Math.round(performance.now() - t0) }) },
      refused: {},
      phasesMs: {},
    };
    let phaseStart = performance.now();
    const phase = (name: string) => {
      const now = performance.now();
      report.phasesMs![name] = Math.round(now - phaseStart);
      phaseStart = now;
    };
    log(`secure-check: secure broker ready at ${broker.brokers} (format ${broker.startTimings.formatMs} ms, start to ready ${broker.startTimings.readyMs} ms)`);

    const id = randomBytes(4).toString('hex');
    const names = {
      topic: `secure-check-${id}`,
      group: `secure-check-${id}-controller`,
      deadLetterTopic: `secure-check-${id}.dlq`,
      resultsTopic: `secure-check-${id}.results`,
    };
    report.topics = { source: names.topic, deadLetter: names.deadLetterTopic, results: names.resultsTopic, group: names.group };

    // admin (super user) over SCRAM-SHA-512: the source and results topics, then the ACLs.
    const admin = await connected(client('admin', 'scram-sha-512').admin());
    await admin.createTopics({
      topics: [
        { topic: names.topic, numPartitions: 1 },
        { topic: names.resultsTopic, numPartitions: 1 },
      ],
      waitForLeaders: true,
    });
    const rules: AclRule[] = await createProductAcls(admin, names);
    report.acls = kafkaAclsCommands(rules);
    log(`secure-check: ${rules.length} ACL rules created`);
    phase('topics and ACLs');

    // The controller's rights, as `controller` over PLAIN and SCRAM-SHA-256.
    const allowed: string[] = [];
    const ctlAdmin = await connected(client('controller', 'plain').admin());
    await ctlAdmin.createTopics({ topics: [{ topic: names.deadLetterTopic, numPartitions: 1 }], waitForLeaders: true });
    allowed.push('CreateTopics of the dead-letter topic (PLAIN)');

    // The Java producer as `producer`: one batch per codec, mechanisms in turn.
    const mechanisms = ['SCRAM-SHA-512', 'SCRAM-SHA-256', 'PLAIN'] as const;
    report.javaProduced = [];
    for (const [i, compression] of compressions.entries()) {
      const mechanism = mechanisms[i % mechanisms.length]!;
      const values = [0, 1, 2].map((n) => `${compression}-${n}-${'x'.repeat(200)}`);
      const records = await javaProduce({
        home,
        brokers: broker.brokers,
        topic: names.topic,
        partition: 0,
        compression,
        values,
        security: javaSecurity(broker, 'producer', mechanism),
      });
      report.javaProduced.push({ compression, mechanism, records });
      log(`secure-check: Java producer (${mechanism}) sent ${compression}: offsets ${records.map((r) => r.offset).join(',')}`);
    }
    phase('Java producer, 5 codecs');
    report.storedBatches = readSegmentBatches(join(broker.dir, 'data', `${names.topic}-0`, '00000000000000000000.log'));
    for (const p of report.javaProduced) {
      const batch = report.storedBatches.find((b) => b.baseOffset === p.records[0]!.offset);
      if (!batch || batch.codec !== p.compression || batch.count !== p.records.length) {
        throw new Error(`secure-check: the ${p.compression} records are not stored as one ${p.compression} batch: ${JSON.stringify(report.storedBatches)}`);
      }
    }

    // `job` over SCRAM-SHA-256: ListOffsets, then one Fetch per batch (the job's way).
    const jobAdmin = await connected(client('job', 'scram-sha-256').admin());
    const [offsets] = await jobAdmin.fetchTopicOffsets(names.topic);
    const jobRaw = rawCluster(broker.kafkaOptions('job', 'scram-sha-256'));
    clients.push(jobRaw);
    await jobRaw.connect();
    const decoded: Record<string, string[]> = {};
    const notDecoded: Record<string, ErrorSeen> = {};
    for (const p of report.javaProduced) {
      const first = p.records[0]!.offset;
      const t = performance.now();
      try {
        decoded[p.compression] = (await fetchBatch(jobRaw, names.topic, 0, first)).map((m) => m.value.slice(0, p.compression.length + 2));
      } catch (err) {
        notDecoded[p.compression] = errorSeen(err, performance.now() - t);
      }
    }
    report.jobRead = { low: offsets!.low, high: offsets!.high, decoded, notDecoded };
    for (const c of ['none', 'gzip'] as const) {
      if (decoded[c]?.join() !== [0, 1, 2].map((n) => `${c}-${n}`).join())
        throw new Error(`secure-check: job could not read back the ${c} records: ${JSON.stringify(report.jobRead)}`);
    }

    phase('job reads');
    // What `job` must not do: touch the controller's group, write or read the dead-letter topic.
    report.refused.jobSetOffsetsOfControllerGroup = await mustFail('job: admin.setOffsets on the controller group', () =>
      jobAdmin.setOffsets({ groupId: names.group, topic: names.topic, partitions: [{ partition: 0, offset: '0' }] }),
    );
    // kafkajs tries FindCoordinator on each broker and, when all fail, throws
    // KafkaJSGroupCoordinatorNotFound: the broker's GROUP_AUTHORIZATION_FAILED is only in its
    // debug log. The same request sent alone shows it.
    if (report.refused.jobSetOffsetsOfControllerGroup.name !== 'KafkaJSGroupCoordinatorNotFound') {
      expectType(report.refused.jobSetOffsetsOfControllerGroup, 'GROUP_AUTHORIZATION_FAILED', 'job setOffsets');
    }
    const jobBroker = await leaderOf(jobRaw, names.topic, 0);
    report.refused.jobFindCoordinatorOfControllerGroup = await mustFail('job: FindCoordinator of the controller group', () =>
      jobBroker.findGroupCoordinator({ groupId: names.group, coordinatorType: 0 }),
    );
    expectType(report.refused.jobFindCoordinatorOfControllerGroup, 'GROUP_AUTHORIZATION_FAILED', 'job FindCoordinator');
    report.refused.jobOffsetCommitToControllerGroup = await mustFail('job: OffsetCommit on the controller group', () =>
      jobBroker.offsetCommit({
        groupId: names.group,
        groupGenerationId: -1,
        memberId: '',
        topics: [{ topic: names.topic, partitions: [{ partition: 0, offset: '1' }] }],
      }),
    );
    expectType(report.refused.jobOffsetCommitToControllerGroup, 'GROUP_AUTHORIZATION_FAILED', 'job OffsetCommit');
    const jobProducer = client('job', 'scram-sha-256', { retry: { retries: 0 } }).producer({ allowAutoTopicCreation: false });
    clients.push(jobProducer);
    await jobProducer.connect();
    report.refused.jobProduceToDeadLetter = await mustFail('job: produce to the dead-letter topic', () =>
      jobProducer.send({ topic: names.deadLetterTopic, acks: -1, messages: [{ value: 'not allowed' }] }),
    );
    expectType(report.refused.jobProduceToDeadLetter, 'TOPIC_AUTHORIZATION_FAILED', 'job produce');
    report.refused.jobRawProduceToDeadLetter = await mustFail('job: Produce request to the dead-letter topic', () =>
      jobBroker.produce({
        acks: -1,
        timeout: 5000,
        topicData: [{ topic: names.deadLetterTopic, partitions: [{ partition: 0, messages: [{ value: 'not allowed' }] }] }],
      }),
    );
    expectType(report.refused.jobRawProduceToDeadLetter, 'TOPIC_AUTHORIZATION_FAILED', 'job raw produce');
    report.refused.jobFetchDeadLetter = await mustFail('job: Fetch from the dead-letter topic', () => fetchBatch(jobRaw, names.deadLetterTopic, 0, '0'));
    expectType(report.refused.jobFetchDeadLetter, 'TOPIC_AUTHORIZATION_FAILED', 'job fetch dlq');

    phase('job refusals');
    // The rest of the controller's rights: its group (a simple commit, OffsetFetch, a join),
    // writing and reading back the dead-letter topic, writing the results topic.
    const ctlRaw = rawCluster(broker.kafkaOptions('controller', 'scram-sha-512'));
    clients.push(ctlRaw);
    await ctlRaw.connect();
    // The first FindCoordinator creates __consumer_offsets; until its partition is loaded the
    // broker answers GROUP_COORDINATOR_NOT_AVAILABLE / NOT_COORDINATOR, so poll.
    await waitFor(
      async () => {
        const coordinator = await ctlRaw.findGroupCoordinator({ groupId: names.group });
        await coordinator.offsetCommit({
          groupId: names.group,
          groupGenerationId: -1,
          memberId: '',
          topics: [{ topic: names.topic, partitions: [{ partition: 0, offset: offsets!.high }] }],
        });
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 200, description: "the controller's offset commit" },
    );
    const [committed] = await ctlAdmin.fetchOffsets({ groupId: names.group, topics: [names.topic] });
    if (committed?.partitions[0]?.offset !== offsets!.high) throw new Error(`secure-check: controller's commit not read back: ${JSON.stringify(committed)}`);
    allowed.push('OffsetCommit + OffsetFetch on its group (SCRAM-SHA-512, PLAIN)');
    const consumer = client('controller', 'scram-sha-256').consumer({ groupId: names.group, sessionTimeout: 10_000 });
    clients.push(consumer);
    const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
    await consumer.connect();
    await consumer.subscribe({ topics: [names.topic] });
    // It starts at the committed end, so the lz4/snappy/zstd batches kafkajs cannot decode are never fetched.
    await consumer.run({ eachMessage: async () => undefined });
    await Promise.race([joined, new Promise((_, rej) => setTimeout(() => rej(new Error('secure-check: controller did not join its group in 30 s')), 30_000))]);
    await consumer.stop();
    allowed.push('JoinGroup/SyncGroup/Heartbeat on its group (SCRAM-SHA-256)');
    const ctlProducer = client('controller', 'scram-sha-512').producer({ allowAutoTopicCreation: false });
    clients.push(ctlProducer);
    await ctlProducer.connect();
    const [dlqMeta] = await ctlProducer.send({ topic: names.deadLetterTopic, acks: -1, messages: [{ value: 'dead-letter-record' }] });
    await ctlProducer.send({ topic: names.resultsTopic, acks: -1, messages: [{ value: 'result-record' }] });
    const back = await fetchBatch(ctlRaw, names.deadLetterTopic, 0, dlqMeta!.baseOffset!);
    if (back[0]?.value !== 'dead-letter-record') throw new Error('secure-check: controller could not read back its dead-letter record');
    allowed.push('Produce to the dead-letter and results topics, Fetch from the dead-letter topic (SCRAM-SHA-512)');
    report.refused.controllerCreateResultsTopic = await mustFail('controller: create a topic it has no CREATE on', () =>
      ctlAdmin.createTopics({ topics: [{ topic: `${names.resultsTopic}-2`, numPartitions: 1 }] }),
    );
    // Kafka's default message.max.bytes (1048588): a dead-letter record carrying a message
    // just over 1 MiB is refused by the broker, as in production.
    report.refused.controllerRecordOverMessageMaxBytes = await mustFail('controller: a record over message.max.bytes', () =>
      ctlProducer.send({ topic: names.deadLetterTopic, acks: -1, messages: [{ value: Buffer.alloc(1024 * 1024 + 100, 'x') }] }),
    );
    report.controllerAllowed = allowed;
    phase('controller rights');

    // Authentication failures, with kafkajs' default retry settings (what the product runs
    // with); a successful connect first, for comparison.
    const good = client('job', 'scram-sha-256').admin();
    clients.push(good);
    const tc = performance.now();
    await good.connect();
    report.goodConnectMs = Math.round(performance.now() - tc);
    await good.disconnect();
    const wrong = new Kafka({
      clientId: 'secure-check-wrong',
      logLevel: logLevel.NOTHING,
      ...broker.kafkaOptions('job', 'scram-sha-256'),
      sasl: { mechanism: 'scram-sha-256', username: 'job', password: 'wrong-password' },
    }).admin();
    clients.push(wrong);
    report.refused.wrongPasswordScram256 = await mustFail('a wrong password (SCRAM-SHA-256)', () => wrong.connect());
    const wrongPlain = new Kafka({
      clientId: 'secure-check-wrong',
      logLevel: logLevel.NOTHING,
      ...broker.kafkaOptions('job', 'plain'),
      sasl: { mechanism: 'plain', username: 'job', password: 'wrong-password' },
    }).admin();
    clients.push(wrongPlain);
    report.refused.wrongPasswordPlain = await mustFail('a wrong password (PLAIN)', () => wrongPlain.connect());
    const unknownUser = new Kafka({
      clientId: 'secure-check-wrong',
      logLevel: logLevel.NOTHING,
      ...broker.kafkaOptions('job', 'scram-sha-512'),
      sasl: { mechanism: 'scram-sha-512', username: 'nobody', password: 'x' },
    }).admin();
    clients.push(unknownUser);
    report.refused.unknownUserScram512 = await mustFail('an unknown user (SCRAM-SHA-512)', () => unknownUser.connect());

    makeCa(join(dir, 'other-ca'), 'ca', '/CN=some-other-ca', 'ec');
    const otherCa = readFileSync(join(dir, 'other-ca', 'ca.crt'), 'utf8');
    const wrongCa = new Kafka({
      clientId: 'secure-check-wrong-ca',
      logLevel: logLevel.NOTHING,
      ...broker.kafkaOptions('job', 'scram-sha-256'),
      ssl: { ca: [otherCa] },
    }).admin();
    clients.push(wrongCa);
    report.refused.wrongCa = await mustFail('a CA that did not sign the broker certificate', () => wrongCa.connect());
    const noTls = new Kafka({
      clientId: 'secure-check-no-tls',
      logLevel: logLevel.NOTHING,
      ...broker.kafkaOptions('job', 'scram-sha-256'),
      ssl: false,
    }).admin();
    clients.push(noTls);
    report.refused.noTls = await mustFail('SASL without TLS on the SASL_SSL port', () => noTls.connect());
    const { sasl: _sasl, ...tlsOnly } = broker.kafkaOptions('job', 'scram-sha-256');
    const noSasl = new Kafka({ clientId: 'secure-check-no-sasl', logLevel: logLevel.NOTHING, ...tlsOnly }).admin();
    clients.push(noSasl);
    report.refused.noSasl = await mustFail('TLS without SASL', async () => {
      // ApiVersions is answered before authentication, so connect() alone succeeds here.
      await noSasl.connect();
      await noSasl.fetchTopicOffsets(names.topic);
    });

    phase('authentication and TLS failures');
    return report as SecureCheckReport;
  } finally {
    for (const c of clients.reverse()) await c.disconnect().catch(() => undefined);
    if (!o.broker) {
      const ts = performance.now();
      await broker.stop();
      log(`secure-check: broker stopped in ${Math.round(performance.now() - ts)} ms; whole check ${Math.round(performance.now() - t0)} ms`);
    }
    if (!o.keep) rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runSecureCheck({ keep: process.env.TESTBED_KEEP === '1' }).then(
    (report) => {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    },
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(1);
    },
  );
}
