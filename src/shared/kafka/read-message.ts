import { isBug, isUndecodable, kafkaErrorType, RetriableError, TerminalError } from '../errors.js';
import type { Coordinates } from '../contract/identity.js';
import Cluster from 'kafkajs/src/cluster/index.js';
import filterAbortedMessages from 'kafkajs/src/consumer/filterAbortedMessages.js';
import kafkaLoggers from 'kafkajs/src/loggers/index.js';
import consoleLogCreator from 'kafkajs/src/loggers/console.js';
import createSocketFactory from 'kafkajs/src/network/socketFactory.js';
import type { KafkaConnection } from './kafka.js';
import { registerKafkaCodecs } from './kafka-codecs.js';

/** kafkajs internals this module relies on; the version is pinned exactly in package.json. */
interface KafkaJsBroker {
  fetch(req: {
    maxWaitTime: number;
    minBytes: number;
    maxBytes: number;
    isolationLevel: number;
    topics: { topic: string; partitions: { partition: number; fetchOffset: string; maxBytes: number }[] }[];
  }): Promise<{
    responses: {
      topicName: string;
      partitions: {
        partition: number;
        errorCode: number;
        highWatermark: string;
        abortedTransactions?: { producerId: string; firstOffset: string }[];
        messages: RawMessage[];
      }[];
    }[];
  }>;
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

export interface ReaderOptions {
  connection: KafkaConnection;
  timeoutMs?: number;
}

export interface FetchedRecord extends OneMessage {
  offset: string;
}

/**
 * Fetches records of one partition straight from its leader through kafkajs' own cluster and
 * broker classes (the ones its consumer uses), never joining or committing to a group.
 */
export class PartitionReader {
  private readonly cluster: KafkaJsCluster;
  private connecting?: Promise<void>;

  constructor(o: ReaderOptions) {
    const conn = o.connection;
    registerKafkaCodecs();
    this.cluster = new Cluster({
      logger: kafkaLoggers.createLogger({ level: conn.logLevel, logCreator: conn.logCreator ?? consoleLogCreator }),
      brokers: conn.brokers,
      ssl: conn.ssl,
      sasl: conn.sasl,
      authenticationTimeout: 10_000,
      socketFactory: createSocketFactory(),
      clientId: conn.clientId,
      connectionTimeout: 5000,
      requestTimeout: o.timeoutMs ?? 30_000,
      retry: { retries: 5 },
      allowAutoTopicCreation: false,
      maxInFlightRequests: null,
      isolationLevel: 1,
    }) as KafkaJsCluster;
  }

  /** Records from `offset` on (a whole record batch may start before it; those are dropped). */
  async fetch(topic: string, partition: number, offset: bigint, maxBytes = 8 * 1024 * 1024): Promise<FetchedRecord[]> {
    await this.connect();
    await this.cluster.addTargetTopic(topic);
    const leaders = this.cluster.findLeaderForPartitions(topic, [partition]);
    const nodeId = Object.keys(leaders)[0];
    if (nodeId === undefined) throw new RetriableError(`no leader for ${topic}/${partition}`);
    const broker = await this.cluster.findBroker({ nodeId });
    const res = await broker.fetch({
      maxWaitTime: 100,
      minBytes: 1,
      maxBytes,
      isolationLevel: 1,
      topics: [{ topic, partitions: [{ partition, fetchOffset: offset.toString(), maxBytes }] }],
    });
    const part = res.responses.flatMap((r) => r.partitions).find((p) => p.partition === partition);
    // Read committed, as the controller's consumer reads: an aborted transaction's records are
    // dropped here (the broker sends them with the list of aborted transactions), then the markers.
    const committed = part ? filterAbortedMessages({ messages: part.messages, abortedTransactions: part.abortedTransactions }) : [];
    return committed
      .filter((m) => !m.isControlRecord && BigInt(m.offset) >= offset)
      .map((m) => {
        const headers: Record<string, string> = {};
        for (const [k, v] of Object.entries(m.headers ?? {})) if (v !== undefined) headers[k] = (Array.isArray(v) ? v[0] : v)?.toString('utf8') ?? '';
        return { offset: m.offset, key: m.key, value: m.value, headers, timestamp: m.timestamp };
      });
  }

  /** Every record in [from, to), in order. */
  async *range(topic: string, partition: number, from: bigint, to: bigint): AsyncGenerator<FetchedRecord> {
    let next = from;
    for (let empty = 0; next < to && empty < 20;) {
      const recs = await this.fetch(topic, partition, next);
      if (recs.length === 0) {
        empty++;
        continue;
      }
      for (const r of recs) {
        if (BigInt(r.offset) >= to) return;
        yield r;
      }
      next = BigInt(recs.at(-1)!.offset) + 1n;
    }
  }

