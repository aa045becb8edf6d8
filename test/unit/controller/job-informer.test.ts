import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import pino from 'pino';
import type * as k8s from '@kubernetes/client-node';
import { JobInformer, JobWatch, slimJob, type InformerSource } from '../../../src/controller/kube/job-informer.js';
import { waitFor } from '../../../src/shared/wait.js';

/** An event source a test drives: what client-node's ListWatch emits, without an API server. */
class FakeSource extends EventEmitter implements InformerSource<string> {
  starts = 0;
  failStarts = 0;
  stopped = false;
  async start(): Promise<void> {
    this.starts++;
    if (this.failStarts > 0) {
      this.failStarts--;
      throw new Error('list failed');
    }
    this.emit('connect');
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
}

const log = pino({ level: 'silent' });

function informer(source: FakeSource, list: () => Promise<string[]> = async () => []) {
  const seen: string[] = [];
  const inf = new JobInformer<string>({
    source,
    list,
    handlers: { upsert: (j) => seen.push(`+${j}`), remove: (j) => seen.push(`-${j}`), relisted: (all) => seen.push(`=${all.join(',')}`) },
    log,
    restartMs: 5,
    resyncMs: 20,
  });
  return { inf, seen };
}

describe('JobInformer', () => {
  it('passes adds, updates and deletes on to its handlers and is healthy once connected', async () => {
    const src = new FakeSource();
    const { inf, seen } = informer(src);
    await inf.start();
    await inf.ready;
    src.emit('add', 'a');
    src.emit('update', 'a');
    src.emit('delete', 'a');
    assert.deepEqual(seen.slice(0, 3), ['+a', '+a', '-a']);
    assert.equal(inf.healthy, true);
    await inf.stop();
    assert.equal(src.stopped, true);
  });

  it('restarts itself after a watch error, which client-node does not do', async () => {
    const src = new FakeSource();
    const { inf } = informer(src);
    await inf.start();
    src.emit('error', new Error('watch closed'));
    assert.equal(inf.healthy, false);
    await waitFor(() => src.starts === 2 && inf.healthy, { timeoutMs: 2000, description: 'a restart' });
    await inf.stop();
  });

  it('keeps retrying a failed first list until it succeeds', async () => {
    const src = new FakeSource();
    src.failStarts = 2;
    const { inf } = informer(src);
    await inf.start();
    await waitFor(() => inf.healthy, { timeoutMs: 2000, description: 'the list to succeed' });
    assert.equal(src.starts, 3);
    await inf.stop();
  });

  it('re-lists on a timer even when the watch says nothing, and survives a failed re-list', async () => {
    const src = new FakeSource();
    let calls = 0;
    const { inf, seen } = informer(src, async () => {
      calls++;
      if (calls === 1) throw new Error('apiserver down');
      return ['x', 'y'];
    });
    await inf.start();
    await waitFor(() => seen.includes('=x,y'), { timeoutMs: 2000, description: 'a resync' });
    await inf.stop();
  });
});

/** A scripted stand-in for client-node's Watch.watch: records each call; the test plays the server. */
class ScriptedWatch {
  calls: { query: Record<string, unknown>; event: (phase: string, obj: any) => void; done: (err: any) => void; aborted: boolean }[] = [];
  watch = async (_path: string, query: Record<string, unknown>, event: (phase: string, obj: any) => void, done: (err: any) => void) => {
    const call = { query, event, done, aborted: false };
    this.calls.push(call);
    const ac = new AbortController();
    ac.signal.addEventListener('abort', () => (call.aborted = true));
    return ac;
  };
  get last() {
    return this.calls.at(-1)!;
  }
}

const fullJob = (name: string, rv: string, extra: Record<string, unknown> = {}): k8s.V1Job => ({
  apiVersion: 'batch/v1',
  kind: 'Job',
  metadata: {
    name,
    namespace: 'jobs',
    uid: `uid-${name}`,
    resourceVersion: rv,
    labels: { 'mcp-job-controller.io/consumer-group': 'g' },
    annotations: { 'mcp-job-controller.io/offset': '7' },
    managedFields: [{ manager: 'kube-controller-manager', operation: 'Update', fieldsV1: { 'f:status': {} } }],
  },
  spec: {
    suspend: true,
    template: { spec: { restartPolicy: 'Never', containers: [{ name: 'job', image: 'x', env: [{ name: 'A', value: 'x'.repeat(1000) }] }] } },
  },
  status: { active: 1, conditions: [{ type: 'Complete', status: 'True' }] },
  ...extra,
});

function jobWatch(list: () => Promise<{ items: k8s.V1Job[]; metadata?: { resourceVersion?: string } }>) {
  const w = new ScriptedWatch();
  const src = new JobWatch({ watch: w.watch, path: '/apis/batch/v1/namespaces/jobs/jobs', namespace: 'jobs', labelSelector: 'a=b', list });
  const seen: string[] = [];
  src.on('add', (j) => seen.push(`add ${j.metadata?.name}`));
  src.on('update', (j) => seen.push(`update ${j.metadata?.name}`));
  src.on('delete', (j) => seen.push(`delete ${j.metadata?.name}`));
  src.on('error', (e) => {
    const { code, statusCode } = e as { code?: number; statusCode?: number };
    seen.push(`error ${code ?? statusCode ?? ''}`);
  });
  src.on('connect', () => seen.push('connect'));
  return { w, src, seen };
}

describe('slimJob', () => {
  it('keeps identity, labels, annotations, suspend and status, and drops the pod template and managedFields', () => {
    const s = slimJob(fullJob('a', '5'));
    assert.deepEqual(s.metadata, {
      name: 'a',
      namespace: 'jobs',
      uid: 'uid-a',
      resourceVersion: '5',
      creationTimestamp: undefined,
      deletionTimestamp: undefined,
      labels: { 'mcp-job-controller.io/consumer-group': 'g' },
      annotations: { 'mcp-job-controller.io/offset': '7' },
    });
    assert.equal(s.spec?.suspend, true);
    assert.deepEqual(s.spec?.template, {});
    assert.deepEqual(s.status, { active: 1, conditions: [{ type: 'Complete', status: 'True' }] });
    assert.ok(JSON.stringify(s).length < JSON.stringify(fullJob('a', '5')).length / 3);
  });
});

describe('JobWatch', () => {
  it('lists, then watches from the list resourceVersion with bookmarks, handing out slim Jobs', async () => {
    const { w, src, seen } = jobWatch(async () => ({ items: [fullJob('a', '3')], metadata: { resourceVersion: '10' } }));
    const got: k8s.V1Job[] = [];
    src.on('add', (j) => got.push(j));
    await src.start();
    assert.deepEqual(w.last.query, { resourceVersion: '10', labelSelector: 'a=b', allowWatchBookmarks: true });
    w.last.event('ADDED', fullJob('b', '11'));
    w.last.event('MODIFIED', fullJob('b', '12'));
    w.last.event('DELETED', fullJob('a', '13'));
    assert.deepEqual(seen, ['add a', 'connect', 'add b', 'update b', 'delete a']);
    assert.equal(got[0]!.metadata?.managedFields, undefined);
    assert.deepEqual(got[0]!.spec?.template, {});
  });

  it('resumes from the last resourceVersion, a bookmark included, when the server ends the watch', async () => {
    let lists = 0;
    const { w, src } = jobWatch(async () => (lists++, { items: [], metadata: { resourceVersion: '10' } }));
    await src.start();
    w.last.event('ADDED', fullJob('b', '11'));
    w.last.event('BOOKMARK', { metadata: { resourceVersion: '20' } });
    w.last.done(null);
    await waitFor(() => w.calls.length === 2, { timeoutMs: 1000, description: 'a second watch' });
    assert.equal(w.last.query.resourceVersion, '20');
    assert.equal(lists, 1);
  });

  it('re-lists after 410 Gone and says delete for a Job the new list no longer has', async () => {
    let items = [fullJob('a', '3'), fullJob('b', '4')];
    const { w, src, seen } = jobWatch(async () => ({ items, metadata: { resourceVersion: '10' } }));
    await src.start();
    items = [fullJob('b', '30')];
    w.last.event('ERROR', { code: 410 });
    w.last.done(null);
    await waitFor(() => w.calls.length === 2, { timeoutMs: 1000, description: 'a watch after the re-list' });
    assert.deepEqual(seen, ['add a', 'add b', 'connect', 'update b', 'delete a', 'connect']);
  });

  it('does not say connect for a watch the server refused before it was handed back', async () => {
    const w = new ScriptedWatch();
    const refusing = w.watch;
    w.watch = async (...a) => {
      const ac = await refusing(...a);
      a[3]({ statusCode: 403 });
      return ac;
    };
    const s2 = new JobWatch({ watch: w.watch, path: '/p', namespace: 'jobs', labelSelector: 'a=b', list: async () => ({ items: [] }) });
    const seen2: string[] = [];
    s2.on('connect', () => seen2.push('connect'));
    s2.on('error', () => seen2.push('error'));
    await s2.start();
    assert.deepEqual(seen2, ['error']);
    assert.ok(w.last.aborted);
  });

  it('reports an ERROR event other than 410 as an error when the watch ends, so the restart waits instead of looping', async () => {
    const { w, src, seen } = jobWatch(async () => ({ items: [], metadata: { resourceVersion: '1' } }));
    await src.start();
    w.last.event('ERROR', { code: 500, reason: 'InternalError', message: 'etcd is down' });
    w.last.done(null);
    assert.deepEqual(seen, ['connect', 'error 500']);
    assert.equal(w.calls.length, 1);
  });

  it('reports any other end of the watch as an error, and ignores the end of a watch it stopped', async () => {
    const { w, src, seen } = jobWatch(async () => ({ items: [], metadata: { resourceVersion: '1' } }));
    await src.start();
    w.last.done({ code: 500 });
    assert.deepEqual(seen, ['connect', 'error 500']);
    await src.start();
    const first = w.last;
    await src.stop();
    assert.ok(first.aborted);
    first.done({ code: 500 });
    first.event('ADDED', fullJob('late', '9'));
    assert.deepEqual(seen, ['connect', 'error 500', 'connect']);
  });
});
