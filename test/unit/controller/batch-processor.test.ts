import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EachBatchPayload, KafkaMessage } from 'kafkajs';
import pino from 'pino';
import { Registry } from 'prom-client';
import { processBatch, type BatchDeps } from '../../../src/controller/intake/batch-processor.js';
import type { Outcome } from '../../../src/controller/intake/message-handler.js';
import { createMetrics } from '../../../src/controller/reporting/metrics.js';
import { waitFor } from '../../../src/shared/wait.js';

const log = pino({ level: 'silent' });

/** A batch as kafkajs hands it over, recording what was resolved and committed. */
function payload(offsets: string[], heartbeat: () => Promise<void> = async () => undefined, lastOffset = offsets.at(-1)!) {
  const commits: string[] = [];
  const p = {
    batch: {
      topic: 't',
      partition: 0,
      lastOffset: () => lastOffset,
      highWatermark: String(Number(lastOffset) + 1),
      messages: offsets.map((offset) => ({ offset, value: Buffer.from('x') }) as unknown as KafkaMessage),
    },
    resolveOffset: () => undefined,
    heartbeat,
    isRunning: () => true,
    isStale: () => false,
    commitOffsetsIfNecessary: async (o: { topics: { partitions: { offset: string }[] }[] }) => void commits.push(o.topics[0]!.partitions[0]!.offset),
  } as unknown as EachBatchPayload;
  return { p, commits };
}

/** A handler whose messages finish when the test says so (as creates in flight do, whatever the signal). */
function gatedHandler() {
  const gates = new Map<string, { resolve: (o: Outcome) => void; reject: (e: unknown) => void }>();
  const started: string[] = [];
  const handler: BatchDeps['handler'] = {
    handle: (_m, at, _hb, signal) =>
      new Promise<Outcome>((resolve, reject) => {
        started.push(at.offset);
        gates.set(at.offset, { resolve, reject });
        void signal;
      }),
    committed: () => undefined,
  };
  const finish = (offset: string) => gates.get(offset)!.resolve({ kind: 'job', name: `j${offset}`, existed: false });
  return { handler, started, finish };
}

const tick = () => new Promise((r) => setImmediate(r));

function deps(handler: BatchDeps['handler'], o: Partial<BatchDeps> = {}): BatchDeps & { fatals: unknown[] } {
  const fatals: unknown[] = [];
  return {
    handler,
    limit: 2,
    stopping: new AbortController().signal,
    onFatal: (e) => fatals.push(e),
    log,
    metrics: createMetrics(new Registry(), false),
    fatals,
    ...o,
  };
}

describe('processBatch', () => {
  it('commits one past the last finished message once the batch is done', async () => {
    const g = gatedHandler();
    const { p, commits } = payload(['10', '11', '12']);
    const run = processBatch(deps(g.handler), p);
    for (const o of ['10', '11', '12']) {
      await waitFor(() => g.started.includes(o), { timeoutMs: 5000, intervalMs: 1, description: `message ${o} dispatched` });
      g.finish(o);
    }
    await run;
    assert.equal(commits.at(-1), '13');
  });

  it('commits past a transaction marker or aborted records that end the batch once every message is handled', async () => {
    const g = gatedHandler();
    const { p, commits } = payload(['10', '11'], undefined, '13');
    const run = processBatch(deps(g.handler), p);
    for (const o of ['10', '11']) {
      while (!g.started.includes(o)) await tick();
      g.finish(o);
    }
    await run;
    assert.deepEqual(commits.slice(-2), ['12', '14']);
  });

  it('on a failed heartbeat (a rebalance) stops dispatching, drains what runs, commits what finished, then rethrows', async () => {
    const g = gatedHandler();
    const rebalance = Object.assign(new Error('The group is rebalancing'), { type: 'REBALANCE_IN_PROGRESS' });
    let beats = 0;
    const { p, commits } = payload(['0', '1', '2', '3', '4'], async () => {
      if (++beats >= 2) throw rebalance;
    });
    const d = deps(g.handler);
    const run = processBatch(d, p);
    const rejected = assert.rejects(run, (e) => e === rebalance);
    await waitFor(() => g.started.length >= 2, { timeoutMs: 5000, intervalMs: 1, description: 'two messages dispatched' });
    await tick();
    g.finish('0');
    g.finish('1');
    await rejected;
    assert.deepEqual(g.started, ['0', '1'], 'no message dispatched after the rebalance');
    assert.equal(commits.at(-1), '2', 'the messages in flight were drained and committed');
    assert.equal(d.fatals.length, 0, 'a rebalance is not fatal');
  });

  it('on a stop takes no new message, waits for the ones in flight and commits them', async () => {
    const g = gatedHandler();
    const stop = new AbortController();
    const { p, commits } = payload(['0', '1', '2', '3'], async () => undefined);
    const run = processBatch(deps(g.handler, { stopping: stop.signal }), p);
    await waitFor(() => g.started.length >= 2, { timeoutMs: 5000, intervalMs: 1, description: 'two messages dispatched' });
    stop.abort();
    g.finish('0');
    g.finish('1');
    await run;
    assert.deepEqual(g.started, ['0', '1']);
    assert.equal(commits.at(-1), '2');
  });

  it('treats a failure that is neither a stop nor a rebalance as fatal, after committing what finished before it', async () => {
    const bug = new TypeError('x is undefined');
    const handler: BatchDeps['handler'] = {
      handle: async (_m, at) => {
        if (at.offset === '1') throw bug;
        return { kind: 'job', name: 'j', existed: false };
      },
      committed: () => undefined,
    };
    const { p, commits } = payload(['0', '1', '2']);
    const d = deps(handler, { limit: 1 });
    await assert.rejects(processBatch(d, p), (e) => e === bug);
    assert.deepEqual(d.fatals, [bug]);
    assert.equal(commits.at(-1), '1', 'committed up to the failed message, never past it');
  });
});
