import { describeError, isUndecodable } from '../../shared/errors.js';
import type { Coordinates } from '../../shared/contract/identity.js';
import type { Logger } from '../../shared/logger.js';
import type { PartitionReader } from '../../shared/kafka/read-message.js';
import { buildLossRecord } from '../reporting/dead-letter.js';
import type { GroupAdmin } from './group-admin.js';
import type { MessageHandler } from './message-handler.js';
import type { Metrics } from '../reporting/metrics.js';

/**
 * Messages the controller can never read — deleted by retention before it consumed them, or in
 * a batch kafkajs cannot decode — are not skipped in silence: each becomes a dead-letter
 * record (with no value: there are no bytes to keep), a metric and a log line with the range.
 */

/**
 * Retention can delete messages the controller has not consumed (while it was down, or held
 * back by the cap); kafkajs then silently resumes at the log start. Before the first batch of a
 * partition after each group join, and before any later batch that does not start right after
 * the last offset this process resolved and committed (within one generation kafkajs fetches
 * from there, so a later start is a reset to the log start — or a transaction marker, which
 * the log start tells apart), the committed offset is compared with the log start.
 */
export class RetentionGapGuard {
  private readonly checked = new Set<number>();

  constructor(
    private readonly d: {
      groupAdmin: Pick<GroupAdmin, 'retentionGapBefore' | 'knownCommitted'>;
      handler: Pick<MessageHandler, 'hasDeadLettered' | 'sendDeadLetter' | 'markDeadLettered'>;
      log: Logger;
      metrics: Metrics;
      now: () => Date;
    },
  ) {}

  /** A new group generation: partitions may have moved; check each again before its first batch. */
  joined(): void {
    this.checked.clear();
  }

  async beforeBatch(topic: string, partition: number, firstOffset: string, heartbeat: () => Promise<void>): Promise<void> {
    if (this.checked.has(partition)) {
      const next = this.d.groupAdmin.knownCommitted(partition);
      if (next === undefined || BigInt(firstOffset) <= next) return;
    }
    const gap = await this.d.groupAdmin.retentionGapBefore(partition, firstOffset);
    if (gap) {
      const at: Coordinates = { topic, partition, offset: gap.from.toString() };
      const last = gap.to.toString();
      if (!this.d.handler.hasDeadLettered(at)) {
        const error = `offsets ${at.offset}..${last} of ${topic}/${partition} were deleted by retention before the controller consumed them`;
        await this.d.handler.sendDeadLetter(buildLossRecord(at, 'retention-gap', error, this.d.now(), last), at, heartbeat);
        this.d.handler.markDeadLettered(at);
        this.d.metrics.retentionGap.inc({ topic, partition: String(partition) }, gap.count);
        this.d.metrics.deadLettered.inc({ reason: 'retention-gap' });
      }
      this.d.log.warn({ topic, partition, from: at.offset, to: last, count: gap.count }, 'retention gap: messages deleted before they were consumed');
    }
    this.checked.add(partition);
  }
}

/**
 * kafkajs could not decode a batch after a partition's committed offset, and it fails the
 * whole fetch for that partition, so neither the bad batch nor the good ones before it ever
 * reach the handler. Walk the partition one batch at a time (a Fetch with a 1-byte limit returns
 * exactly one batch): the records of good batches are handled as the consumer would have
 * (Job or dead-letter record), each offset of the bad batch gets an `undecodable-record`
 * dead-letter record (no bytes to keep), and the group's offset moves past them — the consumer
 * has left the group, so it may. Returns how many offsets were undecodable; the process then
 * exits and its successor goes on after them.
 */
export async function quarantineUndecodable(d: {
  topic: string;
  cause: unknown;
  groupAdmin: Pick<GroupAdmin, 'committedOffsets' | 'ends' | 'setOffset'>;
  reader: Pick<PartitionReader, 'fetch'>;
  handler: Pick<MessageHandler, 'handle' | 'hasDeadLettered' | 'sendDeadLetter' | 'markDeadLettered'>;
  log: Logger;
  metrics: Metrics;
  now: () => Date;
}): Promise<number> {
  const committed = await d.groupAdmin.committedOffsets();
  const noHeartbeat = async () => undefined;
  let recorded = 0;
  for (const end of await d.groupAdmin.ends()) {
    const c = committed.get(end.partition) ?? -1n;
    const start = c >= BigInt(end.low) ? c : BigInt(end.low);
    if (start >= BigInt(end.high) || (await decodes(d.reader, d.topic, end.partition, start))) continue;
    let o = start;
    let bad = 0;
    while (o < BigInt(end.high)) {
      let records;
      try {
        records = await d.reader.fetch(d.topic, end.partition, o, 1);
      } catch (err) {
        if (!isUndecodable(err)) throw err;
        const at = { topic: d.topic, partition: end.partition, offset: o.toString() };
        if (!d.handler.hasDeadLettered(at)) {
          await d.handler.sendDeadLetter(buildLossRecord(at, 'undecodable-record', describeError(d.cause), d.now()), at, noHeartbeat);
          d.handler.markDeadLettered(at);
          d.metrics.deadLettered.inc({ reason: 'undecodable-record' });
        }
        d.log.error({ ...at, err: describeError(err) }, 'undecodable record dead-lettered');
        bad++;
        recorded++;
        o++;
        continue;
      }
      // Past the bad batch: the consumer can go on from here.
      if (bad > 0) break;
      if (records.length === 0) {
        o++; // a transaction marker or a compacted offset: nothing to handle
        continue;
      }
      for (const r of records) await d.handler.handle(r, { topic: d.topic, partition: end.partition, offset: r.offset }, noHeartbeat);
      o = BigInt(records.at(-1)!.offset) + 1n;
    }
    if (bad > 0) await d.groupAdmin.setOffset(end.partition, o);
  }
  return recorded;
}

/** Whether a Fetch like the consumer's (1 MiB from `offset`) decodes: the partition the consumer failed on does not. */
async function decodes(reader: Pick<PartitionReader, 'fetch'>, topic: string, partition: number, offset: bigint): Promise<boolean> {
  try {
    await reader.fetch(topic, partition, offset, 1024 * 1024);
    return true;
  } catch (err) {
    if (isUndecodable(err)) return false;
    throw err;
  }
}
