import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import kafkajs, { type Kafka } from 'kafkajs';
import { KAFKA_DEFAULT_MAX_MESSAGE_BYTES } from '../../src/controller/intake/group-admin.js';
import { DlqHeader, TruncatedHeader } from '../../src/controller/reporting/dead-letter.js';
import { Annotation, jobSelector } from '../../src/shared/contract/identity.js';
import { checksumOf } from '../../src/shared/contract/message.js';
import { jobName } from '../../src/shared/contract/naming.js';
import { brokers, freshNamespace, freshTopic, kubeConfig, uniqueName, useKafka, waitFor } from '../helpers.js';
import { applyControllerRbac, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from '../support.js';

const message = (jobID: string) =>
  JSON.stringify({ jobID, jobType: 'server-init', payload: JSON.stringify({ mcpServers: { f: { command: 'node', args: [FIXTURE] } } }) });

interface Setup {
  ns: string;
  topic: string;
  env: Record<string, string>;
  group: string;
}

/** The records of a topic, headers as strings (values as bytes), read from the start. */
async function readTopic(kafka: Kafka, topic: string, n: number) {
  const got: { key: string | null; rawKey: Buffer | null; value: Buffer | null; headers: Record<string, Buffer>; offset: string }[] = [];
  const c = kafka.consumer({ groupId: uniqueName('reader'), maxBytes: 16 * 1024 * 1024 });
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  await c.run({
    eachMessage: async ({ message: m }) =>
      void got.push({
        key: m.key ? String(m.key) : null,
        rawKey: m.key,
        value: m.value,
        offset: m.offset,
        headers: Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, Buffer.from(v as Buffer)])),
      }),
  });
  try {
    await waitFor(() => got.length >= n, { timeoutMs: 60_000, description: `${n} records on ${topic}` });
  } finally {
    await c.disconnect();
  }
  return got;
}

