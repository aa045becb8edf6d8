import { Partitioners, type ICustomPartitioner } from 'kafkajs';

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/**
 * Kafka's murmur2 (the Java client's `Utils.murmur2`), in 32-bit integer arithmetic. kafkajs'
 * own copy does the same sums on a BigInt-backed Long that is never cut back to 64 bits, so
 * the hash grows by some 30 bits per 4 key bytes and the whole loop is quadratic: a 256 KiB key
 * takes seconds, a 1 MiB key minutes, all of it blocking the event loop (no heartbeat, no Job
 * watch, no log line). Same result bit for bit, linear time. Pure.
 */
export function murmur2(data: Buffer): number {
  const length = data.length;
  let h = SEED ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data.readInt32LE(i);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // Java's switch falls through: 3 bytes left take all three steps, 1 byte only the last.
  const left = length & 3;
  if (left === 3) h ^= data[whole + 2]! << 16;
  if (left >= 2) h ^= data[whole + 1]! << 8;
  if (left >= 1) {
    h ^= data[whole]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition the Java client (and kafkajs' DefaultPartitioner) picks for a key. Pure. */
export function partitionForKey(key: Buffer | string, partitions: number): number {
  const data = Buffer.isBuffer(key) ? key : Buffer.from(String(key));
  return (murmur2(data) & 0x7fffffff) % partitions;
}

/**
 * kafkajs' DefaultPartitioner with the key hashed by {@link murmur2}: a message's own partition
 * when it names one, the Java client's partition for its key, round-robin without a key. Every
 * producer in the product uses it: a dead-letter record keeps its message's key, and a key can
 * be as long as the topic allows.
 */
export const KeyHashPartitioner: ICustomPartitioner = () => {
  const keyless = Partitioners.DefaultPartitioner();
  return (args) => {
    const { message, partitionMetadata } = args;
    if (message.partition === undefined || message.partition === null) {
      if (message.key !== undefined && message.key !== null) return partitionForKey(message.key, partitionMetadata.length);
    }
    return keyless(args);
  };
};
