import { describeError, isUndecodable } from '../shared/errors.js';
import type { Coordinates } from '../shared/identity.js';
import type { Logger } from '../shared/logger.js';
import type { PartitionReader } from '../shared/read-message.js';
import { buildLossRecord } from './dead-letter.js';
import type { GroupAdmin } from './group-admin.js';
import type { MessageHandler } from './message-handler.js';
import type { Metrics } from './metrics.js';

/**
 * Messages the controller can never read — deleted by retention before it consumed them, or in
 * a batch kafkajs cannot decode — are not skipped in silence: each becomes a dead-letter
 * record (with no value: there are no bytes to keep), a metric and a log line with the range.
 */

/**
 * Retention can delete messages the controller has not consumed (while it was down, or held
 * back by the cap); kafkajs then silently resumes at the log start. Before the first batch of a
 * partition after each group join, the committed offset is compared with the log start.
 */
export class RetentionGapGuard {
  private readonly checked = new Set<number>();

  constructor(
    private readonly d: {
      groupAdmin: Pick<GroupAdmin, 'retentionGapBefore'>;
      handler: Pick<MessageHandler, 'hasDeadLettered' | 'sendDeadLetter'>;
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
    if (this.checked.has(partition)) return;
    const gap = await this.d.groupAdmin.retentionGapBefore(partition, firstOffset);
    if (gap) {
      const at: Coordinates = { topic, partition, offset: gap.from.toString() };
      const last = gap.to.toString();
      if (!this.d.handler.hasDeadLettered(at)) {
        const error = `offsets ${at.offset}..${last} of ${topic}/${partition} were deleted by retention before the controller consumed them`;
        await this.d.handler.sendDeadLetter(buildLossRecord(at, 'retention-gap', error, this.d.now(), last), at, heartbeat);
        this.d.metrics.retentionGap.inc({ topic, partition: String(partition) }, gap.count);
        this.d.metrics.deadLettered.inc({ reason: 'retention-gap' });
      }
      this.d.log.warn({ topic, partition, from: at.offset, to: last, count: gap.count }, 'retention gap: messages deleted before they were consumed');
    }
    this.checked.add(partition);
  }
}

/**
 * kafkajs could not decode a batch at a partition's committed offset: it will fail the same
 * way every time. Record each offset it cannot read on the dead-letter topic (no bytes to keep),
 * move the group's offset past them — the consumer has left the group, so it may — and return
 * how many; the process then exits and its successor goes on after them.
 */
export async function quarantineUndecodable(d: {
  topic: string;
  cause: unknown;
  groupAdmin: GroupAdmin;
  reader: Pick<PartitionReader, 'fetch'>;
  handler: Pick<MessageHandler, 'hasDeadLettered' | 'sendDeadLetter'>;
  log: Logger;
  metrics: Metrics;
  now: () => Date;
}): Promise<number> {
  const committed = await d.groupAdmin.committedOffsets();
  let recorded = 0;
  for (const end of await d.groupAdmin.ends()) {
    const c = committed.get(end.partition) ?? -1n;
    const start = c >= BigInt(end.low) ? c : BigInt(end.low);
    let o = start;
    while (o < BigInt(end.high)) {
      try {
        await d.reader.fetch(d.topic, end.partition, o, 1024 * 1024);
        break;
      } catch (err) {
        if (!isUndecodable(err)) throw err;
        const at = { topic: d.topic, partition: end.partition, offset: o.toString() };
        if (!d.handler.hasDeadLettered(at)) {
          await d.handler.sendDeadLetter(buildLossRecord(at, 'undecodable-record', describeError(d.cause), d.now()), at, async () => undefined);
          d.metrics.deadLettered.inc({ reason: 'undecodable-record' });
        }
        recorded++;
        o++;
      }
    }
    if (o > start) {
      d.log.error({ topic: d.topic, partition: end.partition, from: start.toString(), to: (o - 1n).toString() }, 'undecodable records dead-lettered');
      await d.groupAdmin.setOffset(end.partition, o);
    }
  }
  return recorded;
}