describe('hostile but legal inputs, on the test bed (real broker, real API server)', () => {
  const kc = kubeConfig();
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const rbacApi = kc.makeApiClient(k8s.RbacAuthorizationV1Api);
  const objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  const { kafka, admin, producer } = useKafka();
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanup.reverse()) await c().catch(() => undefined);
  });

  async function setup(): Promise<Setup> {
    const ns = await freshNamespace(kc, { 'pod-security.kubernetes.io/enforce': 'restricted' }, 'hostile');
    cleanup.push(ns.remove);
    const topic = await freshTopic(admin, 1, 'hostile');
    const group = uniqueName('g');
    await applyControllerRbac(kc, ns.name);
    const env = {
      KUBECONFIG: await serviceAccountKubeconfig(kc, ns.name, 'mcp-job-controller'),
      KAFKA_BROKERS: brokers().join(','),
      KAFKA_TOPIC: topic,
      KAFKA_CONSUMER_GROUP: group,
      JOB_NAMESPACE: ns.name,
      METRICS_PORT: '0',
    };
    return { ns: ns.name, topic, env, group };
  }

  /** The topic's `max.message.bytes` set to Kafka's default: the test bed's broker allows more (2 MiB) for other suites. */
  const defaultRecordLimit = (topic: string) =>
    admin.alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: kafkajs.ConfigResourceTypes.TOPIC,
          name: topic,
          configEntries: [{ name: 'max.message.bytes', value: String(KAFKA_DEFAULT_MAX_MESSAGE_BYTES) }],
        },
      ],
    });

  const committed = async (s: Setup): Promise<string> => {
    const [c] = await admin.fetchOffsets({ groupId: s.group, topics: [s.topic] });
    return c!.partitions[0]!.offset;
  };

  it("dead-letters a message whose Job a ValidatingAdmissionPolicy denies (job-rejected, the API server's words) and goes on with the next one", async () => {
    const s = await setup();
    const name = uniqueName('deny-job-id');
    const policy = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: ['batch'], apiVersions: ['v1'], operations: ['CREATE'], resources: ['jobs'] }] },
        validations: [
          {
            expression: `!has(object.metadata.annotations) || !('${Annotation.jobID}' in object.metadata.annotations) || object.metadata.annotations['${Annotation.jobID}'] != 'refused-by-policy'`,
            message: 'jobs for refused-by-policy are not allowed here',
            // 403, as the issue measured it; without a reason the API server answers 422 (a unit test covers that).
            reason: 'Forbidden',
          },
        ],
      },
    };
    const binding = {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name },
      spec: {
        policyName: name,
        validationActions: ['Deny'],
        matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': s.ns } } },
      },
    };
    await objects.create(policy);
    cleanup.push(async () => void (await objects.delete(policy)));
    await objects.create(binding);
    cleanup.push(async () => void (await objects.delete(binding)));
    // The policy takes effect once the API server has compiled it: a dry-run create says when.
    const probe: k8s.V1Job = {
      metadata: { generateName: 'probe-', annotations: { [Annotation.jobID]: 'refused-by-policy' } },
      spec: { suspend: true, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'x' }] } } },
    };
    await waitFor(
      async () => {
        try {
          await batch.createNamespacedJob({ namespace: s.ns, body: probe, dryRun: 'All' });
        } catch (e) {
          if ((e as { code?: number }).code === 403 && /ValidatingAdmissionPolicy/.test((e as Error).message)) return true;
          throw new Error(`the probe create failed otherwise: ${(e as Error).message}`);
        }
        const status = JSON.stringify(((await objects.read(policy)) as { status?: unknown }).status);
        throw new Error(`the probe was admitted; policy status ${status}`);
      },
      { timeoutMs: 30_000, description: 'the ValidatingAdmissionPolicy in force' },
    );

    const controller = new ControllerProcess(s.env).start();
    try {
      await controller.ready();
      await producer.send({ topic: s.topic, messages: [{ key: 'refused', value: message('refused-by-policy') }, { value: message('allowed') }] });
      const [dead] = await readTopic(kafka, `${s.topic}.dlq`, 1);
      assert.equal(String(dead!.headers[DlqHeader.reason]), 'job-rejected');
      assert.equal(String(dead!.headers[DlqHeader.offset]), '0');
      assert.match(
        String(dead!.headers[DlqHeader.error]),
        /ValidatingAdmissionPolicy '.*' with binding '.*' denied request.*refused-by-policy are not allowed/,
      );
      assert.equal(dead!.value!.toString(), message('refused-by-policy'), 'the original bytes');
      await waitFor(async () => (await committed(s)) === '2', { timeoutMs: 60_000, description: 'offset 2 committed: the partition is not blocked' });
      const jobs = (await batch.listNamespacedJob({ namespace: s.ns, labelSelector: jobSelector(s.group) })).items;
      assert.deepEqual(
        jobs.map((j) => j.metadata!.annotations![Annotation.jobID]),
        ['allowed'],
      );
      assert.ok(!controller.logs.some((l) => l.msg === 'controller cannot go on; exiting'));
    } finally {
      await controller.kill();
    }
  });

  it("fails loudly when the controller's own Role does not let it create Jobs (RBAC 403), dead-lettering nothing", async () => {
    const s = await setup();
    const role = await rbacApi.readNamespacedRole({ name: 'mcp-job-controller', namespace: s.ns });
    role.rules = role.rules!.map((r) => (r.resources?.includes('jobs') ? { ...r, verbs: r.verbs.filter((v) => v !== 'create') } : r));
    await rbacApi.replaceNamespacedRole({ name: 'mcp-job-controller', namespace: s.ns, body: role });
    const controller = new ControllerProcess(s.env).start();
    try {
      await controller.ready();
      await producer.send({ topic: s.topic, messages: [{ value: message('no-rights') }] });
      // Bounded: a controller that retries the denial in silence never exits.
      await waitFor(() => controller.child!.exitCode !== null, { timeoutMs: 60_000, description: `the controller to exit; logs: ${controller.tail()}` });
      assert.notEqual(controller.child!.exitCode, 0);
      const fatal = controller.logs.find((l) => l.msg === 'controller cannot go on; exiting');
      assert.ok(fatal, controller.tail());
      assert.match(fatal.err, /Role does not allow it.*cannot create resource "jobs"/);
      assert.ok(!controller.logs.some((l) => l.msg === 'message dead-lettered'));
      assert.ok(BigInt(await committed(s)) <= 0n, 'nothing committed');
    } finally {
      await controller.kill();
    }
  });

  it('does not commit over a Job being deleted (a finalizer holds it): it creates the Job again once the old one is gone', async () => {
    const s = await setup();
    const value = message('held');
    const name = jobName('mcp', s.topic, 0, 0);
    // The same message's Job, as a previous run made it, now being deleted and held by a finalizer.
    const held: k8s.V1Job = {
      metadata: {
        name,
        finalizers: ['hostile.test.example/hold'],
        annotations: {
          [Annotation.group]: s.group,
          [Annotation.topic]: s.topic,
          [Annotation.partition]: '0',
          [Annotation.offset]: '0',
          [Annotation.checksum]: checksumOf(Buffer.from(value)),
        },
      },
      spec: { suspend: true, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'x' }] } } },
    };
    const first = await batch.createNamespacedJob({ namespace: s.ns, body: held });
    await batch.deleteNamespacedJob({ name, namespace: s.ns, propagationPolicy: 'Background' });
    await waitFor(async () => (await batch.readNamespacedJob({ name, namespace: s.ns })).metadata?.deletionTimestamp !== undefined, {
      description: 'the Job terminating',
    });
    const release = () =>
      batch.patchNamespacedJob(
        { name, namespace: s.ns, body: { metadata: { finalizers: null } } },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
      );
    cleanup.push(async () => void (await release().catch(() => undefined)));

    const controller = new ControllerProcess(s.env).start();
    try {
      await controller.ready();
      await producer.send({ topic: s.topic, messages: [{ value }] });
      await waitFor(() => controller.logs.filter((l) => l.op === 'create-job' && l.offset === '0').length >= 2, {
        timeoutMs: 60_000,
        description: `the controller waiting on the terminating Job; logs: ${controller.tail()}`,
      });
      assert.ok(BigInt(await committed(s)) <= 0n, 'not committed while the only Job is being deleted');
      await release();
      const made = await waitFor(
        async () => {
          const j = await batch.readNamespacedJob({ name, namespace: s.ns }).catch(() => undefined);
          return j && j.metadata!.uid !== first.metadata!.uid && !j.metadata!.deletionTimestamp ? j : undefined;
        },
        { timeoutMs: 60_000, description: 'the Job made again' },
      );
      assert.equal(made.metadata!.annotations![Annotation.offset], '0');
      await waitFor(async () => (await committed(s)) === '1', { timeoutMs: 30_000, description: 'offset 1 committed once the Job exists' });
    } finally {
      await controller.kill();
    }
  });

  it("dead-letters a `{}` record with a ~1 MB incompressible header, accepted at the topic's default max.message.bytes, cutting the header, and does not crash", async () => {
    const s = await setup();
    await defaultRecordLimit(s.topic);
    const controller = new ControllerProcess(s.env).start();
    try {
      await controller.ready();
      // As large as the source topic takes (80 bytes of batch and record framing): its dead-letter
      // copy, with the controller's headers, is over the limit.
      const blob = randomBytes(KAFKA_DEFAULT_MAX_MESSAGE_BYTES - 100);
      await producer.send({ topic: s.topic, messages: [{ value: '{}', headers: { blob } }] });
      await producer.send({ topic: s.topic, messages: [{ value: message('after-the-big-one') }] });
      const [dead] = await readTopic(kafka, `${s.topic}.dlq`, 1);
      assert.equal(String(dead!.headers[DlqHeader.reason]), 'invalid-envelope');
      assert.equal(String(dead!.headers[DlqHeader.offset]), '0');
      assert.equal(String(dead!.headers[TruncatedHeader.truncated]), 'true');
      assert.equal(String(dead!.headers[TruncatedHeader.headersSize]), String(4 + blob.length));
      const kept = dead!.headers.blob!;
      assert.ok(kept.length > 0 && kept.length < blob.length);
      assert.deepEqual(kept, blob.subarray(0, kept.length));
      assert.equal(dead!.value!.toString(), '{}');
      await waitFor(async () => (await committed(s)) === '2', { timeoutMs: 60_000, description: 'both messages committed' });
      assert.ok(!controller.logs.some((l) => l.msg === 'controller cannot go on; exiting'), controller.tail());
      assert.equal(controller.child!.exitCode, null, 'still running');
    } finally {
      await controller.kill();
    }
  });

  it("handles records whose headers or key fill the topic's default max.message.bytes: each gets its Job or its cut dead-letter record, and the next message its Job", async () => {
    const s = await setup();
    await defaultRecordLimit(s.topic);
    const controller = new ControllerProcess({ ...s.env, MAX_MESSAGE_BYTES: '524288' }).start();
    try {
      await controller.ready();
      // Key, value and headers of 1,048,228 bytes land at Kafka's default limit with room for the
      // framing of up to 16 headers; the dead-letter copy, with the controller's headers, does not.
      const near = 1_048_420 - 16 * 12;
      const big = (total: number) => {
        const out: Record<string, Buffer> = {};
        for (let i = 0, left = total; left > 8; i++) {
          const name = `x-big-${String(i).padStart(2, '0')}`;
          out[name] = randomBytes(Math.min(65_536, left - name.length));
          left -= name.length + out[name].length;
        }
        return out;
      };
      const headerBytes = (h: Record<string, Buffer>) => Object.entries(h).reduce((n, [k, v]) => n + k.length + v.length, 0);
      const bigHeaders = big(near);
      const bigKey = randomBytes(near);
      const tooLarge = { value: randomBytes(600_000), headers: big(near - 600_000) };
      // Each alone, on a named partition: the test's own producer would hash the key with kafkajs' murmur2.
      const send = (m: kafkajs.Message) => producer.send({ topic: s.topic, acks: -1, messages: [{ ...m, partition: 0 }] });
      await send({ value: 'not json', headers: bigHeaders });
      await send({ key: bigKey, value: 'not json' });
      await send({ value: message('near-limit-headers'), headers: big(near - 1000) });
      await send(tooLarge);
      await send({ value: message('after-the-near-limit-ones') });

      await waitFor(async () => (await committed(s)) === '5', { timeoutMs: 120_000, description: `all five committed; logs: ${controller.tail()}` });
      const jobs = (await batch.listNamespacedJob({ namespace: s.ns, labelSelector: jobSelector(s.group) })).items;
      assert.deepEqual(jobs.map((j) => j.metadata!.annotations![Annotation.jobID]).sort(), ['after-the-near-limit-ones', 'near-limit-headers']);
      assert.deepEqual(jobs.map((j) => j.metadata!.name).sort(), [jobName('mcp', s.topic, 0, 2), jobName('mcp', s.topic, 0, 4)].sort());

      const dead = await readTopic(kafka, `${s.topic}.dlq`, 3);
      assert.deepEqual(
        dead.map((d) => [String(d.headers[DlqHeader.offset]), String(d.headers[DlqHeader.reason]), String(d.headers[TruncatedHeader.truncated])]),
        [
          ['0', 'invalid-json', 'true'],
          ['1', 'invalid-json', 'true'],
          ['3', 'message-too-large', 'true'],
        ],
      );
      const [headersCut, keyCut, valueCut] = dead;
      assert.equal(String(headersCut!.headers[TruncatedHeader.headersSize]), String(headerBytes(bigHeaders)));
      assert.equal(headersCut!.value!.toString(), 'not json');
      assert.deepEqual(headersCut!.headers['x-big-00'], bigHeaders['x-big-00'], 'the first original header whole');
      assert.equal(String(keyCut!.headers[TruncatedHeader.keySize]), String(bigKey.length));
      assert.equal(String(keyCut!.headers[TruncatedHeader.keySha256]), createHash('sha256').update(bigKey).digest('hex'));
      assert.ok(keyCut!.rawKey!.length > 0 && keyCut!.rawKey!.length < bigKey.length);
      assert.deepEqual(keyCut!.rawKey, bigKey.subarray(0, keyCut!.rawKey!.length), 'a prefix of the key');
      assert.equal(keyCut!.value!.toString(), 'not json');
      assert.equal(String(valueCut!.headers[TruncatedHeader.originalSize]), '600000');
      assert.deepEqual(valueCut!.value, tooLarge.value.subarray(0, valueCut!.value!.length), 'a prefix of the value');
      assert.ok(!controller.logs.some((l) => l.msg === 'controller cannot go on; exiting'), controller.tail());
      assert.equal(controller.child!.exitCode, null, 'still running');
    } finally {
      await controller.kill();
    }
  });
});
