#!/usr/bin/env node
/** The controller's entrypoint: parse settings, build clients, run, map the outcome to an exit code. */
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError, describeError, TerminalError } from '../src/shared/errors.js';
import { createKafka } from '../src/shared/kafka/kafka-client.js';
import { describeKafkaSecurity, kafkaConnection } from '../src/shared/kafka/kafka.js';
import { createLogger } from '../src/shared/logger.js';
import { parseMessage } from '../src/shared/contract/message.js';
import { readOneMessage } from '../src/shared/kafka/read-message.js';
import { yargsOptions } from '../src/shared/settings.js';
import { CONTROLLER_SETTINGS, controllerConfig, controllerPolicy, type ControllerConfig } from '../src/controller/config.js';
import { EventRecorder } from '../src/controller/reporting/events.js';
import { startHttp } from '../src/controller/reporting/http.js';
import { buildJob } from '../src/controller/jobs/job-builder.js';
import { loadJobTemplate, loadKubeConfig, makeKeepAliveClient } from '../src/controller/kube/kube.js';
import { createMetrics } from '../src/controller/reporting/metrics.js';
import { checkLines, produceLines, readLines } from '../src/controller/commands/produce.js';
import { replay } from '../src/controller/commands/replay.js';
import { runController } from '../src/controller/run.js';
import { formatTrace, kafkaTailScan, parseScanLimit, trace, type TraceTarget } from '../src/controller/commands/trace.js';

function config(argv: Record<string, unknown>, overrides: Record<string, unknown> = {}): ControllerConfig {
  return controllerConfig(argv, process.env, overrides);
}

