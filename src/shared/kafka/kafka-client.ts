import { Kafka, type KafkaConfig } from 'kafkajs';
import type { KafkaConnection } from './kafka.js';
import { registerKafkaCodecs } from './kafka-codecs.js';

// Apart from src/shared/kafka/kafka.ts so the job, which only reads one record, never loads kafkajs'
// index (its consumer, producer and admin) unless that read goes wrong.
/** The one place a kafkajs client is made; every client reads all four Kafka codecs. */
export function createKafka(conn: KafkaConnection, extra: Partial<KafkaConfig> = {}): Kafka {
  registerKafkaCodecs();
  return new Kafka({ ...conn, ...extra });
}
