import * as k8s from '@kubernetes/client-node';
import { describeError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';

/** What an informer is built on: JobWatch, or a fake in unit tests. It emits `connect` once its watch is open. */
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

/**
 * The part of a Job the controller reads: its identity, labels and annotations (the message's
 * coordinates), whether it is suspended (Kueue), and its status. The pod template and
 * managedFields — most of a Job's bytes — are dropped, so what the controller keeps per live
 * Job is a few hundred bytes, not a whole object graph (a heap snapshot at 10,000 messages
 * found client-node's ListWatch cache holding full Jobs: 100 MB of heap at 2,700 live Jobs).
 */
export function slimJob(job: k8s.V1Job): k8s.V1Job {
  const m = job.metadata ?? {};
  return {
    apiVersion: job.apiVersion,
    kind: job.kind,
    metadata: {
      name: m.name,
      namespace: m.namespace,
      uid: m.uid,
      resourceVersion: m.resourceVersion,
      creationTimestamp: m.creationTimestamp,
      deletionTimestamp: m.deletionTimestamp,
      labels: m.labels,
      annotations: m.annotations,
    },
    spec: { suspend: job.spec?.suspend, template: {} },
    status: job.status,
  };
}

type WatchFn = Pick<k8s.Watch, 'watch'>['watch'];

/**
 * List, then watch from the list's resourceVersion; hands out slim Jobs and keeps only their
 * names (to tell, after a re-list, which were deleted meanwhile). Unlike client-node's
 * ListWatch it caches no objects: the slots and the reporter keep what they need. A watch the
 * server ends is resumed from the last resourceVersion (bookmarks keep it fresh); 410 Gone
 * re-lists; any other failure is an `error` for JobInformer, which restarts with a re-list.
 */
export class JobWatch implements InformerSource<k8s.V1Job> {
  private readonly cbs = { add: [], update: [], delete: [], connect: [], error: [] } as Record<string, ((x?: unknown) => void)[]>;
  private names = new Set<string>();
  private rv = '';
  private request?: AbortController;
  private stopped = false;
  /** Each watch's callbacks carry the generation they belong to: a replaced watch's end is ignored. */
  private generation = 0;
  /** An ERROR event (other than 410) the watch sent before it ended: the end is a failure then. */
  private errorEvent?: Error & { statusCode?: number; code?: number };

  constructor(
    private readonly o: {
      watch: WatchFn;
      path: string;
      namespace: string;
      labelSelector: string;
      list: () => Promise<k8s.V1Job[] | { items: k8s.V1Job[]; metadata?: { resourceVersion?: string } }>;
    },
  ) {}

  on(event: 'add' | 'update' | 'delete', cb: (obj: k8s.V1Job) => void): void;
  on(event: 'connect', cb: () => void): void;
  on(event: 'error', cb: (err: unknown) => void): void;
  on(event: string, cb: (x: never) => void): void {
    this.cbs[event]!.push(cb as (x?: unknown) => void);
  }

  private emit(event: string, x?: unknown): void {
    for (const cb of this.cbs[event]!) cb(x);
  }

  async start(): Promise<void> {
    this.stopped = false;
    this.rv = '';
    await this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.generation++;
    this.request?.abort();
    this.request = undefined;
  }

  private async run(): Promise<void> {
    const gen = ++this.generation;
    this.errorEvent = undefined;
    this.request?.abort();
    if (!this.rv) {
      const listed = await this.o.list();
      const list = Array.isArray(listed) ? { items: listed, metadata: {} } : listed;
      if (gen !== this.generation) return;
      const now = new Set<string>();
      for (const j of list.items) {
        const name = j.metadata?.name ?? '';
        now.add(name);
        this.emit(this.names.has(name) ? 'update' : 'add', slimJob(j));
      }
      for (const name of this.names) if (!now.has(name)) this.emit('delete', { metadata: { name, namespace: this.o.namespace } });
      this.names = now;
      this.rv = list.metadata?.resourceVersion ?? '';
    }
    let endedGen = -1;
    const request = await this.o.watch(
      this.o.path,
      { resourceVersion: this.rv, labelSelector: this.o.labelSelector, allowWatchBookmarks: true },
      (phase, obj: k8s.V1Job & { code?: number }) => {
        if (gen === this.generation) this.event(phase, obj);
      },
      (err: { statusCode?: number; code?: number } | null) => {
        endedGen = gen;
        if (gen === this.generation && !this.stopped) this.ended(err);
      },
    );
    // client-node ends a watch the server refused (403, 5xx) before handing it back: no `connect` then.
    if (gen !== this.generation || endedGen === gen) request.abort();
    else {
      this.request = request;
      this.emit('connect');
    }
  }

  private event(phase: string, obj: k8s.V1Job & { code?: number; reason?: string; message?: string }): void {
    if (phase === 'ERROR') {
      // 410 Gone: the resourceVersion is too old; the watch ends and the next run re-lists.
      if (obj.code === 410) this.rv = '';
      // Any other ERROR is a failure: said, and restarted after a pause, not resumed at once in a loop.
      else
        this.errorEvent ??= Object.assign(new Error(`watch ERROR event: ${obj.code ?? '?'} ${obj.reason ?? ''}: ${obj.message ?? ''}`), {
          statusCode: obj.code,
        });
      return;
    }
    const name = obj.metadata?.name ?? '';
    if (phase === 'ADDED' || phase === 'MODIFIED') {
      this.names.add(name);
      this.emit(phase === 'ADDED' ? 'add' : 'update', slimJob(obj));
    } else if (phase === 'DELETED') {
      this.names.delete(name);
      this.emit('delete', slimJob(obj));
    }
    this.rv = obj.metadata?.resourceVersion ?? this.rv;
  }

  private ended(ended: { statusCode?: number; code?: number } | null): void {
    this.request = undefined;
    const err = ended ?? this.errorEvent ?? null;
    this.errorEvent = undefined;
    if (err && (err.statusCode === 410 || err.code === 410)) this.rv = '';
    else if (err) return this.emit('error', err);
    this.run().catch((e: unknown) => this.emit('error', e));
  }
}

/**
 * An informer source on the Jobs of `namespace` that match `labelSelector`, handing out slim
 * Jobs: watched with `watch` (the Job client's protobuf watch) where given, else with
 * client-node's JSON watch.
 */
export function jobListWatch(
  kc: k8s.KubeConfig,
  list: () => Promise<{ items: k8s.V1Job[]; metadata?: { resourceVersion?: string } }>,
  namespace: string,
  labelSelector: string,
  watch?: WatchFn,
): InformerSource<k8s.V1Job> {
  if (!watch) {
    const json = new k8s.Watch(kc);
    watch = (...a) => json.watch(...a);
  }
  return new JobWatch({
    watch,
    path: `/apis/batch/v1/namespaces/${namespace}/jobs`,
    namespace,
    labelSelector,
    list,
  });
}
