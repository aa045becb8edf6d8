import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { ControllerConfigSchema } from '../../src/controller/config.js';
import { parseConfig } from '../../src/shared/settings.js';
import { buildJob } from '../../src/controller/jobs/job-builder.js';
import { jobSelector } from '../../src/shared/contract/identity.js';
import { loadJobTemplate } from '../../src/controller/kube/kube.js';
import { parseMessage } from '../../src/shared/contract/message.js';
import { repoRoot } from '../testbed/cache.js';
import { freePort } from '../testbed/proc.js';
import { brokers, freshNamespace, freshTopic, jobOutcome, kubeConfig, kubectl, uniqueName, waitFor, useKafka } from '../helpers.js';
import { applyControllerRbac, CONTROLLER, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from '../support.js';

const run = promisify(execFile);

/** A throwaway overlay (under dist/, inside the repo so kustomize may load the base) over `base`. */
function overlay(base: string, body: string): string {
  const dir = join(repoRoot, 'dist', 'test-overlays', uniqueName('o'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'kustomization.yaml'),
    `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ${relative(dir, join(repoRoot, base))}\n${body}`,
  );
  return dir;
}

/** Fields the controller sent must all be in what the API server stored (which adds defaults). */
function assertSubset(sent: unknown, stored: unknown, path = '$'): void {
  if (Array.isArray(sent)) {
    assert.ok(Array.isArray(stored), `${path} is an array`);
    assert.equal((stored as unknown[]).length, sent.length, `${path} length`);
    sent.forEach((v, i) => assertSubset(v, (stored as unknown[])[i], `${path}[${i}]`));
  } else if (sent && typeof sent === 'object') {
    for (const [k, v] of Object.entries(sent)) assertSubset(v, (stored as Record<string, unknown>)?.[k], `${path}.${k}`);
  } else {
    assert.deepEqual(stored, sent, path);
  }
}

async function scrape(port: number): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    const hit = /^(mcp_job_controller_[a-z_]+(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (hit) m.set(hit[1]!, Number(hit[2]));
  }
  return m;
}

describe('shipping: manifests, render, metrics, produce and npm run dev', () => {
  const kc = kubeConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const { admin, producer } = useKafka();

  it("applies the secure-kafka overlay: the controller gets TLS and SASL from a mounted Secret, and every Job the job's own principal", async () => {
    const ns = uniqueName('secure');
    const dir = overlay(
      'k8s/overlays/secure-kafka',
      `namespace: ${ns}\npatches:\n  - target: { kind: Deployment, name: mcp-job-controller }\n    patch: '[{"op": "replace", "path": "/spec/replicas", "value": 0}]'\n`,
    );
    try {
      kubectl(['apply', '-k', dir]);
      const dep = await kc.makeApiClient(k8s.AppsV1Api).readNamespacedDeployment({ name: 'mcp-job-controller', namespace: ns });
      const c = dep.spec!.template.spec!.containers[0]!;
      const env = Object.fromEntries(c.env!.filter((e) => e.value !== undefined).map((e) => [e.name, e.value!]));
      const mount = c.volumeMounts!.find((m) => m.name === 'kafka-credentials')!;
      assert.equal(env.KAFKA_SASL_PASSWORD_FILE, `${mount.mountPath}/password`, 'the password is a file of the mounted Secret');
      const cfg = parseConfig(ControllerConfigSchema, { ...env, JOB_NAMESPACE: ns });
      const job = buildJob(
        { topic: cfg.KAFKA_TOPIC, partition: 0, offset: '0' },
        { jobID: 'x', jobType: 'server-init', config: { mcpServers: {} }, checksum: '0'.repeat(64) },
        cfg,
      );
      const jobEnv = Object.fromEntries(job.spec!.template.spec!.containers[0]!.env!.map((e) => [e.name, e.value]));
      assert.equal(jobEnv.KAFKA_SASL_USERNAME, 'job');
      assert.equal(jobEnv.KAFKA_SASL_PASSWORD_FILE, '/var/run/mcp-kafka/password');
      const secret = await core.readNamespacedSecret({ name: env.JOB_KAFKA_SECRET_NAME!, namespace: ns });
      assert.deepEqual(Object.keys(secret.data ?? {}).sort(), ['ca.crt', 'password'], "the job's Secret holds what the Job's env names");
    } finally {
      await core.deleteNamespace({ name: ns }).catch(() => undefined);
    }
  });

  it('applies the k8s/ base with a stock kubectl, and its controller pod passes PodSecurity restricted', async () => {
    const ns = uniqueName('base');
    const dir = overlay(
      'k8s',
      `namespace: ${ns}\npatches:\n  - target: { kind: Deployment, name: mcp-job-controller }\n    patch: '[{"op": "replace", "path": "/spec/replicas", "value": 0}]'\n`,
    );
    try {
      const out = kubectl(['apply', '-k', dir]);
      for (const obj of [
        'namespace/',
        'serviceaccount/mcp-job-controller',
        'role.rbac.authorization.k8s.io/mcp-job-controller',
        'rolebinding.rbac.authorization.k8s.io/mcp-job-controller',
        'networkpolicy.networking.k8s.io/mcp-job-egress',
        'configmap/mcp-job-template-',
        'deployment.apps/mcp-job-controller',
      ]) {
        assert.match(out, new RegExp(obj.replace(/[.]/g, '\\.')), `${obj} applied`);
      }
      const nsObj = await core.readNamespace({ name: ns });
      assert.equal(nsObj.metadata?.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
      const apps = kc.makeApiClient(k8s.AppsV1Api);
      const dep = await apps.readNamespacedDeployment({ name: 'mcp-job-controller', namespace: ns });
      assert.equal(dep.spec?.strategy?.type, 'Recreate');
      // PodSecurity enforces on pods, so submit the Deployment's pod as one (server-side dry run).
      await core.createNamespacedPod({ namespace: ns, dryRun: 'All', body: { metadata: { name: 'controller-check' }, spec: dep.spec!.template.spec! } });
      // And the check can fail: the same pod made privileged is refused.
      const bad = structuredClone(dep.spec!.template.spec!);
      bad.containers[0]!.securityContext = { ...bad.containers[0]!.securityContext, privileged: true, allowPrivilegeEscalation: true };
      await assert.rejects(
        core.createNamespacedPod({ namespace: ns, dryRun: 'All', body: { metadata: { name: 'bad' }, spec: bad } }),
        (e: k8s.ApiException<string>) => e.code === 403,
      );

      // The Job every message becomes, from the ConfigMap's template, passes restricted too.
      const cm = await core.listNamespacedConfigMap({ namespace: ns });
      const tmplText = cm.items.find((c) => c.metadata?.name?.startsWith('mcp-job-template'))!.data!['job-template.yaml']!;
      const file = join(mkdtempSync(join(tmpdir(), 'tmpl-')), 'job-template.yaml');
      writeFileSync(file, tmplText);
      const cfg = parseConfig(ControllerConfigSchema, {
        KAFKA_BROKERS: 'kafka:9092',
        KAFKA_TOPIC: 'mcp-jobs',
        JOB_NAMESPACE: ns,
        JOB_SECRET_NAME: 'mcp-secrets',
      });
      const msg = parseMessage(
        Buffer.from(JSON.stringify({ jobID: 'j', jobType: 'server-init', payload: { mcpServers: { a: { command: 'npx', args: ['-y', 'x'] } } } })),
        { allowedCommands: cfg.ALLOWED_COMMANDS, secretsDir: cfg.SECRETS_DIR, maxMessageBytes: cfg.MAX_MESSAGE_BYTES },
      );
      const job = buildJob({ topic: 'mcp-jobs', partition: 0, offset: '0' }, msg, cfg, loadJobTemplate(file));
      await core.createNamespacedPod({ namespace: ns, dryRun: 'All', body: { metadata: { name: 'job-check' }, spec: job.spec!.template.spec! } });
      await batch.createNamespacedJob({ namespace: ns, dryRun: 'All', body: job });

      // The egress NetworkPolicy the API server accepted selects exactly the Job pods (the bed has
      // no CNI, so this shows it is accepted and aimed, not enforced): DNS and the brokers only.
      const np = await kc.makeApiClient(k8s.NetworkingV1Api).readNamespacedNetworkPolicy({ name: 'mcp-job-egress', namespace: ns });
      const podLabels = job.spec!.template.metadata!.labels!;
      for (const [k, v] of Object.entries(np.spec!.podSelector!.matchLabels!)) assert.equal(podLabels[k], v, `Job pods carry ${k}=${v}`);
      assert.notEqual(
        dep.spec!.template.metadata!.labels!['app.kubernetes.io/name'],
        np.spec!.podSelector!.matchLabels!['app.kubernetes.io/name'],
        'not the controller',
      );
      assert.deepEqual(
        np.spec!.egress!.flatMap((r) => r.ports!.map((p) => `${p.protocol}/${p.port}`)),
        ['UDP/53', 'TCP/53', 'TCP/9092', 'TCP/9093'],
      );
      // The controller's Role has no delete; replay's right is the opt-in component.
      const role = await kc.makeApiClient(k8s.RbacAuthorizationV1Api).readNamespacedRole({ name: 'mcp-job-controller', namespace: ns });
      assert.ok(!role.rules!.some((r) => r.verbs.includes('delete')), 'no delete in the base Role');
      const withReplay = overlay('k8s', `namespace: ${ns}\ncomponents:\n  - ../../../k8s/components/replay\n`);
      assert.match(kubectl(['apply', '-k', withReplay]), /role\.rbac\.authorization\.k8s\.io\/mcp-job-controller-replay created/);
    } finally {
      await core.deleteNamespace({ name: ns }).catch(() => undefined);
    }
  });

  it('applies the kind overlay with its Kafka removed and the controller pointed at the test bed broker', async () => {
    const ns = uniqueName('kind');
    const dir = overlay(
      'k8s/overlays/kind',
      `namespace: ${ns}\npatches:
  - patch: |-
      $patch: delete
      apiVersion: apps/v1
      kind: Deployment
      metadata: { name: kafka }
  - patch: |-
      $patch: delete
      apiVersion: v1
      kind: Service
      metadata: { name: kafka }
  - target: { kind: Deployment, name: mcp-job-controller }
    patch: '[{"op": "replace", "path": "/spec/replicas", "value": 0}, {"op": "replace", "path": "/spec/template/spec/containers/0/env/0/value", "value": "${brokers().join(',')}"}]'
  - target: { kind: Service, name: mcp-job-controller-metrics }
    patch: '[{"op": "remove", "path": "/spec/ports/0/nodePort"}]'
`,
    );
    try {
      const out = kubectl(['apply', '-k', dir]);
      assert.match(out, /deployment\.apps\/mcp-job-controller (created|configured)/);
      assert.match(out, /service\/mcp-job-controller-metrics created/);
      assert.doesNotMatch(out, /deployment\.apps\/kafka/);
      const rendered = kubectl(['kustomize', join(repoRoot, 'k8s', 'overlays', 'kind')]);
      assert.match(rendered, /image: apache\/kafka:/, 'the overlay itself runs a Kafka');
    } finally {
      await core.deleteNamespace({ name: ns }).catch(() => undefined);
    }
  });

  it(
    "runs the k8s/ base's Deployment from the controller image (its env, its ServiceAccount token): it turns messages into Jobs whose pods run the job image, npx included",
    {
      skip: process.env.TESTBED_PODS !== 'image' && 'pods run as host processes here (TESTBED_PODS=process)',
    },
    async () => {
      const ns = uniqueName('image');
      const topic = await freshTopic(admin, 1, 'image');
      const group = uniqueName('g');
      // Pods share the host's network here: the metrics port is a free one, not the manifest's 8080.
      const port = await freePort();
      const env = (name: string, value: string) => `                - { name: ${name}, value: "${value}" }`;
      const dir = overlay(
        'k8s',
        // kustomize's namespace leaves the RoleBinding's subject in the base's namespace: an overlay
        // that moves the controller must move the subject too.
        `namespace: ${ns}\npatches:
  - target: { kind: RoleBinding, name: mcp-job-controller }
    patch: '[{"op": "replace", "path": "/subjects/0/namespace", "value": "${ns}"}]'
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: { name: mcp-job-controller }
      spec:
        template:
          spec:
            containers:
              - name: controller
                env:
${[env('KAFKA_BROKERS', brokers().join(',')), env('KAFKA_TOPIC', topic), env('KAFKA_CONSUMER_GROUP', group), env('METRICS_PORT', String(port))].join('\n')}
`,
      );
      const everything = (JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> }).packages[
        'node_modules/@modelcontextprotocol/server-everything'
      ]!.version;
      try {
        kubectl(['apply', '-k', dir]);
        const pod = await waitFor(
          async () => {
            const pods = await core.listNamespacedPod({ namespace: ns, labelSelector: 'app.kubernetes.io/name=mcp-job-controller' });
            return pods.items.find((p) => p.status?.phase === 'Running');
          },
          { timeoutMs: 120_000, description: 'the controller pod Running' },
        );
        const images = (pod.status?.containerStatuses ?? []).map((c) => c.imageID);
        assert.match(images[0] ?? '', /^buildah:\/\/sha256:[0-9a-f]{64}$/, 'the controller runs from its built image');
        await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200, {
          timeoutMs: 60_000,
          description: "the in-image controller's /readyz",
        });
        const send = (jobID: string, server: unknown) =>
          producer.send({
            topic,
            messages: [{ value: JSON.stringify({ jobID, jobType: 'server-init', payload: JSON.stringify({ mcpServers: { s: server } }) }) }],
          });
        await send('fixture', { command: 'node', args: [FIXTURE] });
        // What users run: a server fetched by npx from the registry, inside the job image. A cold
        // download takes longer than the default 30 s per-server deadline on a busy machine.
        // Behind a TLS-inspecting proxy npm needs the proxy's CA: the message names none, so this
        // passes only if the job hands the image's NODE_EXTRA_CA_CERTS to the server it starts.
        await send('npx', {
          command: 'npx',
          args: ['-y', `@modelcontextprotocol/server-everything@${everything}`],
          timeout: 240_000,
        });
        const jobs = await waitFor(
          async () => {
            const l = await batch.listNamespacedJob({ namespace: ns, labelSelector: jobSelector(group) });
            return l.items.length === 2 && l.items.every((j) => jobOutcome(j)) ? l.items : undefined;
          },
          { timeoutMs: 300_000, description: 'both Jobs finished' },
        );
        for (const job of jobs) {
          const logs = kubectl(['logs', '-n', ns, `job/${job.metadata!.name}`]);
          process.stdout.write(`# kubectl logs job/${job.metadata!.name}\n${logs.replace(/^/gm, '# ')}\n`);
          assert.equal(jobOutcome(job), 'Complete', logs);
          assert.match(logs, /"msg":"job done: 1\/1 servers initialized"/);
          const jobPods = await core.listNamespacedPod({ namespace: ns, labelSelector: `job-name=${job.metadata!.name}` });
          assert.match(jobPods.items[0]?.status?.containerStatuses?.[0]?.imageID ?? '', /^buildah:\/\/sha256:/, 'the Job ran from the job image');
        }
        const ctlLogs = kubectl(['logs', '-n', ns, pod.metadata!.name!]);
        assert.match(ctlLogs, /"msg":"controller started"/);
      } finally {
        await core.deleteNamespace({ name: ns }).catch(() => undefined);
      }
    },
  );

  it('renders exactly the Job the controller creates, and its metrics move as messages flow', async () => {
    const ns = await freshNamespace(kc, { 'pod-security.kubernetes.io/enforce': 'restricted' }, 'ship');
    const topic = await freshTopic(admin, 1, 'ship');
    const group = uniqueName('g');
    await applyControllerRbac(kc, ns.name);
    const port = await freePort();
    const env = {
      KUBECONFIG: await serviceAccountKubeconfig(kc, ns.name, 'mcp-job-controller'),
      KAFKA_BROKERS: brokers().join(','),
      KAFKA_TOPIC: topic,
      KAFKA_CONSUMER_GROUP: group,
      JOB_NAMESPACE: ns.name,
      METRICS_PORT: String(port),
      JOB_TEMPLATE: join(repoRoot, 'k8s', 'base', 'job-template.yaml'),
    };
    const controller = new ControllerProcess(env).start();
    try {
      await controller.ready();
      await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, { description: '/readyz 200' });
      assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
      const before = await scrape(port);
      const value = JSON.stringify({
        jobID: 'render-me',
        jobType: 'server-init',
        payload: JSON.stringify({ mcpServers: { f: { command: 'node', args: [FIXTURE] } } }),
      });
      const sent = [];
      for (let i = 0; i < 5; i++) sent.push((await producer.send({ topic, messages: [{ value }] }))[0]!.baseOffset!);
      await producer.send({ topic, messages: [{ value: 'garbage' }] });
      await waitFor(
        async () => {
          const m = await scrape(port);
          return m.get('mcp_job_controller_messages_consumed_total{result="job"}') === 5 &&
            m.get('mcp_job_controller_dead_lettered_total{reason="invalid-json"}') === 1
            ? m
            : undefined;
        },
        { timeoutMs: 60_000, description: 'metrics to count 5 Jobs and 1 dead letter' },
      );
      const jobs = await waitFor(
        async () => {
          const l = await batch.listNamespacedJob({ namespace: ns.name, labelSelector: jobSelector(group) });
          return l.items.length === 5 && l.items.every((j) => jobOutcome(j)) ? l.items : undefined;
        },
        { timeoutMs: 60_000, description: '5 Jobs finished' },
      );
      const after = await waitFor(
        async () => {
          const m = await scrape(port);
          return m.get('mcp_job_controller_job_outcomes_total{outcome="succeeded"}') === 5 ? m : undefined;
        },
        { timeoutMs: 30_000, description: 'outcomes metric' },
      );
      assert.equal(before.get('mcp_job_controller_jobs_created_total{result="created"}') ?? 0, 0);
      assert.equal(after.get('mcp_job_controller_jobs_created_total{result="created"}'), 5);
      assert.equal(after.get('mcp_job_controller_active_jobs'), 0);
      assert.equal(after.get(`mcp_job_controller_committed_offset{topic="${topic}",partition="0"}`), 6);
      assert.ok((after.get('mcp_job_controller_job_create_duration_seconds_count') ?? 0) >= 5);

      const file = join(mkdtempSync(join(tmpdir(), 'render-')), 'm.json');
      writeFileSync(file, value);
      const { stdout } = await run(process.execPath, [CONTROLLER, 'render', '--message', file, '--partition', '0', '--offset', sent[2]!, '--output', 'json'], {
        env: { ...process.env, ...env },
      });
      const rendered = JSON.parse(stdout) as k8s.V1Job;
      const created = jobs.find((j) => j.metadata?.name === rendered.metadata?.name);
      assert.ok(created, `a Job named ${rendered.metadata?.name} exists`);
      const stored = await batch.readNamespacedJob({ name: created.metadata!.name!, namespace: ns.name });
      assertSubset(JSON.parse(JSON.stringify(rendered)), JSON.parse(JSON.stringify(stored)));
    } finally {
      await controller.kill();
      await ns.remove();
    }
  });

  it('shows newcomers the product working with npm run dev', async () => {
    const { stdout } = await run(process.execPath, [join(repoRoot, 'dist', 'test', 'dev.js'), '--once'], {
      env: { ...process.env, KUBECONFIG: '', KAFKA_BROKERS: '', METRICS_PORT: '0' },
      timeout: 240_000,
    });
    assert.equal((stdout.match(/ Complete /g) ?? []).length, 5, stdout);
    assert.match(stdout, /server demo initialized: fixture-server 1\.2\.3, 2 tools/);
    assert.match(stdout, /dead-lettered: .* reason invalid-payload/);
  });
});
