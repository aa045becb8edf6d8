import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Admin, Message } from 'kafkajs';
import pino from 'pino';
import { Registry } from 'prom-client';
import { quarantineUndecodable, RetentionGapGuard } from '../../../src/controller/intake/loss-records.js';
import { createMetrics } from '../../../src/controller/reporting/metrics.js';
import { GroupAdmin } from '../../../src/controller/intake/group-admin.js';
import type { Coordinates } from '../../../src/shared/contract/identity.js';
import type { FetchedRecord } from '../../../src/shared/kafka/read-message.js';

const log = pino({ level: 'silent' });
const undecodable = () => Object.assign(new Error('ZSTD compression not implemented'), { name: 'KafkaJSNotImplemented' });

/** A partition of batches (offset ranges); `bad` ones fail to decode, and so does any fetch whose 1 MiB reaches them. */
function partitionOf(batches: { from: number; to: number; bad?: boolean }[]) {
  const rec = (o: number): FetchedRecord => ({ offset: String(o), key: null, value: Buffer.from(`m${o}`), headers: {}, timestamp: '0' });
  return {
    fetch: async (_t: string, _p: number, offset: bigint, maxBytes: number): Promise<FetchedRecord[]> => {
      const i = batches.findIndex((b) => BigInt(b.to) >= offset);
      const reach = maxBytes <= 1 ? [batches[i]!] : batches.slice(i);
      if (reach.some((b) => b.bad)) throw undecodable();
      return reach.flatMap((b) => Array.from({ length: b.to - b.from + 1 }, (_, k) => rec(b.from + k))).filter((r) => BigInt(r.offset) >= offset);
    },
  };
}

function fakes(committed: bigint, high: number) {
  const handled: string[] = [];
  const deadLettered: { at: Coordinates; record: Message }[] = [];
  const marked = new Set<string>();
  const moved: [number, bigint][] = [];
  return {
    handled,
    deadLettered,
    moved,
    groupAdmin: {
      committedOffsets: async () => new Map([[0, committed]]),
      ends: async () => [{ partition: 0, low: '0', high: String(high) }],
      setOffset: async (p: number, o: bigint) => void moved.push([p, o]),
    },
    handler: {
      handle: async (_m: unknown, at: Coordinates) => {
        handled.push(at.offset);
        return { kind: 'job' as const, name: 'j', existed: false };
      },
      hasDeadLettered: (at: Pick<Coordinates, 'partition' | 'offset'>) => marked.has(`${at.partition}/${at.offset}`),
      markDeadLettered: (at: Pick<Coordinates, 'partition' | 'offset'>) => void marked.add(`${at.partition}/${at.offset}`),
      sendDeadLetter: async (record: Message, at: Coordinates) => void deadLettered.push({ at, record }),
    },
  };
}

describe('quarantineUndecodable', () => {
  it('handles the good records before a bad batch, dead-letters each offset of the bad batch, and moves the offset past it', async () => {
    const reader = partitionOf([
      { from: 5, to: 6 },
      { from: 7, to: 9, bad: true },
      { from: 10, to: 12 },
    ]);
    const f = fakes(5n, 13);
    const n = await quarantineUndecodable({
      topic: 't',
      cause: undecodable(),
      groupAdmin: f.groupAdmin,
      reader,
      handler: f.handler,
      log,
      metrics: createMetrics(new Registry(), false),
      now: () => new Date(0),
    });
    assert.equal(n, 3);
    assert.deepEqual(f.handled, ['5', '6'], 'valid messages before the bad batch get their Jobs, not a loss record');
    assert.deepEqual(
      f.deadLettered.map((d) => d.at.offset),
      ['7', '8', '9'],
    );
    assert.equal(f.deadLettered[0]!.record.headers!['mcp.dlq.reason'], 'undecodable-record');
    assert.deepEqual(f.moved, [[0, 10n]], 'the records after the bad batch are left to the consumer');
  });

  it('leaves a partition alone when the consumer can read it', async () => {
    const f = fakes(0n, 4);
    const n = await quarantineUndecodable({
      topic: 't',
      cause: undecodable(),
      groupAdmin: f.groupAdmin,
      reader: partitionOf([{ from: 0, to: 3 }]),
      handler: f.handler,
      log,
      metrics: createMetrics(new Registry(), false),
      now: () => new Date(0),
    });
    assert.equal(n, 0);
    assert.deepEqual(f.handled, []);
    assert.deepEqual(f.moved, []);
  });
});

