import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { buildEvent, EventReason, EventRecorder } from '../../../src/controller/reporting/events.js';
import { Pauses } from '../../../src/controller/reporting/metrics.js';

const log = pino({ level: 'silent' });
const at = { topic: 'work', partition: 2, offset: '41' };
const self = { apiVersion: 'v1', kind: 'Pod', name: 'controller-0', namespace: 'mcp', uid: 'u-1' };

function sink(fail = false, gate?: Promise<void>) {
  const sent: k8s.CoreV1Event[] = [];
  return {
    sent,
    createNamespacedEvent: async (p: { namespace: string; body: k8s.CoreV1Event }) => {
      await gate;
      if (fail) throw new Error('events is forbidden');
      sent.push(p.body);
      return p.body;
    },
  };
}

describe('Kubernetes Events', () => {
  it('builds a core/v1 Event on the object it is about, with the reason, the action, the note and who reported it', () => {
    const now = new Date('2026-11-23T10:00:00.000Z');
    const e = buildEvent(
      {
        regarding: { apiVersion: 'batch/v1', kind: 'Job', name: 'mcp-work-2-41', namespace: 'mcp', uid: 'j-1' },
        type: 'Normal',
        reason: 'JobCreated',
        action: 'CreateJob',
        note: 'x'.repeat(2000),
      },
      'controller-0',
      now,
      'abcd',
    );
    assert.deepEqual(
      { ...e, message: e.message?.length },
      {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `mcp-work-2-41.${now.getTime().toString(16)}abcd`, namespace: 'mcp' },
        involvedObject: { apiVersion: 'batch/v1', kind: 'Job', name: 'mcp-work-2-41', namespace: 'mcp', uid: 'j-1' },
        type: 'Normal',
        reason: 'JobCreated',
        action: 'CreateJob',
        message: 1024,
        source: { component: 'mcp-job-controller' },
        reportingComponent: 'mcp-job-controller',
        reportingInstance: 'controller-0',
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    );
  });

  it('records a created Job with its coordinates and jobID, and a dead-lettered message on the controller’s Pod with its reason and coordinates only', async () => {
    const s = sink();
    const r = new EventRecorder({ sink: s, log, self, instance: 'c' });
    r.jobCreated({ name: 'mcp-work-2-41', namespace: 'mcp', uid: 'j-1' }, at, 'order-7');
    r.deadLettered(at, 'invalid-json', 'work.dlq');
    await r.flush(1000);
    assert.deepEqual(
      s.sent.map((e) => [e.involvedObject.kind, e.involvedObject.uid, e.type, e.reason, e.message]),
      [
        ['Job', 'j-1', 'Normal', EventReason.jobCreated, 'Created for message work/2/41 (jobID order-7)'],
        ['Pod', 'u-1', 'Warning', EventReason.deadLettered, "Message work/2/41 dead-lettered to work.dlq: invalid-json (the record's error header says more)"],
      ],
    );
  });

  it('never throws or waits for the API server: a failed send is counted, and what overflows the bounded queue is dropped and counted', async () => {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const counted: string[] = [];
    const r = new EventRecorder({ sink: sink(true, gate), log, self, instance: 'c', maxQueue: 2, count: (x) => counted.push(x) });
    for (let i = 0; i < 5; i++) r.paused(i % 2 === 0, 'cap');
    // The first was taken by the sender (blocked on the gate), two queued, two dropped.
    assert.deepEqual(counted, ['dropped', 'dropped']);
    open();
    await r.flush(1000);
    assert.deepEqual(counted.sort(), ['dropped', 'dropped', 'failed', 'failed', 'failed']);
  });

  it('samples routine Events (a created Job) to their rate with a burst, and never samples a warning', async () => {
    const s = sink();
    const counted: string[] = [];
    let clock = 0;
    const r = new EventRecorder({ sink: s, log, self, instance: 'c', routinePerSecond: 5, count: (x) => counted.push(x), clock: () => clock });
    for (let i = 0; i < 30; i++) r.jobCreated({ name: `mcp-work-0-${i}`, namespace: 'mcp' }, { ...at, offset: String(i) }, `j-${i}`);
    for (let i = 0; i < 5; i++) r.deadLettered({ ...at, offset: String(100 + i) }, 'invalid-json', 'work.dlq');
    // One second later, 5 more tokens.
    clock = 1000;
    for (let i = 30; i < 40; i++) r.jobCreated({ name: `mcp-work-0-${i}`, namespace: 'mcp' }, { ...at, offset: String(i) }, `j-${i}`);
    await r.flush(1000);
    const reasons = s.sent.map((e) => e.reason);
    // A burst of 4 seconds' worth (20) of the first 30, then 5 of the next 10; all 5 warnings.
    assert.equal(reasons.filter((x) => x === EventReason.jobCreated).length, 25);
    assert.equal(reasons.filter((x) => x === EventReason.deadLettered).length, 5);
    assert.equal(counted.filter((x) => x === 'sampled').length, 15);
    assert.equal(counted.filter((x) => x === 'dropped').length, 0);
  });

  it('sends an Event recorded just after the sender emptied the queue, whatever the moment', async () => {
    // The window is between the sender's last shift and the moment it lets go: try each microtask of it.
    for (let hops = 0; hops < 12; hops++) {
      const sent: string[] = [];
      let first = true;
      const r: EventRecorder = new EventRecorder({
        sink: {
          createNamespacedEvent: async (p: { namespace: string; body: k8s.CoreV1Event }) => {
            sent.push(p.body.reason!);
            if (first) {
              first = false;
              let later = Promise.resolve();
              for (let i = 0; i < hops; i++) later = later.then(() => undefined);
              void later.then(() => r.crashed('second'));
            }
            return p.body;
          },
        },
        log,
        self,
        instance: 'c',
      });
      r.paused(true, 'cap');
      await new Promise((done) => setImmediate(done));
      await r.flush(1000);
      assert.deepEqual(sent, [EventReason.paused, EventReason.crashed], `recorded ${hops} microtasks after the first send`);
    }
  });

  it('skips Events about the controller when its Pod is unknown (run outside a cluster)', async () => {
    const s = sink();
    const r = new EventRecorder({ sink: s, log, instance: 'c' });
    r.crashed('boom');
    r.jobCreated({ name: 'j', namespace: 'mcp' }, at, 'x');
    await r.flush(1000);
    assert.deepEqual(
      s.sent.map((e) => e.reason),
      [EventReason.jobCreated],
    );
  });

  it('tells when consumption pauses and resumes, once per change, whatever the number of reasons', () => {
    const changes: string[] = [];
    const p = new Pauses({ set: () => undefined }, (on, reason) => changes.push(`${on ? 'paused' : 'resumed'}:${reason}`));
    p.set('cap', true);
    p.set('quota', true);
    p.set('cap', false);
    p.set('quota', false);
    p.set('quota', false);
    assert.deepEqual(changes, ['paused:cap', 'resumed:quota']);
  });
});
