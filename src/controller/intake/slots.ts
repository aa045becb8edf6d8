import type * as k8s from '@kubernetes/client-node';
import { isFinished } from '../../shared/contract/identity.js';
import type { Logger } from '../../shared/logger.js';
import { isHeldByKueue } from '../jobs/kueue.js';
import type { Pauses } from '../reporting/metrics.js';

export interface SlotOptions {
  /** Most unfinished Jobs at once; 0 = no cap. */
  cap: number;
  /**
   * With Kueue (undefined: without): most Jobs Kueue holds suspended at once, 0 = no cap. New
   * Jobs are born suspended then, so creates in flight count here, not against `cap`.
   */
  queuedCap?: number;
  log: Logger;
  pauses?: Pauses;
  onCount?: (n: number) => void;
  onQueued?: (n: number) => void;
  /** Called once per Job seen to reach Complete or Failed. */
  onFinished?: (job: k8s.V1Job) => void;
  now?: () => number;
  /** A Job created but never seen by the watch stops holding its slot after this long. */
  pendingTtlMs?: number;
}

/**
 * Counts the controller's unfinished Jobs for the active-Job cap: the Jobs its watch shows
 * (so a restarted controller learns them from the cluster, not from memory), plus the Jobs it
 * has just created that the watch has not shown yet, plus the creates in flight. `acquire()`
 * waits for a free slot; a slot is released when the Job finishes or is deleted. Fed by the
 * Job informer; knows nothing of the API server.
 */
export class ActiveJobSlots {
  private readonly active = new Set<string>();
  /** Held suspended by Kueue: they run nothing, so they hold no active slot. */
  private readonly queued = new Set<string>();
  private readonly finished = new Set<string>();
  /** Created by us and not yet seen by the watch, with when: a slot is held for them. */
  private readonly pending = new Map<string, number>();
  private reserved = 0;
  private waiters: (() => void)[] = [];
  /** Acquirers waiting at the cap: consumption is paused while there is one. */
  private atCap = 0;

  constructor(private readonly o: SlotOptions) {}

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  private get kueue(): boolean {
    return this.o.queuedCap !== undefined;
  }

  /**
   * Reservations and created Jobs the watch has not shown yet. O(1): read on every change (the
   * gauges), so a scan of `pending` made it quadratic in a backlog (3 % of the controller's CPU
   * in a profile). A name is never both pending and active, queued or finished: `settle` adds
   * only names the watch has not shown, `observe` and `forget` remove the name from `pending`
   * whenever they add or drop it elsewhere.
   */
  private get unseen(): number {
    return this.reserved + this.pending.size;
  }

  /** Active Jobs (running or about to). */
  get count(): number {
    return this.active.size + (this.kueue ? 0 : this.unseen);
  }

  /** Jobs Kueue holds suspended, and, with Kueue, the ones about to be (created suspended). */
  get queuedCount(): number {
    return this.queued.size + (this.kueue ? this.unseen : 0);
  }

  private full(): boolean {
    const q = this.o.queuedCap ?? 0;
    return (this.o.cap > 0 && this.count >= this.o.cap) || (q > 0 && this.queuedCount >= q);
  }

  /** A Job as the watch shows it (added or updated). */
  observe(job: k8s.V1Job): void {
    const name = job.metadata?.name ?? '';
    if (isFinished(job)) {
      const wasKnown = this.active.delete(name) || this.queued.delete(name) || this.pending.has(name) || !this.finished.has(name);
      this.pending.delete(name);
      if (!this.finished.has(name)) {
        this.finished.add(name);
        if (wasKnown) this.o.onFinished?.(job);
      }
    } else if (!this.finished.has(name)) {
      const held = this.kueue && isHeldByKueue(job);
      (held ? this.queued : this.active).add(name);
      (held ? this.active : this.queued).delete(name);
      this.pending.delete(name);
    }
    this.changed();
  }

  /** A Job deleted (or no longer matching the selector). */
  forget(name: string): void {
    this.active.delete(name);
    this.queued.delete(name);
    this.pending.delete(name);
    this.finished.delete(name);
    this.changed();
  }

  /** A full list: whatever it lacks is gone; a pending Job deleted before the watch showed it would hold its slot for ever. */
  reconcile(all: k8s.V1Job[]): void {
    const names = new Set(all.map((j) => j.metadata?.name ?? ''));
    for (const j of all) this.observe(j);
    for (const n of [...this.active, ...this.queued]) if (!names.has(n)) this.forget(n);
    const stale = this.now() - (this.o.pendingTtlMs ?? 30_000);
    for (const [n, at] of [...this.pending]) if (at < stale && !names.has(n)) this.pending.delete(n);
    this.changed();
  }

  private changed(): void {
    this.o.onCount?.(this.count);
    this.o.onQueued?.(this.queuedCount);
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /**
   * Waits for a slot under the cap (no cap when 0); false if `signal` fired first. `heartbeat`
   * runs while waiting: a consumer that stops heartbeating is evicted from its group and its
   * messages are redelivered.
   */
  async acquire(signal?: AbortSignal, heartbeat?: () => Promise<void>): Promise<boolean> {
    if (this.full()) {
      if (++this.atCap === 1) {
        this.o.pauses?.set('cap', true);
        this.o.log.info({ active: this.count, cap: this.o.cap, queued: this.queuedCount, queuedCap: this.o.queuedCap }, 'active job cap reached; waiting');
      }
      try {
        while (this.full()) {
          if (signal?.aborted) return false;
          await new Promise<void>((resolve) => {
            const done = () => {
              clearTimeout(timer);
              signal?.removeEventListener('abort', done);
              resolve();
            };
            const timer = setTimeout(done, 1000);
            this.waiters.push(done);
            signal?.addEventListener('abort', done, { once: true });
          });
          // A failed heartbeat (a rebalance) is seen by whoever passed it in; waiting goes on until its signal fires.
          await heartbeat?.().catch(() => undefined);
        }
      } finally {
        if (--this.atCap === 0) this.o.pauses?.set('cap', false);
      }
    }
    if (signal?.aborted) return false;
    this.reserved++;
    this.changed();
    return true;
  }

  /**
   * Turns a reservation into a Job that holds a slot until the watch shows it finish, or gives
   * it back: nothing was created, or the Job existed already and had finished (a redelivery).
   */
  settle(name: string | undefined, alreadyFinished = false): void {
    this.reserved = Math.max(0, this.reserved - 1);
    if (name && !alreadyFinished && !this.active.has(name) && !this.queued.has(name) && !this.finished.has(name)) this.pending.set(name, this.now());
    this.changed();
  }

  /** Wakes every waiter (shutdown). */
  wake(): void {
    this.changed();
  }
}
