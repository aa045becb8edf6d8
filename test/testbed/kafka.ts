import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Kafka, logLevel, type KafkaConfig, type SASLOptions } from 'kafkajs';
import { waitFor } from '../../src/shared/wait.js';
import { cacheRoot, scriptsDir } from './cache.js';
import { makeBrokerTls, type BrokerTls } from './pki.js';
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
    // Maven's output goes to stderr: stdout belongs to the caller (the CLI prints JSON and env lines there).
    execFileSync('bash', [join(scriptsDir, 'fetch-kafka.sh'), version, home], { stdio: ['ignore', 2, 'inherit'] });
  }
  return home;
}

/**
 * The principals of secure mode: `admin` (the only super user; the broker itself authenticates
 * as it), `controller` and `job` (the product's two principals) and `producer` (whoever writes
 * the source topic).
 */
export const secureUsers = ['admin', 'controller', 'job', 'producer'] as const;
export type SecureUser = (typeof secureUsers)[number];

/** kafkajs' spelling of the SASL mechanisms secure mode enables. */
export type SaslMechanism = 'scram-sha-256' | 'scram-sha-512' | 'plain';

/** What a kafkajs client needs to reach the broker; spread it into `new Kafka({ clientId, ...opts })`. */
export interface KafkaClientOptions {
  brokers: string[];
  ssl?: { ca: string[] };
  sasl?: SASLOptions;
}

export interface KafkaBrokerOptions {
  /** `group.initial.rebalance.delay.ms`: 0 for the suites; benchmarks pass Kafka's default, 3000. */
  initialRebalanceDelayMs?: number;
  /**
   * Production-shaped: clients only on SASL_SSL (SCRAM-SHA-256/512 and PLAIN), ACLs enforced
   * with no one but `admin` allowed by default, topics not auto-created, and Kafka's default
   * limits (`message.max.bytes` ≈ 1 MiB). Plain mode (the default) is for the suites that do
   * not need security.
   */
  secure?: boolean;
}

/** A single-node KRaft broker (broker and controller in one JVM) on free loopback ports. */
export class KafkaBroker {
  private daemon: Daemon | undefined;
  private caPem: string | undefined;
  /** Name → password of the SASL users (secure mode; empty in plain mode). */
  readonly users: Readonly<Record<string, string>>;
  /** The broker's TLS files (secure mode). */
  readonly tls: BrokerTls | undefined;
  /** Milliseconds of the last `start()`: storage format (first start only) and JVM start to ready. */
  readonly startTimings: { formatMs?: number; readyMs?: number } = {};

  private constructor(
    readonly home: string,
    readonly dir: string,
    readonly port: number,
    readonly controllerPort: number,
    readonly initialRebalanceDelayMs: number,
    readonly secure: boolean,
  ) {
    if (secure) {
      this.tls = makeBrokerTls(join(dir, 'tls'));
      this.users = loadOrMakeUsers(join(dir, 'users.json'));
    } else {
      this.users = {};
    }
  }

  /**
   * `opts` may also be a number, the `initialRebalanceDelayMs` alone (the older signature).
   * In secure mode the CA, the broker's certificate and the users' passwords are made here
   * (kept in `dir`), so clients can be configured before `start()`.
   */
  static async create(home: string, dir: string, opts: number | KafkaBrokerOptions = 0): Promise<KafkaBroker> {
    const o: KafkaBrokerOptions = typeof opts === 'number' ? { initialRebalanceDelayMs: opts } : opts;
    mkdirSync(dir, { recursive: true });
    return new KafkaBroker(home, dir, await freePort(), await freePort(), o.initialRebalanceDelayMs ?? 0, o.secure ?? false);
  }

  /** `host:port` of the listener clients are given (SASL_SSL in secure mode). */
  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Path of the CA certificate (PEM) clients trust in secure mode. */
  get caFile(): string | undefined {
    return this.tls?.caCert;
  }

  /**
   * kafkajs client options for `user` (secure mode: TLS with the bed's CA and SASL with the
   * user's password; plain mode: the broker list alone, whatever the user).
   */
  kafkaOptions(user: string = 'admin', mechanism: SaslMechanism = 'scram-sha-512'): KafkaClientOptions {
    if (!this.secure) return { brokers: [this.brokers] };
    const password = this.users[user];
    if (password === undefined) throw new Error(`testbed: no Kafka user ${user} (known: ${Object.keys(this.users).join(', ')})`);
    this.caPem ??= readFileSync(this.tls!.caCert, 'utf8');
    // kafkajs sets no SNI for an IP address, and Node checks the IP against the certificate's
    // IP SAN, so no `servername` is needed for 127.0.0.1.
    return { brokers: [this.brokers], ssl: { ca: [this.caPem] }, sasl: { mechanism, username: user, password } as SASLOptions };
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
        ...(this.secure
          ? this.secureListeners()
          : [
              `listeners=PLAINTEXT://127.0.0.1:${this.port},CONTROLLER://127.0.0.1:${this.controllerPort}`,
              `advertised.listeners=PLAINTEXT://127.0.0.1:${this.port}`,
              'controller.listener.names=CONTROLLER',
              'inter.broker.listener.name=PLAINTEXT',
              'listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT',
            ]),
        `log.dirs=${join(this.dir, 'data')}`,
        'num.partitions=1',
        'offsets.topic.replication.factor=1',
        'offsets.topic.num.partitions=4',
        'transaction.state.log.replication.factor=1',
        'transaction.state.log.min.isr=1',
        'share.coordinator.state.topic.replication.factor=1',
        'share.coordinator.state.topic.min.isr=1',
        `group.initial.rebalance.delay.ms=${this.initialRebalanceDelayMs}`,
        // Secure mode is production-shaped: topics are made on purpose (the controller creates
        // its dead-letter topic; tests create theirs), and `message.max.bytes` stays at Kafka's
        // default (1048588) so an oversized record is met here before production meets it.
        ...(this.secure ? ['auto.create.topics.enable=false'] : ['auto.create.topics.enable=true', 'message.max.bytes=2097152']),
        '',
      ].join('\n'),
      { mode: 0o600 },
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

