import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { createMetrics } from '../../src/controller/reporting/metrics.js';
import { Label } from '../../src/shared/contract/identity.js';
import { jobName } from '../../src/shared/contract/naming.js';
import { brokers, freshNamespace, freshTopic, jobOutcome, kubeConfig, kubectl, uniqueName, useKafka, waitFor } from '../helpers.js';
import { parseExposition, problems, ruleGroups, ruleTestSeries, RULES_TEST } from '../monitoring/check.js';
import { applyControllerRbac, CONTROLLER, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from '../support.js';
import { repoRoot } from '../testbed/cache.js';
import { ensurePromtool, startKueue } from '../testbed/kueue.js';
import { freePort, type Daemon } from '../testbed/proc.js';

const run = promisify(execFile);

const message = (jobID: string, args: string[] = []) =>
  JSON.stringify({ jobID, jobType: 'server-init', payload: JSON.stringify({ mcpServers: { f: { command: 'node', args: [FIXTURE, ...args] } } }) });

interface Setup {
  ns: Awaited<ReturnType<typeof freshNamespace>>;
  topic: string;
  group: string;
  metricsPort: number;
  env: Record<string, string>;
}

async function setup(kc: k8s.KubeConfig, admin: Parameters<typeof freshTopic>[0], extra: Record<string, string>): Promise<Setup> {
  const ns = await freshNamespace(kc, { 'pod-security.kubernetes.io/enforce': 'restricted' }, 'ops');
  const topic = await freshTopic(admin, 1, 'ops');
  const group = uniqueName('ops');
  await applyControllerRbac(kc, ns.name);
  const metricsPort = await freePort();
  const env = {
    KUBECONFIG: await serviceAccountKubeconfig(kc, ns.name, 'mcp-job-controller'),
    KAFKA_BROKERS: brokers().join(','),
    KAFKA_TOPIC: topic,
    KAFKA_CONSUMER_GROUP: group,
    JOB_NAMESPACE: ns.name,
    METRICS_PORT: String(metricsPort),
    ...extra,
  };
  return { ns, topic, group, metricsPort, env };
}

/** One sample's value from a Prometheus text exposition. */
function sample(text: string, name: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(' ')[1]);
}

/** The controller's `trace` command, as an operator runs it (admin credentials). */
async function trace(s: Setup, args: string[]): Promise<{ stdout: string; code: number }> {
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...s.env, KUBECONFIG: process.env.KUBECONFIG! };
  try {
    const { stdout } = await run(process.execPath, [CONTROLLER, 'trace', ...args], { env, encoding: 'utf8' });
    return { stdout, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; stderr: string; code: number };
    return { stdout: `${e.stdout}${e.stderr}`, code: e.code };
  }
}