async function run(argv: Record<string, unknown>): Promise<void> {
  const cfg = config(argv);
  const log = createLogger({ level: cfg.LOG_LEVEL, name: 'mcp-job-controller' });
  const kc = loadKubeConfig();
  const template = loadJobTemplate(cfg.JOB_TEMPLATE);
  const metrics = createMetrics();
  const connection = kafkaConnection({ brokers: cfg.KAFKA_BROKERS, clientId: cfg.KAFKA_CLIENT_ID, log, level: cfg.LOG_LEVEL, security: cfg });
  const batch = makeKeepAliveClient(kc, k8s.BatchV1Api, { timeoutMs: cfg.KUBE_REQUEST_TIMEOUT_MS });
  let ready = () => false;
  let live = () => true;
  const server =
    cfg.METRICS_PORT > 0
      ? await startHttp(
          cfg.METRICS_PORT,
          metrics.registry,
          () => ready(),
          () => live(),
        )
      : undefined;
  const events = await eventRecorder(cfg, kc, log, metrics);
  let handle: Awaited<ReturnType<typeof runController>>;
  try {
    handle = await runController({ config: cfg, connection, kc, batch, template, log, metrics, events });
  } catch (err) {
    // Most often the brokers refused us (a wrong password, a CA that does not match): say how we
    // connected and what the broker said, then exit so the pod is visibly not running.
    log.fatal({ ...describeKafkaSecurity(connection), err: describeError(err) }, 'controller could not start');
    await new Promise<void>((resolve) => log.flush(() => resolve()));
    process.exit(1);
  }
  ready = handle.isReady;
  live = handle.isLive;
  const shutdown = async (signal: string) => {
    log.info({ signal }, 'shutdown requested');
    const timer = setTimeout(() => {
      log.error({ timeoutMs: cfg.SHUTDOWN_TIMEOUT_MS }, 'shutdown timed out');
      process.exit(1);
    }, cfg.SHUTDOWN_TIMEOUT_MS);
    await handle.stop();
    server?.close();
    clearTimeout(timer);
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
  try {
    await handle.done;
  } catch {
    // runController has logged why; let the line (and the Event saying so) out before the exit Kubernetes restarts on.
    await events.flush(2000);
    await new Promise<void>((resolve) => log.flush(() => resolve()));
    process.exit(1);
  }
}

/**
 * The Event recorder, on the controller's own Pod when the downward API names it. The Pod's uid
 * comes from the downward API too (`kubectl describe pod` selects Events by uid), so the
 * controller needs no right to read Pods by name.
 */
async function eventRecorder(cfg: ControllerConfig, kc: k8s.KubeConfig, log: ReturnType<typeof createLogger>, metrics: ReturnType<typeof createMetrics>) {
  const core = makeKeepAliveClient(kc, k8s.CoreV1Api, { maxSockets: 2, timeoutMs: cfg.KUBE_REQUEST_TIMEOUT_MS });
  let self: k8s.V1ObjectReference | undefined;
  if (cfg.POD_NAME && cfg.POD_NAMESPACE) {
    self = { apiVersion: 'v1', kind: 'Pod', name: cfg.POD_NAME, namespace: cfg.POD_NAMESPACE, ...(cfg.POD_UID ? { uid: cfg.POD_UID } : {}) };
  }
  return new EventRecorder({
    sink: core,
    log: log.child({ component: 'events' }),
    count: (result) => metrics.events.inc({ result }),
    self,
    instance: cfg.POD_NAME ?? cfg.KAFKA_CLIENT_ID,
  });
}

/** Where a message is: its Job, the Job's conditions, its pod, and any dead-letter or results record. */
async function traceCommand(argv: Record<string, unknown>): Promise<void> {
  const scanLimit = parseScanLimit(argv.scan);
  const cfg = config(argv);
  const kc = loadKubeConfig();
  const parse = (s: string) => {
    const m = /^(\d+)\/(\d+)$/.exec(s);
    if (!m) throw new ConfigError(`expected <partition>/<offset>, got ${JSON.stringify(s)}`);
    return { partition: Number(m[1]), offset: m[2]! };
  };
  const target: TraceTarget =
    argv['job-id'] !== undefined ? { jobId: String(argv['job-id']) } : argv.at !== undefined ? { at: parse(String(argv.at)) } : { job: String(argv.job) };
  const connection = kafkaConnection({ brokers: cfg.KAFKA_BROKERS, clientId: `${cfg.KAFKA_CLIENT_ID}-trace`, security: cfg });
  const tail = kafkaTailScan(connection);
  try {
    const report = await trace(
      {
        config: cfg,
        batch: kc.makeApiClient(k8s.BatchV1Api),
        core: kc.makeApiClient(k8s.CoreV1Api),
        read: (at) => readOneMessage(connection, at),
        scan: tail.scan,
        scanLimit,
      },
      target,
    );
    process.stdout.write(argv.output === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatTrace(report));
    if (!report.job && !report.deadLetters.length && !report.results.length) process.exitCode = 3;
  } finally {
    await tail.close();
  }
}

/** Prints the Job a message would become, without creating it (like kubectl --dry-run). */
function render(argv: Record<string, unknown>): void {
  const cfg = config(argv, { KAFKA_BROKERS: (argv['kafka-brokers'] as string) ?? process.env.KAFKA_BROKERS ?? 'kafka:9092' });
  const file = argv.message as string;
  const value = readFileSync(file === '-' ? 0 : file);
  try {
    const msg = parseMessage(value, controllerPolicy(cfg, loadJobTemplate(cfg.JOB_TEMPLATE)));
    const job = buildJob(
      { topic: cfg.KAFKA_TOPIC, partition: Number(argv.partition), offset: String(argv.offset) },
      msg,
      cfg,
      loadJobTemplate(cfg.JOB_TEMPLATE),
    );
    process.stdout.write(argv.output === 'json' ? `${JSON.stringify(job, null, 2)}\n` : k8s.dumpYaml(job));
  } catch (err) {
    if (err instanceof TerminalError) {
      process.stderr.write(`message would be dead-lettered: ${err.reason}: ${err.message}\n`);
      process.exit(65);
    }
    throw err;
  }
}

/** Sends a message, or a JSON Lines file of them, after checking each against the schema. */
async function produce(argv: Record<string, unknown>): Promise<void> {
  const brokers = String(argv['kafka-brokers'] ?? process.env.KAFKA_BROKERS ?? '');
  const cfg = config(argv, { KAFKA_BROKERS: brokers });
  const lines = argv.file !== undefined ? readLines(String(argv.file)) : [String(argv.message)];
  const problems = checkLines({ lines, validate: argv.validate !== false, policy: controllerPolicy(cfg) });
  if (problems.length) {
    for (const p of problems.slice(0, 20)) process.stderr.write(`line ${p.line}: ${p.reason}: ${p.error}\n`);
    process.stderr.write(`${problems.length} invalid message(s); nothing sent (--no-validate sends them anyway, to exercise the dead-letter topic)\n`);
    process.exit(65);
  }
  const log = createLogger({ level: 'warn', name: 'mcp-job-controller-produce' });
  const kafka = createKafka(kafkaConnection({ brokers: cfg.KAFKA_BROKERS, clientId: `${cfg.KAFKA_CLIENT_ID}-produce`, log, level: 'warn', security: cfg }));
  const total = lines.filter((l) => l.trim()).length;
  const progress = total >= 1000 ? (sent: number, all: number) => process.stderr.write(`sent ${sent}/${all}\n`) : undefined;
  const res = await produceLines(kafka, cfg.KAFKA_TOPIC, lines, progress);
  if (total === 1) process.stdout.write(`sent to ${cfg.KAFKA_TOPIC} partition ${res[0]?.partition} offset ${res[0]?.offset}\n`);
  else process.stdout.write(`sent ${total} messages to ${cfg.KAFKA_TOPIC}\n`);
}

/** Re-submits a dead-letter record or a source message as a Job, after its cause is fixed. */
async function replayCommand(argv: Record<string, unknown>): Promise<void> {
  const cfg = config(argv);
  const kc = loadKubeConfig();
  const parse = (s: string) => {
    const m = /^(\d+)\/(\d+)$/.exec(s);
    if (!m) throw new ConfigError(`expected <partition>/<offset>, got ${JSON.stringify(s)}`);
    return { partition: Number(m[1]), offset: m[2]! };
  };
  try {
    const r = await replay(
      {
        config: cfg,
        batch: makeKeepAliveClient(kc, k8s.BatchV1Api),
        template: loadJobTemplate(cfg.JOB_TEMPLATE),
        read: (at) => readOneMessage(kafkaConnection({ brokers: cfg.KAFKA_BROKERS, clientId: `${cfg.KAFKA_CLIENT_ID}-replay`, security: cfg }), at),
      },
      argv['from-dlq'] !== undefined ? { dlq: parse(String(argv['from-dlq'])) } : { source: parse(String(argv.source)) },
    );
    process.stdout.write(`job ${r.job} ${r.replaced ? 'replaced' : 'created'} in ${cfg.JOB_NAMESPACE}\n`);
  } catch (err) {
    if (err instanceof TerminalError) {
      process.stderr.write(`cannot replay: ${err.reason}: ${err.message}\n`);
      process.exit(65);
    }
    throw err;
  }
}

const cli = yargs(hideBin(process.argv))
  .scriptName('mcp-job-controller')
  .usage('$0 [command] [options]\n\nOne Kubernetes Job per Kafka message. Every option can also be set by the environment variable in brackets.')
  .options(yargsOptions(CONTROLLER_SETTINGS))
  .command(
    ['run', '$0'],
    'Consume the topic and create one Job per message',
    () => undefined,
    (argv) => run(argv),
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
    (argv) => render(argv),
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
    (argv) => produce(argv),
  )
  .command(
    'replay',
    'Run a dead-letter record (--from-dlq P/O) or a source message (--source P/O) again as a Job, after its cause is fixed',
    (y) =>
      y
        .option('from-dlq', { type: 'string', describe: 'partition/offset of a record on DLQ_TOPIC' })
        .option('source', { type: 'string', describe: 'partition/offset of a message on KAFKA_TOPIC' })
        .check((a) => (a['from-dlq'] === undefined) !== (a.source === undefined) || 'give exactly one of --from-dlq and --source'),
    (argv) => replayCommand(argv),
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
    (argv) => traceCommand(argv),
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
