import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Partitioners, type PartitionerArgs, type PartitionMetadata } from 'kafkajs';
import { KeyHashPartitioner, murmur2 } from '../../../src/shared/kafka/partitioner.js';

const metadata = (n: number): PartitionMetadata[] =>
  Array.from({ length: n }, (_, i) => ({ partitionId: i, leader: 1, replicas: [1], isr: [1], offlineReplicas: [], partitionErrorCode: 0 }));

/** Java's `Utils.murmur2` transcribed with every int step cut back to 32 bits: slow, plainly the same arithmetic. */
function javaMurmur2(data: Buffer): number {
  const int = (x: bigint) => BigInt.asIntN(32, x);
  const ushr = (x: bigint, n: bigint) => BigInt.asUintN(32, x) >> n;
  const m = 0x5bd1e995n;
  const length = data.length;
  let h = int(0x9747b28cn ^ BigInt(length));
  for (let i = 0; i < Math.floor(length / 4); i++) {
    let k = int(BigInt(data[i * 4]!) + (BigInt(data[i * 4 + 1]!) << 8n) + (BigInt(data[i * 4 + 2]!) << 16n) + (BigInt(data[i * 4 + 3]!) << 24n));
    k = int(k * m);
    k = int(k ^ ushr(k, 24n));
    k = int(k * m);
    h = int(h * m);
    h = int(h ^ k);
  }
  const tail = length & ~3;
  switch (length % 4) {
    case 3:
      h = int(h ^ (BigInt(data[tail + 2]!) << 16n));
    // falls through
    case 2:
      h = int(h ^ (BigInt(data[tail + 1]!) << 8n));
    // falls through
    case 1:
      h = int(h ^ BigInt(data[tail]!));
      h = int(h * m);
  }
  h = int(h ^ ushr(h, 13n));
  h = int(h * m);
  h = int(h ^ ushr(h, 15n));
  return Number(h);
}

const args = (message: PartitionerArgs['message'], n: number): PartitionerArgs => ({ topic: 't', partitionMetadata: metadata(n), message });

describe('murmur2', () => {
  it("gives the Java client's hashes (Kafka's own test vectors)", () => {
    const cases: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, hash] of cases) {
      assert.equal(murmur2(Buffer.from(key)), hash, key);
      assert.equal(javaMurmur2(Buffer.from(key)), hash, `the transcription, ${key}`);
    }
  });

  it('hashes a key near the topic limit as the Java client does', () => {
    // kafkajs' own murmur2 takes minutes on such a key (its Long is a BigInt that keeps growing).
    const key = randomBytes(1_048_227);
    assert.equal(murmur2(key), javaMurmur2(key));
  });
});

describe('KeyHashPartitioner', () => {
  it("puts every keyed message on the partition kafkajs' DefaultPartitioner picks", () => {
    const ours = KeyHashPartitioner();
    const theirs = Partitioners.DefaultPartitioner();
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.from(a)),
          fc.string({ maxLength: 200, unit: 'binary' }),
        ),
        fc.integer({ min: 1, max: 4096 }),
        (key, n) => assert.equal(ours(args({ key, value: 'v' }, n)), theirs(args({ key, value: 'v' }, n))),
      ),
      { numRuns: 400 },
    );
  });

  it('keeps the partition a message names, key or not', () => {
    const p = KeyHashPartitioner();
    assert.equal(p(args({ key: 'k', value: 'v', partition: 2 }, 3)), 2);
    assert.equal(p(args({ key: null, value: 'v', partition: 0 }, 3)), 0);
  });

  it('spreads messages without a key over every partition in turn', () => {
    const p = KeyHashPartitioner();
    const seen = new Set(Array.from({ length: 6 }, () => p(args({ key: null, value: 'v' }, 3))));
    assert.deepEqual([...seen].sort(), [0, 1, 2]);
  });
});
