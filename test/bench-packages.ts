import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { Producer } from 'kafkajs';
import { jobName } from '../src/shared/contract/naming.js';
import { JobSummarySchema, type JobSummary } from '../src/shared/contract/summary.js';
import { warm } from '../src/job/warm.js';
import { waitFor } from '../src/shared/wait.js';
import { ControllerProcess } from './support.js';
import type { Testbed } from './testbed/testbed.js';

/** The server of issue 24, pinned: what every Job of the packages bench starts. */
export const PINNED_SERVER = process.env.BENCH_PKG_SPEC ?? '@modelcontextprotocol/server-memory@2026.8.31';

interface BenchLike {
  bed: Testbed;
  kc: k8s.KubeConfig;
  producer: Producer;
  namespace(name: string): Promise<string>;
  admin: { createTopics(o: { topics: { topic: string; numPartitions: number }[]; waitForLeaders: boolean }): Promise<boolean> };
}

function p50(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)]!;
}

/**
 * One way of starting the server, N Jobs one after another through a controller: each Job's
 * time is from the controller's `job created` line to the job's `job done` line (the summary is
 * written just before it), both stamped in milliseconds by the same clock.
 */
async function way(
  b: BenchLike,
  label: string,
  n: number,
  server: { command: string; args: string[] },
  extra: Record<string, string>,
): Promise<{ ms: number[]; summaries: JobSummary[] }> {
  const ns = `bench-pkg-${label}-${Date.now().toString(36)}`;
  const kubeconfig = await b.namespace(ns);
  await extraSetup?.(b, ns, extra);
  const topic = `${ns}-t`;
  await b.admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
  const controller = new ControllerProcess({
    KUBECONFIG: kubeconfig,
    KAFKA_BROKERS: b.bed.env.KAFKA_BROKERS,
    KAFKA_TOPIC: topic,
    KAFKA_CONSUMER_GROUP: `${topic}-group`,
    JOB_NAMESPACE: ns,
    METRICS_PORT: '0',
    MCP_INIT_TIMEOUT_MS: '120000',
    ...extra,
  }).start();
  await controller.ready();
  const core = b.kc.makeApiClient(k8s.CoreV1Api);
  const ms: number[] = [];
  const summaries: JobSummary[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const [r] = await b.producer.send({
        topic,
        messages: [{ value: JSON.stringify({ jobID: `${label}-${i}`, jobType: 'server-init', payload: { mcpServers: { memory: server } } }) }],
      });
      const name = jobName('mcp', topic, 0, r!.baseOffset!);
      const created = await waitFor(() => controller.logs.find((l) => l.msg === 'job created' && l.job === name), {
        timeoutMs: 60_000,
        description: `Job ${name} created`,
      });
      const done = await waitFor(
        async () => {
          const pod = (await core.listNamespacedPod({ namespace: ns, labelSelector: `job-name=${name}` })).items[0];
          const t = pod?.status?.containerStatuses?.[0]?.state?.terminated;
          if (!t) return undefined;
          const log = await core.readNamespacedPodLog({ name: pod!.metadata!.name!, namespace: ns, container: 'job' });
          const line = log
            .split('\n')
            .map((l) => {
              try {
                return JSON.parse(l) as { msg?: string; time?: string };
              } catch {
                return {};
              }
            })
            .find((l) => l.msg?.startsWith('job done'));
          return line ? { time: line.time!, summary: JobSummarySchema.parse(JSON.parse(t.message ?? '{}')) } : undefined;
        },
        { timeoutMs: 180_000, intervalMs: 200, description: `Job ${name} to finish` },
      );
      if (done.summary.status !== 'initialized') throw new Error(`${label}: Job ${name} failed: ${JSON.stringify(done.summary)}`);
      ms.push(Date.parse(done.time) - Date.parse(created.time as string));
      summaries.push(done.summary);
    }
  } finally {
    await controller.kill();
  }
  return { ms, summaries };
}

let extraSetup: ((b: BenchLike, ns: string, extra: Record<string, string>) => Promise<void>) | undefined;

/**
 * `BENCH_ONLY=packages`: N Jobs (BENCH_PKG_JOBS, default 20) naming `npx -y <PINNED_SERVER>`,
 * four ways: each pod with an empty npm cache (no PACKAGE_CACHE_CLAIM); the shared cache on a
 * claim, warmed first by warm-cache, with its install of the package moved aside (npx runs,
 * as before the job ran installs itself); the same cache with the install (the job runs the
 * package's bin without npx); and the same server started from an installed path
 * (`node <path>/dist/index.js`), the floor.
 */
