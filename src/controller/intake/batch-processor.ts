import type { EachBatchPayload } from 'kafkajs';
import { AbortedError, describeError, FatalError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';
import { CommitWindow } from './commit-window.js';
import type { MessageHandler } from './message-handler.js';
import type { Metrics } from '../reporting/metrics.js';

export interface BatchDeps {
  handler: Pick<MessageHandler, 'handle' | 'committed'>;
  /** Most messages of one partition handled at once. */
  limit: number;
  /** Fires when the controller stops: no new message is dispatched. */
  stopping: AbortSignal;
  /** Runs before the first message of a batch (the retention-gap check). */
  beforeBatch?: (topic: string, partition: number, firstOffset: string, heartbeat: () => Promise<void>) => Promise<void>;
  onCommitted?: (partition: number, next: string) => void;
  /** Something no retry fixes happened (a bug, an unwritable dead-letter topic): the process must end. */
  onFatal: (err: unknown) => void;
  log: Logger;
  metrics: Metrics;
  now?: () => number;
}

/**
 * One kafkajs batch of one partition. Up to `limit` messages are handled at once (a sliding
 * window, so one slow create does not idle the rest); the commit window decides what may be
 * committed, and commits go through the batch's own commit, which kafkajs sends even while the
 * consumer is stopping. A failed heartbeat (a rebalance) stops dispatching: what runs is
 * drained and committed before the error goes back to kafkajs, so the partition's next owner
 * starts after it. A failure that is neither a stop nor a rebalance is fatal.
 */
export async function processBatch(d: BatchDeps, p: EachBatchPayload): Promise<void> {
  const { batch: b, resolveOffset, heartbeat, isRunning, isStale, commitOffsetsIfNecessary } = p;
  const { topic, partition } = b;
  const msgs = b.messages;
  if (msgs.length === 0 || d.stopping.aborted) return;
  const window = new CommitWindow(
    msgs.map((m) => m.offset),
    { every: d.limit, intervalMs: 250, now: d.now ?? (() => performance.now()) },
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
  let lastCommitOk = true;
  const commitFinished = async (force: boolean) => {
    const c = window.take(force);
    if (!c) return;
    resolveOffset(c.last);
    try {
      await commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition, offset: c.next }] }] });
      d.onCommitted?.(partition, c.next);
      d.handler.committed(partition, c.next);
      d.metrics.committedOffset.set({ topic, partition: String(partition) }, Number(c.next));
      // Only on success: a failed commit is often a revoked partition, whose series the lag refresher removed.
      d.metrics.lag.set({ topic, partition: String(partition) }, Number(BigInt(b.highWatermark) - BigInt(c.next)));
      lastCommitOk = true;
      d.log.debug({ topic, partition, offset: c.next }, 'offset committed');
    } catch (err) {
      lastCommitOk = false;
      // The Jobs exist; a lost commit only means a redelivery, which the 409 path absorbs.
      d.log.warn({ topic, partition, offset: c.next, err: describeError(err) }, 'offset commit failed; messages will be redelivered');
    }
  };
  const dispatching = () => isRunning() && !isStale() && !d.stopping.aborted && !rebalance.signal.aborted && failure === undefined;
  try {
    await d.beforeBatch?.(topic, partition, msgs[0]!.offset, beat);
  } catch (err) {
    // Nothing is in flight yet. A rebalance, or a failed check kafkajs will fetch the batch again for.
    if (err instanceof FatalError) d.onFatal(err);
    else if (err !== heartbeatError) d.log.warn({ topic, partition, err: describeError(err) }, 'check before the batch failed; it is fetched again');
    throw err;
  }
  try {
    for (const [i, m] of msgs.entries()) {
      if (!dispatching()) break;
      while (inFlight.size >= d.limit) await Promise.race(inFlight);
      if (!dispatching()) break;
      const h: Promise<void> = d.handler
        .handle(m, { topic, partition, offset: m.offset }, beat, rebalance.signal)
        .then(
          (r) => {
            window.finish(i);
            d.metrics.messagesConsumed.inc({ result: r.kind });
          },
          (err: unknown) => {
            if (!(err instanceof AbortedError)) failure ??= err;
          },
        )
        .finally(() => inFlight.delete(h));
      inFlight.add(h);
      await commitFinished(false);
      await beat().catch(() => undefined);
    }
  } catch (err) {
    if (err !== heartbeatError) failure ??= err;
  }
  await Promise.all(inFlight);
  await commitFinished(true);
  if (window.finishedCount === msgs.length && failure === undefined && heartbeatError === undefined && lastCommitOk) {
    // Every message is handled: commit past what follows the last one in this batch too — the
    // marker that ends a transaction, records of an aborted one. kafkajs fetches on from past
    // them and never hands them over, so nothing else would ever commit them.
    const end = (BigInt(b.lastOffset()) + 1n).toString();
    if (BigInt(end) > BigInt(msgs.at(-1)!.offset) + 1n) {
      try {
        await commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition, offset: end }] }] });
        d.onCommitted?.(partition, end);
        d.handler.committed(partition, end);
      } catch (err) {
        d.log.warn({ topic, partition, offset: end, err: describeError(err) }, 'commit past the batch end failed; its last records are fetched again');
      }
    }
  }
  if (failure !== undefined && !(failure instanceof AbortedError)) {
    // Nothing is skipped: the message is redelivered to the restarted process.
    d.onFatal(failure);
    throw failure;
  }
  if (heartbeatError !== undefined) {
    d.log.info(
      { topic, partition, committed: lastCommitOk, err: describeError(heartbeatError) },
      lastCommitOk
        ? 'rebalance: stopped dispatching, drained and committed this batch'
        : 'rebalance: stopped dispatching and drained this batch; its commit failed',
    );
    throw heartbeatError;
  }
}
