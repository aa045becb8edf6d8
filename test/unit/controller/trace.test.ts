import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { DlqHeader } from '../../../src/controller/reporting/dead-letter.js';
import { formatTrace, parseScanLimit, trace, type TraceDeps } from '../../../src/controller/commands/trace.js';
import { Annotation } from '../../../src/shared/contract/identity.js';
import type { FetchedRecord } from '../../../src/shared/kafka/read-message.js';

const config = {
  KAFKA_TOPIC: 'work',
  KAFKA_CONSUMER_GROUP: 'g',
  JOB_NAMESPACE: 'mcp',
  JOB_NAME_PREFIX: 'mcp',
  DLQ_TOPIC: 'work.dlq',
  RESULTS_TOPIC: 'results',
};
const notFound = Object.assign(new Error('not found'), { code: 404 });

function deps(o: { jobs?: k8s.V1Job[]; pods?: k8s.V1Pod[]; topics?: Record<string, FetchedRecord[]> }): TraceDeps & { scanned: string[] } {
  const scanned: string[] = [];
  return {
    scanned,
    config,
    batch: {
      readNamespacedJob: async ({ name }: { name: string }) => o.jobs?.find((j) => j.metadata?.name === name) ?? Promise.reject(notFound),
      listNamespacedJob: async () => ({ items: o.jobs ?? [] }),
    } as unknown as TraceDeps['batch'],
    core: {
      listNamespacedPod: async () => ({ items: o.pods ?? [] }),
      listNamespacedEvent: async () => ({
        items: [{ type: 'Normal', reason: 'JobCreated', message: 'Created for message work/0/5 (jobID order-5)', involvedObject: {} }],
      }),
    } as unknown as TraceDeps['core'],
    read: async () => ({ key: null, value: Buffer.from(JSON.stringify({ jobID: 'order-5' })), headers: {}, timestamp: '0' }),
    scan: async (topic, limit, match) => {
      scanned.push(`${topic}:${limit}`);
      return (o.topics?.[topic] ?? []).filter(match).map((r) => ({ ...r, partition: 0 }));
    },
    scanLimit: 100,
  };
}

const failedJob: k8s.V1Job = {
  metadata: {
    name: 'mcp-work-0-5',
    namespace: 'mcp',
    annotations: { [Annotation.topic]: 'work', [Annotation.partition]: '0', [Annotation.offset]: '5', [Annotation.jobID]: 'order-5' },
  },
  spec: { template: {} },
  status: { failed: 1, conditions: [{ type: 'Failed', status: 'True', reason: 'PodFailurePolicy', message: 'exit code 65' }] },
};
const pod: k8s.V1Pod = {
  metadata: { name: 'mcp-work-0-5-abcde' },
  status: {
    phase: 'Failed',
    containerStatuses: [
      {
        name: 'job',
        image: 'i',
        imageID: '',
        ready: false,
        restartCount: 0,
        state: {
          terminated: {
            exitCode: 65,
            reason: 'Error',
            message: JSON.stringify({
              topic: 'work',
              partition: 0,
              offset: '5',
              exitCode: 65,
              status: 'failed',
              reason: 'server-failed',
              servers: { a: { status: 'failed-permanent', reason: 'spawn-failed', ms: 3 } },
            }),
          },
        },
      },
    ],
  },
};
const dlqRecord = (offset: string, src: string, value = '{}'): FetchedRecord => ({
  offset,
  key: null,
  value: Buffer.from(value),
  timestamp: '0',
  headers: { [DlqHeader.topic]: 'work', [DlqHeader.partition]: '0', [DlqHeader.offset]: src, [DlqHeader.reason]: 'job-failed', [DlqHeader.stage]: 'job' },
});

describe('trace', () => {
  it('shows a failed Job by its coordinates: the conditions, the pod’s summary, its Events and its dead-letter record', async () => {
    const d = deps({ jobs: [failedJob], pods: [pod], topics: { 'work.dlq': [dlqRecord('0', '4'), dlqRecord('1', '5')] } });
    const r = await trace(d, { at: { partition: 0, offset: '5' } });
    assert.equal(r.jobID, 'order-5');
    assert.deepEqual(
      r.job?.conditions.map((c) => `${c.type}=${c.status} ${c.reason}`),
      ['Failed=True PodFailurePolicy'],
    );
    assert.deepEqual(r.pod, {
      name: 'mcp-work-0-5-abcde',
      phase: 'Failed',
      exitCode: 65,
      reason: 'Error',
      summary: 'failed; server-failed; 0/1 servers initialized; a: spawn-failed',
    });
    assert.deepEqual(
      r.deadLetters.map((x) => `${x.partition}@${x.offset} ${x.reason}`),
      ['0@1 job-failed'],
    );
    assert.deepEqual(d.scanned, ['work.dlq:100', 'results:100'], 'both topics, bounded');
    const text = formatTrace(r);
    for (const s of ['work/0/5', 'jobID order-5', 'Failed=True PodFailurePolicy', 'exit 65', 'work.dlq/0@1', 'JobCreated', 'no results record in the last 100'])
      assert.match(text, new RegExp(s.replace(/[/.]/g, '\\$&')));
  });

  it('prints producer-written text without control characters, so an escape sequence cannot drive the terminal', () => {
    const text = formatTrace({
      coordinates: { topic: 'work', partition: 0, offset: '5' },
      jobID: 'order-\u001b]0;owned\u0007',
      deadLetters: [{ topic: 'work.dlq', partition: 0, offset: '1', reason: 'job-failed', error: 'bad \u001b[2J\u001b[31mred\u009b0m\nline two' }],
      results: [],
      events: [{ type: 'Warning', reason: 'MessageDeadLettered', note: 'x\u0000y\ru' }],
      notes: [],
    } as never);
    // eslint-disable-next-line no-control-regex
    assert.doesNotMatch(text.replace(/\n/g, ''), /[\u0000-\u001f\u007f-\u009f]/);
    assert.match(text, /jobID order-\]0;owned/);
    assert.match(text, /error {6}bad \[2J\[31mred0m line two/);
    assert.match(text, /MessageDeadLettered: xy u/);
  });

  it('takes --scan as a whole number of records from 1 to 100000 and refuses anything else, naming the flag', () => {
    assert.equal(parseScanLimit(1000), 1000);
    assert.equal(parseScanLimit('1'), 1);
    assert.equal(parseScanLimit(100_000), 100_000);
    for (const bad of [NaN, 'abc', '', 0, -5, 2.5, 100_001, 1e12, Infinity, undefined])
      assert.throws(() => parseScanLimit(bad), { name: 'ConfigError', message: /^--scan must be a whole number of records from 1 to 100000/ }, String(bad));
  });

  it('finds a message dead-lettered before any Job was made by its jobID, in the dead-letter topic', async () => {
    const d = deps({ topics: { 'work.dlq': [dlqRecord('3', '9', JSON.stringify({ jobID: 'order-9', jobType: 'nope' }))] } });
    const r = await trace(d, { jobId: 'order-9' });
    assert.deepEqual(r.coordinates, { topic: 'work', partition: 0, offset: '9' });
    assert.equal(r.job, undefined);
    assert.equal(r.deadLetters.length, 1);
  });

  it('says where it looked when it finds nothing', async () => {
    const r = await trace(deps({}), { jobId: 'nobody' });
    assert.deepEqual(r.notes, ['no Job with jobID "nobody" in mcp, and no dead-letter record of it in the last 100 records of each partition of work.dlq']);
  });
});
