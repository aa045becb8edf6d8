import { describeError, FatalError, isUndecodable } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';

/** What became of a consumer crash kafkajs reported (see Lifecycle.consumerCrashed). */
export type CrashVerdict = 'restarting' | 'expected' | 'fatal' | 'undecodable';

/**
 * The controller's state between start and exit, and the three ways out of it, each a named
 * method: `crash` (the controller cannot go on: `done` rejects, the process exits non-zero),
 * `drain` (stop taking messages, let the batches in flight finish and commit) and `shutdown`
 * (drain, then close every client in order; `done` resolves). No I/O of its own: what to close
 * is passed to `shutdown`, so a unit test drives every path.
 */
export class Lifecycle {
  /** Aborted when a stop begins: handlers stop waiting for slots and take no new message. */
  readonly stopping = new AbortController();
  /** Resolves after a shutdown; rejects with a FatalError when the controller cannot go on. */
  readonly done: Promise<void>;
  private fatalError: FatalError | undefined;
  private joined = false;
  private stopRequested = false;
  private readonly batches = new Set<Promise<void>>();
  private stopped: Promise<void> | undefined;
  private resolveDone!: () => void;
  private rejectDone!: (err: FatalError) => void;

  constructor(
    private readonly log: Logger,
    /** Told once, with the reason, when the controller crashes (an Event on its Pod). */
    private readonly onCrash: (reason: string) => void = () => undefined,
  ) {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // Whoever awaits `done` sees the rejection; an unobserved one must not end the process early.
    this.done.catch(() => undefined);
  }

  /** The controller cannot go on: say why once, and reject `done` so the process exits non-zero. */
  crash(err: unknown): void {
    if (this.fatalError) return;
    this.fatalError = err instanceof FatalError ? err : new FatalError(describeError(err), { cause: err });
    this.log.fatal({ err: describeError(this.fatalError) }, 'controller cannot go on; exiting');
    this.onCrash(describeError(this.fatalError));
    this.rejectDone(this.fatalError);
  }

  /** Why the controller crashed, if it did. */
  get crashed(): FatalError | undefined {
    return this.fatalError;
  }

  /** For kafkajs' restartOnFailure: a consumer that crashed on something judged fatal stays down. */
  mayRestartConsumer(): boolean {
    return this.fatalError === undefined;
  }

  /** Runs one batch, tracked so a drain can wait for it; refused once the controller crashed. */
  track(batch: () => Promise<void>): Promise<void> {
    if (this.fatalError) return Promise.reject(this.fatalError);
    const p = batch().finally(() => this.batches.delete(p));
    this.batches.add(p);
    return p;
  }

  /** Batches in flight. */
  get inFlight(): number {
    return this.batches.size;
  }

  joinedGroup(): void {
    this.joined = true;
  }

  leftGroup(): void {
    this.joined = false;
  }

  /** In the group, the Job watch healthy, not crashed (for /readyz). */
  ready(watchHealthy: boolean): boolean {
    return this.joined && watchHealthy && !this.fatalError;
  }

  /** False once the process is about to exit non-zero (for /healthz). */
  live(): boolean {
    return !this.fatalError;
  }

  /**
   * What a consumer CRASH means. kafkajs disconnects before it emits CRASH and restarts on most:
   * only one it will not restart from, outside a stop, is final — and it must end the process,
   * not leave it idle. An undecodable record is final too, but its caller first dead-letters it.
   */
  consumerCrashed(error: unknown, restart: boolean): CrashVerdict {
    this.joined = false;
    if (restart && !this.stopRequested && !this.fatalError) return 'restarting';
    if (restart || this.stopRequested || this.fatalError) return 'expected';
    return isUndecodable(error) ? 'undecodable' : 'fatal';
  }

  /**
   * Stop taking new messages and wait for the batches in flight: each commits what exists before
   * it settles. Must run while the consumer still runs: after consumer.stop() kafkajs drops commits.
   */
  async drain(wake: () => void = () => undefined): Promise<void> {
    this.stopRequested = true;
    this.log.info({ batches: this.batches.size }, 'stopping: no new messages; finishing and committing the ones in flight');
    this.stopping.abort();
    wake();
    await Promise.allSettled([...this.batches]);
  }

  /**
   * A graceful stop, once however often it is asked for: drain, then run each `close` step in
   * order (the consumer first), then resolve `done`. A step that fails is logged and the rest run.
   */
  shutdown(close: readonly (readonly [string, () => unknown])[], wake?: () => void): Promise<void> {
    this.stopped ??= (async () => {
      await this.drain(wake);
      for (const [what, step] of close) {
        try {
          await step();
        } catch (err) {
          this.log.warn({ step: what, err: describeError(err) }, 'a shutdown step failed');
        }
      }
      this.log.info({}, 'stopped');
      this.resolveDone();
    })();
    return this.stopped;
  }
}
