import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { after, before } from 'node:test';
import { Kafka, logLevel, type Admin, type Producer } from 'kafkajs';

export { waitFor, sleep } from '../src/shared/wait.js';

/** The broker the suites use (the test bed's, or the one KAFKA_BROKERS names). */
export function brokers(): string[] {
  const b = process.env.KAFKA_BROKERS;
  if (!b) throw new Error('KAFKA_BROKERS is not set: run the suites with `npm test` (it starts the test bed)');
  return b.split(',');
}

export function kubeConfig(): k8s.KubeConfig {
  if (!process.env.KUBECONFIG) throw new Error('KUBECONFIG is not set: run the suites with `npm test` (it starts the test bed)');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG);
  return kc;
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

export function testKafka(clientId = 'tests'): Kafka {
  return new Kafka({ clientId, brokers: brokers(), logLevel: logLevel.NOTHING });
}

/**
 * An admin and a producer on the test broker, connected before the enclosing suite's tests
 * and disconnected after them (it registers the suite's before/after hooks).
 */
export function useKafka(clientId = 'tests'): { kafka: Kafka; admin: Admin; producer: Producer } {
  const kafka = testKafka(clientId);
  const clients = { kafka, admin: kafka.admin(), producer: kafka.producer() };
  before(async () => {
    await Promise.all([clients.admin.connect(), clients.producer.connect()]);
  });
  after(async () => {
    await Promise.all([clients.admin.disconnect(), clients.producer.disconnect()]);
  });
  return clients;
}

/** A fresh topic per test keeps tests independent on one shared broker. */
export async function freshTopic(admin: Admin, partitions = 1, prefix = 'test'): Promise<string> {
  const topic = uniqueName(prefix);
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
  return topic;
}

/** A fresh namespace per test; deleted by the returned function. */
export async function freshNamespace(
  kc: k8s.KubeConfig,
  labels: Record<string, string> = {},
  prefix = 'test',
): Promise<{ name: string; remove: () => Promise<void> }> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const name = uniqueName(prefix);
  await core.createNamespace({ body: { metadata: { name, labels } } });
  return {
    name,
    remove: async () => {
      await core.deleteNamespace({ name }).catch(() => undefined);
    },
  };
}

/** kubectl from the test bed's binaries (or PATH when the suites run against another cluster). */
export function kubectl(args: string[], input?: string): string {
  const bin = process.env.KUBEBUILDER_ASSETS ? join(process.env.KUBEBUILDER_ASSETS, 'kubectl') : 'kubectl';
  return execFileSync(bin, args, { encoding: 'utf8', input, env: process.env, stdio: ['pipe', 'pipe', 'pipe'] });
}

/** The terminal condition of a Job, if it has one. */
export function jobOutcome(job: k8s.V1Job): 'Complete' | 'Failed' | undefined {
  const c = job.status?.conditions?.find((x) => (x.type === 'Complete' || x.type === 'Failed') && x.status === 'True');
  return c?.type as 'Complete' | 'Failed' | undefined;
}
