import { createRequire } from 'node:module';
import { Kafka, type logCreator, logLevel as LogLevel } from 'kafkajs';
import { RetriableError, TerminalError } from './errors.js';

const require = createRequire(import.meta.url);

/** kafkajs internals this module relies on; the version is pinned exactly in package.json. */
interface KafkaJsBroker {
  fetch(req: {
    maxWaitTime: number; minBytes: number; maxBytes: number; isolationLevel: number;
    topics: { topic: string; partitions: { partition: number; fetchOffset: string; maxBytes: number }[] }[];
  }): Promise<{ responses: { topicName: string; partitions: { partition: number; errorCode: number; highWatermark: string; messages: RawMessage[] }[] }[] }>;
}
interface KafkaJsCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
  findBroker(q: { nodeId: string }): Promise<KafkaJsBroker>;
}
interface RawMessage {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers?: Record<string, Buffer | Buffer[] | undefined>;
  timestamp: string;
  isControlRecord?: boolean;
}

export interface OneMessage {
  key: Buffer | null;
  value: Buffer | null;
  headers: Record<string, string>;
  timestamp: string;
}

export interface ReadOptions {
  brokers: string[];
  topic: string;
  partition: number;
  offset: string;
  clientId?: string;
  logLevel?: LogLevel;
  logCreator?: logCreator;
  timeoutMs?: number;
}

/**
 * Reads exactly the message at `topic`/`partition`/`offset` and nothing else. kafkajs has no
 * `assign()`: its consumers must join a group, which costs a rebalance (3 s on a broker with
 * default settings) and touches group state. Instead this sends one Fetch to the partition
 * leader through kafkajs' own cluster and broker classes — the ones its consumer uses — and
 * never joins or commits to any group. An offset below the log start (retention) or a
 * compacted-away record is a terminal `message-gone`.
 */
export async function readOneMessage(o: ReadOptions): Promise<OneMessage> {
  const kafka = new Kafka({ clientId: o.clientId ?? 'mcp-job', brokers: o.brokers, logLevel: o.logLevel ?? LogLevel.WARN, logCreator: o.logCreator, retry: { retries: 5 } });
  const admin = kafka.admin();
  const Cluster = require('kafkajs/src/cluster/index.js') as new (opts: object) => KafkaJsCluster;
  const { createLogger } = require('kafkajs/src/loggers/index.js') as { createLogger: (o: object) => unknown };
  const defaultLogCreator = (require('kafkajs/src/loggers/console.js') as logCreator);
  const socketFactory = (require('kafkajs/src/network/socketFactory.js') as () => unknown)();
  const cluster = new Cluster({
    logger: createLogger({ level: o.logLevel ?? LogLevel.WARN, logCreator: o.logCreator ?? defaultLogCreator }),
    brokers: o.brokers,
    socketFactory,
    clientId: o.clientId ?? 'mcp-job',
    connectionTimeout: 5000,
    requestTimeout: o.timeoutMs ?? 30_000,
    retry: { retries: 5 },
    allowAutoTopicCreation: false,
    maxInFlightRequests: null,
    isolationLevel: 1,
  });
  try {
    await admin.connect();
    let bounds: { low: string; high: string } | undefined;
    try {
      const offsets = await admin.fetchTopicOffsets(o.topic);
      const p = offsets.find((x) => x.partition === o.partition);
      if (p) bounds = { low: p.low, high: p.high };
    } catch (err) {
      if ((err as { type?: string }).type === 'UNKNOWN_TOPIC_OR_PARTITION') throw new TerminalError('message-gone', `topic ${o.topic} does not exist`, { cause: err });
      throw new RetriableError(`listing offsets of ${o.topic}: ${(err as Error).message}`, { cause: err });
    }
    if (!bounds) throw new TerminalError('message-gone', `topic ${o.topic} has no partition ${o.partition}`);
    const want = BigInt(o.offset);
    if (want < BigInt(bounds.low)) {
      throw new TerminalError('message-gone', `offset ${o.offset} of ${o.topic}/${o.partition} is gone: the log now starts at ${bounds.low} (retention)`);
    }
    if (want >= BigInt(bounds.high)) {
      throw new RetriableError(`offset ${o.offset} of ${o.topic}/${o.partition} is not readable yet (high watermark ${bounds.high})`);
    }
    await cluster.connect();
    await cluster.addTargetTopic(o.topic);
    const leaders = cluster.findLeaderForPartitions(o.topic, [o.partition]);
    const nodeId = Object.keys(leaders)[0];
    if (nodeId === undefined) throw new RetriableError(`no leader for ${o.topic}/${o.partition}`);
    const broker = await cluster.findBroker({ nodeId });
    // A record batch is returned whole, so start at the offset and skip any earlier records.
    for (let fetchOffset = want, round = 0; round < 20; round++) {
      const res = await broker.fetch({
        maxWaitTime: 100, minBytes: 1, maxBytes: 64 * 1024 * 1024, isolationLevel: 1,
        topics: [{ topic: o.topic, partitions: [{ partition: o.partition, fetchOffset: fetchOffset.toString(), maxBytes: 64 * 1024 * 1024 }] }],
      });
      const part = res.responses.flatMap((r) => r.partitions).find((p) => p.partition === o.partition);
      const msgs = (part?.messages ?? []).filter((m) => !m.isControlRecord);
      const hit = msgs.find((m) => BigInt(m.offset) === want);
      if (hit) {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(hit.headers ?? {})) if (v !== undefined) headers[k] = (Array.isArray(v) ? v[0] : v)?.toString('utf8') ?? '';
        return { key: hit.key, value: hit.value, headers, timestamp: hit.timestamp };
      }
      const past = msgs.find((m) => BigInt(m.offset) > want);
      if (past) throw new TerminalError('message-gone', `offset ${o.offset} of ${o.topic}/${o.partition} holds no record (compacted or a transaction marker)`);
      const last = (part?.messages ?? []).at(-1);
      if (last) fetchOffset = BigInt(last.offset) + 1n;
    }
    throw new RetriableError(`offset ${o.offset} of ${o.topic}/${o.partition} could not be fetched`);
  } catch (err) {
    if (err instanceof TerminalError || err instanceof RetriableError) throw err;
    throw new RetriableError(`reading ${o.topic}/${o.partition}@${o.offset}: ${(err as Error).message}`, { cause: err });
  } finally {
    await cluster.disconnect().catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
  }
}
