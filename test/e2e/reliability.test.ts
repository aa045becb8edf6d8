import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { isFinished } from '../../src/shared/contract/identity.js';
import { DlqHeader } from '../../src/controller/reporting/dead-letter.js';
import { Annotation, jobSelector, Label } from '../../src/shared/contract/identity.js';

import { brokers, freshNamespace, freshTopic, jobOutcome, kubeConfig, uniqueName, waitFor, useKafka } from '../helpers.js';
import { applyControllerRbac, CONTROLLER, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from '../support.js';

const run = promisify(execFile);
const message = (jobID: string, servers: Record<string, unknown>) =>
  JSON.stringify({ jobID, jobType: 'server-init', payload: JSON.stringify({ mcpServers: servers }) });

interface Setup {
  ns: Awaited<ReturnType<typeof freshNamespace>>;
  topic: string;
  env: Record<string, string>;
  group: string;
}

describe('reliability on the test bed', () => {
  const kc = kubeConfig();
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const { kafka, admin, producer } = useKafka();
  const cleanup: (() => Promise<void>)[] = [];
  after(async () => {
    for (const c of cleanup) await c();
  });

  async function setup(extra: Record<string, string> = {}, partitions = 1, rbac: { replay?: boolean } = {}): Promise<Setup> {
    const ns = await freshNamespace(kc, { 'pod-security.kubernetes.io/enforce': 'restricted' }, 'rel');
    cleanup.push(ns.remove);
    const topic = await freshTopic(admin, partitions, 'rel');
    const group = uniqueName('g');
    await applyControllerRbac(kc, ns.name, rbac);
    const env = {
      KUBECONFIG: await serviceAccountKubeconfig(kc, ns.name, 'mcp-job-controller'),
      KAFKA_BROKERS: brokers().join(','),
      KAFKA_TOPIC: topic,
      KAFKA_CONSUMER_GROUP: group,
      JOB_NAMESPACE: ns.name,
      METRICS_PORT: '0',
      ...extra,
    };
    return { ns, topic, env, group };
  }

  async function jobsOf(s: Setup): Promise<k8s.V1Job[]> {
    return (await batch.listNamespacedJob({ namespace: s.ns.name, labelSelector: jobSelector(s.group) })).items;
  }

  it('never has more active Jobs than the cap, and still makes every Job', async () => {
    const s = await setup({ MAX_ACTIVE_JOBS: '3' }, 2);
    // Watch the namespace from outside the controller and keep the highest active count seen.
    let maxActive = 0;
    const watch = new k8s.ListWatch<k8s.V1Job>(
      `/apis/batch/v1/namespaces/${s.ns.name}/jobs`,
      new k8s.Watch(kc),
      () => batch.listNamespacedJob({ namespace: s.ns.name }),
      false,
    );
    const count = () => {
      maxActive = Math.max(maxActive, watch.list().filter((j) => !isFinished(j)).length);
    };
    watch.on('add', count);
    watch.on('update', count);
    await watch.start();
    const controller = new ControllerProcess(s.env).start();
    try {
      await controller.ready();
      for (let i = 0; i < 12; i++)
        await producer.send({
          topic: s.topic,
          messages: [{ value: message(`cap-${i}`, { slow: { command: 'node', args: [FIXTURE, '--delay-ms', '1500'] } }), partition: i % 2 }],
        });
      await waitFor(
        async () => {
          const jobs = await jobsOf(s);
          return jobs.length === 12 && jobs.every((j) => jobOutcome(j) === 'Complete');
        },
        { timeoutMs: 180_000, intervalMs: 500, description: '12 Jobs complete' },
      );
      assert.ok(maxActive <= 3, `at most 3 active Jobs at once, saw ${maxActive}`);
      assert.ok(maxActive >= 2, `the cap was actually reached (saw ${maxActive})`);
      assert.ok(controller.logs.some((l) => l.msg === 'active job cap reached; waiting'));
    } finally {
      await watch.stop();
      await controller.kill();
    }
  });

  it('pauses while a ResourceQuota refuses Job creates, loses nothing, and resumes when the quota allows', async () => {
    const s = await setup();
    await core.createNamespacedResourceQuota({ namespace: s.ns.name, body: { metadata: { name: 'jobs' }, spec: { hard: { 'count/jobs.batch': '2' } } } });
    await waitFor(async () => (await core.readNamespacedResourceQuota({ name: 'jobs', namespace: s.ns.name })).status?.hard !== undefined, {
      description: 'quota status',
    });
    const controller = new ControllerProcess(s.env).start();
    try {
      await controller.ready();
      for (let i = 0; i < 5; i++)
        await producer.send({ topic: s.topic, messages: [{ value: message(`q-${i}`, { f: { command: 'node', args: [FIXTURE] } }) }] });
      await waitFor(() => controller.logs.some((l) => l.msg === 'paused: namespace quota exceeded; retrying the create'), {
        timeoutMs: 60_000,
        description: 'the quota pause',
      });
      assert.equal((await jobsOf(s)).length, 2);
      const [committed] = await admin.fetchOffsets({ groupId: s.group, topics: [s.topic] });
      assert.ok(Number(committed!.partitions[0]!.offset) <= 2, `nothing past the refused message is committed (${committed!.partitions[0]!.offset})`);
      await core.replaceNamespacedResourceQuota({
        name: 'jobs',
        namespace: s.ns.name,
        body: { metadata: { name: 'jobs' }, spec: { hard: { 'count/jobs.batch': '20' } } },
      });
      await waitFor(async () => (await jobsOf(s)).length === 5, { timeoutMs: 120_000, description: 'all 5 Jobs after the quota is raised' });
      await waitFor(
        async () => {
          const [c] = await admin.fetchOffsets({ groupId: s.group, topics: [s.topic] });
          return c!.partitions[0]!.offset === '5';
        },
        { timeoutMs: 30_000, description: 'offset 5 committed' },
      );
      const ids = (await jobsOf(s)).map((j) => j.metadata!.annotations![Annotation.jobID]).sort();
      assert.deepEqual(ids, ['q-0', 'q-1', 'q-2', 'q-3', 'q-4']);
    } finally {
      await controller.kill();
    }
  });

  it('sends the original message of a Job that failed for good to the dead-letter topic and records every outcome on the results topic; replay runs it again once the cause is fixed', async () => {
    const results = uniqueName('results');
    // The controller runs with the base Role; replay, further down, needs its opt-in Role.
    const s = await setup({ RESULTS_TOPIC: results, JOB_SECRET_NAME: 'mcp-secrets' }, 1, { replay: true });
    await core.createNamespacedSecret({ namespace: s.ns.name, body: { metadata: { name: 'mcp-secrets' }, stringData: { 'other.env': 'X=1\n' } } });
    const controller = new ControllerProcess(s.env).start();
    try {
      await controller.ready();
      const okValue = message('fine', { f: { command: 'node', args: [FIXTURE] } });
      const badValue = message('needs-secret', { db: { command: 'node', args: [FIXTURE], envFile: 'db.env' } });
      await producer.send({ topic: s.topic, messages: [{ value: okValue }, { key: 'k-bad', value: badValue }] });
      const jobs = await waitFor(
        async () => {
          const j = await jobsOf(s);
          return j.length === 2 && j.every((x) => x.metadata?.labels?.[Label.outcome]) ? j : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 500, description: 'both outcomes recorded' },
      );
      const failed = jobs.find((j) => j.metadata!.annotations![Annotation.jobID] === 'needs-secret')!;
      assert.equal(jobOutcome(failed), 'Failed');
      assert.equal(failed.status?.conditions?.find((c) => c.type === 'Failed')?.reason, 'PodFailurePolicy', 'exit 65 fails the Job at once');
      assert.equal(failed.metadata!.labels![Label.outcome], 'failed');

      const read = async (topic: string, n: number) => {
        const got: { key: string; value: Buffer; headers: Record<string, string>; partition: number; offset: string }[] = [];
        const c = kafka.consumer({ groupId: uniqueName('reader') });
        await c.connect();
        await c.subscribe({ topic, fromBeginning: true });
        await c.run({
          eachMessage: async ({ message: m, partition }) =>
            void got.push({
              key: String(m.key),
              value: m.value!,
              partition,
              offset: m.offset,
              headers: Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, String(v)])),
            }),
        });
        await waitFor(() => got.length >= n, { timeoutMs: 30_000, description: `${n} records on ${topic}` });
        await c.disconnect();
        return got;
      };
      const outcomes = await read(results, 2);
      assert.equal(outcomes.length, 2);
      const byStatus = Object.fromEntries(outcomes.map((r) => [JSON.parse(r.value.toString()).status, JSON.parse(r.value.toString())]));
      assert.deepEqual(byStatus.succeeded.summary.servers.f.tools, ['echo', 'add']);
      assert.equal(byStatus.failed.summary.servers.db.reason, 'env-file-unreadable');
      assert.equal(byStatus.failed.source.offset, '1');

      const [dead] = await read(`${s.topic}.dlq`, 1);
      assert.equal(dead!.value.toString(), badValue, 'the original bytes');
      assert.equal(dead!.key, 'k-bad');
      assert.equal(dead!.headers[DlqHeader.reason], 'job-failed');
      assert.equal(dead!.headers[DlqHeader.stage], 'job');
      assert.equal(dead!.headers[DlqHeader.offset], '1');
      assert.match(dead!.headers[DlqHeader.error]!, /PodFailurePolicy.*exit code 65.*db: env-file-unreadable/);

      // Fix the cause, then replay the dead-letter record.
      await core.replaceNamespacedSecret({
        name: 'mcp-secrets',
        namespace: s.ns.name,
        body: { metadata: { name: 'mcp-secrets' }, stringData: { 'db.env': 'EXTRA_TOOL=query\n' } },
      });
      const { stdout } = await run(process.execPath, [CONTROLLER, 'replay', '--from-dlq', `${dead!.partition}/${dead!.offset}`], {
        env: { ...process.env, ...s.env },
      });
      assert.match(stdout, new RegExp(`job ${failed.metadata!.name} replaced`));
      const again = await waitFor(
        async () => {
          const j = await batch.readNamespacedJob({ name: failed.metadata!.name!, namespace: s.ns.name });
          return jobOutcome(j) ? j : undefined;
        },
        { timeoutMs: 60_000, description: 'the replayed Job to finish' },
      );
      assert.equal(jobOutcome(again), 'Complete');
      assert.equal(again.metadata!.annotations![Annotation.replayCount], '1');
      assert.equal(again.metadata!.annotations![Annotation.offset], '1', 'provenance still names the source message');
      const pods = await core.listNamespacedPod({ namespace: s.ns.name, labelSelector: `batch.kubernetes.io/job-name=${failed.metadata!.name}` });
      const summary = JSON.parse(pods.items.find((p) => p.status?.phase === 'Succeeded')!.status!.containerStatuses![0]!.state!.terminated!.message!);
      assert.deepEqual(summary.servers.db.tools, ['echo', 'add', 'query']);
      await waitFor(async () => (await read(results, 3)).length === 3, { timeoutMs: 60_000, description: "the replay's outcome recorded too" });

      // A replay of a message that is still invalid is refused with the reason.
      await producer.send({ topic: s.topic, messages: [{ value: message('bad', { x: { command: 'bash' } }) }] });
      await assert.rejects(
        run(process.execPath, [CONTROLLER, 'replay', '--source', '0/2'], { env: { ...process.env, ...s.env } }),
        (e: { code: number; stderr: string }) => e.code === 65 && /command-not-allowed/.test(e.stderr),
      );
    } finally {
      await controller.kill();
    }
  });
});
