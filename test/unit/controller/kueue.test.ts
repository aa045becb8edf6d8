import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { ControllerConfigSchema } from '../../../src/controller/config.js';
import { buildJob } from '../../../src/controller/jobs/job-builder.js';
import { KUEUE_QUEUE_LABEL } from '../../../src/controller/jobs/kueue.js';
import { ActiveJobSlots } from '../../../src/controller/intake/slots.js';
import { parseMessage } from '../../../src/shared/contract/message.js';
import { parseConfig } from '../../../src/shared/settings.js';

const log = pino({ level: 'silent' });
const base = { KAFKA_BROKERS: 'kafka:9092', KAFKA_TOPIC: 'mcp-jobs', JOB_NAMESPACE: 'work' };
const value = JSON.stringify({ jobID: 'j1', jobType: 'server-init', payload: JSON.stringify({ mcpServers: { a: { command: 'node', args: ['s.js'] } } }) });

/** A Job as the watch shows it: held by Kueue (suspended, queued), running, or finished. */
const job = (name: string, state: 'held' | 'running' | 'Complete' | 'suspended-unqueued'): k8s.V1Job => ({
  metadata: { name, labels: state === 'suspended-unqueued' ? {} : { [KUEUE_QUEUE_LABEL]: 'q' } },
  spec: { suspend: state === 'held' || state === 'suspended-unqueued', template: {} },
  status: state === 'Complete' ? { conditions: [{ type: 'Complete', status: 'True' }] } : {},
});

describe('Kueue admission', () => {
  it('builds a suspended Job labelled with the LocalQueue when KUEUE_QUEUE_NAME is set, and an unchanged one when not', () => {
    const msg = parseMessage(Buffer.from(value), { allowedCommands: ['node'], secretsDir: '/s', maxMessageBytes: 65536 });
    const at = { topic: 'mcp-jobs', partition: 0, offset: '7' };
    const queued = buildJob(at, msg, parseConfig(ControllerConfigSchema, { ...base, KUEUE_QUEUE_NAME: 'team-a' }));
    assert.equal(queued.spec?.suspend, true);
    assert.equal(queued.metadata?.labels?.[KUEUE_QUEUE_LABEL], 'team-a');
    assert.equal(queued.spec?.template.metadata?.labels?.[KUEUE_QUEUE_LABEL], undefined, 'the queue is the Job’s, not its pods’');
    const plain = buildJob(at, msg, parseConfig(ControllerConfigSchema, { ...base, KUEUE_QUEUE_NAME: '' }));
    assert.equal(plain.spec?.suspend, undefined);
    assert.equal(plain.metadata?.labels?.[KUEUE_QUEUE_LABEL], undefined);
  });

  it('counts a Job Kueue holds as queued, not active, and moves it to active once admitted and out once finished', () => {
    const counts = { active: -1, queued: -1 };
    const s = new ActiveJobSlots({ cap: 1, queuedCap: 5, log, onCount: (n) => (counts.active = n), onQueued: (n) => (counts.queued = n) });
    s.observe(job('a', 'held'));
    s.observe(job('b', 'held'));
    assert.deepEqual(counts, { active: 0, queued: 2 });
    s.observe(job('a', 'running'));
    assert.deepEqual(counts, { active: 1, queued: 1 });
    s.observe(job('a', 'held'));
    assert.deepEqual(counts, { active: 0, queued: 2 }, 'a Job Kueue suspends again (preemption) is queued again');
    s.observe(job('a', 'Complete'));
    s.forget('b');
    assert.deepEqual(counts, { active: 0, queued: 0 });
  });

  it('with Kueue, counts creates in flight and created-but-unseen Jobs as queued (they are born suspended)', async () => {
    const s = new ActiveJobSlots({ cap: 1, queuedCap: 5, log });
    assert.equal(await s.acquire(), true);
    assert.equal(s.queuedCount, 1);
    assert.equal(s.count, 0);
    s.settle('a');
    assert.equal(s.queuedCount, 1);
    s.observe(job('a', 'held'));
    assert.equal(s.queuedCount, 1, 'once, when the watch shows it');
  });

  it('without Kueue, a suspended Job still counts as active (nobody will admit it)', () => {
    const s = new ActiveJobSlots({ cap: 1, log });
    s.observe(job('a', 'held'));
    assert.equal(s.count, 1);
    assert.equal(s.queuedCount, 0);
    const k = new ActiveJobSlots({ cap: 1, queuedCap: 5, log });
    k.observe(job('b', 'suspended-unqueued'));
    assert.equal(k.count, 1, 'a suspended Job outside any queue is not Kueue’s');
  });

  it('waits at MAX_QUEUED_JOBS even with active slots free, and goes on when Kueue admits one', async () => {
    const s = new ActiveJobSlots({ cap: 10, queuedCap: 2, log });
    s.observe(job('a', 'held'));
    s.observe(job('b', 'held'));
    let got = false;
    const p = s.acquire().then((v) => (got = v));
    await new Promise((r) => setImmediate(r));
    assert.equal(got, false, 'two queued: the third waits');
    s.observe(job('a', 'running'));
    await p;
    assert.equal(got, true);
    assert.equal(s.count, 1);
    assert.equal(s.queuedCount, 2, 'b, and the new reservation');
  });

  it('waits at MAX_ACTIVE_JOBS with Kueue too: the active cap still bounds what runs at once', async () => {
    const s = new ActiveJobSlots({ cap: 1, queuedCap: 0, log });
    s.observe(job('a', 'running'));
    let got = false;
    const p = s.acquire().then((v) => (got = v));
    await new Promise((r) => setImmediate(r));
    assert.equal(got, false);
    s.observe(job('a', 'Complete'));
    await p;
    assert.equal(got, true);
  });
});
