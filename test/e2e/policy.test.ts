/**
 * Secret references end to end: the controller (with the base Role) turns a message that names
 * `secret_ref:<secret>:<key>` values into a Job that mounts exactly those keys, the job resolves
 * them for the server, and the value is nowhere on the way — not in the Job object, the
 * controller's log, the job's log, the termination summary or the results record. A reference
 * outside the allowed set is dead-lettered; a missing key fails the Job for good, naming it.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { DlqHeader } from '../../src/controller/reporting/dead-letter.js';
import { Annotation, jobSelector, Label } from '../../src/shared/contract/identity.js';
import { brokers, freshNamespace, freshTopic, jobOutcome, kubeConfig, kubectl, uniqueName, useKafka, waitFor } from '../helpers.js';
import { applyControllerRbac, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from '../support.js';

const message = (jobID: string, servers: Record<string, unknown>) => JSON.stringify({ jobID, jobType: 'server-init', payload: { mcpServers: servers } });
const TOKEN = `tok-${createHash('sha256').update(String(process.pid)).digest('hex').slice(0, 24)}`;
const UNREFERENCED = 'unreferenced-value-9d1c';
const ADMIN_PASSWORD = 'kafka-admin-password-77e0';

describe('secret references on the test bed', () => {
  const kc = kubeConfig();
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const { kafka, admin, producer } = useKafka();
  let ns: Awaited<ReturnType<typeof freshNamespace>>;
  let topic: string;
  let group: string;
  let results: string;
  let controller: ControllerProcess;

  before(async () => {
    ns = await freshNamespace(kc, { 'pod-security.kubernetes.io/enforce': 'restricted' }, 'refs');
    topic = await freshTopic(admin, 1, 'refs');
    results = uniqueName('refs-results');
    group = uniqueName('g');
    await core.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: 'mcp-ref-github' }, stringData: { TOKEN, OTHER: UNREFERENCED } } });
    await core.createNamespacedSecret({ namespace: ns.name, body: { metadata: { name: 'kafka-admin' }, stringData: { password: ADMIN_PASSWORD } } });
    await applyControllerRbac(kc, ns.name);
    controller = new ControllerProcess({
      KUBECONFIG: await serviceAccountKubeconfig(kc, ns.name, 'mcp-job-controller'),
      KAFKA_BROKERS: brokers().join(','),
      KAFKA_TOPIC: topic,
      KAFKA_CONSUMER_GROUP: group,
      JOB_NAMESPACE: ns.name,
      RESULTS_TOPIC: results,
      JOB_ALLOWED_SECRETS: 'mcp-ref-*',
      METRICS_PORT: '0',
      LOG_LEVEL: 'debug',
    }).start();
    await controller.ready();
  });
  after(async () => {
    await controller?.stop();
    await ns?.remove();
  });

  async function records(t: string, n: number): Promise<{ value: string; headers: Record<string, string> }[]> {
    const got: { value: string; headers: Record<string, string> }[] = [];
    const c = kafka.consumer({ groupId: uniqueName('reader') });
    await c.connect();
    await c.subscribe({ topic: t, fromBeginning: true });
    await c.run({
      eachMessage: async ({ message: m }) =>
        void got.push({ value: String(m.value), headers: Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, String(v)])) }),
    });
    await waitFor(() => got.length >= n, { timeoutMs: 60_000, description: `${n} records on ${t}` });
    await c.disconnect();
    return got;
  }

  it('mounts exactly the referenced keys, gives the server their values, and shows no value anywhere; refuses and fails the rest with their reasons', async () => {
    await producer.send({
      topic,
      messages: [
        {
          value: message('with-ref', {
            gh: { command: 'node', args: [FIXTURE], env: { HASH_ENV: 'GITHUB_TOKEN', GITHUB_TOKEN: 'secret_ref:mcp-ref-github:TOKEN' } },
          }),
        },
        { value: message('not-allowed', { a: { command: 'node', args: [FIXTURE], env: { P: 'secret_ref:kafka-admin:password' } } }) },
        { value: message('missing-key', { m: { command: 'node', args: [FIXTURE], env: { K: 'secret_ref:mcp-ref-github:ABSENT' } } }) },
        { value: message('preload', { p: { command: 'node', args: [FIXTURE], env: { NODE_OPTIONS: '--import=data:text/javascript,process.exit(0)' } } }) },
        { value: message('metadata', { md: { type: 'http', url: 'http://169.254.169.254/latest/meta-data' } }) },
      ],
    });

    // Two Jobs (with-ref, missing-key), both finished and recorded; three dead-letter records.
    const jobs = await waitFor(
      async () => {
        const j = (await batch.listNamespacedJob({ namespace: ns.name, labelSelector: jobSelector(group) })).items;
        return j.length === 2 && j.every((x) => x.metadata?.labels?.[Label.outcome]) ? j : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 500, description: `both Jobs finished and recorded; controller: ${controller.tail()}` },
    );
    const byId = (id: string) => jobs.find((j) => j.metadata!.annotations![Annotation.jobID] === id)!;
    const ok = byId('with-ref');
    const missing = byId('missing-key');
    assert.equal(jobOutcome(ok), 'Complete');
    assert.equal(jobOutcome(missing), 'Failed');

    // Exactly the referenced key of the referenced Secret is mounted.
    const refsVolume = ok.spec!.template.spec!.volumes!.find((v) => v.name === 'mcp-secret-refs');
    assert.deepEqual(JSON.parse(JSON.stringify(refsVolume?.projected?.sources)), [
      { secret: { name: 'mcp-ref-github', optional: true, items: [{ key: 'TOKEN', path: 'mcp-ref-github/TOKEN' }] } },
    ]);
    assert.ok(!ok.spec!.template.spec!.volumes!.some((v) => v.secret || v.projected?.sources?.some((s) => s.secret?.name === 'kafka-admin')));

    // The server got the value: the summary shows its digest only.
    const digest = createHash('sha256').update(TOKEN).digest('hex').slice(0, 16);
    const summaries = await Promise.all(
      [ok, missing].map(async (j) => {
        const pods = await core.listNamespacedPod({ namespace: ns.name, labelSelector: `job-name=${j.metadata!.name}` });
        return pods.items.map((p) => p.status?.containerStatuses?.[0]?.state?.terminated?.message ?? '').join('\n');
      }),
    );
    const okSummary = JSON.parse(summaries[0]!) as { servers: Record<string, { tools: string[] }> };
    assert.ok(okSummary.servers.gh!.tools.includes(`sha256-GITHUB_TOKEN-${digest}`), summaries[0]);
    const missingSummary = JSON.parse(summaries[1]!.split('\n')[0]!) as { servers: Record<string, { reason: string; error: string }> };
    assert.equal(missingSummary.servers.m!.reason, 'secret-missing');
    assert.match(missingSummary.servers.m!.error, /Secret "mcp-ref-github" has no key "ABSENT"/);

    // Dead-lettered before any Job, each with its reason.
    const dead = await records(`${topic}.dlq`, 4);
    const reasons = Object.fromEntries(dead.map((d) => [JSON.parse(d.value).jobID as string, d.headers[DlqHeader.reason]]));
    assert.deepEqual(reasons, {
      'not-allowed': 'secret-not-allowed',
      'missing-key': 'job-failed',
      preload: 'env-key-not-allowed',
      metadata: 'url-not-allowed',
    });

    // No value anywhere: the Job objects, the controller's log, the jobs' logs, the summaries, the
    // results records and the dead-letter records' headers.
    const outcomes = await records(results, 2);
    const places: [string, string][] = [
      ['the Job objects', kubectl(['get', 'jobs', '-n', ns.name, '-o', 'json'])],
      ['the pods', kubectl(['get', 'pods', '-n', ns.name, '-o', 'json'])],
      ["the controller's log", controller.logs.map((l) => JSON.stringify(l)).join('\n')],
      ["the with-ref job's log", kubectl(['logs', '-n', ns.name, `job/${ok.metadata!.name}`])],
      ["the missing-key job's log", kubectl(['logs', '-n', ns.name, `job/${missing.metadata!.name}`])],
      ['the summaries', summaries.join('\n')],
      ['the results records', outcomes.map((o) => o.value).join('\n')],
      ['the dead-letter headers', JSON.stringify(dead.map((d) => d.headers))],
    ];
    assert.ok(places[3]![1].includes('job done'), "the job's log was read");
    assert.ok(places[2]![1].includes('job created'), "the controller's log was read");
    for (const [where, text] of places) {
      for (const value of [TOKEN, UNREFERENCED, ADMIN_PASSWORD]) assert.ok(!text.includes(value), `a secret value appears in ${where}`);
    }
  });
});
