import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { jobName } from '../../src/shared/contract/naming.js';
import { JobSummarySchema, type JobSummary } from '../../src/shared/contract/summary.js';
import { brokers, freshNamespace, freshTopic, jobOutcome, kubeConfig, uniqueName, useKafka, waitFor } from '../helpers.js';
import { applyControllerRbac, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from '../support.js';
import { repoRoot } from '../testbed/cache.js';

/**
 * A small real package (no dependencies: one packument, one tarball), pinned, fetched by npx from
 * the real registry into the shared cache; the MCP server npx then runs is the test fixture.
 */
const PACKAGE = 'is-number@7.0.0';

/** A real pinned MCP server with one bin (`mcp-server-memory`), as the package-cache CronJob warms it. */
const SERVER = '@modelcontextprotocol/server-memory@2026.8.31';

describe('package cache: Jobs share one npm cache on a PersistentVolumeClaim', () => {
  const kc = kubeConfig();
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const { admin, producer } = useKafka();
  let ns: Awaited<ReturnType<typeof freshNamespace>>;
  let topic: string;
  let controller: ControllerProcess;
  const pvName = uniqueName('pkg-cache');
  const fixtureServer = { command: 'npx', args: ['-y', `--package=${PACKAGE}`, '--', 'node', FIXTURE] };

  before(async () => {
    ns = await freshNamespace(kc, { 'pod-security.kubernetes.io/enforce': 'restricted' }, 'pkgcache');
    topic = await freshTopic(admin, 1, 'pkgcache');
    await applyControllerRbac(kc, ns.name);
    // A hostPath PersistentVolume, as on a kind node, bound to the claim by the real PV controller.
    await core.createPersistentVolume({
      body: {
        metadata: { name: pvName },
        spec: {
          capacity: { storage: '1Gi' },
          accessModes: ['ReadWriteMany'],
          persistentVolumeReclaimPolicy: 'Retain',
          storageClassName: '',
          hostPath: { path: `/var/cache/${pvName}`, type: 'DirectoryOrCreate' },
        },
      },
    });
    await core.createNamespacedPersistentVolumeClaim({
      namespace: ns.name,
      body: {
        metadata: { name: 'mcp-package-cache' },
        spec: { accessModes: ['ReadWriteMany'], storageClassName: '', volumeName: pvName, resources: { requests: { storage: '1Gi' } } },
      },
    });
    await waitFor(async () => (await core.readNamespacedPersistentVolumeClaim({ name: 'mcp-package-cache', namespace: ns.name })).status?.phase === 'Bound', {
      timeoutMs: 30_000,
      description: 'the claim to bind',
    });
    controller = new ControllerProcess({
      KUBECONFIG: await serviceAccountKubeconfig(kc, ns.name, 'mcp-job-controller'),
      KAFKA_BROKERS: brokers().join(','),
      KAFKA_TOPIC: topic,
      KAFKA_CONSUMER_GROUP: uniqueName('pkgcache'),
      JOB_NAMESPACE: ns.name,
      PACKAGE_CACHE_CLAIM: 'mcp-package-cache',
      METRICS_PORT: '0',
      MCP_INIT_TIMEOUT_MS: '60000',
    }).start();
    await controller.ready();
  });
  after(async () => {
    await controller.kill();
    await ns.remove();
    await core.deletePersistentVolume({ name: pvName }).catch(() => undefined);
  });

  /** Sends `count` messages naming the same npx server at once; resolves each Job's summary. */
  async function run(count: number, jobID: string, server: { command: string; args: string[] } = fixtureServer): Promise<JobSummary[]> {
    const payload = { mcpServers: { fixture: server } };
    const sent = await producer.send({
      topic,
      messages: Array.from({ length: count }, (_, i) => ({ value: JSON.stringify({ jobID: `${jobID}-${i}`, jobType: 'server-init', payload }) })),
    });
    const first = BigInt(sent[0]!.baseOffset!);
    const names = Array.from({ length: count }, (_, i) => jobName('mcp', topic, 0, String(first + BigInt(i))));
    return Promise.all(
      names.map(async (name) => {
        const job = await waitFor(
          async () => {
            const j = await batch.readNamespacedJob({ name, namespace: ns.name }).catch(() => undefined);
            return j && jobOutcome(j) ? j : undefined;
          },
          { timeoutMs: 180_000, intervalMs: 500, description: `Job ${name} to finish; controller: ${controller.tail(3)}` },
        );
        const [pod] = (await core.listNamespacedPod({ namespace: ns.name, labelSelector: `job-name=${name}` })).items;
        const text = pod?.status?.containerStatuses?.[0]?.state?.terminated?.message ?? '';
        assert.equal(jobOutcome(job), 'Complete', text);
        return JobSummarySchema.parse(JSON.parse(text));
      }),
    );
  }

  it('lets parallel Jobs fill the cache together, fetching the tarball once, and a later Job of the same server asks the registry nothing', async () => {
    const parallel = await run(3, 'pkg-parallel');
    for (const s of parallel) {
      assert.equal(s.packageCache, 'shared');
      assert.equal(s.servers!.fixture!.status, 'initialized');
      assert.ok(['registry', 'cache'].includes(s.servers!.fixture!.package!.from), JSON.stringify(s.servers!.fixture));
    }
    // npx installs under a lock in the shared cache: whoever comes second finds the tarball there.
    const tarballs = parallel.reduce((n, s) => n + (s.servers!.fixture!.package!.tarballs ?? 0), 0);
    assert.equal(tarballs, 1, JSON.stringify(parallel.map((s) => s.servers!.fixture!.package)));

    const [later] = await run(1, 'pkg-later');
    assert.equal(later!.packageCache, 'shared');
    assert.equal(later!.servers!.fixture!.status, 'initialized');
    assert.equal(later!.servers!.fixture!.package!.from, 'cache');
    assert.equal(later!.servers!.fixture!.package!.requests, 0);
  });

  /**
   * The shipped CronJob's Job (k8s/components/package-cache/cronjob.yaml) with WARM_PACKAGES set
   * to SERVER and PACKAGE, on the same claim; with pods as host processes its `node dist/job/warm-cache.js`
   * is this checkout's.
   */
  async function warmJob(): Promise<void> {
    const [cron] = k8s.loadAllYaml(readFileSync(join(repoRoot, 'k8s', 'components', 'package-cache', 'cronjob.yaml'), 'utf8')) as k8s.V1CronJob[];
    const spec = cron!.spec!.jobTemplate.spec!;
    const c = spec.template.spec!.containers[0]!;
    // With a package that has no bin (a library): warmed for npx, given no install, not a failure.
    c.env = c.env!.map((e) => (e.name === 'WARM_PACKAGES' ? { name: e.name, value: `${SERVER},${PACKAGE}` } : e));
    if (process.env.TESTBED_PODS !== 'image') c.command = [process.execPath, join(repoRoot, 'dist', 'job', 'warm-cache.js')];
    const name = uniqueName('warm');
    await batch.createNamespacedJob({ namespace: ns.name, body: { metadata: { name }, spec } });
    const job = await waitFor(
      async () => {
        const j = await batch.readNamespacedJob({ name, namespace: ns.name });
        return jobOutcome(j) ? j : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 500, description: `warm Job ${name} to finish` },
    );
    const [pod] = (await core.listNamespacedPod({ namespace: ns.name, labelSelector: `job-name=${name}` })).items;
    const log = pod ? await core.readNamespacedPodLog({ name: pod.metadata!.name!, namespace: ns.name }).catch(() => '') : '';
    assert.equal(jobOutcome(job), 'Complete', log);
    assert.match(log, /"spec":"@modelcontextprotocol\/server-memory@[^"]+"[^\n]*"install":"created"/, log);
    assert.match(log, /"spec":"is-number@7\.0\.0"[^\n]*"install":"skipped"/, log);
  }

  it("runs a warmed pinned server's bin from the cache's install without npx, asking the registry nothing, and says so in its summary", async () => {
    await warmJob();
    const [s] = await run(1, 'pkg-prebuilt', { command: 'npx', args: ['-y', SERVER] });
    assert.equal(s!.packageCache, 'shared');
    const fixture = s!.servers!.fixture!;
    assert.equal(fixture.status, 'initialized', JSON.stringify(fixture));
    assert.match(fixture.server ?? '', /memory/i, JSON.stringify(fixture));
    assert.equal(fixture.package!.from, 'prebuilt', JSON.stringify(fixture.package));
    assert.match(fixture.package!.path!, /\/installs\/@modelcontextprotocol\/server-memory@2026\.8\.31$/);
    assert.equal(fixture.package!.requests, 0);

    // Another npx option in the command: npx runs it, from the cache the same warm Job filled.
    const [viaNpx] = await run(1, 'pkg-npx', { command: 'npx', args: ['-y', `--package=${SERVER}`, '--', 'mcp-server-memory'] });
    assert.equal(viaNpx!.servers!.fixture!.status, 'initialized', JSON.stringify(viaNpx!.servers!.fixture));
    assert.equal(viaNpx!.servers!.fixture!.package!.from, 'cache', JSON.stringify(viaNpx!.servers!.fixture!.package));
    assert.equal(viaNpx!.servers!.fixture!.package!.requests, 0);
  });
});
