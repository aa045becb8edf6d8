import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { Kafka, logLevel } from 'kafkajs';
import { kafkaErrorType } from '../../src/shared/errors.js';
import { Annotation, jobSelector } from '../../src/shared/contract/identity.js';
import { freshNamespace, jobOutcome, kubeConfig, uniqueName, waitFor } from '../helpers.js';
import { applyControllerRbac, ControllerProcess, FIXTURE, runJob, serviceAccountKubeconfig } from '../support.js';
import { createProductAcls } from '../testbed/acls.js';
import { cacheRoot, versions } from '../testbed/cache.js';
import { compressions, javaProduce, javaSecurity } from '../testbed/java-producer.js';
import { ensureKafka, KafkaBroker } from '../testbed/kafka.js';
import { leaderOf, rawCluster } from '../testbed/secure-check.js';

/**
 * The product against a production-shaped broker: SASL_SSL only, SCRAM users, the standard
 * authorizer with no access but the ACLs the README lists, Kafka's default size limits, and
 * records from Kafka's own Java producer with every codec.
 */
describe('the controller and the job on a secured broker (SASL_SSL, SCRAM, ACLs)', () => {
  const kc = kubeConfig();
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  let broker: KafkaBroker;
  let dir: string;
  let ns: Awaited<ReturnType<typeof freshNamespace>>;
  const topic = uniqueName('secure-work');
  const group = uniqueName('secure-controller');
  const dlq = `${topic}.dlq`;
  let controllerEnv: Record<string, string>;

  /** The job binary's env as the controller sets it for the job's principal, with `over` changed. */
  const jobEnv = (over: Record<string, string>): Record<string, string> => ({
    KAFKA_BROKERS: broker.brokers,
    KAFKA_TOPIC: topic,
    KAFKA_PARTITION: '0',
    KAFKA_OFFSET: '0',
    KAFKA_TLS: 'true',
    KAFKA_TLS_CA_FILE: broker.caFile!,
    KAFKA_SASL_MECHANISM: 'scram-sha-256',
    KAFKA_SASL_USERNAME: 'job',
    ...over,
  });

  const admin = () => new Kafka({ clientId: 'secure-e2e', logLevel: logLevel.NOTHING, ...broker.kafkaOptions('admin') }).admin();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'secure-kafka-'));
    broker = await KafkaBroker.create(ensureKafka(versions.kafka), join(cacheRoot, 'run', uniqueName('secure-broker')), { secure: true });
    await broker.start();
    const a = admin();
    await a.connect();
    await a.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await createProductAcls(a, { topic, group, deadLetterTopic: dlq });
    await a.disconnect();

    ns = await freshNamespace(kc, { 'pod-security.kubernetes.io/enforce': 'restricted' }, 'secure');
    await applyControllerRbac(kc, ns.name);
    // The job's own credentials: its password and the CA, in the Secret the controller mounts in every Job.
    await core.createNamespacedSecret({
      namespace: ns.name,
      body: { metadata: { name: 'mcp-job-kafka' }, stringData: { password: broker.users.job!, 'ca.crt': readFileSync(broker.caFile!, 'utf8') } },
    });
    writeFileSync(join(dir, 'controller-password'), broker.users.controller!);
    controllerEnv = {
      KUBECONFIG: await serviceAccountKubeconfig(kc, ns.name, 'mcp-job-controller'),
      KAFKA_BROKERS: broker.brokers,
      KAFKA_TOPIC: topic,
      KAFKA_CONSUMER_GROUP: group,
      KAFKA_TLS: 'true',
      KAFKA_TLS_CA_FILE: broker.caFile!,
      KAFKA_SASL_MECHANISM: 'scram-sha-512',
      KAFKA_SASL_USERNAME: 'controller',
      KAFKA_SASL_PASSWORD_FILE: join(dir, 'controller-password'),
      JOB_KAFKA_SECRET_NAME: 'mcp-job-kafka',
      JOB_KAFKA_SASL_USERNAME: 'job',
      JOB_NAMESPACE: ns.name,
      METRICS_PORT: '0',
    };
  });

  after(async () => {
    await ns?.remove();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("turns a Java producer's records, one per codec (none, gzip, snappy, lz4, zstd), into exactly one Complete Job each, read by the job's read-only principal", async () => {
    const message = (c: string) =>
      JSON.stringify({
        jobID: `java-${c}`,
        jobType: 'server-init',
        payload: JSON.stringify({ mcpServers: { fixture: { command: 'node', args: [FIXTURE] } } }),
      });
    const sent: { offset: string; codec: string }[] = [];
    for (const compression of compressions) {
      const [r] = await javaProduce({
        home: broker.home,
        brokers: broker.brokers,
        topic,
        compression,
        values: [message(compression)],
        security: javaSecurity(broker, 'producer'),
      });
      sent.push({ offset: r!.offset, codec: compression });
    }

    const controller = new ControllerProcess(controllerEnv).start();
    try {
      await controller.ready();
      const jobs = await waitFor(
        async () => {
          const list = await batch.listNamespacedJob({ namespace: ns.name, labelSelector: jobSelector(group) });
          return list.items.filter((j) => jobOutcome(j)).length >= sent.length ? list.items : undefined;
        },
        { timeoutMs: 180_000, intervalMs: 1000, description: `${sent.length} Jobs finished; controller: ${controller.tail(3)}` },
      );
      assert.equal(jobs.length, sent.length, 'exactly one Job per record');
      for (const s of sent) {
        const job = jobs.find((j) => j.metadata!.annotations![Annotation.offset] === s.offset);
        assert.ok(job, `a Job for the ${s.codec} record at offset ${s.offset}`);
        assert.equal(jobOutcome(job), 'Complete', `the ${s.codec} record's Job completed`);
        assert.equal(job.metadata!.annotations![Annotation.jobID], `java-${s.codec}`);
        const env = Object.fromEntries(job.spec!.template.spec!.containers[0]!.env!.map((e) => [e.name, e.value]));
        assert.equal(env.KAFKA_SASL_USERNAME, 'job', 'the job connects as its own principal');
        assert.equal(env.KAFKA_SASL_PASSWORD_FILE, '/var/run/mcp-kafka/password');
        assert.equal(env.KAFKA_TLS_CA_FILE, '/var/run/mcp-kafka/ca.crt');
        for (const user of ['controller', 'job', 'producer', 'admin'])
          assert.ok(!JSON.stringify(job).includes(broker.users[user]!), `no ${user} password in the Job`);
      }
      assert.ok(!JSON.stringify(controller.logs).includes(broker.users.controller!), 'no password in the controller log');
      const a = admin();
      await a.connect();
      const [committed] = await a.fetchOffsets({ groupId: group, topics: [topic] });
      await a.disconnect();
      assert.equal(committed!.partitions[0]!.offset, String(sent.length), 'every offset committed, as the controller principal');
    } finally {
      await controller.stop();
    }
  });

  it("refuses the job's principal the controller's group and the dead-letter topic (the broker's authorization errors)", async () => {
    const cluster = rawCluster(broker.kafkaOptions('job', 'scram-sha-256'));
    await cluster.connect();
    try {
      const leader = await leaderOf(cluster, topic, 0);
      await assert.rejects(
        leader.findGroupCoordinator({ groupId: group, coordinatorType: 0 }),
        (e: unknown) => kafkaErrorType(e) === 'GROUP_AUTHORIZATION_FAILED',
      );
      await assert.rejects(
        leader.offsetCommit({ groupId: group, groupGenerationId: -1, memberId: '', topics: [{ topic, partitions: [{ partition: 0, offset: '0' }] }] }),
        (e: unknown) => kafkaErrorType(e) === 'GROUP_AUTHORIZATION_FAILED',
      );
    } finally {
      await cluster.disconnect();
    }
    const producer = new Kafka({
      clientId: 'job-as-producer',
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
      ...broker.kafkaOptions('job', 'scram-sha-256'),
    }).producer();
    await producer.connect();
    try {
      await assert.rejects(producer.send({ topic: dlq, messages: [{ value: 'x' }] }), (e: unknown) => kafkaErrorType(e) === 'TOPIC_AUTHORIZATION_FAILED');
    } finally {
      await producer.disconnect();
    }
  });

  it("reports a wrong password: the controller exits non-zero naming the mechanism and the broker's reason; the job exits 75 and says why", async () => {
    writeFileSync(join(dir, 'wrong'), 'not-the-password');
    const controller = new ControllerProcess({ ...controllerEnv, KAFKA_SASL_PASSWORD_FILE: join(dir, 'wrong') }).start();
    const code = await controller.exited();
    assert.notEqual(code, 0);
    const line = controller.logs.find((l) => l.msg === 'controller could not start');
    assert.ok(line, `a fatal line; logs: ${controller.tail(5)}`);
    assert.equal(line.mechanism, 'scram-sha-512');
    assert.equal(line.user, 'controller');
    assert.match(line.err, /authentication failed/i);
    assert.ok(!JSON.stringify(controller.logs).includes('not-the-password'), 'the password is never logged');

    const run = await runJob(jobEnv({ KAFKA_SASL_PASSWORD_FILE: join(dir, 'wrong') }));
    assert.equal(run.code, 75, 'a retry may help once the Secret is fixed');
    assert.match(run.summary.error, /SASL SCRAM SHA256 authentication failed/);
  });

  it('reports a CA that did not sign the broker: the controller exits non-zero and the job exits 75, both naming the certificate problem', async () => {
    // The control plane's CA: a real CA, but not the broker's.
    const wrongCa = kc.getCurrentCluster()!.caFile!;
    const controller = new ControllerProcess({ ...controllerEnv, KAFKA_TLS_CA_FILE: wrongCa }).start();
    assert.notEqual(await controller.exited(), 0);
    const line = controller.logs.find((l) => l.msg === 'controller could not start');
    assert.ok(line, `a fatal line; logs: ${controller.tail(5)}`);
    assert.equal(line.tls, true);
    assert.match(line.err, /certificate/i);

    writeFileSync(join(dir, 'password'), broker.users.job!);
    const run = await runJob(jobEnv({ KAFKA_TLS_CA_FILE: wrongCa, KAFKA_SASL_PASSWORD_FILE: join(dir, 'password') }));
    assert.equal(run.code, 75);
    assert.match(run.summary.error, /certificate/i);
  });
});
