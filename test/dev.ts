/**
 * `npm run dev`: the quickest way to see the product work on a machine without kind. Starts
 * the test bed, deploys the controller's RBAC, runs the controller as a local process with
 * that ServiceAccount's token, produces a few sample messages (one of them invalid), and
 * shows the Jobs completing. Keeps running until Ctrl-C so you can poke at it with kubectl;
 * `--once` exits after the demo (used by the test suite).
 */
import * as k8s from '@kubernetes/client-node';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import { jobSelector } from '../src/shared/contract/identity.js';
import { waitFor } from '../src/shared/wait.js';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { jobOutcome } from './helpers.js';
import { applyControllerRbac, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from './support.js';
import { Testbed } from './testbed/testbed.js';

const once = process.argv.includes('--once');
const say = (s: string) => process.stdout.write(`${s}\n`);
// Asynchronous on purpose: this process serves the node's log endpoint that `kubectl logs` reaches.
const kubectl = async (args: string[]) => (await promisify(execFile)(join(bed.env.KUBEBUILDER_ASSETS!, 'kubectl'), args, { env: process.env })).stdout;

const bed = await Testbed.start();
Object.assign(process.env, bed.env);
const kc = new k8s.KubeConfig();
kc.loadFromFile(bed.env.KUBECONFIG);
const namespace = 'mcp-job-controller';
const topic = 'mcp-jobs';
const group = 'mcp-job-controller';
let controller: ControllerProcess | undefined;
let exiting = false;
const shutdown = async (code: number) => {
  if (exiting) return;
  exiting = true;
  await controller?.stop();
  await bed.stop();
  process.exit(code);
};
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  await kc
    .makeApiClient(k8s.CoreV1Api)
    .createNamespace({ body: { metadata: { name: namespace, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } } });
  await applyControllerRbac(kc, namespace);
  const saKubeconfig = await serviceAccountKubeconfig(kc, namespace, 'mcp-job-controller');
  const kafka = new Kafka({ clientId: 'dev', brokers: [bed.env.KAFKA_BROKERS], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true });
  await admin.disconnect();

  say(`\n== controller: ServiceAccount ${namespace}/mcp-job-controller, topic ${topic}, Jobs in namespace ${namespace}`);
  controller = new ControllerProcess({
    KUBECONFIG: saKubeconfig,
    KAFKA_BROKERS: bed.env.KAFKA_BROKERS,
    KAFKA_TOPIC: topic,
    KAFKA_CONSUMER_GROUP: group,
    JOB_NAMESPACE: namespace,
    METRICS_PORT: process.env.METRICS_PORT ?? '8080',
    MAX_ACTIVE_JOBS: '20',
  }).start();
  await controller.ready();

  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const sample = (i: number) =>
    JSON.stringify({ jobID: `demo-${i}`, jobType: 'server-init', payload: JSON.stringify({ mcpServers: { demo: { command: 'node', args: [FIXTURE] } } }) });
  await producer.send({
    topic,
    messages: [
      ...[1, 2, 3, 4, 5].map((i) => ({ key: `demo-${i}`, value: sample(i) })),
      { key: 'oops', value: '{"jobID": "oops", "jobType": "server-init", "payload": "not json"}' },
    ],
  });
  await producer.disconnect();
  say('== produced 5 valid messages and 1 invalid one');

  const batch = kc.makeApiClient(k8s.BatchV1Api);
  await waitFor(
    async () => {
      const list = await batch.listNamespacedJob({ namespace, labelSelector: jobSelector(group) });
      return list.items.length === 5 && list.items.every((j) => jobOutcome(j));
    },
    { timeoutMs: 120_000, intervalMs: 500, description: '5 Jobs to finish' },
  );
  say(`\n$ kubectl get jobs -n ${namespace} -l ${jobSelector(group)}`);
  say(await kubectl(['get', 'jobs', '-n', namespace, '-l', jobSelector(group)]));
  const first = (await batch.listNamespacedJob({ namespace, labelSelector: jobSelector(group) })).items[0]!.metadata!.name!;
  say(`$ kubectl logs -n ${namespace} job/${first}`);
  say(await kubectl(['logs', '-n', namespace, `job/${first}`]));
  const dlq = controller.logs.find((l) => l.msg === 'message dead-lettered');
  say(`== dead-lettered: offset ${dlq?.partition}/${dlq?.offset} to ${topic}.dlq, reason ${dlq?.reason}: ${dlq?.error}`);
  if (once) {
    await shutdown(0);
  } else {
    say(
      `\n== the test bed stays up; in another shell:\nexport KUBECONFIG=${bed.env.KUBECONFIG}\nexport KAFKA_BROKERS=${bed.env.KAFKA_BROKERS}\nexport PATH=${bed.env.KUBEBUILDER_ASSETS}:$PATH\nkubectl get jobs -n ${namespace} -w\nnode dist/src/controller/main.js produce --topic ${topic} --file messages.jsonl\n\nCtrl-C stops everything.`,
    );
  }
} catch (err) {
  process.stderr.write(`dev: ${err instanceof Error ? err.stack : String(err)}\n${controller?.tail(20) ?? ''}\n`);
  await shutdown(1);
}
