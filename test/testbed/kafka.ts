import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { waitFor } from '../../src/shared/wait.js';
import { cacheRoot, scriptsDir } from './cache.js';
import { Daemon, freePort } from './proc.js';

/**
 * The broker jars: `KAFKA_HOME` when the user points at an unpacked Apache Kafka, else the
 * cache, fetched from Maven Central on first use.
 */
export function ensureKafka(version: string): string {
  if (process.env.KAFKA_HOME) {
    const libs = join(process.env.KAFKA_HOME, 'libs');
    if (!existsSync(libs)) throw new Error(`testbed: KAFKA_HOME=${process.env.KAFKA_HOME} has no libs/ folder`);
    return process.env.KAFKA_HOME;
  }
  const home = join(cacheRoot, `kafka-${version}`);
  const libs = join(home, 'libs');
  if (!existsSync(libs) || !readdirSync(libs).some((f) => f.startsWith('kafka_2.13-'))) {
    process.stderr.write(`testbed: fetching Kafka ${version} jars from Maven Central (first run only)\n`);
    execFileSync('bash', [join(scriptsDir, 'fetch-kafka.sh'), version, home], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return home;
}

/** A single-node KRaft broker (broker and controller in one JVM) on free loopback ports. */
export class KafkaBroker {
  private daemon: Daemon | undefined;
  private constructor(
    readonly home: string,
    readonly dir: string,
    readonly port: number,
    readonly controllerPort: number,
    readonly initialRebalanceDelayMs: number,
  ) {}

  /** `initialRebalanceDelayMs` is 0 for the suites; benchmarks pass Kafka's default, 3000. */
  static async create(home: string, dir: string, initialRebalanceDelayMs = 0): Promise<KafkaBroker> {
    return new KafkaBroker(home, dir, await freePort(), await freePort(), initialRebalanceDelayMs);
  }

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.daemon?.pid;
  }

  private java(args: string[]): string[] {
    const cp = join(this.home, 'libs', '*');
    return [
      '-Xms256m',
      '-Xmx768m',
      '-XX:+UseSerialGC',
      '-XX:TieredStopAtLevel=1',
      `-Dlog4j2.configurationFile=${join(this.dir, 'log4j2.properties')}`,
      `-Dlog4j.configuration=file:${join(this.dir, 'log4j.properties')}`,
      '-cp',
      cp,
      ...args,
    ];
  }

  private configure(): string {
    mkdirSync(this.dir, { recursive: true });
    const props = join(this.dir, 'server.properties');
    writeFileSync(
      props,
      [
        'process.roles=broker,controller',
        'node.id=1',
        `controller.quorum.bootstrap.servers=127.0.0.1:${this.controllerPort}`,
        `listeners=PLAINTEXT://127.0.0.1:${this.port},CONTROLLER://127.0.0.1:${this.controllerPort}`,
        `advertised.listeners=PLAINTEXT://127.0.0.1:${this.port}`,
        'controller.listener.names=CONTROLLER',
        'inter.broker.listener.name=PLAINTEXT',
        'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
        `log.dirs=${join(this.dir, 'data')}`,
        'num.partitions=1',
        'offsets.topic.replication.factor=1',
        'offsets.topic.num.partitions=4',
        'transaction.state.log.replication.factor=1',
        'transaction.state.log.min.isr=1',
        'share.coordinator.state.topic.replication.factor=1',
        'share.coordinator.state.topic.min.isr=1',
        `group.initial.rebalance.delay.ms=${this.initialRebalanceDelayMs}`,
        'auto.create.topics.enable=true',
        'message.max.bytes=2097152',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(this.dir, 'log4j2.properties'),
      [
        'rootLogger.level=WARN',
        'rootLogger.appenderRef.stdout.ref=STDOUT',
        'appender.stdout.type=Console',
        'appender.stdout.name=STDOUT',
        'appender.stdout.layout.type=PatternLayout',
        'appender.stdout.layout.pattern=[%d] %p %m (%c)%n',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(this.dir, 'log4j.properties'),
      [
        'log4j.rootLogger=WARN, stdout',
        'log4j.appender.stdout=org.apache.log4j.ConsoleAppender',
        'log4j.appender.stdout.layout=org.apache.log4j.PatternLayout',
        'log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n',
        '',
      ].join('\n'),
    );
    return props;
  }

  async start(): Promise<void> {
    const props = join(this.dir, 'server.properties');
    if (!existsSync(join(this.dir, 'data', 'meta.properties'))) {
      this.configure();
      execFileSync('java', this.java(['kafka.tools.StorageTool', 'format', '--standalone', '-t', randomUUID().replace(/-/g, '').slice(0, 22), '-c', props]), {
        stdio: ['ignore', 'ignore', 'inherit'],
      });
    }
    this.daemon = new Daemon('kafka', 'java', this.java(['kafka.Kafka', props]), join(this.dir, 'kafka.log'));
    this.daemon.start();
    await this.daemon.guard(waitForKafka(this.brokers, 120_000));
  }

  async stop(): Promise<void> {
    await this.daemon?.stop(20_000);
  }

  kill(): void {
    this.daemon?.kill();
  }
}

/** Ready means a metadata request answers and the group coordinator is reachable. */
export async function waitForKafka(brokers: string, timeoutMs = 60_000): Promise<void> {
  const kafka = new Kafka({ clientId: 'testbed-probe', brokers: brokers.split(','), logLevel: logLevel.NOTHING, retry: { retries: 0 } });
  const admin = kafka.admin();
  try {
    await waitFor(
      async () => {
        await admin.connect();
        const cluster = await admin.describeCluster();
        return cluster.brokers.length > 0;
      },
      { timeoutMs, intervalMs: 250, description: `Kafka at ${brokers}` },
    );
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}
