import { Kafka, logLevel as LogLevel, type KafkaConfig, type logCreator } from 'kafkajs';
import { registerKafkaCodecs } from './kafka-codecs.js';
import { kafkaLevel, kafkaLogCreator, type Logger } from './logger.js';

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
}

/** The connection for `clientId`, logging through the process's pino logger when given. */
export function kafkaConnection(o: { brokers: string[]; clientId: string; log?: Logger; level?: string }): KafkaConnection {
  return {
    brokers: o.brokers,
    clientId: o.clientId,
    logLevel: kafkaLevel(o.level ?? 'warn'),
    ...(o.log ? { logCreator: kafkaLogCreator(o.log) } : {}),
  };
}

/** The one place a kafkajs client is made; every client reads all four Kafka codecs. */
export function createKafka(conn: KafkaConnection, extra: Partial<KafkaConfig> = {}): Kafka {
  registerKafkaCodecs();
  return new Kafka({ ...conn, ...extra });
}
