import { readFileSync } from 'node:fs';
import type { Kafka } from 'kafkajs';
import { KeyHashPartitioner } from '../../shared/kafka/partitioner.js';
import { TerminalError } from '../../shared/errors.js';
import { parseMessage, type ValidationPolicy } from '../../shared/contract/message.js';
import { ExitCode } from '../../shared/contract/exit-codes.js';
import { createKafka } from '../../shared/kafka/kafka-client.js';
import { kafkaConnection } from '../../shared/kafka/kafka.js';
import { createLogger } from '../../shared/logger.js';
import type { ControllerConfig } from '../config.js';

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
  const producer = kafka.producer({ createPartitioner: KeyHashPartitioner, allowAutoTopicCreation: true });
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

/**
 * `produce --message M | --file F`: checks every message first (unless --no-validate) and sends
 * nothing when one is invalid (exit code 65), else sends them all.
 */
export async function produceCommand(cfg: ControllerConfig, argv: Record<string, unknown>, policy: ValidationPolicy): Promise<number> {
  const lines = argv.file !== undefined ? readLines(String(argv.file)) : [String(argv.message)];
  const problems = checkLines({ lines, validate: argv.validate !== false, policy });
  if (problems.length) {
    for (const p of problems.slice(0, 20)) process.stderr.write(`line ${p.line}: ${p.reason}: ${p.error}\n`);
    process.stderr.write(`${problems.length} invalid message(s); nothing sent (--no-validate sends them anyway, to exercise the dead-letter topic)\n`);
    return ExitCode.PERMANENT;
  }
  const log = createLogger({ level: 'warn', name: 'mcp-job-controller-produce' });
  const kafka = createKafka(kafkaConnection({ brokers: cfg.KAFKA_BROKERS, clientId: `${cfg.KAFKA_CLIENT_ID}-produce`, log, level: 'warn', security: cfg }));
  const total = lines.filter((l) => l.trim()).length;
  const progress = total >= 1000 ? (sent: number, all: number) => process.stderr.write(`sent ${sent}/${all}\n`) : undefined;
  const res = await produceLines(kafka, cfg.KAFKA_TOPIC, lines, progress);
  if (total === 1) process.stdout.write(`sent to ${cfg.KAFKA_TOPIC} partition ${res[0]?.partition} offset ${res[0]?.offset}\n`);
  else process.stdout.write(`sent ${total} messages to ${cfg.KAFKA_TOPIC}\n`);
  return 0;
}
