/**
 * One fetched batch of a partition, in offset order, and which of its messages are finished
 * (their Job or dead-letter record exists). Messages finish in any order — up to MAX_IN_FLIGHT
 * run at once — but the committed offset only ever moves past a contiguous run of finished
 * messages, so a crash at any moment redelivers every message whose Job may not exist, and
 * none is skipped. Commits are batched (every `every` messages or `intervalMs`) unless forced.
 * Pure: the clock is passed in.
 */
export class CommitWindow {
  private readonly done: boolean[];
  /** Messages [0, finished) are finished. */
  private finished = 0;
  /** Messages [0, handedOut) have been handed out for commit. */
  private handedOut = 0;
  private lastCommitAt: number;

  constructor(
    private readonly offsets: readonly string[],
    private readonly o: { every: number; intervalMs: number; now: () => number },
  ) {
    this.done = new Array<boolean>(offsets.length).fill(false);
    this.lastCommitAt = o.now();
  }

  /** The message at `index` has its Job or dead-letter record. */
  finish(index: number): void {
    if (index < 0 || index >= this.offsets.length) throw new RangeError(`no message at index ${index} of ${this.offsets.length}`);
    this.done[index] = true;
    while (this.finished < this.offsets.length && this.done[this.finished]) this.finished++;
  }

  /**
   * The offset to commit now — one past the last message of the finished run, as Kafka wants
   * it — or undefined when nothing new is finished or (unless `force`) the batch is not big or
   * old enough yet. A handed-out offset counts as committed for what follows.
   */
  take(force = false): { next: string; last: string } | undefined {
    if (this.finished === this.handedOut) return undefined;
    const unhanded = this.finished - this.handedOut;
    if (!force && unhanded < this.o.every && this.o.now() - this.lastCommitAt < this.o.intervalMs) return undefined;
    this.handedOut = this.finished;
    this.lastCommitAt = this.o.now();
    const last = this.offsets[this.finished - 1]!;
    return { last, next: (BigInt(last) + 1n).toString() };
  }

  /** How many messages at the start of the batch are finished. */
  get finishedCount(): number {
    return this.finished;
  }
}
