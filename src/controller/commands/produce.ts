import { readFileSync } from 'node:fs';
import { Partitioners, type Kafka } from 'kafkajs';
import { TerminalError } from '../../shared/errors.js';
import { parseMessage, type ValidationPolicy } from '../../shared/contract/message.js';

export interface ProduceInput {
  /** One message value per line (JSON Lines); blank lines are skipped. */
  lines: string[];
  /** Validate each line against the message schema first; false sends bad messages too (for testing the DLQ). */
  validate: boolean;
  policy: ValidationPolicy;
}

export interface LineProblem {
  line: number;
  reason: string;
  error: string;
}

/** Checks every line before anything is sent, so a file is sent whole or not at all. */
export function checkLines(input: ProduceInput): LineProblem[] {
  if (!input.validate) return [];
  const problems: LineProblem[] = [];
  input.lines.forEach((text, i) => {
    if (!text.trim()) return;
    try {
      parseMessage(Buffer.from(text), input.policy);
    } catch (err) {
      if (!(err instanceof TerminalError)) throw err;
      problems.push({ line: i + 1, reason: err.reason, error: err.message });
    }
  });
  return problems;
}

export function readLines(file: string): string[] {
  return readFileSync(file === '-' ? 0 : file, 'utf8').split('\n');
}

/** Sends the lines in batches; `onProgress` sees the running count. Keys are the messages' jobIDs when present. */
export async function produceLines(
  kafka: Kafka,
  topic: string,
  lines: string[],
  onProgress?: (sent: number, total: number) => void,
): Promise<{ partition: number; offset: string }[]> {
  const values = lines.filter((l) => l.trim());
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: true });
  await producer.connect();
  const out: { partition: number; offset: string }[] = [];
  try {
    for (let i = 0; i < values.length; i += 500) {
      const chunk = values.slice(i, i + 500).map((value) => {
        let key: string | null = null;
        try {
          const id = (JSON.parse(value) as { jobID?: unknown }).jobID;
          if (typeof id === 'string') key = id;
        } catch {
          /* an invalid line sent on purpose has no key */
        }
        return { key, value };
      });
      const res = await producer.send({ topic, acks: -1, messages: chunk });
      for (const r of res) out.push({ partition: r.partition, offset: r.baseOffset ?? '' });
      onProgress?.(Math.min(i + 500, values.length), values.length);
    }
  } finally {
    await producer.disconnect();
  }
  return out;
}
