#!/usr/bin/env node
/** The controller's entrypoint: parse settings, build clients, run, map the outcome to an exit code. */
import * as k8s from '@kubernetes/client-node';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError, describeError } from '../src/shared/errors.js';
import { describeKafkaSecurity, kafkaConnection } from '../src/shared/kafka/kafka.js';
import { createLogger, type Logger } from '../src/shared/logger.js';
import { yargsOptions } from '../src/shared/settings.js';
import { CONTROLLER_SETTINGS, controllerConfig, controllerPolicy, type ControllerConfig } from '../src/controller/config.js';
import { EventRecorder } from '../src/controller/reporting/events.js';
import { startHttp } from '../src/controller/reporting/http.js';
import { loadJobTemplate, loadKubeConfig, makeKeepAliveClient } from '../src/controller/kube/kube.js';
import { createMetrics, type Metrics } from '../src/controller/reporting/metrics.js';
import { produceCommand } from '../src/controller/commands/produce.js';
import { renderCommand } from '../src/controller/commands/render.js';
import { replayCommand } from '../src/controller/commands/replay.js';
import { untilExit } from '../src/controller/commands/run.js';
import { traceCommand } from '../src/controller/commands/trace.js';
import { Controller } from '../src/controller/run.js';

function config(argv: Record<string, unknown>, overrides: Record<string, unknown> = {}): ControllerConfig {
  return controllerConfig(argv, process.env, overrides);
}

/** Ends with the code a command decided, once its output has drained (exitCode, not exit()). */
async function exit(code: number | Promise<number>): Promise<void> {
  process.exitCode = await code;
}

/** `run`: wires the controller to Kafka, the API server, metrics and Events, and runs it to its exit code. */
async function run(cfg: ControllerConfig): Promise<number> {
  const log = createLogger({ level: cfg.LOG_LEVEL, name: 'mcp-job-controller' });
  const kc = loadKubeConfig();
  const template = loadJobTemplate(cfg.JOB_TEMPLATE);
  const metrics = createMetrics();
  const connection = kafkaConnection({ brokers: cfg.KAFKA_BROKERS, clientId: cfg.KAFKA_CLIENT_ID, log, level: cfg.LOG_LEVEL, security: cfg });
  const batch = makeKeepAliveClient(kc, k8s.BatchV1Api, { timeoutMs: cfg.KUBE_REQUEST_TIMEOUT_MS });
  const events = eventRecorder(cfg, kc, log, metrics);
  const controller = new Controller({ config: cfg, connection, kc, batch, template, policy: controllerPolicy(cfg, template), log, metrics, events });
  if (cfg.METRICS_PORT > 0) {
    await startHttp(
      cfg.METRICS_PORT,
      metrics.registry,
      () => controller.isReady(),
      () => controller.isLive(),
    );
  }
  const code = await untilExit(controller, {
    log,
    shutdownTimeoutMs: cfg.SHUTDOWN_TIMEOUT_MS,
    onSignal: (stop) => {
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
    },
    flush: async () => {
      await events.flush(2000);
      await new Promise<void>((resolve) => log.flush(() => resolve()));
    },
    startFields: () => describeKafkaSecurity(connection),
  });
  process.exit(code);
}

/**
 * The Event recorder, on the controller's own Pod when the downward API names it. The Pod's uid
 * comes from the downward API too (`kubectl describe pod` selects Events by uid), so the
 * controller needs no right to read Pods by name.
 */
function eventRecorder(cfg: ControllerConfig, kc: k8s.KubeConfig, log: Logger, metrics: Metrics): EventRecorder {
  const core = makeKeepAliveClient(kc, k8s.CoreV1Api, { maxSockets: 2, timeoutMs: cfg.KUBE_REQUEST_TIMEOUT_MS });
  const self: k8s.V1ObjectReference | undefined =
    cfg.POD_NAME && cfg.POD_NAMESPACE
      ? { apiVersion: 'v1', kind: 'Pod', name: cfg.POD_NAME, namespace: cfg.POD_NAMESPACE, ...(cfg.POD_UID ? { uid: cfg.POD_UID } : {}) }
      : undefined;
  return new EventRecorder({
    sink: core,
    log: log.child({ component: 'events' }),
    count: (result) => metrics.events.inc({ result }),
    self,
    instance: cfg.POD_NAME ?? cfg.KAFKA_CLIENT_ID,
  });
}