describe('operating the controller: Events, trace, and the alert rules and dashboard against a real scrape', () => {
  const kc = kubeConfig();
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const { admin, producer } = useKafka('ops');
  let s: Setup;
  let controller: ControllerProcess;
  const pod = 'mcp-job-controller-0';
  const results = uniqueName('results');

  before(async () => {
    s = await setup(kc, admin, { RESULTS_TOPIC: results, JOB_BACKOFF_LIMIT: '0', POD_NAME: pod, POD_NAMESPACE: '' });
    s.env.POD_NAMESPACE = s.ns.name;
    controller = new ControllerProcess(s.env).start();
    await controller.ready();
    await producer.send({
      topic: s.topic,
      messages: [{ value: message('ops-ok') }, { value: message('ops-crash', ['--crash']) }, { value: 'not json at all' }],
    });
    await waitFor(
      async () => {
        const { items } = await batch.listNamespacedJob({ namespace: s.ns.name });
        return items.length === 2 && items.every((j) => j.metadata?.labels?.[Label.outcome]);
      },
      { timeoutMs: 120_000, intervalMs: 500, description: `both outcomes recorded; logs: ${controller.tail()}` },
    );
  });
  after(async () => {
    await controller?.stop();
    await s?.ns.remove();
  });

  const ok = () => jobName('mcp', s.topic, 0, 0);
  const failed = () => jobName('mcp', s.topic, 0, 1);

  it('records Events that `kubectl get events` shows for a created, a failed and a dead-lettered message', async () => {
    const events = await waitFor(
      () => {
        const list = JSON.parse(kubectl(['get', 'events', '-n', s.ns.name, '-o', 'json'])) as { items: k8s.CoreV1Event[] };
        const got = list.items.map((e) => `${e.involvedObject.kind}/${e.involvedObject.name} ${e.type} ${e.reason}: ${e.message}`);
        return got.length >= 5 ? got : undefined;
      },
      { timeoutMs: 30_000, description: 'five events' },
    );
    const has = (re: RegExp) =>
      assert.ok(
        events.some((e) => re.test(e)),
        `${re} in\n${events.join('\n')}`,
      );
    has(new RegExp(`^Job/${ok()} Normal JobCreated: Created for message ${s.topic}/0/0 \\(jobID ops-ok\\)$`));
    has(new RegExp(`^Job/${ok()} Normal JobSucceeded: Succeeded: message ${s.topic}/0/0`));
    has(new RegExp(`^Job/${failed()} Normal JobCreated: Created for message ${s.topic}/0/1 \\(jobID ops-crash\\)$`));
    has(new RegExp(`^Job/${failed()} Warning JobFailed: Job ${failed()} failed: (BackoffLimitExceeded|PodFailurePolicy).*dead-lettered to ${s.topic}\\.dlq$`));
    has(new RegExp(`^Pod/${pod} Warning MessageDeadLettered: Message ${s.topic}/0/2 dead-lettered to ${s.topic}\\.dlq: invalid-json`));
    // And as an operator reads them: the table, filtered by reason.
    assert.match(kubectl(['get', 'events', '-n', s.ns.name, '--field-selector', 'reason=JobFailed']), new RegExp(`job/${failed()}`));
  });

  it('traces a completed, a failed and a dead-lettered message on one screen', async () => {
    const done = await trace(s, ['--at', '0/0']);
    assert.equal(done.code, 0, done.stdout);
    for (const want of [
      `message      ${s.topic}/0/0   jobID ops-ok`,
      `job          ${s.ns.name}/${ok()}   Complete`,
      'condition  Complete=True',
      'exit 0',
      'JobSucceeded',
      `result       ${results}/0@`,
    ])
      assert.ok(done.stdout.includes(want), `${want} in\n${done.stdout}`);
    process.stdout.write(`# trace --at 0/0\n${done.stdout.replace(/^/gm, '# ')}\n`);

    const bad = await trace(s, ['--job-id', 'ops-crash']);
    for (const want of [`${s.topic}/0/1`, 'condition  Failed=True', '   exit ', `dead-letter  ${s.topic}.dlq/0@`, 'job-failed (stage job', 'JobFailed'])
      assert.ok(bad.stdout.includes(want), `${want} in\n${bad.stdout}`);
    process.stdout.write(`# trace --job-id ops-crash\n${bad.stdout.replace(/^/gm, '# ')}\n`);

    const dead = await trace(s, ['--at', '0/2', '--output', 'json']);
    const r = JSON.parse(dead.stdout) as { job?: unknown; deadLetters: { reason: string; stage: string }[]; notes: string[] };
    assert.equal(r.job, undefined);
    assert.deepEqual(
      r.deadLetters.map((d) => `${d.reason}/${d.stage}`),
      ['invalid-json/controller'],
    );
    assert.ok(r.notes.some((n) => n.startsWith('no Job for')));
    const text = await trace(s, ['--job', failed()]);
    assert.ok(text.stdout.includes('Failed=True'), text.stdout);
  });

  it('ships alert rules and dashboard queries naming only series its /metrics really serves, and the rules pass promtool’s unit tests', async () => {
    const scrape = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
    const expo = parseExposition(scrape);
    const declared = new Map<string, Set<string>>();
    for (const m of Object.values(createMetrics(undefined, false)) as { name?: string; labelNames?: string[] }[])
      if (m?.name && m.labelNames) declared.set(m.name, new Set(m.labelNames));
    assert.deepEqual(problems(expo, declared), []);
    for (const series of ruleTestSeries()) {
      assert.ok(expo.names.has(series.name), `${series.name} (a promtool input series) is served`);
      const seen = expo.labels.get(series.name);
      for (const l of series.labels) assert.ok((seen?.size ? seen : declared.get(series.name))?.has(l), `${series.name} carries ${l}`);
    }

    const promtool = ensurePromtool();
    const dir = mkdtempSync(join(tmpdir(), 'rules-'));
    writeFileSync(join(dir, 'rules.yaml'), k8s.dumpYaml(ruleGroups()));
    copyFileSync(RULES_TEST, join(dir, 'rules.test.yaml'));
    const check = await run(promtool, ['check', 'rules', join(dir, 'rules.yaml')], { encoding: 'utf8' });
    assert.match(check.stdout, /SUCCESS: 7 rules found/);
    const test = await run(promtool, ['test', 'rules', join(dir, 'rules.test.yaml')], { encoding: 'utf8' }).catch((e: { stdout: string; stderr: string }) => {
      throw new Error(`promtool test rules failed:\n${e.stdout}${e.stderr}`);
    });
    assert.match(`${test.stdout}${test.stderr}`, /SUCCESS/);
  });
});

