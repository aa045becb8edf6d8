import * as k8s from '@kubernetes/client-node';
import { controllerPolicy, type ControllerConfig } from '../config.js';
import { DlqHeader } from '../reporting/dead-letter.js';
import { isNotFound, TerminalError } from '../../shared/errors.js';
import { ExitCode } from '../../shared/contract/exit-codes.js';
import { Annotation, isFinished, type Coordinates } from '../../shared/contract/identity.js';
import { parseMessage } from '../../shared/contract/message.js';
import { readOneMessage, type OneMessage } from '../../shared/kafka/read-message.js';
import { kafkaConnection } from '../../shared/kafka/kafka.js';
import { makeKeepAliveClient } from '../kube/kube.js';
import { parseAt } from './trace.js';
import { waitFor } from '../../shared/wait.js';
import { buildJob } from '../jobs/job-builder.js';

export interface ReplayDeps {
  config: ControllerConfig;
  batch: k8s.BatchV1Api;
  template?: k8s.V1Job;
  read: (at: Coordinates) => Promise<OneMessage>;
}

export type ReplayTarget = { dlq: { partition: number; offset: string } } | { source: { partition: number; offset: string } };

/**
 * Runs a message again as a Job, once its cause is fixed: a dead-letter record (the original
 * bytes, whose headers say where it came from) or a message still on the source topic. The Job
 * keeps the name its coordinates give; a finished Job of that name is replaced (its outcome
 * was recorded when it finished), a running one is left alone. The message is checked with
 * today's settings first: one still invalid is refused with the reason.
 */
export async function replay(d: ReplayDeps, target: ReplayTarget): Promise<{ job: string; replaced: boolean }> {
  const cfg = d.config;
  let at: Coordinates;
  let readFrom: Coordinates;
  let rec: OneMessage;
  if ('dlq' in target) {
    readFrom = { topic: cfg.DLQ_TOPIC, ...target.dlq };
    rec = await d.read(readFrom);
    const h = rec.headers;
    if (!h[DlqHeader.topic] || h[DlqHeader.partition] === undefined || !h[DlqHeader.offset]) {
      throw new TerminalError('invalid-envelope', `${readFrom.topic}/${readFrom.partition}@${readFrom.offset} is not a dead-letter record (no source headers)`);
    }
    at = { topic: h[DlqHeader.topic]!, partition: Number(h[DlqHeader.partition]), offset: h[DlqHeader.offset]! };
  } else {
    at = { topic: cfg.KAFKA_TOPIC, ...target.source };
    readFrom = at;
    rec = await d.read(at);
  }
  const msg = parseMessage(rec.value, controllerPolicy(cfg, d.template));
  const probe = buildJob(at, msg, cfg, d.template);
  const name = probe.metadata!.name!;
  let count = 1;
  let replaced = false;
  try {
    const existing = await d.batch.readNamespacedJob({ name, namespace: cfg.JOB_NAMESPACE });
    if (!isFinished(existing)) throw new Error(`Job ${name} is still running; replay it after it finishes`);
    count = Number(existing.metadata?.annotations?.[Annotation.replayCount] ?? 0) + 1;
    await d.batch.deleteNamespacedJob({ name, namespace: cfg.JOB_NAMESPACE, propagationPolicy: 'Background' });
    await waitFor(
      async () => {
        try {
          await d.batch.readNamespacedJob({ name, namespace: cfg.JOB_NAMESPACE });
          return false;
        } catch (err) {
          if (isNotFound(err)) return true;
          throw err;
        }
      },
      { timeoutMs: 60_000, description: `old Job ${name} to be deleted` },
    );
    replaced = true;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const job = buildJob(at, msg, cfg, d.template, { readFrom, count });
  await d.batch.createNamespacedJob({ namespace: cfg.JOB_NAMESPACE, body: job });
  return { job: name, replaced };
}

/**
 * `replay --from-dlq P/O | --source P/O`: prints the Job created or replaced; a message still
 * invalid is refused with its reason and exit code 65.
 */
export async function replayCommand(
  cfg: ControllerConfig,
  argv: Record<string, unknown>,
  kc: k8s.KubeConfig,
  template: k8s.V1Job | undefined,
): Promise<number> {
  const connection = kafkaConnection({ brokers: cfg.KAFKA_BROKERS, clientId: `${cfg.KAFKA_CLIENT_ID}-replay`, security: cfg });
  try {
    const r = await replay(
      { config: cfg, batch: makeKeepAliveClient(kc, k8s.BatchV1Api), template, read: (at) => readOneMessage(connection, at) },
      argv['from-dlq'] !== undefined ? { dlq: parseAt(String(argv['from-dlq'])) } : { source: parseAt(String(argv.source)) },
    );
    process.stdout.write(`job ${r.job} ${r.replaced ? 'replaced' : 'created'} in ${cfg.JOB_NAMESPACE}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof TerminalError)) throw err;
    process.stderr.write(`cannot replay: ${err.reason}: ${err.message}\n`);
    return ExitCode.PERMANENT;
  }
}
