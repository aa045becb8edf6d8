import { createHash } from 'node:crypto';
import type { IHeaders, Message } from 'kafkajs';
import type { Coordinates } from '../../shared/contract/identity.js';

import { DlqHeader } from '../../shared/contract/dlq-headers.js';

export { DlqHeader };

export interface SourceRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers?: IHeaders;
}

/**
 * The dead-letter record for a message: its original key, value and headers untouched (so it
 * can be replayed byte for byte), plus headers saying why and where it came from.
 */
export function buildDeadLetter(src: SourceRecord, at: Coordinates, reason: string, error: string, now: Date, stage = 'controller'): Message {
  return {
    key: src.key,
    value: src.value,
    headers: {
      ...src.headers,
      [DlqHeader.reason]: reason,
      [DlqHeader.error]: error.slice(0, 2000),
      [DlqHeader.topic]: at.topic,
      [DlqHeader.partition]: String(at.partition),
      [DlqHeader.offset]: at.offset,
      [DlqHeader.at]: now.toISOString(),
      [DlqHeader.stage]: stage,
    },
  };
}

/**
 * Headers of a record cut to fit its topic: each part cut (value, key, the original headers)
 * keeps its original size and sha256, so the original can be matched to its source.
 */
export const TruncatedHeader = {
  /** `true` when parts were cut; `minimal` when only the coordinates, reason and digests are left. */
  truncated: 'mcp.dlq.truncated',
  originalSize: 'mcp.dlq.original.size',
  originalSha256: 'mcp.dlq.original.sha256',
  keySize: 'mcp.dlq.original.key.size',
  keySha256: 'mcp.dlq.original.key.sha256',
  /** Bytes of the original headers' names and values. */
  headersSize: 'mcp.dlq.original.headers.size',
  /** sha256 over each original header as 4-byte big-endian length + name, 4-byte length + value, in order. */
  headersSha256: 'mcp.dlq.original.headers.sha256',
  /** `<kept>/<total>`: how many original headers are on the record (the last kept one may be cut). */
  headersKept: 'mcp.dlq.original.headers.kept',
} as const;

/** Headers the controller adds (`mcp.dlq.*`): never cut, since they say what the record is. */
const OWN_HEADER = /^mcp\.dlq\./;

type Bytes = Message['value'] | Message['key'] | undefined;

function byteLength(v: Bytes): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'string' ? Buffer.byteLength(v) : v.length;
}

const toBuffer = (v: Bytes): Buffer => (v === null || v === undefined ? Buffer.alloc(0) : Buffer.from(v));
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Headers as ordered name/value pairs (kafkajs gives a repeated header as an array). */
function headerPairs(h: IHeaders | undefined): [string, Buffer][] {
  const out: [string, Buffer][] = [];
  for (const [k, v] of Object.entries(h ?? {})) for (const x of Array.isArray(v) ? v : [v]) out.push([k, toBuffer(x as Bytes)]);
  return out;
}

/**
 * Kafka's record batch framing, counted high: the v2 batch header (61 bytes), and per record
 * its length, attributes, timestamp and offset deltas and key/value lengths as varints at their
 * widest, and 10 bytes of varints per header. The broker compares the whole batch with the
 * topic's `max.message.bytes`.
 */
const BATCH_HEADER_BYTES = 61;
const RECORD_FRAMING_BYTES = 5 + 1 + 10 + 5 + 5 + 5 + 5;
const HEADER_FRAMING_BYTES = 10;

/** Bytes a record takes in a one-record batch, compressed or not: gzip can grow incompressible bytes by 5 per 16 KiB block plus its own header. */
export function recordBatchBytes(record: Message): number {
  let n = RECORD_FRAMING_BYTES + byteLength(record.key) + byteLength(record.value);
  for (const [k, v] of headerPairs(record.headers)) n += HEADER_FRAMING_BYTES + Buffer.byteLength(k) + v.length;
  return BATCH_HEADER_BYTES + n + Math.ceil(n / 16_384) * 5 + 64;
}

/** Shares `room` between parts: each gets all it needs up to an equal share of what is left. Pure. */
function shareRoom(sizes: number[], room: number): number[] {
  const out = sizes.map(() => 0);
  const order = sizes.map((n, i) => [n, i] as const).sort((a, b) => a[0] - b[0]);
  let left = Math.max(0, room);
  for (const [j, [n, i]] of order.entries()) {
    out[i] = Math.min(n, Math.floor(left / (order.length - j)));
    left -= out[i]!;
  }
  return out;
}

/** The original headers cut to `room` bytes: whole headers in order while they fit, then a prefix of the next one's value. */
function cutHeaders(pairs: [string, Buffer][], room: number): { headers: IHeaders; kept: number } {
  const headers: IHeaders = {};
  let left = room;
  let kept = 0;
  for (const [k, v] of pairs) {
    const cost = HEADER_FRAMING_BYTES + Buffer.byteLength(k);
    if (cost >= left) break;
    const value = v.subarray(0, Math.min(v.length, left - cost));
    const had = headers[k];
    headers[k] = had === undefined ? value : [...(Array.isArray(had) ? had : [had as Buffer]), value];
    left -= cost + value.length;
    kept++;
    if (value.length < v.length) break;
  }
  return { headers, kept };
}

