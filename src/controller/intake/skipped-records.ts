import { describeError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';

/** The fields of kafkajs' END_BATCH_PROCESS event this needs. */
export interface BatchEnd {
  topic: string;
  partition: number;
  /** Messages handed to eachBatch: 0 for a batch of only skipped records. */
  batchSize: number;
  /** The batch's first and last offsets at or past the fetch offset, skipped records included (null first: none). */
  firstOffset: string | null;
  lastOffset: string;
}

/**
 * Commits past the records a read_committed consumer never hands over: those of aborted
 * transactions and the transaction markers. kafkajs skips a fetched batch made only of them
 * without calling eachBatch and, with autoCommit off, without committing, so a partition whose
 * tail is such records keeps its committed offset behind its end for ever (consumer_lag never
 * reaches 0, and every restart fetches them again). Such a batch is only fetched once every
 * message before it on the partition was handled (kafkajs fetches a partition's next batch
 * after eachBatch returned), so committing past it skips nothing. Commits of one partition go
 * in order, and never below what this process already committed.
 */
export class SkippedRecords {
  private readonly chains = new Map<number, Promise<void>>();

  constructor(
    private readonly o: {
      topic: string;
      commit: (partition: number, next: string) => Promise<void>;
      knownCommitted: (partition: number) => bigint | undefined;
      log: Logger;
    },
  ) {}

  batchEnded(e: BatchEnd): void {
    // No first offset: nothing at or past the fetch offset came back (kafkajs then reports the fetch offset as last).
    if (e.topic !== this.o.topic || e.batchSize !== 0 || e.firstOffset === null) return;
    const next = BigInt(e.lastOffset) + 1n;
    const chain = (this.chains.get(e.partition) ?? Promise.resolve()).then(async () => {
      if ((this.o.knownCommitted(e.partition) ?? -1n) >= next) return;
      try {
        await this.o.commit(e.partition, next.toString());
        this.o.log.debug({ topic: e.topic, partition: e.partition, offset: next.toString() }, 'committed past skipped records');
      } catch (err) {
        // Nothing is lost: the records are skipped again on the next fetch from the committed offset.
        this.o.log.warn({ topic: e.topic, partition: e.partition, offset: next.toString(), err: describeError(err) }, 'commit past skipped records failed');
      }
    });
    this.chains.set(e.partition, chain);
  }

  /** Resolves once every commit asked for so far is done (for a graceful stop and for tests). */
  async settled(): Promise<void> {
    await Promise.all(this.chains.values());
  }
}
