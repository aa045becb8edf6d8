import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { buildOutcome, buildResultRecord, failureText } from '../../../src/controller/outcomes.js';

const job = (type: 'Complete' | 'Failed', reason: string, message = ''): k8s.V1Job => ({
  metadata: {
    name: 'mcp-t-0-7',
    namespace: 'ns',
    annotations: {
      'mcp-job-controller.io/topic': 't',
      'mcp-job-controller.io/partition': '0',
      'mcp-job-controller.io/offset': '7',
      'mcp-job-controller.io/job-id': 'job-7',
    },
  },
  status: { conditions: [{ type, status: 'True', reason, message, lastTransitionTime: new Date('2026-01-01T00:00:00Z') }] },
});
const pod = (created: string, exitCode: number, message: string): k8s.V1Pod => ({
  metadata: { creationTimestamp: new Date(created) },
  status: { containerStatuses: [{ name: 'job', image: 'i', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode, message } } }] },
});

describe('buildOutcome', () => {
  it("reads the source coordinates, status and the newest pod's JSON summary", () => {
    const o = buildOutcome(job('Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit'), [
      pod('2026-01-01T00:00:01Z', 75, '{"reason":"first try"}'),
      pod('2026-01-01T00:00:09Z', 75, '{"servers":{"db":{"status":"failed-retriable","reason":"timeout"}}}'),
    ]);
    assert.deepEqual(o, {
      job: 'mcp-t-0-7',
      namespace: 'ns',
      jobID: 'job-7',
      source: { topic: 't', partition: 0, offset: '7' },
      status: 'failed',
      reason: 'BackoffLimitExceeded',
      message: 'Job has reached the specified backoff limit',
      summary: { servers: { db: { status: 'failed-retriable', reason: 'timeout' } } },
      exitCode: 75,
      finishedAt: '2026-01-01T00:00:00.000Z',
    });
    assert.equal(failureText(o), 'Job mcp-t-0-7 failed: BackoffLimitExceeded; Job has reached the specified backoff limit; exit code 75; servers db: timeout');
  });

  it('keeps a plain-text termination message (a log tail) as text', () => {
    const o = buildOutcome(job('Failed', 'PodFailurePolicy'), [pod('2026-01-01T00:00:01Z', 1, 'Error: boom\n    at x')]);
    assert.equal(o.summary, 'Error: boom\n    at x');
    assert.match(failureText(o), /PodFailurePolicy; exit code 1; Error: boom/);
  });

  it('makes a results record keyed by the Job name', () => {
    const o = buildOutcome(job('Complete', 'CompletionsReached'), []);
    const r = buildResultRecord(o);
    assert.equal(r.key, 'mcp-t-0-7');
    assert.deepEqual(r.headers, { 'mcp.result.status': 'succeeded', 'mcp.result.job': 'mcp-t-0-7' });
    assert.equal(JSON.parse(String(r.value)).status, 'succeeded');
  });
});
