import type { IHeaders, Message } from 'kafkajs';
import type { Coordinates } from '../shared/identity.js';

/** Header names on dead-letter records; `kafkacat -J` or any consumer can read them. */
export const DlqHeader = {
  reason: 'mcp.dlq.reason',
  error: 'mcp.dlq.error',
  topic: 'mcp.dlq.source.topic',
  partition: 'mcp.dlq.source.partition',
  offset: 'mcp.dlq.source.offset',
  at: 'mcp.dlq.timestamp',
  stage: 'mcp.dlq.stage',
} as const;

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