const cli = yargs(hideBin(process.argv))
  .scriptName('mcp-job-controller')
  .usage('$0 [command] [options]\n\nOne Kubernetes Job per Kafka message. Every option can also be set by the environment variable in brackets.')
  .options(yargsOptions(CONTROLLER_SETTINGS))
  .command(
    ['run', '$0'],
    'Consume the topic and create one Job per message',
    () => undefined,
    (argv) => exit(run(config(argv))),
  )
  .command(
    'render',
    'Print the Job a message would become, without creating it',
    (y) =>
      y
        .option('message', { type: 'string', demandOption: true, describe: 'File holding the message value (- for stdin)' })
        .option('partition', { type: 'number', default: 0 })
        .option('offset', { type: 'string', default: '0' })
        .option('output', { choices: ['yaml', 'json'] as const, default: 'yaml' }),
    (argv) => {
      const cfg = config(argv, { KAFKA_BROKERS: (argv['kafka-brokers'] as string) ?? process.env.KAFKA_BROKERS ?? 'kafka:9092' });
      const template = loadJobTemplate(cfg.JOB_TEMPLATE);
      return exit(renderCommand(cfg, argv, controllerPolicy(cfg, template), template));
    },
  )
  .command(
    'produce',
    'Send a message (or a JSON Lines file of messages) to the topic, checked against the schema first',
    (y) =>
      y
        .option('message', { type: 'string', describe: 'One message value' })
        .option('file', { type: 'string', describe: 'A JSON Lines file, one message per line (- for stdin)' })
        .option('validate', { type: 'boolean', default: true, describe: 'Check each message first (--no-validate sends invalid ones too)' })
        .check((a) => (a.message === undefined) !== (a.file === undefined) || 'give exactly one of --message and --file'),
    (argv) => {
      const cfg = config(argv, { KAFKA_BROKERS: String(argv['kafka-brokers'] ?? process.env.KAFKA_BROKERS ?? '') });
      return exit(produceCommand(cfg, argv, controllerPolicy(cfg)));
    },
  )
  .command(
    'replay',
    'Run a dead-letter record (--from-dlq P/O) or a source message (--source P/O) again as a Job, after its cause is fixed',
    (y) =>
      y
        .option('from-dlq', { type: 'string', describe: 'partition/offset of a record on DLQ_TOPIC' })
        .option('source', { type: 'string', describe: 'partition/offset of a message on KAFKA_TOPIC' })
        .check((a) => (a['from-dlq'] === undefined) !== (a.source === undefined) || 'give exactly one of --from-dlq and --source'),
    (argv) => {
      const cfg = config(argv);
      return exit(replayCommand(cfg, argv, loadKubeConfig(), loadJobTemplate(cfg.JOB_TEMPLATE)));
    },
  )
  .command(
    'trace',
    'Where is my message: its coordinates, Job and conditions, pod summary, Events, and any dead-letter or results record',
    (y) =>
      y
        .option('job-id', { type: 'string', describe: "The producer's jobID" })
        .option('at', { type: 'string', describe: 'partition/offset of a message on KAFKA_TOPIC' })
        .option('job', { type: 'string', describe: 'A Job name' })
        .option('scan', {
          type: 'number',
          default: 1000,
          describe: 'Records read from the end of each partition of the dead-letter and results topics (1..100000)',
        })
        .option('output', { choices: ['text', 'json'] as const, default: 'text' })
        .check((a) => [a['job-id'], a.at, a.job].filter((v) => v !== undefined).length === 1 || 'give exactly one of --job-id, --at and --job'),
    (argv) => exit(traceCommand(config(argv), argv, loadKubeConfig())),
  )
  .strict()
  .help()
  .version(false)
  .fail((msg, err) => {
    process.stderr.write(`${err instanceof ConfigError ? err.message : (msg ?? describeError(err))}\n`);
    process.exit(2);
  });

try {
  await cli.parseAsync();
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : describeError(err)}\n`);
  process.exit(2);
}
