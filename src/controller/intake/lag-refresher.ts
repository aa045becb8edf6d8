import type { Gauge } from 'prom-client';
import { describeError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';

/** What the refresher reads and writes; all of it passed in, so a test drives it without Kafka. */
export interface LagRefresherDeps {
  topic: string;
  /** The topic's end offsets per partition (kafkajs admin `fetchTopicOffsets`). */
  endOffsets: () => Promise<{ partition: number; high: string; low: string }[]>;
  /** The next offset this process knows committed, per partition (undefined: none). */
  committed: (partition: number) => bigint | undefined;
  lag: Pick<Gauge<'topic' | 'partition'>, 'set' | 'remove'>;
  committedOffset: Pick<Gauge<'topic' | 'partition'>, 'remove'>;
  /** Counts a failed refresh (it is tried again on the next tick). */
  onError: () => void;
  log: Logger;
}

/**
 * Keeps `consumer_lag` current for the partitions this process holds. The batch loop sets it
 * only after a commit, so a consumer that stopped fetching would freeze it and the stall alert
 * could never fire; this refresh reads the end offsets on a timer instead. A partition's
 * series are removed when it is revoked, so another replica's alerts are not shadowed by a
 * frozen copy. A failed refresh is counted and logged, never thrown.
 */
export class LagRefresher {
  private held = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(private readonly d: LagRefresherDeps) {}

  /** The group assigned `partitions` of the topic (kafkajs GROUP_JOIN); the rest are revoked. */
  assigned(partitions: readonly number[]): void {
    const now = new Set(partitions);
    for (const p of this.held) if (!now.has(p)) this.forget(p);
    this.held = now;
  }

  /** Refreshes once; a refresh already running is joined, not doubled. */
  refresh(): Promise<void> {
    this.running ??= this.refreshOnce().finally(() => (this.running = undefined));
    return this.running;
  }

  /** Refreshes every `intervalMs` until `stop()`; the timer does not keep the process alive. */
  start(intervalMs: number): void {
    this.timer ??= setInterval(() => void this.refresh(), intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private forget(partition: number): void {
    const labels = { topic: this.d.topic, partition: String(partition) };
    this.d.lag.remove(labels);
    this.d.committedOffset.remove(labels);
  }

  private async refreshOnce(): Promise<void> {
    if (this.held.size === 0) return;
    try {
      const ends = await this.d.endOffsets();
      for (const e of ends) {
        // Revoked while the call was out: its series stay removed.
        if (!this.held.has(e.partition)) continue;
        const high = BigInt(e.high);
        // Nothing committed yet: the group starts at the log start (fromBeginning).
        const from = this.d.committed(e.partition) ?? BigInt(e.low);
        const lag = high > from ? high - from : 0n;
        this.d.lag.set({ topic: this.d.topic, partition: String(e.partition) }, Number(lag));
      }
    } catch (err) {
      this.d.onError();
      this.d.log.warn({ topic: this.d.topic, err: describeError(err) }, 'refreshing the consumer lag failed; tried again on the next tick');
    }
  }
}
