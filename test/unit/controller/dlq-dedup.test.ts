import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { EachBatchPayload, KafkaMessage, ProducerRecord, RecordMetadata } from 'kafkajs';
import pino from 'pino';
import { Registry } from 'prom-client';
import { waitFor } from '../../../src/shared/wait.js';
import { ControllerConfigSchema } from '../../../src/controller/config.js';
import { processBatch } from '../../../src/controller/intake/batch-processor.js';
import { MessageHandler } from '../../../src/controller/intake/message-handler.js';
import { ActiveJobSlots } from '../../../src/controller/intake/slots.js';
import { DlqHeader } from '../../../src/controller/reporting/dead-letter.js';
import { DeadLetterRescan } from '../../../src/controller/reporting/dlq-dedup.js';
import { createMetrics, Pauses } from '../../../src/controller/reporting/metrics.js';
import { validationPolicy } from '../../../src/shared/contract/policy.js';
import { parseConfig } from '../../../src/shared/settings.js';

const log = pino({ level: 'silent' });
const config = parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 'work', JOB_NAMESPACE: 'jobs' });
const tick = () => new Promise((r) => setImmediate(r));

/** One dead-letter topic shared by the group's members: what they sent, as a scan reads it back. */
class DeadLetterTopic {
  records: ProducerRecord['messages'] = [];
  /** A member's producer. */
  producer() {
    return {
      send: async (r: ProducerRecord): Promise<RecordMetadata[]> => {
        this.records.push(...r.messages);
        return [];
      },
    };
  }
  /** What the scan of uncommitted messages finds (nothing is committed in these tests). */
  async scan(): Promise<Set<string>> {
    return new Set(this.records.map((m) => `${String(m.headers![DlqHeader.partition])}/${String(m.headers![DlqHeader.offset])}`));
  }
}

/** A controller member: its handler, and the rescan wired as run.ts wires it. */
function member(dlq: DeadLetterTopic) {
  const metrics = createMetrics(new Registry(), false);
  const pauses = new Pauses(metrics.paused);
  const handler = new MessageHandler({
    config,
    policy: validationPolicy(config),
    jobs: { createNamespacedJob: async () => ({}), readNamespacedJob: async () => ({}) },
    producer: dlq.producer(),
    slots: new ActiveJobSlots({ cap: 0, log, pauses }),
    pauses,
    log,
    metrics,
    signal: new AbortController().signal,
    backoff: { initialMs: 1, maxMs: 5 },
  });
  const rescan = new DeadLetterRescan({ scan: () => dlq.scan(), remember: (f) => handler.seedDeadLettered(f), heartbeatMs: 1 });
  const consume = (offsets: string[]) =>
    processBatch(
      {
        handler,
        limit: 4,
        stopping: new AbortController().signal,
        beforeBatch: (_t, _p, _f, heartbeat) => rescan.ready(heartbeat),
        onFatal: (err) => assert.fail(`fatal: ${String(err)}`),
        log,
        metrics,
      },
      {
        batch: {
          topic: 'work',
          partition: 0,
          lastOffset: () => offsets.at(-1)!,
          highWatermark: String(Number(offsets.at(-1)) + 1),
          messages: offsets.map((offset) => ({ offset, key: null, value: Buffer.from('not json'), headers: {} }) as unknown as KafkaMessage),
        },
        resolveOffset: () => undefined,
        heartbeat: async () => undefined,
        isRunning: () => true,
        isStale: () => false,
        commitOffsetsIfNecessary: async () => undefined,
      } as unknown as EachBatchPayload,
    );
  return { handler, rescan, consume };
}

describe('DeadLetterRescan', () => {
  it('a member that gains a partition on a rebalance writes no second dead-letter record for a message its previous owner dead-lettered without committing', async () => {
    const dlq = new DeadLetterTopic();
    const a = member(dlq);
    const b = member(dlq);
    // Both started (and scanned) before anything was written.
    a.handler.seedDeadLettered(await dlq.scan());
    b.handler.seedDeadLettered(await dlq.scan());
    a.rescan.joined();
    b.rescan.joined();
    await a.consume(['7', '8']); // a owns partition 0, dead-letters 7 and 8, and its commit is lost to the rebalance
    assert.equal(dlq.records.length, 2);
    b.rescan.joined(); // the rebalance moves partition 0 to b, which is handed 7 and 8 again
    await b.consume(['7', '8', '9']);
    assert.deepEqual(
      dlq.records.map((m) => m.headers![DlqHeader.offset]),
      ['7', '8', '9'],
      'one record per message, whichever member wrote it',
    );
  });

  it('holds a batch until the scan of the latest join is done, heartbeating meanwhile', async () => {
    let release!: (s: Set<string>) => void;
    const remembered: Set<string>[] = [];
    const rescan = new DeadLetterRescan({ scan: () => new Promise((r) => (release = r)), remember: (f) => remembered.push(f), heartbeatMs: 1 });
    rescan.joined();
    let beats = 0;
    let ready = false;
    const waiting = rescan.ready(async () => void beats++).then(() => (ready = true));
    await waitFor(() => beats >= 3, { timeoutMs: 10_000, intervalMs: 1, description: 'three heartbeats while the scan runs' });
    assert.equal(ready, false, 'no batch runs before the scan is done');
    release(new Set(['0/1']));
    await waiting;
    assert.deepEqual(remembered, [new Set(['0/1'])]);
  });

  it('a failed scan holds every batch of its generation back with its error, until the next join scans again', async () => {
    const answers: (() => Promise<Set<string>>)[] = [async () => Promise.reject(new Error('not allowed to read the topic')), async () => new Set<string>()];
    const rescan = new DeadLetterRescan({ scan: () => answers.shift()!(), remember: () => undefined, heartbeatMs: 1 });
    rescan.joined();
    await assert.rejects(
      rescan.ready(async () => undefined),
      /not allowed/,
    );
    await assert.rejects(
      rescan.ready(async () => undefined),
      /not allowed/,
    );
    rescan.joined();
    await tick();
    await rescan.ready(async () => undefined);
  });
});
