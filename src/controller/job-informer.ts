import * as k8s from '@kubernetes/client-node';
import { describeError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';

/** What an informer is built on: client-node's ListWatch, or a fake in unit tests. */
export interface InformerSource<T> {
  on(event: 'add' | 'update' | 'delete', cb: (obj: T) => void): void;
  on(event: 'connect', cb: () => void): void;
  on(event: 'error', cb: (err: unknown) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface InformerHandlers<T> {
  upsert(obj: T): void;
  remove(obj: T): void;
  /** A full list: correct whatever drift a silent watch left behind. */
  relisted(all: T[]): void;
}

export interface JobInformerOptions<T> {
  source: InformerSource<T>;
  list: () => Promise<T[]>;
  handlers: InformerHandlers<T>;
  log: Logger;
  /** Re-list this often even if the watch looks healthy: watches can go silent. */
  resyncMs?: number;
  /** Wait this long before restarting after an error. */
  restartMs?: number;
}

/**
 * A watch that keeps itself alive. client-node's informer re-lists after 410 Gone only; any
 * other error ends it, and watches can also go silent with no error at all (client-node
 * #364, #596, #958). So: restart after every error, and re-list on a timer.
 */
export class JobInformer<T> {
  /** The watch is connected: the API server answers (for /readyz). */
  healthy = false;
  private stopped = false;
  private resync?: NodeJS.Timeout;
  private readyResolve!: () => void;
  readonly ready = new Promise<void>((r) => (this.readyResolve = r));

  constructor(private readonly o: JobInformerOptions<T>) {
    const { source, handlers } = o;
    source.on('add', (obj) => handlers.upsert(obj));
    source.on('update', (obj) => handlers.upsert(obj));
    source.on('delete', (obj) => handlers.remove(obj));
    source.on('connect', () => this.connected());
    source.on('error', (err) => {
      this.healthy = false;
      o.log.warn({ err: describeError(err) }, 'job watch failed; restarting');
      if (!this.stopped) setTimeout(() => void this.restart(), o.restartMs ?? 1000);
    });
  }

  async start(): Promise<void> {
    await this.restart();
    this.resync = setInterval(() => void this.relist(), this.o.resyncMs ?? 60_000);
  }

  private connected(): void {
    this.healthy = true;
    this.readyResolve();
  }

  private async restart(): Promise<void> {
    if (this.stopped) return;
    try {
      await this.o.source.start();
      this.connected();
    } catch (err) {
      this.healthy = false;
      this.o.log.warn({ err: describeError(err) }, 'job list failed; retrying');
      if (!this.stopped) setTimeout(() => void this.restart(), (this.o.restartMs ?? 1000) * 2);
    }
  }

  /** A full list, outside the watch; a failure waits for the next resync. */
  async relist(): Promise<void> {
    try {
      this.o.handlers.relisted(await this.o.list());
    } catch (err) {
      this.o.log.debug({ err: describeError(err) }, 'job resync failed; the next one retries');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resync) clearInterval(this.resync);
    await this.o.source.stop();
  }
}

/** An informer source on the Jobs of `namespace` that match `labelSelector`. */
export function jobListWatch(kc: k8s.KubeConfig, batch: k8s.BatchV1Api, namespace: string, labelSelector: string): InformerSource<k8s.V1Job> {
  return new k8s.ListWatch<k8s.V1Job>(
    `/apis/batch/v1/namespaces/${namespace}/jobs`,
    new k8s.Watch(kc),
    () => batch.listNamespacedJob({ namespace, labelSelector }),
    false,
    labelSelector,
  ) as unknown as InformerSource<k8s.V1Job>;
}
