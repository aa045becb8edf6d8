import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { Pauses } from '../../../src/controller/reporting/metrics.js';
import { ActiveJobSlots } from '../../../src/controller/intake/slots.js';

const log = pino({ level: 'silent' });
const job = (name: string, finished?: 'Complete' | 'Failed'): k8s.V1Job => ({
  metadata: { name },
  status: finished ? { conditions: [{ type: finished, status: 'True' }] } : {},
});

function gauge() {
  const g = { value: 0, set: (v: number) => (g.value = v) };
  return g;
}

describe('ActiveJobSlots', () => {
  it('counts creates in flight, created Jobs the watch has not shown yet, and active Jobs', async () => {
    const s = new ActiveJobSlots({ cap: 0, log });
    assert.equal(await s.acquire(), true);
    assert.equal(s.count, 1, 'a create in flight holds a slot');
    s.settle('a');
    assert.equal(s.count, 1, 'a created Job holds its slot before the watch shows it');
    s.observe(job('a'));
    assert.equal(s.count, 1, 'and after, once');
    s.observe(job('b'));
    assert.equal(s.count, 2);
  });

  it('releases a slot when the Job finishes or is deleted, and reports each finished Job once', () => {
    const finished: string[] = [];
    const s = new ActiveJobSlots({ cap: 0, log, onFinished: (j) => finished.push(j.metadata!.name!) });
    s.observe(job('a'));
    s.observe(job('b'));
    s.observe(job('a', 'Complete'));
    s.observe(job('a', 'Complete'));
    s.forget('b');
    assert.equal(s.count, 0);
    assert.deepEqual(finished, ['a']);
  });

  it('gives the slot back at once for a redelivered message whose Job had already finished', async () => {
    const s = new ActiveJobSlots({ cap: 1, log });
    await s.acquire();
    s.settle('old', true);
    assert.equal(s.count, 0);
  });

  it('waits at the cap, sets the paused gauge, and goes on when a Job finishes', async () => {
    const g = gauge();
    const s = new ActiveJobSlots({ cap: 1, log, pauses: new Pauses(g) });
    s.observe(job('a'));
    let got = false;
    const waiting = s.acquire().then((ok) => (got = ok));
    await new Promise((r) => setImmediate(r));
    assert.equal(got, false);
    assert.equal(g.value, 1);
    s.observe(job('a', 'Failed'));
    await waiting;
    assert.equal(got, true);
    assert.equal(g.value, 0);
  });

  it('returns false from a wait at the cap when the controller stops', async () => {
    const s = new ActiveJobSlots({ cap: 1, log });
    s.observe(job('a'));
    const stop = new AbortController();
    const waiting = s.acquire(stop.signal);
    stop.abort();
    assert.equal(await waiting, false);
  });

  it('forgets, on a full list, active Jobs that are gone and created Jobs the watch never showed after their time', async () => {
    let now = 0;
    const s = new ActiveJobSlots({ cap: 0, log, now: () => now, pendingTtlMs: 1000 });
    s.observe(job('gone'));
    await s.acquire();
    s.settle('never-seen');
    s.reconcile([job('kept')]);
    assert.equal(s.count, 2, 'kept + never-seen (still young)');
    now = 5000;
    s.reconcile([job('kept')]);
    assert.equal(s.count, 1);
  });
});

describe('Pauses', () => {
  it('stays paused while any reason holds', () => {
    const g = gauge();
    const p = new Pauses(g);
    p.set('cap', true);
    p.set('quota', true);
    p.set('cap', false);
    assert.equal(g.value, 1);
    p.set('quota', false);
    assert.equal(g.value, 0);
  });
});
