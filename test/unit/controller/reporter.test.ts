import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import pino from 'pino';
import { Registry } from 'prom-client';
import { ControllerConfigSchema } from '../../../src/controller/config.js';
import { MessageHandler } from '../../../src/controller/intake/message-handler.js';
import { ActiveJobSlots } from '../../../src/controller/intake/slots.js';
import { createMetrics, Pauses } from '../../../src/controller/reporting/metrics.js';
import { validationPolicy } from '../../../src/shared/contract/policy.js';
import { parseConfig } from '../../../src/shared/settings.js';
import { OutcomeReporter, type ReporterDeps } from '../../../src/controller/reporting/reporter.js';
import { waitFor } from '../../../src/shared/wait.js';

const finished = (name: string, offset: string): k8s.V1Job => ({
  metadata: {
    name,
    namespace: 'ns',
    uid: `uid-${name}`,
    annotations: { 'mcp-job-controller.io/topic': 't', 'mcp-job-controller.io/partition': '0', 'mcp-job-controller.io/offset': offset },
  },
  status: { conditions: [{ type: 'Complete', status: 'True' }] },
});

/** The handler that writes the controller's records, over a producer the broker refuses for authorization. */
function refusingHandler(): MessageHandler {
  const config = parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 't', JOB_NAMESPACE: 'ns', RESULTS_TOPIC: 'results' });
  const metrics = createMetrics(new Registry(), false);
  const pauses = new Pauses(metrics.paused);
  return new MessageHandler({
    config,
    policy: validationPolicy(config),
    jobs: {} as never,
    producer: { send: async () => Promise.reject(Object.assign(new Error('not authorized'), { type: 'TOPIC_AUTHORIZATION_FAILED' })) },
    slots: new ActiveJobSlots({ cap: 0, log: pino({ level: 'silent' }), pauses }),
    pauses,
    log: pino({ level: 'silent' }),
    metrics,
    signal: new AbortController().signal,
  });
}

function reporter(committedUpTo: { next: bigint }, o: Partial<ReporterDeps> = {}) {
  const patches: { name: string; body: any }[] = [];
  const fatals: unknown[] = [];
  const r = new OutcomeReporter({
    config: { JOB_NAMESPACE: 'ns', DLQ_TOPIC: 't.dlq', RESULTS_TOPIC: undefined },
    ttlSeconds: 600,
    isCommitted: async (at) => committedUpTo.next > BigInt(at.offset),
    recheckMs: 5,
    batch: { patchNamespacedJob: async (p: { name: string; body: unknown }) => void patches.push(p) } as unknown as k8s.BatchV1Api,
    core: { listNamespacedPod: async () => ({ items: [] }) } as unknown as k8s.CoreV1Api,
    sendRecord: async () => undefined,
    readMessage: async () => ({ key: null, value: null, headers: {}, timestamp: '' }),
    sendDeadLetter: async () => undefined,
    onFatal: (e) => void fatals.push(e),
    log: pino({ level: 'silent' }),
    metrics: createMetrics(new Registry(), false),
    signal: new AbortController().signal,
    ...o,
  });
  return { r, patches, fatals };
}

describe('OutcomeReporter', () => {
  it('gives a finished Job its TTL only once its message offset is committed, in the same patch as its outcome label', async () => {
    const committed = { next: 5n };
    const { r, patches } = reporter(committed);
    r.enqueue(finished('a', '7'));
    await r.idle();
    assert.equal(patches.length, 0, 'not while offset 7 can still be redelivered');
    committed.next = 8n;
    await waitFor(() => patches.length === 1, { timeoutMs: 2000, description: 'the deferred report' });
    assert.deepEqual(patches[0]!.body, { metadata: { labels: { 'mcp-job-controller.io/outcome': 'succeeded' } }, spec: { ttlSecondsAfterFinished: 600 } });
    r.stop();
  });

  it('does not drop an outcome when looking up the committed offset fails once (the broker blipped)', async () => {
    let calls = 0;
    const { r, patches } = reporter(
      { next: 100n },
      {
        isCommitted: async () => {
          if (++calls === 1) throw new Error('Connection timeout');
          return true;
        },
      },
    );
    r.enqueue(finished('b', '1'));
    await waitFor(() => patches.length === 1, { timeoutMs: 3000, description: 'the report after a failed offset lookup' });
    assert.equal(calls, 2);
    r.stop();
  });

  it('ends the controller when the results topic refuses the write for good', async () => {
    const { r, fatals } = reporter(
      { next: 100n },
      {
        config: { JOB_NAMESPACE: 'ns', DLQ_TOPIC: 't.dlq', RESULTS_TOPIC: 'results' },
        sendRecord: (topic, record, at) => refusingHandler().sendRecord(topic, record, at, async () => undefined),
      },
    );
    r.enqueue(finished('c', '1'));
    await waitFor(() => fatals.length === 1, { timeoutMs: 2000, description: 'a fatal error' });
    assert.match((fatals[0] as Error).message, /topic results/);
    r.stop();
  });
});
