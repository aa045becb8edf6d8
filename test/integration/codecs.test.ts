import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { CompressionTypes, type KafkaMessage } from 'kafkajs';
import { registerKafkaCodecs } from '../../src/shared/kafka/kafka-codecs.js';
import { kafkaConnection } from '../../src/shared/kafka/kafka.js';
import { readOneMessage } from '../../src/shared/kafka/read-message.js';
import { brokers, freshTopic, uniqueName, useKafka, waitFor } from '../helpers.js';
import { repoRoot, versions } from '../testbed/cache.js';
import { ensureKafka } from '../testbed/kafka.js';

const CODECS = ['gzip', 'snappy', 'lz4', 'zstd'] as const;
type Codec = (typeof CODECS)[number];

interface Rec {
  key: Buffer | null;
  value: Buffer;
}

/**
 * Local stand-in for the test bed's Java producer wrapper (to be merged with it): runs
 * test/fixtures/JavaProducer.java from the broker jars (KAFKA_HOME, else the test bed's cache)
 * with one producer per `topic:compression` pair, all records handed over before one flush.
 * Resolves to each topic's offsets, in record order.
 */
function codecsTestJavaProduce(pairs: Record<string, string>, records: Rec[]): Promise<Map<string, string[]>> {
  const libs = join(ensureKafka(versions.kafka), 'libs', '*');
  const source = join(repoRoot, 'test', 'fixtures', 'JavaProducer.java');
  const child = spawn('java', ['-cp', libs, source, brokers().join(','), ...Object.entries(pairs).map(([t, c]) => `${t}:${c}`)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (err += c));
  child.stdin.end(records.map((r) => `${r.key?.toString('base64') ?? ''}\t${r.value.toString('base64')}\n`).join(''));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`JavaProducer exited with ${code}: ${err.slice(-2000)}`));
      const offsets = new Map<string, string[]>();
      for (const line of out.split('\n')) {
        const m = /^(\S+)\t(\d+)\t(\d+)$/.exec(line);
        if (m && m[1] && m[3] && m[1] in pairs) offsets.set(m[1], [...(offsets.get(m[1]) ?? []), m[3]]);
      }
      resolve(offsets);
    });
  });
}

/** Small JSON records, and large ones so lz4 frames span several 64 KiB blocks, raw ones included. */
function testRecords(): Rec[] {
  const recs: Rec[] = Array.from({ length: 20 }, (_, i) => ({
    key: Buffer.from(`k${i}`),
    value: Buffer.from(JSON.stringify({ i, servers: [{ command: 'npx', args: ['-y', `pkg-${i}`] }], pad: 'x'.repeat(i * 37) })),
  }));
  const text = Array.from({ length: 4000 }, (_, i) => `line ${i} ${createHash('sha1').update(String(i)).digest('hex')}\n`).join('');
  recs.push({ key: Buffer.from('text-200k'), value: Buffer.from(text) });
  recs.push({ key: null, value: randomBytes(150 * 1024) });
  recs.push({ key: Buffer.from('mixed-130k'), value: Buffer.concat([randomBytes(40 * 1024), Buffer.alloc(90 * 1024, 7), randomBytes(10)]) });
  recs.push({ key: Buffer.from('empty'), value: Buffer.alloc(0) });
  return recs;
}

function assertSame(got: { key: Buffer | null; value: Buffer | null }, want: Rec, what: string): void {
  assert.deepEqual(got.key, want.key, `${what}: key`);
  assert.ok((got.value ?? Buffer.alloc(0)).equals(want.value), `${what}: value of ${want.value.length} bytes differs (got ${got.value?.length ?? 'null'})`);
}

describe('Kafka compression codecs', () => {
  const { kafka, admin, producer } = useKafka('codecs-tests');
  const records = testRecords();
  const connection = kafkaConnection({ brokers: brokers(), clientId: 'codecs-tests', level: 'silent' });
  const topics = {} as Record<Codec, string>;

  before(async () => {
    for (const c of CODECS) topics[c] = await freshTopic(admin, 1, `codec-${c}`);
    const offsets = await codecsTestJavaProduce(Object.fromEntries(CODECS.map((c) => [topics[c], c])), records);
    for (const c of CODECS) assert.equal(offsets.get(topics[c])?.length, records.length, `Java produced every ${c} record`);
  });

  // Runs first: registration is process-wide and cannot be undone (the product's clients register on creation).
  it("crashes a bare kafkajs consumer on a Java producer's lz4 batch before registerKafkaCodecs (the bug this fixes)", async () => {
    const consumer = kafka.consumer({ groupId: uniqueName('no-codecs'), maxWaitTimeInMs: 200, retry: { retries: 0 } });
    let crash: Error | undefined;
    consumer.on(consumer.events.CRASH, (e) => void (crash = e.payload.error));
    try {
      await consumer.connect();
      await consumer.subscribe({ topic: topics.lz4, fromBeginning: true });
      await consumer.run({ eachMessage: async () => undefined });
      const err = await waitFor(() => crash, { timeoutMs: 30_000, description: 'the consumer to crash' });
      assert.match(`${err.name}: ${err.message} ${String((err as { cause?: unknown }).cause ?? '')}`, /LZ4 compression not implemented/);
    } finally {
      await consumer.disconnect();
    }
  });

  for (const codec of CODECS) {
    it(`reads every record of a Java producer's ${codec} batches back through a consumer group and through readOneMessage`, async () => {
      registerKafkaCodecs();
      const consumer = kafka.consumer({ groupId: uniqueName('codecs'), maxWaitTimeInMs: 200 });
      const got: KafkaMessage[] = [];
      let crash: Error | undefined;
      consumer.on(consumer.events.CRASH, (e) => void (crash = e.payload.error));
      try {
        await consumer.connect();
        await consumer.subscribe({ topic: topics[codec], fromBeginning: true });
        await consumer.run({ eachMessage: async ({ message }) => void got.push(message) });
        await waitFor(() => crash !== undefined || got.length >= records.length, {
          timeoutMs: 30_000,
          description: `${records.length} ${codec} records consumed`,
        });
        if (crash) throw crash;
      } finally {
        await consumer.disconnect();
      }
      assert.equal(got.length, records.length);
      records.forEach((want, i) => assertSame(got[i]!, want, `${codec} record ${i}`));

      for (const i of [0, 20, 21, 22, 23]) {
        const one = await readOneMessage(connection, { topic: topics[codec], partition: 0, offset: String(i) });
        assertSame(one, records[i]!, `${codec} readOneMessage at ${i}`);
      }
    });
  }

  it('compresses with snappy and lz4 in a form the broker accepts, and reads it back', async () => {
    registerKafkaCodecs();
    for (const [name, compression] of [
      ['snappy', CompressionTypes.Snappy],
      ['lz4', CompressionTypes.LZ4],
    ] as const) {
      const topic = await freshTopic(admin, 1, `kafkajs-${name}`);
      await producer.send({ topic, compression, messages: records });
      for (const i of [0, 21, 23]) {
        const one = await readOneMessage(connection, { topic, partition: 0, offset: String(i) });
        assertSame(one, records[i]!, `kafkajs ${name} record ${i}`);
      }
    }
  });
});