  /** Connects once; may be started early, while other requests are under way. */
  connect(): Promise<void> {
    // A failed connect is forgotten: a long-lived reader tries again on its next fetch.
    this.connecting ??= this.cluster.connect().catch((err: unknown) => {
      this.connecting = undefined;
      throw err;
    });
    return this.connecting;
  }

  async close(): Promise<void> {
    if (!this.connecting) return;
    // A connect still under way is waited for, so no socket outlives the reader.
    const connected = await this.connecting.then(
      () => true,
      () => false,
    );
    if (connected) await this.cluster.disconnect().catch(() => undefined);
  }
}

/**
 * Reads exactly the message at `topic`/`partition`/`offset` and nothing else. kafkajs has no
 * `assign()`: its consumers must join a group, which costs a rebalance (3 s on a broker with
 * default settings) and touches group state. This sends one Fetch to the partition leader
 * instead (see PartitionReader). An offset below the log start (retention) or a
 * compacted-away record is a terminal `message-gone`.
 *
 * The common case costs one connection (kafkajs reuses the seed connection for the leader when
 * they are the same address), its metadata and the smallest fetch there is: the broker still
 * answers with the whole record batch that holds the offset (KIP-74), so the job does not fetch
 * and decode up to 8 MB of the records after its own in a busy partition. Only when that does
 * not return the record does an admin client ask for the partition's bounds to say why.
 */
export async function readOneMessage(connection: KafkaConnection, o: Coordinates, timeoutMs?: number): Promise<OneMessage> {
  const reader = new PartitionReader({ connection, timeoutMs });
  const want = BigInt(o.offset);
  try {
    try {
      const [first] = await reader.fetch(o.topic, o.partition, want, 1);
      if (first && BigInt(first.offset) === want) return one(first);
    } catch (err) {
      if (isUndecodable(err) || isBug(err)) throw err;
      // Anything else (no such topic, offset out of range, a broker away): the bounds below say which.
    }
    return await explainMissing(connection, reader, o, want);
  } catch (err) {
    if (err instanceof TerminalError || err instanceof RetriableError) throw err;
    if (isUndecodable(err))
      throw new TerminalError('undecodable-record', `${o.topic}/${o.partition}@${o.offset} cannot be decoded: ${(err as Error).message}`, { cause: err });
    throw new RetriableError(`reading ${o.topic}/${o.partition}@${o.offset}: ${(err as Error).message}`, { cause: err });
  } finally {
    await reader.close();
  }
}

/** The message part of a fetched record. */
function one(r: FetchedRecord): OneMessage {
  return { key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp };
}

/** The record was not in the first fetch: the partition's bounds tell gone (terminal) from not yet or unreachable (retriable). */
async function explainMissing(connection: KafkaConnection, reader: PartitionReader, o: Coordinates, want: bigint): Promise<OneMessage> {
  // Loaded only here: the job's common path never needs kafkajs' client classes.
  const { createKafka } = await import('./kafka-client.js');
  const admin = createKafka(connection, { retry: { retries: 5 } }).admin();
  try {
    await admin.connect();
    let bounds: { low: string; high: string } | undefined;
    try {
      const offsets = await admin.fetchTopicOffsets(o.topic);
      const p = offsets.find((x) => x.partition === o.partition);
      if (p) bounds = { low: p.low, high: p.high };
    } catch (err) {
      // kafkajs wraps the broker's answer once its retries run out: the type is on the error inside.
      if (kafkaErrorType(err) === 'UNKNOWN_TOPIC_OR_PARTITION') throw new TerminalError('message-gone', `topic ${o.topic} does not exist`, { cause: err });
      throw new RetriableError(`listing offsets of ${o.topic}: ${(err as Error).message}`, { cause: err });
    }
    if (!bounds) throw new TerminalError('message-gone', `topic ${o.topic} has no partition ${o.partition}`);
    if (want < BigInt(bounds.low)) {
      throw new TerminalError('message-gone', `offset ${o.offset} of ${o.topic}/${o.partition} is gone: the log now starts at ${bounds.low} (retention)`);
    }
    if (want >= BigInt(bounds.high)) {
      throw new RetriableError(`offset ${o.offset} of ${o.topic}/${o.partition} is not readable yet (high watermark ${bounds.high})`);
    }
    // Below the high watermark yet not returned: a control record or a compacted-away offset, or
    // a fetch that failed for a passing reason; the scan says which.
    for await (const rec of reader.range(o.topic, o.partition, want, BigInt(bounds.high))) {
      if (BigInt(rec.offset) === want) return one(rec);
      throw new TerminalError(
        'message-gone',
        `offset ${o.offset} of ${o.topic}/${o.partition} holds no record (compacted, a transaction marker, or an aborted transaction's record)`,
      );
    }
    throw new RetriableError(`offset ${o.offset} of ${o.topic}/${o.partition} could not be fetched`);
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
