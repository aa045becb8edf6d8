import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import pino from 'pino';
import { JobInformer, type InformerSource } from '../../../src/controller/job-informer.js';
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
