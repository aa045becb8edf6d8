import * as k8s from '@kubernetes/client-node';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { sleep } from './wait.js';

export function isFinished(job: k8s.V1Job): boolean {
  return (job.status?.conditions ?? []).some((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
}

export interface JobWatchOptions {
  kc: k8s.KubeConfig;
  namespace: string;
  labelSelector: string;
  cap: number;
  log: Logger;
  metrics?: Metrics;
  /** Called once per Job that reaches Complete or Failed. */
  onFinished?: (job: k8s.V1Job) => void;
  /** Re-list this often even if the watch looks healthy: watches can go silent. */
  resyncMs?: number;
}

/**
 * Knows how many of the controller's Jobs are active, from an informer on its own label
 * selector (so a restarted controller learns it from the cluster, not from memory), plus the
 * Jobs it has just created that the watch has not shown yet. `acquire()` waits for a free slot
 * under the cap; a slot is released when the Job finishes or is deleted.
 */
export class ActiveJobs {
  private informer?: k8s.ListWatch<k8s.V1Job>;
  private readonly active = new Set<string>();
  private readonly finished = new Set<string>();
  /** Created by us and not yet seen by the informer, with when: a slot is held for them. */
  private readonly pending = new Map<string, number>();
  private reserved = 0;
  private waiters: (() => void)[] = [];
  private stopped = false;
  /** The watch is connected: the API server answers (for /readyz). */
  healthy = false;
  private resync?: NodeJS.Timeout;
  private readyResolve!: () => void;
  readonly ready = new Promise<void>((r) => (this.readyResolve = r));

  private readonly batch: k8s.BatchV1Api;

  constructor(private readonly o: JobWatchOptions) {
    this.batch = o.kc.makeApiClient(k8s.BatchV1Api);
  }

  get count(): number {
    let n = this.active.size + this.reserved;
    for (const p of this.pending.keys()) if (!this.active.has(p) && !this.finished.has(p)) n++;
    return n;
  }

  async start(): Promise<void> {
    const { batch } = this;
    const { namespace, labelSelector } = this.o;
    const informer = new k8s.ListWatch<k8s.V1Job>(
      `/apis/batch/v1/namespaces/${namespace}/jobs`,
      new k8s.Watch(this.o.kc),
      () => batch.listNamespacedJob({ namespace, labelSelector }),
      false,
      labelSelector,
    );
    const seen = (job: k8s.V1Job) => this.observe(job);
    informer.on('add', seen);
    informer.on('update', seen);
    informer.on('delete', (job) => this.forget(job.metadata?.name ?? ''));
    informer.on('connect', () => {
      this.healthy = true;
      this.readyResolve();
    });
    // client-node re-lists after 410 Gone only; any other error ends the informer.
    informer.on('error', (err) => {
      this.healthy = false;
      this.o.log.warn({ err: String(err) }, 'job watch failed; restarting');
      if (!this.stopped) setTimeout(() => void this.restart(), 1000);
    });
    this.informer = informer;
    await this.restart();
    this.resync = setInterval(() => void this.relist(), this.o.resyncMs ?? 60_000);
  }

  private async restart(): Promise<void> {
    if (this.stopped || !this.informer) return;
    try {
      await this.informer.start();
      this.healthy = true;
      this.readyResolve();
    } catch (err) {
      this.healthy = false;
      this.o.log.warn({ err: String(err) }, 'job list failed; retrying');
      await sleep(2000);
      if (!this.stopped) void this.restart();
    }
  }

  /** A full list, to correct any drift a silent watch left behind. */
  private async relist(): Promise<void> {
    try {
      const list = await this.batch.listNamespacedJob({ namespace: this.o.namespace, labelSelector: this.o.labelSelector });
      const names = new Set(list.items.map((j) => j.metadata?.name ?? ''));
      for (const j of list.items) this.observe(j);
      for (const n of [...this.active]) if (!names.has(n)) this.forget(n);
      // A Job deleted before the watch showed it would hold its slot for ever.
      const stale = Date.now() - 30_000;
      for (const [n, at] of [...this.pending]) if (at < stale && !names.has(n)) this.pending.delete(n);
      this.changed();
    } catch {
      /* next resync */
    }
  }

  private observe(job: k8s.V1Job): void {
    const name = job.metadata?.name ?? '';
    if (isFinished(job)) {
      const wasKnown = this.active.delete(name) || this.pending.has(name) || !this.finished.has(name);
      this.pending.delete(name);
      if (!this.finished.has(name)) {
        this.finished.add(name);
        if (wasKnown) this.o.onFinished?.(job);
      }
    } else if (!this.finished.has(name)) {
      this.active.add(name);
      this.pending.delete(name);
    }
    this.changed();
  }

  private forget(name: string): void {
    this.active.delete(name);
    this.pending.delete(name);
    this.finished.delete(name);
    this.changed();
  }

  private changed(): void {
    this.o.metrics?.activeJobs.set(this.count);
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
    if (this.o.cap > 0) {
      let paused = false;
      while (this.count >= this.o.cap) {
        if (signal?.aborted) return false;
        if (!paused) {
          paused = true;
          this.o.metrics?.paused.set(1);
          this.o.log.info({ active: this.count, cap: this.o.cap }, 'active job cap reached; waiting');
        }
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
        await heartbeat?.().catch(() => undefined);
      }
      if (paused) this.o.metrics?.paused.set(0);
    }
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
    if (name && !alreadyFinished && !this.active.has(name) && !this.finished.has(name)) this.pending.set(name, Date.now());
    this.changed();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resync) clearInterval(this.resync);
    await this.informer?.stop();
    this.changed();
  }
}
