import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import kafkajs, { CompressionTypes } from 'kafkajs';
import { registerKafkaCodecs } from '../../../src/shared/kafka/kafka-codecs.js';
import { repoRoot } from '../../testbed/cache.js';

interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}
const registry = kafkajs.CompressionCodecs as unknown as Record<number, () => Codec>;

/**
 * test/fixtures/kafka-frames/<codec>-<length>.bin: the first <length> bytes of this text, as
 * Kafka 4.4's producer frames a record batch body (Compression.wrapForOutput, magic 2):
 * xerial snappy with two 32 KiB blocks, an LZ4 frame with two 64 KiB blocks, one zstd frame
 * without a content size.
 */
const text = Buffer.from(Array.from({ length: 3000 }, (_, i) => `record ${i % 97} of mcp-job-controller\n`).join(''));
const frame = (name: string) => readFileSync(join(repoRoot, 'test', 'fixtures', 'kafka-frames', `${name}.bin`));

describe('kafka codecs', () => {
  it("registers snappy, lz4 and zstd in kafkajs' registry once and keeps gzip", async () => {
    const gzip = registry[CompressionTypes.GZIP];
    registerKafkaCodecs();
    const first = [CompressionTypes.Snappy, CompressionTypes.LZ4, CompressionTypes.ZSTD].map((t) => registry[t]);
    registerKafkaCodecs();
    assert.deepEqual(
      [CompressionTypes.Snappy, CompressionTypes.LZ4, CompressionTypes.ZSTD].map((t) => registry[t]),
      first,
    );
    assert.equal(registry[CompressionTypes.GZIP], gzip);
  });

  it("decodes batches framed the way Kafka's Java producer frames them", async () => {
    registerKafkaCodecs();
    const cases = [
      [CompressionTypes.Snappy, 'snappy-40000'],
      [CompressionTypes.LZ4, 'lz4-95690'],
      [CompressionTypes.ZSTD, 'zstd-95690'],
    ] as const;
    for (const [type, name] of cases) {
      const out = await registry[type]!().decompress(frame(name));
      assert.ok(Buffer.isBuffer(out), `${name}: a Buffer`);
      assert.ok(out.equals(text.subarray(0, Number(name.split('-')[1]))), `${name}: content`);
    }
  });

  it('compresses snappy and lz4 to what it reads back, lz4 as a frame of independent blocks', async () => {
    registerKafkaCodecs();
    for (const type of [CompressionTypes.Snappy, CompressionTypes.LZ4]) {
      const codec = registry[type]!();
      assert.ok((await codec.decompress(await codec.compress({ buffer: text }))).equals(text));
    }
    const lz4 = await registry[CompressionTypes.LZ4]!().compress({ buffer: text });
    assert.equal(lz4.readUInt32LE(0), 0x184d2204);
    assert.equal(lz4[4]! & 0x20, 0x20, 'block independence flag, which Kafka requires');
  });

  it("refuses to compress zstd with kafkajs' not-implemented error", async () => {
    registerKafkaCodecs();
    await assert.rejects(registry[CompressionTypes.ZSTD]!().compress({ buffer: text }), { name: 'KafkaJSNotImplemented' });
  });
});
