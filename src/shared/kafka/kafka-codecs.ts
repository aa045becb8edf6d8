/**
 * Kafka compression codecs for kafkajs, which decodes only gzip on its own: a snappy, lz4 or
 * zstd batch (Kafka's Java producer with `compression.type` set, say) otherwise stops the
 * consumer with `KafkaJSNotImplemented`. All three codecs are plain JavaScript: nothing is
 * compiled or downloaded at install, and they run on any platform the Node images do (glibc
 * or musl). Each decodes a 1 MiB batch in 4-14 ms on a 2-core machine, about what kafkajs' own
 * gzip (node:zlib) takes: plenty for messages of at most 1 MiB.
 */
import kafkaErrors from 'kafkajs/src/errors.js';
import compression from 'kafkajs/src/protocol/message/compression/index.js';
import { decompress as zstdDecompress } from 'fzstd';
import snappyCodec from 'kafkajs-snappy';
import lz4 from 'lz4js';
import xxh32 from 'lz4js/xxh32.js';

/** kafkajs' codec contract (src/protocol/message/compression): a factory of this. */
interface KafkaCodec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

/** kafkajs parses batches with Buffer methods; the JS codecs return plain Uint8Arrays. */
function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

// The registry kafkajs' index exports as `CompressionCodecs`, from its own module: the job loads
// no more of kafkajs than its reader needs.
const registry = compression.Codecs as Record<number, () => KafkaCodec>;
const CompressionTypes = compression.Types;
const { KafkaJSNotImplemented } = kafkaErrors;

/**
 * Snappy: kafkajs-snappy, the codec written by kafkajs' author on top of snappyjs (pure JS).
 * It unwraps the xerial framing (`\x82SNAPPY\0` + length-prefixed blocks) that Kafka's Java
 * producer writes, and reads raw snappy too. Compresses to raw snappy, which Java reads.
 */
const snappy: () => KafkaCodec = snappyCodec;

/**
 * LZ4: lz4js (pure JS). Kafka writes the LZ4 *frame* format (magic 0x184D2204, 64 KiB blocks,
 * incompressible blocks stored raw); lz4js reads exactly that. kafkajs-lz4 is not used: it
 * depends on the `lz4` package, which builds a native addon with node-gyp at install.
 */
const lz4Codec = (): KafkaCodec => ({
  async compress(encoder) {
    return lz4Frame(encoder.buffer);
  },
  async decompress(buffer) {
    return asBuffer(lz4.decompress(buffer));
  },
});

const LZ4_MAX_BLOCK = 4 * 1024 * 1024;
const LZ4_FLG_BLOCK_INDEPENDENCE = 0x20;

/**
 * lz4js writes one frame of 4 MiB blocks without the block-independence flag, and Kafka's
 * broker rejects such a frame ("Dependent block stream is unsupported"). Up to 4 MiB the frame
 * holds a single block, so it is independent: set the flag and redo the header checksum
 * (byte 6: second byte of xxh32 over the FLG and BD bytes).
 */
function lz4Frame(data: Buffer): Buffer {
  if (data.length > LZ4_MAX_BLOCK) throw new KafkaJSNotImplemented('LZ4 compression of a batch over 4 MiB not implemented');
  const frame = asBuffer(lz4.compress(data));
  frame[4] = frame[4]! | LZ4_FLG_BLOCK_INDEPENDENCE;
  frame[6] = (xxh32.hash(0, frame, 4, 2) >>> 8) & 0xff;
  return frame;
}

/**
 * ZSTD: fzstd (pure JS, decompression only; it reads the streaming frames without a content
 * size that Kafka's zstd-jni writes). Node 20's zlib has no zstd and the native packages
 * (@kafkajs/zstd, @mongodb-js/zstd, zstd-napi) build with node-gyp or download a binary at
 * install. So zstd is read-only here; the product's producers send uncompressed batches.
 */
const zstd = (): KafkaCodec => ({
  async compress() {
    throw new KafkaJSNotImplemented('ZSTD compression not implemented (this build only decompresses zstd)');
  },
  async decompress(buffer) {
    return asBuffer(zstdDecompress(buffer));
  },
});

let registered = false;

/**
 * Registers snappy, lz4 and zstd in kafkajs' process-wide `CompressionCodecs` registry (gzip is
 * built in). Every kafkajs client of the process uses it when it decodes a fetched batch — the
 * consumer and the internal broker fetch of PartitionReader/readOneMessage alike — so call it
 * once at start-up, before the first fetch. Calling it again does nothing.
 */
export function registerKafkaCodecs(): void {
  if (registered) return;
  registry[CompressionTypes.Snappy] = snappy;
  registry[CompressionTypes.LZ4] = lz4Codec;
  registry[CompressionTypes.ZSTD] = zstd;
  registered = true;
}
