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

/** Headers of a record shortened to fit the dead-letter topic. */
export const TruncatedHeader = {
  truncated: 'mcp.dlq.truncated',
  originalSize: 'mcp.dlq.original.size',
  originalSha256: 'mcp.dlq.original.sha256',
} as const;

function byteLength(v: Message['value'] | Message['key']): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'string' ? Buffer.byteLength(v) : v.length;
}

function headerBytes(h: IHeaders | undefined): number {
  let n = 0;
  for (const [k, v] of Object.entries(h ?? {}))
    n += Buffer.byteLength(k) + (Array.isArray(v) ? v.reduce((a, x) => a + byteLength(x), 0) : byteLength(v as Buffer | string | null));
  return n;
}

/**
 * The same dead-letter record, with its value cut so the whole record fits `maxBytes` (the
 * dead-letter topic's `max.message.bytes`, less room for the batch framing), and headers that
 * say so and give the original size and sha256 — so a record too large for the topic is still
 * written, and the original can be matched to its source. Pure.
 */
export function truncateDeadLetter(record: Message, maxBytes: number): Message {
  const value = record.value === null || record.value === undefined ? Buffer.alloc(0) : Buffer.from(record.value);
  const headers: IHeaders = {
    ...record.headers,
    [TruncatedHeader.truncated]: 'true',
    [TruncatedHeader.originalSize]: String(value.length),
    [TruncatedHeader.originalSha256]: createHash('sha256').update(value).digest('hex'),
  };
  const room = Math.max(0, maxBytes - headerBytes(headers) - byteLength(record.key) - DEAD_LETTER_FRAMING_BYTES);
  return { ...record, value: value.subarray(0, Math.min(room, value.length)), headers };
}

/** Room left for a record batch's own framing (batch header, record header, varints): generous on purpose. */
export const DEAD_LETTER_FRAMING_BYTES = 1024;

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