  /**
   * Listeners, TLS, SASL and ACL settings of secure mode.
   *
   * No listener is unauthenticated. In KRaft the controller authorizes the broker's own
   * requests (BrokerRegistration, BrokerHeartbeat, AlterPartition need CLUSTER_ACTION): with a
   * PLAINTEXT controller listener the broker is `User:ANONYMOUS` there and never registers
   * ("needs CLUSTER_ACTION permission", tried 2026-11-23), unless ANONYMOUS is made a super
   * user — and then anyone reaching a plaintext port (the Java admin client can bootstrap to
   * controllers, KIP-919) bypasses every ACL. So the controller listener is SASL_PLAINTEXT
   * with PLAIN and `admin` in a static JAAS entry: it does not depend on the metadata log
   * (where SCRAM users live; SCRAM there also worked on this single combined node, but a
   * controller quorum authenticates its raft traffic before it has the log). It stays on
   * loopback, unencrypted, and is never advertised. Broker-to-broker traffic (one node only
   * talks to itself, e.g. transaction markers) uses the client listener with SCRAM-SHA-512 as
   * `admin`, so there is no second data-plane listener that clients could be pointed at.
   */
  private secureListeners(): string[] {
    const tls = this.tls!;
    const admin = this.users.admin!;
    const plainUsers = Object.entries(this.users)
      .map(([u, pw]) => `user_${u}="${pw}"`)
      .join(' ');
    return [
      `listeners=SASL_SSL://127.0.0.1:${this.port},CONTROLLER://127.0.0.1:${this.controllerPort}`,
      `advertised.listeners=SASL_SSL://127.0.0.1:${this.port}`,
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=SASL_SSL',
      'listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,SASL_SSL:SASL_SSL',
      'sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN',
      'sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512',
      'sasl.mechanism.controller.protocol=PLAIN',
      'listener.name.controller.sasl.enabled.mechanisms=PLAIN',
      `listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${admin}" user_admin="${admin}";`,
      'listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;',
      // username/password here are the broker's own, for its inter-broker connections.
      `listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${admin}";`,
      // PLAIN checks against these static entries (SCRAM users live in the metadata log).
      `listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required ${plainUsers};`,
      'ssl.keystore.type=PEM',
      `ssl.keystore.location=${tls.keystore}`,
      // The broker is a TLS client of itself on the inter-broker listener.
      'ssl.truststore.type=PEM',
      `ssl.truststore.location=${tls.caCert}`,
      'ssl.client.auth=none',
      'authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer',
      'super.users=User:admin',
      'allow.everyone.if.no.acl.found=false',
    ];
  }

  /** KIP-900: SCRAM credentials written at format time, so users exist before the broker starts. */
  private scramArgs(): string[] {
    return Object.entries(this.users).flatMap(([name, password]) => [
      '--add-scram',
      `SCRAM-SHA-256=[name=${name},password=${password}]`,
      '--add-scram',
      `SCRAM-SHA-512=[name=${name},password=${password}]`,
    ]);
  }

  async start(): Promise<void> {
    const props = join(this.dir, 'server.properties');
    delete this.startTimings.formatMs;
    if (!existsSync(join(this.dir, 'data', 'meta.properties'))) {
      this.configure();
      const t0 = performance.now();
      execFileSync(
        'java',
        this.java(['kafka.tools.StorageTool', 'format', '--standalone', '-t', randomUUID().replace(/-/g, '').slice(0, 22), '-c', props, ...this.scramArgs()]),
        {
          stdio: ['ignore', 'ignore', 'inherit'],
        },
      );
      this.startTimings.formatMs = Math.round(performance.now() - t0);
    }
    const t0 = performance.now();
    this.daemon = new Daemon('kafka', 'java', this.java(['kafka.Kafka', props]), join(this.dir, 'kafka.log'));
    this.daemon.start();
    const probe = this.secure ? this.kafkaOptions('admin') : undefined;
    await this.daemon.guard(waitForKafka(this.brokers, 120_000, probe && { ssl: probe.ssl, sasl: probe.sasl }));
    this.startTimings.readyMs = Math.round(performance.now() - t0);
  }

  async stop(): Promise<void> {
    await this.daemon?.stop(20_000);
  }

  kill(): void {
    this.daemon?.kill();
  }
}

/**
 * Ready means a metadata request answers. `client` carries TLS and SASL settings for a secure
 * broker (e.g. from `broker.kafkaOptions('admin')`).
 */
export async function waitForKafka(brokers: string, timeoutMs = 60_000, client: Pick<KafkaConfig, 'ssl' | 'sasl'> = {}): Promise<void> {
  const kafka = new Kafka({ clientId: 'testbed-probe', brokers: brokers.split(','), logLevel: logLevel.NOTHING, retry: { retries: 0 }, ...client });
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

/**
 * The users' passwords: random per bed (nothing to leak or to hard-code), kept beside the
 * broker's data so a restart on the same folder matches the credentials formatted into it.
 */
function loadOrMakeUsers(file: string): Record<string, string> {
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
  // Hex only: the passwords are written inside JAAS quotes and StorageTool's `[name=…,password=…]`.
  const users = Object.fromEntries(secureUsers.map((u) => [u, randomBytes(12).toString('hex')]));
  writeFileSync(file, JSON.stringify(users, null, 2), { mode: 0o600 });
  return users;
}
