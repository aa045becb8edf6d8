import kafkajs, { type Admin } from 'kafkajs';
import { describeError } from '../../shared/errors.js';
import type { Coordinates } from '../../shared/contract/identity.js';
import type { Logger } from '../../shared/logger.js';

/** Kafka's default `max.message.bytes` (topic) / `message.max.bytes` (broker). */
export const KAFKA_DEFAULT_MAX_MESSAGE_BYTES = 1048588;

/** A range of offsets retention deleted before they were consumed. */
export interface RetentionGap {
  from: bigint;
  to: bigint;
  count: number;
}

/**
 * The messages of a partition that retention deleted before the group consumed them: those
 * from the committed offset up to the log start, when the first fetched record lies past the
 * committed offset. A first record past the committed offset with nothing deleted (a
 * transaction marker, a compacted record) is no gap. Pure.
 */
export function retentionGap(committed: bigint, firstFetched: bigint, logStart: bigint): RetentionGap | undefined {
  if (committed < 0n || firstFetched <= committed || logStart <= committed) return undefined;
  return { from: committed, to: logStart - 1n, count: Number(logStart - committed) };
}

/**
 * What the controller asks Kafka's admin API about its own group and topics: committed
 * offsets (cached from its own commits), log starts, topic limits, and the dead-letter topic.
 */
export class GroupAdmin {
  /** Next offset committed per partition of the source topic, as far as this process knows. */
  private readonly committed = new Map<number, bigint>();

  constructor(
    private readonly admin: Admin,
    private readonly o: { group: string; topic: string; dlqTopic: string; log: Logger },
  ) {}

  /** This process committed `next` on `partition`. */
  noteCommitted(partition: number, next: string): void {
    const n = BigInt(next);
    if (n > (this.committed.get(partition) ?? -1n)) this.committed.set(partition, n);
  }

  /** The next offset committed on `partition` as far as this process knows (undefined: none). */
  knownCommitted(partition: number): bigint | undefined {
    return this.committed.get(partition);
  }

  /** The group's committed offsets of the source topic, from the broker (-1: none). */
  async committedOffsets(): Promise<Map<number, bigint>> {
    const [t] = await this.admin.fetchOffsets({ groupId: this.o.group, topics: [this.o.topic] });
    const out = new Map<number, bigint>();
    for (const p of t?.partitions ?? []) {
      out.set(p.partition, BigInt(p.offset));
      if (BigInt(p.offset) >= 0n) this.noteCommitted(p.partition, p.offset);
    }
    return out;
  }

  /** True once the source offset of `at` is committed: the message can no longer be redelivered. */
  async isCommitted(at: Coordinates): Promise<boolean> {
    if (at.topic !== this.o.topic) return true;
    if ((this.committed.get(at.partition) ?? -1n) > BigInt(at.offset)) return true;
    await this.committedOffsets();
    return (this.committed.get(at.partition) ?? -1n) > BigInt(at.offset);
  }

  /**
   * The gap retention left before `firstFetched` on `partition`, if any. The committed offset
   * is the one this process read at start or committed itself: on OFFSET_OUT_OF_RANGE kafkajs
   * commits "earliest" (-2) in the group's name, which erases the evidence on the broker.
   */
  async retentionGapBefore(partition: number, firstFetched: string): Promise<RetentionGap | undefined> {
    // The broker's value when it is a real offset (another instance may have moved it on);
    // what this process knew when kafkajs has overwritten it with "earliest".
    const fresh = (await this.committedOffsets()).get(partition) ?? -1n;
    const c = fresh >= 0n ? fresh : (this.committed.get(partition) ?? -1n);
    if (c < 0n || BigInt(firstFetched) <= c) return undefined;
    const low = BigInt((await this.admin.fetchTopicOffsets(this.o.topic)).find((p) => p.partition === partition)?.low ?? '0');
    return retentionGap(c, BigInt(firstFetched), low);
  }

  /** A topic's `max.message.bytes` (DescribeConfigs). */
  async topicMaxMessageBytes(topic: string): Promise<number | undefined> {
    const r = await this.admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: ['max.message.bytes'] }],
    });
    const v = r.resources[0]?.configEntries.find((e) => e.configName === 'max.message.bytes')?.configValue;
    return v ? Number(v) : undefined;
  }

  /** A topic's limit for records the controller writes, read each time it is needed (an operator may change it). */
  async recordLimit(topic: string): Promise<number> {
    return (await this.topicMaxMessageBytes(topic).catch(() => undefined)) ?? KAFKA_DEFAULT_MAX_MESSAGE_BYTES;
  }

  /**
   * The dead-letter topic gets the source's partition count and `max.message.bytes`, so records
   * spread the same way and an original record fits.
   */
  async ensureDeadLetterTopic(): Promise<void> {
    const { topic, dlqTopic, log } = this.o;
    try {
      const meta = await this.admin.fetchTopicMetadata({ topics: [topic] }).catch(() => undefined);
      const partitions = meta?.topics[0]?.partitions.length ?? 1;
      const sourceMax = await this.topicMaxMessageBytes(topic).catch(() => undefined);
      const created = await this.admin.createTopics({
        topics: [{ topic: dlqTopic, numPartitions: partitions, configEntries: sourceMax ? [{ name: 'max.message.bytes', value: String(sourceMax) }] : [] }],
        waitForLeaders: true,
      });
      if (created) log.info({ topic: dlqTopic, partitions, maxMessageBytes: sourceMax }, 'dead-letter topic created');
    } catch (err) {
      // Without the right to create topics, the operator creates it; the first send finds out.
      log.warn({ topic: dlqTopic, err: describeError(err) }, 'could not make sure the dead-letter topic exists');
    }
  }

  /** Moves the group's offset of `partition` (only while the group has no members). */
  async setOffset(partition: number, offset: bigint): Promise<void> {
    await this.admin.setOffsets({ groupId: this.o.group, topic: this.o.topic, partitions: [{ partition, offset: offset.toString() }] });
    this.noteCommitted(partition, offset.toString());
  }

  /** Low and high watermarks of every partition of the source topic. */
  async ends(): Promise<{ partition: number; low: string; high: string }[]> {
    return this.admin.fetchTopicOffsets(this.o.topic);
  }
}
