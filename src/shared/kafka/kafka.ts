import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { logLevel as LogLevel, logCreator, SASLOptions } from 'kafkajs';
import { ConfigError } from '../errors.js';
import { kafkaLevel, kafkaLogCreator, type Logger } from '../logger.js';
import type { SharedConfig } from '../settings.js';

/**
 * How a process reaches the brokers: everything a kafkajs client, and the job's one-record
 * reader, need to connect. Built once per process by {@link kafkaConnection}, so the
 * controller, its reader and the job connect the same way.
 */
export interface KafkaConnection {
  brokers: string[];
  clientId: string;
  logLevel: LogLevel;
  logCreator?: logCreator;
  ssl?: ConnectionOptions | boolean;
  sasl?: SASLOptions;
}

export type KafkaSecuritySettings = Pick<
  SharedConfig,
  | 'KAFKA_TLS'
  | 'KAFKA_TLS_CA_FILE'
  | 'KAFKA_TLS_CERT_FILE'
  | 'KAFKA_TLS_KEY_FILE'
  | 'KAFKA_TLS_SERVERNAME'
  | 'KAFKA_SASL_MECHANISM'
  | 'KAFKA_SASL_USERNAME'
  | 'KAFKA_SASL_PASSWORD_FILE'
>;

function readSetting(setting: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${setting}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * kafkajs' `ssl` and `sasl` options from the settings. Secrets are read from files (a mounted
 * Secret), never taken from a setting's value, and never logged.
 */
export function kafkaSecurity(s: Partial<KafkaSecuritySettings>): Pick<KafkaConnection, 'ssl' | 'sasl'> {
  const out: Pick<KafkaConnection, 'ssl' | 'sasl'> = {};
  const tlsFiles = s.KAFKA_TLS_CA_FILE || s.KAFKA_TLS_CERT_FILE || s.KAFKA_TLS_KEY_FILE || s.KAFKA_TLS_SERVERNAME;
  if (tlsFiles && !s.KAFKA_TLS) throw new ConfigError('KAFKA_TLS_* files are set but KAFKA_TLS is not true');
  if (s.KAFKA_TLS) {
    if (Boolean(s.KAFKA_TLS_CERT_FILE) !== Boolean(s.KAFKA_TLS_KEY_FILE)) throw new ConfigError('KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE go together');
    const tls: ConnectionOptions = {};
    if (s.KAFKA_TLS_CA_FILE) tls.ca = [readSetting('KAFKA_TLS_CA_FILE', s.KAFKA_TLS_CA_FILE)];
    if (s.KAFKA_TLS_CERT_FILE) tls.cert = readSetting('KAFKA_TLS_CERT_FILE', s.KAFKA_TLS_CERT_FILE);
    if (s.KAFKA_TLS_KEY_FILE) tls.key = readSetting('KAFKA_TLS_KEY_FILE', s.KAFKA_TLS_KEY_FILE);
    if (s.KAFKA_TLS_SERVERNAME) tls.servername = s.KAFKA_TLS_SERVERNAME;
    out.ssl = Object.keys(tls).length ? tls : true;
  }
  if (s.KAFKA_SASL_MECHANISM) {
    if (!s.KAFKA_SASL_USERNAME || !s.KAFKA_SASL_PASSWORD_FILE) {
      throw new ConfigError(`KAFKA_SASL_MECHANISM ${s.KAFKA_SASL_MECHANISM} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD_FILE`);
    }
    const password = readSetting('KAFKA_SASL_PASSWORD_FILE', s.KAFKA_SASL_PASSWORD_FILE).replace(/\r?\n$/, '');
    out.sasl = { mechanism: s.KAFKA_SASL_MECHANISM, username: s.KAFKA_SASL_USERNAME, password } as SASLOptions;
  } else if (s.KAFKA_SASL_USERNAME || s.KAFKA_SASL_PASSWORD_FILE) {
    throw new ConfigError('KAFKA_SASL_USERNAME / KAFKA_SASL_PASSWORD_FILE are set but KAFKA_SASL_MECHANISM is not');
  }
  return out;
}

/** What to log about how a process connects: the mechanism and user, never the password. */
export function describeKafkaSecurity(conn: Pick<KafkaConnection, 'ssl' | 'sasl' | 'brokers'>): Record<string, unknown> {
  return {
    brokers: conn.brokers,
    tls: Boolean(conn.ssl),
    mechanism: conn.sasl?.mechanism ?? 'none',
    user: (conn.sasl as { username?: string } | undefined)?.username,
  };
}

/** The connection for `clientId`, logging through the process's pino logger when given. */
export function kafkaConnection(o: {
  brokers: string[];
  clientId: string;
  log?: Logger;
  level?: string;
  security?: Partial<KafkaSecuritySettings>;
}): KafkaConnection {
  return {
    brokers: o.brokers,
    clientId: o.clientId,
    logLevel: kafkaLevel(o.level ?? 'warn'),
    ...(o.log ? { logCreator: kafkaLogCreator(o.log) } : {}),
    ...kafkaSecurity(o.security ?? {}),
  };
}