describe('the monitoring component', () => {
  it('builds over the base as a kustomize Component: a metrics Service, a ServiceMonitor, a PrometheusRule and the dashboard ConfigMap for Grafana', () => {
    const dir = join(repoRoot, 'dist', 'test-overlays', uniqueName('monitoring'));
    mkdirSync(dir, { recursive: true });
    const rel = (p: string) => relative(dir, join(repoRoot, p));
    writeFileSync(
      join(dir, 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: mcp-job-controller\nresources:\n  - ${rel('k8s/base')}\ncomponents:\n  - ${rel('k8s/components/monitoring')}\n`,
    );
    const objs = k8s.loadAllYaml(kubectl(['kustomize', dir])) as k8s.KubernetesObject[];
    const names = objs.map((o) => `${o.kind}/${o.metadata?.name} ${o.metadata?.namespace}`);
    for (const want of [
      'Service/mcp-job-controller',
      'ServiceMonitor/mcp-job-controller',
      'PrometheusRule/mcp-job-controller',
      'ConfigMap/mcp-job-controller-dashboard',
    ])
      assert.ok(names.includes(`${want} mcp-job-controller`), `${want} in the controller's namespace: ${names.join(', ')}`);
    const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata?.name === 'mcp-job-controller-dashboard') as k8s.V1ConfigMap;
    assert.equal(cm.metadata?.labels?.grafana_dashboard, '1');
    assert.equal((JSON.parse(cm.data!['mcp-job-controller.json']!) as { uid: string }).uid, 'mcp-job-controller');
    const svc = objs.find((o) => o.kind === 'Service') as k8s.V1Service;
    const deploy = objs.find((o) => o.kind === 'Deployment') as k8s.V1Deployment;
    for (const [k, v] of Object.entries(svc.spec!.selector!)) assert.equal(deploy.spec!.template.metadata!.labels![k], v, 'the Service selects the controller');
  });
});

describe('Kueue admission', () => {
  const kc = kubeConfig();
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const { admin, producer } = useKafka('kueue');
  let kueue: Daemon | undefined;
  let s: Setup;
  const flavor = uniqueName('flavor');
  const cq = uniqueName('cq');

  before(async () => {
    kueue = await startKueue({
      kubeconfig: process.env.KUBECONFIG!,
      kubectl: (args, input) => kubectl(args, input),
      dir: mkdtempSync(join(tmpdir(), 'kueue-')),
    });
    s = await setup(kc, admin, { KUEUE_QUEUE_NAME: 'jobs', MAX_ACTIVE_JOBS: '5', MAX_QUEUED_JOBS: '5' });
    // Quota for one Job: each asks for 100m CPU and 128Mi (the controller's default requests).
    kubectl(
      ['apply', '-f', '-'],
      [
        `apiVersion: kueue.x-k8s.io/v1beta2\nkind: ResourceFlavor\nmetadata: { name: ${flavor} }`,
        `apiVersion: kueue.x-k8s.io/v1beta2\nkind: ClusterQueue\nmetadata: { name: ${cq} }\nspec:\n  namespaceSelector: {}\n  resourceGroups:\n    - coveredResources: [cpu, memory]\n      flavors:\n        - name: ${flavor}\n          resources:\n            - { name: cpu, nominalQuota: 150m }\n            - { name: memory, nominalQuota: 256Mi }`,
        `apiVersion: kueue.x-k8s.io/v1beta2\nkind: LocalQueue\nmetadata: { name: jobs, namespace: ${s.ns.name} }\nspec: { clusterQueue: ${cq} }`,
      ].join('\n---\n'),
    );
    await waitFor(() => kubectl(['get', 'clusterqueue', cq, '-o', 'jsonpath={.status.conditions[?(@.type=="Active")].status}']) === 'True', {
      timeoutMs: 30_000,
      description: 'ClusterQueue active',
    });
  });
  after(async () => {
    await s?.ns.remove();
    if (kueue) {
      kubectl(['delete', 'clusterqueue', cq, '--ignore-not-found', '--wait=false']);
      kubectl(['delete', 'resourceflavor', flavor, '--ignore-not-found', '--wait=false']);
      await kueue.stop();
    }
  });

  it('admits one Job under the ClusterQueue quota, holds the next suspended while the quota is full (queued, not active), then admits it', async () => {
    const controller = new ControllerProcess(s.env).start();
    try {
      await controller.ready();
      // Slow servers keep the admitted Job running long enough to see the other one held.
      await producer.send({ topic: s.topic, messages: [{ value: message('k-0', ['--delay-ms', '6000']) }, { value: message('k-1', ['--delay-ms', '6000']) }] });
      const names = [jobName('mcp', s.topic, 0, 0), jobName('mcp', s.topic, 0, 1)];
      const held = await waitFor(
        async () => {
          const jobs = await Promise.all(names.map((name) => batch.readNamespacedJob({ name, namespace: s.ns.name }).catch(() => undefined)));
          if (jobs.some((j) => !j)) return undefined;
          const running = jobs.filter((j) => j!.spec?.suspend === false && (j!.status?.active ?? 0) > 0);
          const suspended = jobs.filter((j) => j!.spec?.suspend === true);
          return running.length === 1 && suspended.length === 1 ? { running: running[0]!, suspended: suspended[0]! } : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250, description: `one Job admitted and running, one held; logs: ${controller.tail()}` },
      );
      assert.equal(held.suspended.metadata?.labels?.['kueue.x-k8s.io/queue-name'], 'jobs');
      const metrics = await waitFor(
        async () => {
          const m = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
          return sample(m, 'mcp_job_controller_active_jobs') === 1 && sample(m, 'mcp_job_controller_queued_jobs') === 1 ? m : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 200, description: 'the cap counts one active and one queued' },
      );
      assert.equal(sample(metrics, 'mcp_job_controller_queued_jobs_cap'), 5);
      assert.equal(sample(metrics, 'mcp_job_controller_paused'), 0, 'a held Job does not stop the controller feeding the queue');
      const both = await waitFor(
        async () => {
          const jobs = await Promise.all(names.map((name) => batch.readNamespacedJob({ name, namespace: s.ns.name })));
          return jobs.every((j) => jobOutcome(j) === 'Complete') ? jobs : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 500, description: 'both Jobs complete' },
      );
      const first = both.find((j) => j.metadata?.name === held.running.metadata?.name)!;
      const second = both.find((j) => j.metadata?.name === held.suspended.metadata?.name)!;
      assert.ok(
        new Date(second.status!.startTime!).getTime() >= new Date(first.status!.completionTime!).getTime() - 1000,
        `the held Job started (${second.status?.startTime}) only once the first finished (${first.status?.completionTime})`,
      );
      await waitFor(
        async () => {
          const m = await (await fetch(`http://127.0.0.1:${s.metricsPort}/metrics`)).text();
          return sample(m, 'mcp_job_controller_active_jobs') === 0 && sample(m, 'mcp_job_controller_queued_jobs') === 0;
        },
        { timeoutMs: 30_000, description: 'both slots released' },
      );
    } finally {
      await controller.stop();
    }
  });
});
