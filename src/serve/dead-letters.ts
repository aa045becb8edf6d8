import { z } from 'zod';
import type { Coordinates } from '../shared/contract/identity.js';
import type { FetchedRecord } from '../shared/kafka/read-message.js';

import { DlqHeader } from '../shared/contract/dlq-headers.js';

/** The dead-letter headers the controller writes (declared once, in the shared contract). */
export const DeadLetterHeader = DlqHeader;

export const DeadLetterSchema = z.object({
  reason: z.string(),
  error: z.string().optional(),
  stage: z.string().optional(),
  at: z.string().optional(),
  /** Where the record is on the dead-letter topic. */
  record: z.object({ topic: z.string(), partition: z.number(), offset: z.string() }),
});
export type DeadLetter = z.infer<typeof DeadLetterSchema>;

/** What reading the dead-letter topic needs: its partitions' bounds and a range reader. */
export interface DeadLetterSource {
  offsets(topic: string): Promise<{ partition: number; low: string; high: string }[] | undefined>;
  range(topic: string, partition: number, from: bigint, to: bigint): AsyncIterable<FetchedRecord>;
}

/**
 * The newest dead-letter record of one message. The dead-letter topic is keyed by the original
 * key, so any partition may hold it: each is read from `high - limit` to its end (at most
 * `limit` records each), so one lookup costs at most partitions × limit records however long
 * the topic is. A record older than that window is not found (`scanned` says how far it read).
 */
export async function findDeadLetter(
  src: DeadLetterSource,
  dlqTopic: string,
  at: Coordinates,
  limit: number,
): Promise<{ found?: DeadLetter; scanned: number }> {
  const parts = await src.offsets(dlqTopic);
  let scanned = 0;
  let found: { rec: FetchedRecord; partition: number } | undefined;
  for (const p of parts ?? []) {
    const high = BigInt(p.high);
    const from = high - BigInt(limit) > BigInt(p.low) ? high - BigInt(limit) : BigInt(p.low);
    for await (const rec of src.range(dlqTopic, p.partition, from, high)) {
      scanned++;
      const h = rec.headers;
      if (h[DeadLetterHeader.topic] === at.topic && h[DeadLetterHeader.partition] === String(at.partition) && h[DeadLetterHeader.offset] === at.offset) {
        if (!found || (h[DeadLetterHeader.at] ?? '') >= (found.rec.headers[DeadLetterHeader.at] ?? '')) found = { rec, partition: p.partition };
      }
    }
  }
  if (!found) return { scanned };
  const h = found.rec.headers;
  return {
    scanned,
    found: {
      reason: h[DeadLetterHeader.reason] ?? 'unknown',
      ...(h[DeadLetterHeader.error] !== undefined ? { error: h[DeadLetterHeader.error] } : {}),
      ...(h[DeadLetterHeader.stage] !== undefined ? { stage: h[DeadLetterHeader.stage] } : {}),
      ...(h[DeadLetterHeader.at] !== undefined ? { at: h[DeadLetterHeader.at] } : {}),
      record: { topic: dlqTopic, partition: found.partition, offset: found.rec.offset },
    },
  };
}