/**
 * A record that fits a topic whose `max.message.bytes` is `maxBytes`, by construction: the
 * record itself when it fits; otherwise its key, value and original headers cut (a prefix of
 * each, the room shared so small parts stay whole), each cut part's original size and sha256 in
 * `mcp.dlq.original.*` headers; and when even the controller's own headers and the digests do
 * not fit, a minimal record: no key or value, the coordinates, the reason, a shortened error and
 * the digests (`minimal` asks for that one at once: the broker refused the record for its
 * contents, not its size). Pure: a refusal of one record is never a reason to stop the controller.
 */
export function fitRecord(record: Message, maxBytes: number, o: { minimal?: boolean } = {}): Message {
  if (!o.minimal && recordBatchBytes(record) <= maxBytes) return record;
  const key = toBuffer(record.key);
  const value = toBuffer(record.value);
  const original = headerPairs(record.headers).filter(([k]) => !OWN_HEADER.test(k));
  const ownHeaders: IHeaders = Object.fromEntries(Object.entries(record.headers ?? {}).filter(([k]) => OWN_HEADER.test(k)));
  const hdrHash = createHash('sha256');
  let hdrSize = 0;
  for (const [k, v] of original) {
    const name = Buffer.from(k);
    const len = Buffer.alloc(8);
    len.writeUInt32BE(name.length, 0);
    len.writeUInt32BE(v.length, 4);
    hdrHash.update(len.subarray(0, 4)).update(name).update(len.subarray(4)).update(v);
    hdrSize += name.length + v.length;
  }
  const digests: IHeaders = {
    [TruncatedHeader.originalSize]: String(value.length),
    [TruncatedHeader.originalSha256]: sha256(value),
    [TruncatedHeader.keySize]: String(key.length),
    [TruncatedHeader.keySha256]: sha256(key),
    [TruncatedHeader.headersSize]: String(hdrSize),
    [TruncatedHeader.headersSha256]: hdrHash.digest('hex'),
  };
  const base: Message = {
    key: null,
    value: null,
    headers: { ...ownHeaders, ...digests, [TruncatedHeader.truncated]: 'true', [TruncatedHeader.headersKept]: `${original.length}/${original.length}` },
  };
  // What is added grows the compression allowance too (5 bytes per 16 KiB).
  const room = Math.floor(((maxBytes - recordBatchBytes(base)) * 16_384) / 16_389) - 5;
  if (room >= 0 && !o.minimal) {
    const hdrCost = original.reduce((n, [k, v]) => n + HEADER_FRAMING_BYTES + Buffer.byteLength(k) + v.length, 0);
    const [keyRoom, valueRoom, hdrRoom] = shareRoom([key.length, value.length, hdrCost], room);
    const cut = cutHeaders(original, hdrRoom!);
    return {
      ...(record.partition !== undefined ? { partition: record.partition } : {}),
      key: key.length || record.key !== null ? key.subarray(0, keyRoom) : null,
      value: value.subarray(0, valueRoom),
      headers: { ...cut.headers, ...base.headers, [TruncatedHeader.headersKept]: `${cut.kept}/${original.length}` },
    };
  }
  return minimalRecord(ownHeaders, digests, maxBytes);
}

/** The controller headers that say what a record is and where it came from: all a minimal record keeps. */
const MINIMAL_HEADERS: readonly string[] = [
  DlqHeader.reason,
  DlqHeader.topic,
  DlqHeader.partition,
  DlqHeader.offset,
  DlqHeader.at,
  DlqHeader.stage,
  'mcp.dlq.source.offset.last',
];

function minimalRecord(own: IHeaders, digests: IHeaders, maxBytes: number): Message {
  const headers: IHeaders = { [TruncatedHeader.truncated]: 'minimal', ...digests };
  for (const k of MINIMAL_HEADERS) if (own[k] !== undefined) headers[k] = toBuffer(own[k] as Bytes).subarray(0, 512);
  const error = toBuffer(own[DlqHeader.error] as Bytes);
  const record: Message = { key: null, value: null, headers };
  const room = maxBytes - recordBatchBytes(record) - HEADER_FRAMING_BYTES - Buffer.byteLength(DlqHeader.error);
  if (error.length && room > 0) headers[DlqHeader.error] = error.subarray(0, Math.min(room, 512));
  return record;
}

/**
 * A dead-letter record for messages the controller could not read at all: a range of offsets
 * retention deleted before they were consumed, or a batch kafkajs cannot decode. There are no
 * original bytes to keep; the headers say what and where.
 */
export function buildLossRecord(at: Coordinates, reason: 'retention-gap' | 'undecodable-record', error: string, now: Date, lastOffset = at.offset): Message {
  return {
    key: null,
    value: null,
    headers: {
      [DlqHeader.reason]: reason,
      [DlqHeader.error]: error.slice(0, 2000),
      [DlqHeader.topic]: at.topic,
      [DlqHeader.partition]: String(at.partition),
      [DlqHeader.offset]: at.offset,
      [LossHeader.lastOffset]: lastOffset,
      [DlqHeader.at]: now.toISOString(),
      [DlqHeader.stage]: 'controller',
    },
  };
}

export const LossHeader = { lastOffset: 'mcp.dlq.source.offset.last' } as const;
