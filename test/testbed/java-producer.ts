import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { cacheRoot, repoRoot } from './cache.js';
import type { KafkaBroker } from './kafka.js';

/** Kafka's `compression.type` values. */
export type Compression = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';
export const compressions: readonly Compression[] = ['none', 'gzip', 'snappy', 'lz4', 'zstd'];

/** Java client security settings (Kafka's own spellings). */
export interface JavaSecurity {
  protocol: 'SASL_SSL' | 'SASL_PLAINTEXT';
  mechanism: 'SCRAM-SHA-256' | 'SCRAM-SHA-512' | 'PLAIN';
  username: string;
  password: string;
  /** PEM CA the client trusts (`ssl.truststore.type=PEM`); for SASL_SSL. */
  caFile?: string;
}

export interface JavaProduceOptions {
  /** The Kafka distribution whose `libs/` holds kafka-clients and the codecs (`ensureKafka`). */
  home: string;
  /** `host:port[,host:port]`. */
  brokers: string;
  topic: string;
  /** Omitted: Kafka's default partitioner (with no key, all records stick to one partition). */
  partition?: number;
  /** One key for every record; omitted: null keys. */
  key?: string;
  compression?: Compression;
  /** Record values; each is sent as one UTF-8 string, and may not contain a line break. */
  values: string[];
  /** `linger.ms` (default 100): long enough that all values share one compressed batch. */
  lingerMs?: number;
  security?: JavaSecurity;
  /**
   * Whole records instead of `values` (which must then be empty): null key or value (a
   * tombstone), bytes of any kind, headers.
   */
  records?: { key: Buffer | null; value: Buffer | null; headers?: Record<string, Buffer> }[];
  /** Send everything in one transaction with this id; committed unless `abort`. */
  transactionalId?: string;
  abort?: boolean;
  /** Kill the JVM after this long (default 60 s). */
  timeoutMs?: number;
}

/** Where one record landed. `offset` is a string, as in kafkajs. */
export interface ProducedRecord {
  partition: number;
  offset: string;
}

export const producerSource = join(repoRoot, 'test', 'testbed', 'java', 'Producer.java');

/** The SASL_SSL settings for `user` on a secure broker; `undefined` for a plain one. */
export function javaSecurity(broker: KafkaBroker, user: string, mechanism: JavaSecurity['mechanism'] = 'SCRAM-SHA-512'): JavaSecurity | undefined {
  if (!broker.secure) return undefined;
  const password = broker.users[user];
  if (password === undefined) throw new Error(`testbed: no Kafka user ${user}`);
  return { protocol: 'SASL_SSL', mechanism, username: user, password, caFile: broker.caFile };
}

/**
 * The single-file launch compiles Producer.java in memory on every run (~1.5 s here). When a
 * JDK's javac is at hand, compile once into the cache, keyed by the source's hash, and run the
 * class; a JRE alone still works through the source launch.
 */
let compiled: Promise<string | undefined> | undefined;
function compiledProducer(libs: string): Promise<string | undefined> {
  compiled ??= (async () => {
    const hash = createHash('sha256').update(readFileSync(producerSource)).digest('hex').slice(0, 16);
    const dir = join(cacheRoot, 'java-producer', hash);
    if (existsSync(join(dir, 'Producer.class'))) return dir;
    const tmp = `${dir}.tmp-${process.pid}`;
    try {
      mkdirSync(tmp, { recursive: true });
      await promisify(execFile)('javac', ['-nowarn', '-cp', join(libs, '*'), '-d', tmp, producerSource]);
      try {
        renameSync(tmp, dir);
      } catch {
        /* another process compiled it first */
      }
      return existsSync(join(dir, 'Producer.class')) ? dir : undefined;
    } catch {
      return undefined;
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  })();
  return compiled;
}

/**
 * Sends `values` with Kafka's Java producer (`Producer.java`, launched as a single source
 * file) and resolves with where each landed, in order. The values go through standard input,
 * the password through the environment.
 */
export async function javaProduce(o: JavaProduceOptions): Promise<ProducedRecord[]> {
  for (const v of o.values) {
    if (/[\r\n]/.test(v)) throw new Error('javaProduce: values are sent one per line and may not contain line breaks');
  }
  const libs = join(o.home, 'libs');
  if (!existsSync(libs)) throw new Error(`javaProduce: ${libs} does not exist (see ensureKafka)`);
  const classes = await compiledProducer(libs);
  const args = [
    '-Xmx256m',
    '-XX:+UseSerialGC',
    '-XX:TieredStopAtLevel=1',
    `-Dlog4j2.configurationFile=${join(repoRoot, 'test', 'testbed', 'java', 'log4j2-stderr.properties')}`,
    `-Dlog4j.configuration=file:${join(repoRoot, 'test', 'testbed', 'java', 'log4j-stderr.properties')}`,
    ...(classes ? ['-cp', `${classes}${delimiter}${join(libs, '*')}`, 'Producer'] : ['-cp', join(libs, '*'), producerSource]),
    '--bootstrap',
    o.brokers,
    '--topic',
    o.topic,
    '--compression',
    o.compression ?? 'none',
    '--linger-ms',
    String(o.lingerMs ?? 100),
  ];
  if (o.partition !== undefined) args.push('--partition', String(o.partition));
  if (o.transactionalId !== undefined) args.push('--transactional-id', o.transactionalId, ...(o.abort ? ['--abort'] : []));
  const b64 = (b: Buffer | null) => (b === null ? '-' : b.toString('base64'));
  const lines = o.records
    ? (args.push('--encoded'),
      o.records.map((r) =>
        [
          b64(r.key),
          b64(r.value),
          Object.entries(r.headers ?? {})
            .map(([k, v]) => `${k}:${v.toString('base64')}`)
            .join(','),
        ].join('\t'),
      ))
    : o.values;
  if (o.key !== undefined) args.push('--key', o.key);
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.KAFKA_SASL_PASSWORD;
  if (o.security) {
    args.push('--security-protocol', o.security.protocol, '--sasl-mechanism', o.security.mechanism, '--username', o.security.username);
    if (o.security.caFile) args.push('--ca-file', o.security.caFile);
    env.KAFKA_SASL_PASSWORD = o.security.password;
  }
  return new Promise((resolve, reject) => {
    const child = spawn('java', args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(
        (e as NodeJS.ErrnoException).code === 'ENOENT' ? new Error('javaProduce: a Java 17+ runtime is required (apt-get install openjdk-17-jre-headless)') : e,
      );
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        const tail = err.trim().split('\n').slice(-5).join('\n');
        reject(new Error(`javaProduce: Producer.java exited with ${signal ?? code}: ${tail}`));
        return;
      }
      const records = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as ProducedRecord);
      if (records.length !== lines.length) {
        reject(new Error(`javaProduce: ${lines.length} records sent but ${records.length} results printed`));
        return;
      }
      resolve(records);
    });
    // Stdin stays empty (and is closed) when there is nothing to send; the program then sends nothing.
    child.stdin.end(lines.length ? lines.join('\n') + '\n' : '');
  });
}
