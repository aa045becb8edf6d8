#!/usr/bin/env node
/**
 * `serve`: the MCP front door over Streamable HTTP. Wires settings, logger, Kafka and the
 * Kubernetes API into the tools, serves them, and stops on SIGTERM. Shipped in the job image,
 * whose runtimes (node, npx) the stdio servers of `server_initialize` need.
 */
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError, describeError } from '../src/shared/errors.js';
import { createKafka } from '../src/shared/kafka/kafka-client.js';
import { kafkaConnection } from '../src/shared/kafka/kafka.js';
import { KeyHashPartitioner } from '../src/shared/kafka/partitioner.js';
import { createLogger } from '../src/shared/logger.js';
import { PartitionReader } from '../src/shared/kafka/read-message.js';
import { yargsOptions } from '../src/shared/settings.js';
import { initializeServer } from '../src/job/mcp/initialize.js';
import { loadJobTemplate } from '../src/shared/contract/job-policy.js';
import { podsOfJobSelector } from '../src/shared/contract/identity.js';
import { loadKubeConfig } from '../src/shared/kube/kube-config.js';
import { parseTokenFile } from '../src/serve/auth.js';
import { SERVE_SETTINGS, serveConfig, serveInitOptions, servePolicy } from '../src/serve/config.js';
import { findDeadLetter } from '../src/serve/dead-letters.js';
import { startServeHttp } from '../src/serve/http.js';
import { rebindingPolicy } from '../src/serve/origins.js';
import { TokenBucket } from '../src/serve/rate-limit.js';
import { serveServerFactory } from '../src/serve/tools.js';

const argv = await yargs(hideBin(process.argv))
  .scriptName('mcp-job-serve')
  .usage(
    '$0 [options]\n\nServes MCP over Streamable HTTP at /mcp (bearer token) with the tools server_initialize, submit, get_job and list_jobs; /healthz without a token.',
  )
  .options(yargsOptions(SERVE_SETTINGS))
  .strict()
  .help()
  .version(false)
  .parseAsync();

try {
  const cfg = serveConfig(argv, process.env);
  const log = createLogger({ level: cfg.LOG_LEVEL, name: 'mcp-job-serve' });
  let token: string;
  try {
    token = parseTokenFile(readFileSync(cfg.SERVE_TOKEN_FILE, 'utf8'));
  } catch (err) {
    throw new ConfigError(`SERVE_TOKEN_FILE: ${(err as Error).message}`);
  }
  const kc = loadKubeConfig();
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const notFound = (err: unknown) => (err as k8s.ApiException<unknown>).code === 404;

  const connection = kafkaConnection({ brokers: cfg.KAFKA_BROKERS, clientId: 'mcp-job-serve', log, level: cfg.LOG_LEVEL, security: cfg });
  const kafka = createKafka(connection);
  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: KeyHashPartitioner });
  const admin = kafka.admin();
  const reader = new PartitionReader({ connection });
  await Promise.all([producer.connect(), admin.connect()]);

  const policy = servePolicy(cfg, loadJobTemplate(cfg.JOB_TEMPLATE));
  const initOptions = serveInitOptions(cfg, policy, (server, line) => log.debug({ server, line }, 'server stderr'));
  const factory = serveServerFactory({
    cfg,
    policy,
    log,
    produce: async (value, key) => {
      const [r] = await producer.send({ topic: cfg.KAFKA_TOPIC, acks: -1, messages: [{ key, value }] });
      return { partition: r!.partition, offset: r!.baseOffset! };
    },
    getJob: (name) => batch.readNamespacedJob({ name, namespace: cfg.JOB_NAMESPACE }).catch((err) => (notFound(err) ? undefined : Promise.reject(err))),
    listJobs: async (labelSelector, limit) => {
      const list = await batch.listNamespacedJob({ namespace: cfg.JOB_NAMESPACE, labelSelector, limit });
      return { items: list.items, more: !!list.metadata?._continue };
    },
    listPods: async (jobName) => (await core.listNamespacedPod({ namespace: cfg.JOB_NAMESPACE, labelSelector: podsOfJobSelector(jobName) })).items,
    findDeadLetter: (at) =>
      findDeadLetter(
        {
          offsets: (topic) =>
            admin.fetchTopicOffsets(topic).catch((err: { type?: string }) => (err.type === 'UNKNOWN_TOPIC_OR_PARTITION' ? undefined : Promise.reject(err))),
          range: (topic, partition, from, to) => reader.range(topic, partition, from, to),
        },
        cfg.DLQ_TOPIC,
        at,
        cfg.DLQ_SCAN_RECORDS,
      ),
    initialize: (name, server) => initializeServer(name, server, initOptions),
    submitLimit: new TokenBucket(cfg.SUBMIT_RATE_PER_SECOND, cfg.SUBMIT_BURST),
    scanLimit: new TokenBucket(cfg.DLQ_SCAN_RATE_PER_SECOND, cfg.DLQ_SCAN_BURST),
    initLimit: new TokenBucket(cfg.INIT_RATE_PER_SECOND, cfg.INIT_BURST),
  });
  const rebinding = rebindingPolicy(cfg.SERVE_HOST, cfg.SERVE_ALLOWED_HOSTS, cfg.SERVE_ALLOWED_ORIGINS);
  const http = await startServeHttp({ port: cfg.SERVE_PORT, host: cfg.SERVE_HOST, token, factory, log, rebinding });
  log.info({ url: http.url, topic: cfg.KAFKA_TOPIC, namespace: cfg.JOB_NAMESPACE }, 'serving MCP');

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info('stopping');
    await http.close().catch(() => undefined);
    await Promise.all([producer.disconnect(), admin.disconnect(), reader.close()]).catch(() => undefined);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop());
  process.on('SIGINT', () => void stop());
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : describeError(err)}\n`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}
