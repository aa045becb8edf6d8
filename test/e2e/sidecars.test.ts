import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { DlqHeader } from '../../src/controller/reporting/dead-letter.js';
import { jobName } from '../../src/shared/contract/naming.js';
import { brokers, freshNamespace, freshTopic, jobOutcome, kubeConfig, uniqueName, useKafka, waitFor } from '../helpers.js';
import { applyControllerRbac, ControllerProcess, serviceAccountKubeconfig } from '../support.js';

const SIDECAR_IMAGE = 'mcp-job-controller/test-mcp-http:dev';

/** A port nothing listens on now: the test bed's pods share the host's loopback, so each sidecar needs its own. */
async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

describe('container servers: a docker entry runs as a native sidecar of its Job', () => {
  const kc = kubeConfig();
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const { kafka, admin, producer } = useKafka();
  let ns: Awaited<ReturnType<typeof freshNamespace>>;
  let topic: string;
  let controller: ControllerProcess;

  before(async () => {
    ns = await freshNamespace(kc, { 'pod-security.kubernetes.io/enforce': 'restricted' }, 'sidecar');
    topic = await freshTopic(admin, 1, 'sidecar');
    await applyControllerRbac(kc, ns.name);
    controller = new ControllerProcess({
      KUBECONFIG: await serviceAccountKubeconfig(kc, ns.name, 'mcp-job-controller'),
      KAFKA_BROKERS: brokers().join(','),
      KAFKA_TOPIC: topic,
      KAFKA_CONSUMER_GROUP: uniqueName('sidecar'),
      JOB_NAMESPACE: ns.name,
      ALLOWED_IMAGES: 'mcp-job-controller/test-mcp-http:*',
      JOB_ALLOWED_SECRETS: 'mcp-ref-*',
      METRICS_PORT: '0',
    }).start();
    await controller.ready();
  });
  after(async () => {
    await controller.kill();
    await ns.remove();
  });

  it('starts the sidecar before the job, which lists its tools over Streamable HTTP; the Job Completes and the sidecar stops', async () => {
    const port = await freePort();
    const payload = {
      mcpServers: {
        files: {
          type: 'docker',
          image: SIDECAR_IMAGE,
          port,
          environment: { FIXTURE_TOOLS: '4' },
          resources: { memory_limit: '128m', cpu_limit: '0.25' },
          health_check: { path: '/health', interval: 2, timeout: 1 },
        },
      },
    };
    const [r] = await producer.send({ topic, messages: [{ value: JSON.stringify({ jobID: 'docker-1', jobType: 'server-init', payload }) }] });
    const name = jobName('mcp', topic, 0, r!.baseOffset!);
    const job = await waitFor(
      async () => {
        const j = await batch.readNamespacedJob({ name, namespace: ns.name }).catch(() => undefined);
        return j && jobOutcome(j) ? j : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500, description: `Job ${name} to finish; controller: ${controller.tail(3)}` },
    );
    const [pod] = (await core.listNamespacedPod({ namespace: ns.name, labelSelector: `job-name=${name}` })).items;
    assert.ok(pod, 'the Job has a pod');
    assert.equal(jobOutcome(job), 'Complete', JSON.stringify(pod.status?.containerStatuses?.[0]?.state));

    const [sidecar] = pod.spec!.initContainers!;
    assert.equal(sidecar!.image, SIDECAR_IMAGE);
    assert.equal(sidecar!.restartPolicy, 'Always');
    assert.deepEqual({ ...sidecar!.readinessProbe?.httpGet }, { path: '/health', port, scheme: 'HTTP' });
    assert.deepEqual(JSON.parse(JSON.stringify(sidecar!.resources)), { requests: { cpu: '250m', memory: '128Mi' }, limits: { cpu: '250m', memory: '128Mi' } });

    const summary = JSON.parse(pod.status!.containerStatuses![0]!.state!.terminated!.message!);
    assert.equal(summary.status, 'initialized');
    assert.equal(summary.servers.files.status, 'initialized');
    assert.equal(summary.servers.files.transport, 'http');
    assert.deepEqual(summary.servers.files.tools, ['tool_0', 'tool_1', 'tool_2', 'tool_3']);

    // The sidecar was ready before the job started, and was stopped once the job had exited.
    const side = pod.status!.initContainerStatuses![0]!;
    const main = pod.status!.containerStatuses![0]!;
    assert.ok(side.state?.terminated, `the sidecar stopped: ${JSON.stringify(side.state)}`);
    assert.ok(new Date(side.state.terminated.startedAt!) <= new Date(main.state!.terminated!.startedAt!), 'the sidecar started first');
    assert.ok(new Date(side.state.terminated.finishedAt!) >= new Date(main.state!.terminated!.finishedAt!), 'the sidecar stopped after the job');
    assert.equal(side.state.terminated.exitCode, 0, 'the sidecar stopped on SIGTERM');
    assert.equal(pod.status!.phase, 'Succeeded');
  });

  it('gives the sidecar its secret reference through the kubelet, never as a value in the Job, and the job checks the key is there', async () => {
    const value = `sidecar-${createHash('sha256').update(String(process.pid)).digest('hex').slice(0, 20)}`;
    await core.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: 'mcp-ref-sidecar' }, stringData: { API_KEY: value } } });
    const port = await freePort();
    const payload = {
      mcpServers: {
        keyed: {
          type: 'docker',
          image: SIDECAR_IMAGE,
          port,
          environment: { FIXTURE_TOOLS: '1', HASH_ENV: 'API_KEY', API_KEY: 'secret_ref:mcp-ref-sidecar:API_KEY' },
          health_check: { path: '/health', interval: 2, timeout: 1 },
        },
      },
    };
    const [r] = await producer.send({ topic, messages: [{ value: JSON.stringify({ jobID: 'docker-3', jobType: 'server-init', payload }) }] });
    const name = jobName('mcp', topic, 0, r!.baseOffset!);
    const job = await waitFor(
      async () => {
        const j = await batch.readNamespacedJob({ name, namespace: ns.name }).catch(() => undefined);
        return j && jobOutcome(j) ? j : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500, description: `Job ${name} to finish; controller: ${controller.tail(3)}` },
    );
    const [pod] = (await core.listNamespacedPod({ namespace: ns.name, labelSelector: `job-name=${name}` })).items;
    assert.equal(jobOutcome(job), 'Complete', JSON.stringify(pod?.status?.containerStatuses?.[0]?.state));
    const env = pod!.spec!.initContainers![0]!.env!.find((e) => e.name === 'API_KEY');
    assert.deepEqual(JSON.parse(JSON.stringify(env)), {
      name: 'API_KEY',
      valueFrom: { secretKeyRef: { name: 'mcp-ref-sidecar', key: 'API_KEY', optional: true } },
    });
    const summary = pod!.status!.containerStatuses![0]!.state!.terminated!.message!;
    const digest = createHash('sha256').update(value).digest('hex').slice(0, 16);
    assert.ok((JSON.parse(summary) as { servers: { keyed: { tools: string[] } } }).servers.keyed.tools.includes(`sha256-API_KEY-${digest}`), summary);
    for (const [what, text] of [
      ['the Job', JSON.stringify(job)],
      ['the pod', JSON.stringify(pod)],
      ['the summary', summary],
      ["the controller's log", JSON.stringify(controller.logs)],
    ] as const) {
      assert.ok(!text.includes(value), `the value appears in ${what}`);
    }
  });

  it('dead-letters a docker entry whose image is outside the allow-list, creating no Job', async () => {
    const payload = { mcpServers: { miner: { type: 'docker', image: 'docker.io/evil/miner:latest', port: 9000 } } };
    const [r] = await producer.send({ topic, messages: [{ value: JSON.stringify({ jobID: 'docker-2', jobType: 'server-init', payload }) }] });
    const reader = kafka.consumer({ groupId: uniqueName('dlq-reader') });
    const records: { reason: string; offset: string; error: string }[] = [];
    await reader.connect();
    try {
      await reader.subscribe({ topic: `${topic}.dlq`, fromBeginning: true });
      await reader.run({
        eachMessage: async ({ message: m }) =>
          void records.push({
            reason: String(m.headers![DlqHeader.reason]),
            offset: String(m.headers![DlqHeader.offset]),
            error: String(m.headers![DlqHeader.error]),
          }),
      });
      await waitFor(() => records.find((d) => d.offset === r!.baseOffset), { timeoutMs: 30_000, description: 'the dead-letter record' });
    } finally {
      await reader.disconnect();
    }
    const rec = records.find((d) => d.offset === r!.baseOffset)!;
    assert.equal(rec.reason, 'image-not-allowed');
    assert.match(rec.error, /docker\.io\/evil\/miner:latest/);
    const name = jobName('mcp', topic, 0, r!.baseOffset!);
    await assert.rejects(batch.readNamespacedJob({ name, namespace: ns.name }), (e: k8s.ApiException<unknown>) => e.code === 404);
  });
});