export async function packages(b: BenchLike): Promise<Record<string, number | string>> {
  const n = Number(process.env.BENCH_PKG_JOBS ?? 20);
  const npx = { command: 'npx', args: ['-y', PINNED_SERVER] };
  const cold = await way(b, 'cold', n, npx, {});

  // The shared cache: a hostPath PersistentVolume the test bed's node keeps under its folder, warmed
  // by warm-cache in that folder before the first Job.
  // A volume binds one claim: each way's namespace gets a volume of its own on the same folder.
  const pv = `bench-pkg-${Date.now().toString(36)}`;
  const core = b.kc.makeApiClient(k8s.CoreV1Api);
  const pvs: string[] = [];
  extraSetup = async (_b, ns) => {
    const name = `${pv}-${pvs.length}`;
    pvs.push(name);
    await core.createPersistentVolume({
      body: {
        metadata: { name },
        spec: { capacity: { storage: '2Gi' }, accessModes: ['ReadWriteMany'], storageClassName: '', hostPath: { path: `/var/cache/${pv}` } },
      },
    });
    await core.createNamespacedPersistentVolumeClaim({
      namespace: ns,
      body: {
        metadata: { name: 'pkg' },
        spec: { accessModes: ['ReadWriteMany'], storageClassName: '', volumeName: name, resources: { requests: { storage: '2Gi' } } },
      },
    });
    await waitFor(async () => (await core.readNamespacedPersistentVolumeClaim({ name: 'pkg', namespace: ns })).status?.phase === 'Bound', {
      timeoutMs: 30_000,
      description: 'the bench claim to bind',
    });
  };
  const cacheDir = join(b.bed.dir, 'node', 'host', 'var', 'cache', pv);
  mkdirSync(cacheDir, { recursive: true });
  const [warmed] = await warm(cacheDir, [{ tool: 'npm', spec: PINNED_SERVER }]);
  if (!warmed?.ok) throw new Error(`warm-cache failed: ${warmed?.error}`);
  const installs = join(cacheDir, 'installs');
  renameSync(installs, `${installs}.aside`);
  const npxRun = await way(b, 'warmnpx', n, npx, { PACKAGE_CACHE_CLAIM: 'pkg' });
  renameSync(`${installs}.aside`, installs);
  const warmRun = await way(b, 'warm', n, npx, { PACKAGE_CACHE_CLAIM: 'pkg' });
  extraSetup = undefined;

  const prefix = mkdtempSync(join(tmpdir(), 'bench-pkg-installed-'));
  try {
    execFileSync('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=error', PINNED_SERVER], { stdio: 'ignore' });
    const name = PINNED_SERVER.replace(/@[^@]+$/, '');
    const installed = await way(b, 'installed', n, { command: 'node', args: [join(prefix, 'node_modules', name, 'dist', 'index.js')] }, {});
    const from = (r: { summaries: JobSummary[] }) => [...new Set(r.summaries.map((s) => s.servers?.memory?.package?.from))].join('+');
    const cold50 = p50(cold.ms);
    const warm50 = p50(warmRun.ms);
    const npx50 = p50(npxRun.ms);
    const inst50 = p50(installed.ms);
    return {
      jobs_per_way: n,
      server: PINNED_SERVER,
      pkg_cold_p50_ms: cold50,
      pkg_warm_p50_ms: warm50,
      pkg_warm_npx_p50_ms: npx50,
      pkg_installed_p50_ms: inst50,
      pkg_warm_over_installed: Number((warm50 / inst50).toFixed(2)),
      pkg_warm_npx_over_installed: Number((npx50 / inst50).toFixed(2)),
      pkg_cold_over_warm: Number((cold50 / warm50).toFixed(2)),
      // npm's own account (loglevel=http) of the tarballs it fetched from the registry during the warm run.
      registry_fetches: warmRun.summaries.reduce((s, x) => s + (x.servers?.memory?.package?.tarballs ?? 0), 0),
      registry_requests_warm: [...warmRun.summaries, ...npxRun.summaries].reduce((s, x) => s + (x.servers?.memory?.package?.requests ?? 0), 0),
      registry_fetches_warm_npx: npxRun.summaries.reduce((s, x) => s + (x.servers?.memory?.package?.tarballs ?? 0), 0),
      registry_fetches_cold: cold.summaries.reduce((s, x) => s + (x.servers?.memory?.package?.tarballs ?? 0), 0),
      warm_cache_fill_ms: warmed.source.ms ?? 0,
      sources: `cold=${from(cold)} warm_npx=${from(npxRun)} warm=${from(warmRun)} installed=${from(installed)}`,
      warm_npx_fetch_p50_ms: p50(npxRun.summaries.map((s) => s.servers?.memory?.package?.ms ?? 0)),
    };
  } finally {
    rmSync(prefix, { recursive: true, force: true });
    for (const name of pvs) await core.deletePersistentVolume({ name }).catch(() => undefined);
  }
}