describe('RetentionGapGuard', () => {
  it('records a gap once per partition and not again after a rebalance before the commit moved past it', async () => {
    const f = fakes(0n, 0);
    const metrics = createMetrics(new Registry(), false);
    const guard = new RetentionGapGuard({
      groupAdmin: { retentionGapBefore: async () => ({ from: 3n, to: 9n, count: 7 }), knownCommitted: () => 3n },
      handler: f.handler,
      log,
      metrics,
      now: () => new Date(0),
    });
    await guard.beforeBatch('t', 0, '10', async () => undefined);
    await guard.beforeBatch('t', 0, '10', async () => undefined);
    guard.joined();
    await guard.beforeBatch('t', 0, '10', async () => undefined);
    assert.equal(f.deadLettered.length, 1);
    assert.equal(f.deadLettered[0]!.record.headers!['mcp.dlq.source.offset.last'], '9');
    assert.equal((await metrics.retentionGap.get()).values[0]!.value, 7);
  });

  it('records a gap retention opens within one group generation (the consumer held back while the log start passes it)', async () => {
    // The broker: the group committed 0; later kafkajs resets in the group's name (-1) and the log start moves to 20.
    const broker = { committed: '0', low: '0' };
    const admin = {
      fetchOffsets: async () => [{ topic: 't', partitions: [{ partition: 0, offset: broker.committed }] }],
      fetchTopicOffsets: async () => [{ partition: 0, low: broker.low, high: '30', offset: '30' }],
    };
    const groupAdmin = new GroupAdmin(admin as unknown as Admin, { group: 'g', topic: 't', dlqTopic: 't.dlq', log });
    await groupAdmin.committedOffsets();
    const f = fakes(0n, 0);
    const metrics = createMetrics(new Registry(), false);
    const guard = new RetentionGapGuard({ groupAdmin, handler: f.handler, log, metrics, now: () => new Date(0) });
    guard.joined();
    await guard.beforeBatch('t', 0, '0', async () => undefined);
    groupAdmin.noteCommitted(0, '5');
    await guard.beforeBatch('t', 0, '5', async () => undefined);
    assert.equal(f.deadLettered.length, 0, 'no gap while batches follow on');
    broker.committed = '-1';
    broker.low = '20';
    await guard.beforeBatch('t', 0, '20', async () => undefined);
    assert.equal(f.deadLettered.length, 1);
    assert.equal(f.deadLettered[0]!.at.offset, '5');
    assert.equal(f.deadLettered[0]!.record.headers!['mcp.dlq.source.offset.last'], '19');
    assert.equal((await metrics.retentionGap.get()).values[0]!.value, 15);
  });

  it('records no gap for a batch that starts past the commit where nothing was deleted (a transaction marker)', async () => {
    const admin = {
      fetchOffsets: async () => [{ topic: 't', partitions: [{ partition: 0, offset: '5' }] }],
      fetchTopicOffsets: async () => [{ partition: 0, low: '0', high: '30', offset: '30' }],
    };
    const groupAdmin = new GroupAdmin(admin as unknown as Admin, { group: 'g', topic: 't', dlqTopic: 't.dlq', log });
    const f = fakes(0n, 0);
    const guard = new RetentionGapGuard({ groupAdmin, handler: f.handler, log, metrics: createMetrics(new Registry(), false), now: () => new Date(0) });
    await guard.beforeBatch('t', 0, '5', async () => undefined);
    await guard.beforeBatch('t', 0, '7', async () => undefined);
    assert.equal(f.deadLettered.length, 0);
  });
});
