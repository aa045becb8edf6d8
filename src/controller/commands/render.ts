import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { ExitCode } from '../../shared/contract/exit-codes.js';
import { parseMessage, type ValidationPolicy } from '../../shared/contract/message.js';
import { TerminalError } from '../../shared/errors.js';
import type { ControllerConfig } from '../config.js';
import { buildJob } from '../jobs/job-builder.js';

/**
 * `render --message FILE`: prints the Job a message would become, without creating it (like
 * kubectl --dry-run) — the same policy and builder the controller uses; a message it would
 * dead-letter is said so, with the reason, and exit code 65.
 */
export function renderCommand(cfg: ControllerConfig, argv: Record<string, unknown>, policy: ValidationPolicy, template: k8s.V1Job | undefined): number {
  const file = argv.message as string;
  const value = readFileSync(file === '-' ? 0 : file);
  try {
    const msg = parseMessage(value, policy);
    const job = buildJob({ topic: cfg.KAFKA_TOPIC, partition: Number(argv.partition), offset: String(argv.offset) }, msg, cfg, template);
    process.stdout.write(argv.output === 'json' ? `${JSON.stringify(job, null, 2)}\n` : k8s.dumpYaml(job));
    return 0;
  } catch (err) {
    if (!(err instanceof TerminalError)) throw err;
    process.stderr.write(`message would be dead-lettered: ${err.reason}: ${err.message}\n`);
    return ExitCode.PERMANENT;
  }
}
