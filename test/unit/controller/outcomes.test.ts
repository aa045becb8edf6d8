import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { buildOutcome, buildResultRecord, failureText } from '../../../src/controller/reporting/outcomes.js';

const job = (type: 'Complete' | 'Failed', reason: string, message = ''): k8s.V1Job => ({
  metadata: {
    name: 'mcp-t-0-7',
    uid: 'uid-7',
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

const summary = {
  topic: 't',
  partition: 0,
  offset: '7',
  exitCode: 75,
  status: 'failed',
  servers: { db: { status: 'failed-retriable', reason: 'timeout', ms: 30000 } },
};

describe('buildOutcome', () => {
  it("reads the source coordinates, status and the newest pod's JSON summary", () => {
    const o = buildOutcome(job('Failed', 'BackoffLimitExceeded', 'Job has reached the specified backoff limit'), [
      pod('2026-01-01T00:00:01Z', 75, '{"reason":"first try"}'),
      pod('2026-01-01T00:00:09Z', 75, JSON.stringify(summary)),
    ]);
    assert.deepEqual(o, {
      job: 'mcp-t-0-7',
      uid: 'uid-7',
      namespace: 'ns',
      jobID: 'job-7',
      source: { topic: 't', partition: 0, offset: '7' },
      readFrom: { topic: 't', partition: 0, offset: '7' },
      status: 'failed',
      reason: 'BackoffLimitExceeded',
      message: 'Job has reached the specified backoff limit',
      summary,
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

  it('keeps a termination message that is JSON but not a job summary as text, and still describes the failure', () => {
    const o = buildOutcome(job('Failed', 'PodFailurePolicy'), [pod('2026-01-01T00:00:01Z', 65, '{"servers":{"x":null}}')]);
    assert.equal(o.summary, '{"servers":{"x":null}}');
    assert.match(failureText(o), /PodFailurePolicy; exit code 65; \{"servers":\{"x":null\}\}/);
  });

  it('picks the newest pod by time, not by the text of its date', () => {
    // As strings these sort Thu > Sat > Mon: the oldest would win.
    const o = buildOutcome(job('Failed', 'BackoffLimitExceeded'), [
      pod('2026-01-01T00:00:00Z', 75, 'thursday'),
      pod('2026-01-05T00:00:00Z', 75, 'monday'),
      pod('2026-01-03T00:00:00Z', 75, 'saturday'),
    ]);
    assert.equal(o.summary, 'monday');
  });

  it("reads a replayed Job's message from where the replay pointed it, not from the source", () => {
    const j = job('Failed', 'PodFailurePolicy');
    j.metadata!.annotations!['mcp-job-controller.io/replay-of'] = 't.dlq/2/40';
    const o = buildOutcome(j, []);
    assert.deepEqual(o.source, { topic: 't', partition: 0, offset: '7' });
    assert.deepEqual(o.readFrom, { topic: 't.dlq', partition: 2, offset: '40' });
  });

  it('makes a results record keyed by the Job name', () => {
    const o = buildOutcome(job('Complete', 'CompletionsReached'), []);
    const r = buildResultRecord(o);
    assert.equal(r.key, 'mcp-t-0-7');
    assert.deepEqual(r.headers, { 'mcp.result.status': 'succeeded', 'mcp.result.job': 'mcp-t-0-7' });
    assert.equal(JSON.parse(String(r.value)).status, 'succeeded');
  });
});

describe('the results record and tool fingerprints', () => {
  it("carries each server's list and tool digests, and what changed against a pin, from the job's summary", () => {
    const d = 'a'.repeat(64);
    const withDigests = {
      ...summary,
      exitCode: 65,
      servers: {
        fx: {
          status: 'failed-permanent',
          reason: 'tools-changed',
          ms: 40,
          toolsDigest: d,
          toolDigests: { echo: d },
          toolsChanged: { added: [], removed: [], changed: ['echo'] },
        },
      },
    };
    const o = buildOutcome(job('Failed', 'PodFailurePolicy'), [pod('2026-01-01T00:00:01Z', 65, JSON.stringify(withDigests))]);
    const record = JSON.parse(String(buildResultRecord(o).value)) as { summary: typeof withDigests };
    assert.deepEqual(record.summary.servers.fx, withDigests.servers.fx);
  });
});
