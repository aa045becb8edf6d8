import type { Kafka } from 'kafkajs';
import { isUndecodable } from '../../shared/errors.js';
import { sleep } from '../../shared/wait.js';
import { DlqHeader } from './dead-letter.js';
import type { Logger } from '../../shared/logger.js';
import type { PartitionReader } from '../../shared/kafka/read-message.js';

/** How far before the oldest uncommitted message to look, to absorb producer clock skew. */
export const CLOCK_SKEW_MARGIN_MS = 5 * 60_000;

/**
 * The source coordinates (`partition/offset`) that already have a dead-letter record although
 * their offset is not committed: the controller was killed between writing the record and
 * committing. Only the window since the oldest uncommitted message is read (found by
 * timestamp), so the scan stays small however long the dead-letter topic is. With it, a
 * restart does not write a second record for the same message.
 */
export async function uncommittedDeadLetters(o: {
  kafka: Kafka;
  reader: PartitionReader;
  group: string;
  topic: string;
  dlqTopic: string;
  log: Logger;
}): Promise<Set<string>> {
  const found = new Set<string>();
  const admin = o.kafka.admin();
  await admin.connect();
  try {
    const [committed] = await admin.fetchOffsets({ groupId: o.group, topics: [o.topic] });
    const ends = await admin.fetchTopicOffsets(o.topic);
    let since: number | undefined;
    let fromStart = false;
    for (const end of ends) {
      const c = committed?.partitions.find((p) => p.partition === end.partition)?.offset;
      // Never below the log start: retention may have passed the committed offset (a Fetch there fails).
      const from = c === undefined || c === '-1' || BigInt(c) < BigInt(end.low) ? BigInt(end.low) : BigInt(c);
      if (from >= BigInt(end.high)) continue;
      try {
        // One batch (a 1-byte limit): the oldest uncommitted message's timestamp is all we need.
        const [first] = await o.reader.fetch(o.topic, end.partition, from, 1);
        if (first) since = Math.min(since ?? Infinity, Number(first.timestamp));
      } catch (err) {
        // A batch kafkajs cannot decode: its time is unknown, so read the dead-letter topic whole.
        if (!isUndecodable(err)) throw err;
        fromStart = true;
      }
    }
    if (since === undefined && !fromStart) return found;
    let starts: { partition: number; offset: string }[];
    try {
      starts = fromStart
        ? (await admin.fetchTopicOffsets(o.dlqTopic)).map((e) => ({ partition: e.partition, offset: e.low }))
        : await admin.fetchTopicOffsetsByTimestamp(o.dlqTopic, since! - CLOCK_SKEW_MARGIN_MS);
    } catch {
      return found; // no dead-letter topic yet: nothing to find
    }
    const dlqEnds = await admin.fetchTopicOffsets(o.dlqTopic);
    let scanned = 0;
    for (const s of starts) {
      const high = dlqEnds.find((e) => e.partition === s.partition)?.high;
      if (high === undefined || s.offset === '-1') continue;
      for await (const rec of o.reader.range(o.dlqTopic, s.partition, BigInt(s.offset), BigInt(high))) {
        scanned++;
        if (rec.headers[DlqHeader.topic] === o.topic && rec.headers[DlqHeader.stage] === 'controller') {
          found.add(`${rec.headers[DlqHeader.partition]}/${rec.headers[DlqHeader.offset]}`);
        }
      }
    }
    o.log.info({ dlq: o.dlqTopic, scanned, found: found.size }, 'dead-letter records of uncommitted messages found');
    return found;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/**
 * The dead-letter records of uncommitted messages, read again on every join of the consumer
 * group. A partition gained on a rebalance may hold messages its previous owner dead-lettered
 * but could not commit (it stops at the first message still waiting, say for the cap, and a
 * member that leaves commits nothing after that): the scan made at start-up predates those
 * records, so without a fresh one the new owner would write each of them a second time.
 * Batches wait for the scan of the current generation; the previous owner has drained before
 * it rejoins, so every record it wrote is on the topic by then.
 */
export class DeadLetterRescan {
  /** The latest join's scan: resolves to its error, or undefined once its findings are remembered. */
  private current: Promise<unknown> = Promise.resolve(undefined);

  constructor(
    private readonly o: {
      /** Reads the dead-letter records of uncommitted messages (retrying what a retry fixes). */
      scan: () => Promise<Set<string>>;
      /** Adds what the scan found to what the handler knows (never forgets: a record stays written). */
      remember: (found: Set<string>) => void;
      /** How often a waiting batch heartbeats, so a slow scan does not cost the member its session. */
      heartbeatMs: number;
    },
  ) {}

  /** The member joined (or rejoined) the group: its partitions may have moved. */
  joined(): void {
    this.current = this.o.scan().then(
      (found) => void this.o.remember(found),
      (err: unknown) => err ?? new Error('the dead-letter scan failed'),
    );
  }

  /** Resolves once the scan of the latest join is done; throws its error if it failed (no batch runs without it). */
  async ready(heartbeat: () => Promise<void>): Promise<void> {
    let done = false;
    let failure: unknown;
    const current = this.current.then((err) => {
      done = true;
      failure = err;
    });
    while (!done) {
      const stop = new AbortController();
      await Promise.race([current, sleep(this.o.heartbeatMs, stop.signal)]);
      stop.abort();
      if (!done) await heartbeat();
    }
    if (failure !== undefined) throw failure;
  }
}
