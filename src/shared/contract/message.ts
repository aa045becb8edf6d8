import { createHash } from 'node:crypto';
import { z } from 'zod';
import { TerminalError } from '../errors.js';
import { checkMessage, type ValidationPolicy } from './policy.js';
import { MCPServersConfigSchema, type MCPServersConfig } from './dialects.js';
import type { SecretRef } from './rules.js';

/** The job types a message may name. */
export const JOB_TYPES = ['server-init'] as const;

export const EnvelopeSchema = z.object({
  jobID: z.string().min(1, 'jobID must not be empty').max(253, 'jobID is at most 253 characters'),
  jobType: z.string().min(1),
  payload: z.union([z.string(), z.record(z.string(), z.unknown())], { error: 'payload must be a JSON string or an object' }),
});

/** A message that passed validation. */
export interface ValidMessage {
  jobID: string;
  jobType: (typeof JOB_TYPES)[number];
  config: MCPServersConfig;
  /** sha256 of the raw value, hex: the job checks it read the very bytes the controller saw. */
  checksum: string;
  /** Every Secret key the servers reference, once each, sorted: what the Job mounts. */
  secretRefs?: SecretRef[];
}

export type { ValidationPolicy } from './policy.js';

export function checksumOf(value: Buffer): string {
  return createHash('sha256').update(value).digest('hex');
}

function zodReason(err: z.ZodError): string {
  return err.issues
    .slice(0, 5)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/**
 * Validates a Kafka message value against the message contract (docs/messages.md), then the policy. Throws a
 * TerminalError whose `reason` is a stable code and whose message says what is wrong.
 */
export function parseMessage(value: Buffer | null, policy: ValidationPolicy): ValidMessage {
  if (!value || value.length === 0) throw new TerminalError('empty-message', 'message has no value');
  if (value.length > policy.maxMessageBytes) {
    throw new TerminalError('message-too-large', `message is ${value.length} bytes; the limit is ${policy.maxMessageBytes}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(value));
  } catch (err) {
    throw new TerminalError('invalid-json', `message value is not UTF-8 JSON: ${(err as Error).message}`);
  }
  const env = EnvelopeSchema.safeParse(json);
  if (!env.success) throw new TerminalError('invalid-envelope', `message envelope is invalid: ${zodReason(env.error)}`);
  const { jobID, jobType, payload } = env.data;
  if (!(JOB_TYPES as readonly string[]).includes(jobType)) {
    throw new TerminalError('unknown-job-type', `unknown jobType ${JSON.stringify(jobType.slice(0, 64))}; known: ${JOB_TYPES.join(', ')}`);
  }
  let payloadObj: unknown = payload;
  if (typeof payload === 'string') {
    try {
      payloadObj = JSON.parse(payload);
    } catch (err) {
      throw new TerminalError('invalid-payload', `payload string is not JSON: ${(err as Error).message}`);
    }
  }
  const cfg = MCPServersConfigSchema.safeParse(payloadObj);
  if (!cfg.success) throw new TerminalError('invalid-payload', `payload is not an MCPServersConfig: ${zodReason(cfg.error)}`);
  const refs = checkMessage(cfg.data, policy);
  return {
    jobID,
    jobType: jobType as ValidMessage['jobType'],
    config: cfg.data,
    checksum: checksumOf(value),
    ...(refs.length ? { secretRefs: refs } : {}),
  };
}
