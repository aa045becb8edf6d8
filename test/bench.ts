/**
 * `npm run bench`: the numbers a per-message Job system is judged on, measured side by side in
 * one run on the test bed, so ratios hold on a shared machine:
 *   1. backlog throughput: controller vs a plain create loop through the same client (the limit);
 *   2. produce-to-Job latency at a steady 20 messages/s;
 *   3. what one job costs, beside `node -e 0` and a bare MCP SDK client;
 *   4. controller memory after 1,000 and 10,000 messages.
 * The broker runs with Kafka's default group.initial.rebalance.delay.ms (3000), so group joins
 * are priced honestly. Jobs in 1, 2 and 4 are created suspended (the Job controller makes no
 * pods): these measure the controller and the API server, not 10,000 local processes.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { Kafka, logLevel, Partitioners, type Admin, type Producer } from 'kafkajs';
import { ControllerConfigSchema } from '../src/controller/config.js';
import { parseConfig } from '../src/shared/settings.js';
import { buildJob } from '../src/controller/job-builder.js';
import { makeKeepAliveClient } from '../src/controller/kube.js';
import { checksumOf, parseMessage } from '../src/shared/message.js';
import { sleep, waitFor } from '../src/shared/wait.js';
import { repoRoot } from './testbed/cache.js';
import { applyControllerRbac, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from './support.js';
import { Testbed } from './testbed/testbed.js';

const say = (s: string) => process.stdout.write(`${s}\n`);
const PARTITIONS = 4;
const BACKLOG = Number(process.env.BENCH_BACKLOG ?? 2000);
const MEMORY_MESSAGES = Number(process.env.BENCH_MEMORY_MESSAGES ?? 10_000);
const value = (i: number) =>
  JSON.stringify({ jobID: `bench-${i}`, jobType: 'server-init', payload: JSON.stringify({ mcpServers: { fixture: { command: 'node', args: [FIXTURE] } } }) });

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}
const median = (xs: number[]) => pct(xs, 50);

/** utime+stime of a process, in ms (clock ticks are 100/s on Linux). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

/** Busy and total jiffies of the whole machine, to tell how saturated the cores were. */
function machineCpu(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}
const busyPct = (a: { busy: number; total: number }, b: { busy: number; total: number }) => Math.round(((b.busy - a.busy) / (b.total - a.total)) * 100);

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0);
}

/** Wall time (ms) and peak RSS (kB) of a command, via GNU time when the machine has it. */
async function measure(cmd: string[], env: NodeJS.ProcessEnv): Promise<{ ms: number; peakKb: number | undefined; code: number | null }> {
  const useTime = existsSync('/usr/bin/time');
  const argv = useTime ? ['/usr/bin/time', '-f', 'PEAK_KB=%M', ...cmd] : cmd;
  const t0 = performance.now();
  const child = spawn(argv[0]!, argv.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  const code: number | null = await new Promise((r) => child.on('exit', (c) => r(c)));
  const ms = performance.now() - t0;
  const peak = /PEAK_KB=(\d+)/.exec(err);
  return { ms, peakKb: peak ? Number(peak[1]) : undefined, code };
}

async function produceAll(producer: Producer, topic: string, from: number, count: number): Promise<void> {
  for (let i = 0; i < count; i += 500) {
    const n = Math.min(500, count - i);
    await producer.send({ topic, acks: -1, messages: Array.from({ length: n }, (_, k) => ({ value: value(from + i + k), partition: (i + k) % PARTITIONS })) });
  }
}

/**
 * Calls `onAdd` once per Job that appears in `ns`. An informer, not a bare watch: it re-lists
 * and restarts when the watch breaks, which a bare watch does not.
 */
async function watchJobs(kc: k8s.KubeConfig, ns: string, onAdd: (job: k8s.V1Job) => void): Promise<() => Promise<void>> {
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const seen = new Set<string>();
  const informer = new k8s.ListWatch<k8s.V1Job>(
    `/apis/batch/v1/namespaces/${ns}/jobs`,
    new k8s.Watch(kc),
    () => batch.listNamespacedJob({ namespace: ns }),
    false,
  );
  let stopped = false;
  informer.on('add', (j) => {
    const uid = j.metadata?.uid ?? '';
    if (!seen.has(uid)) {
      seen.add(uid);
      onAdd(j);
    }
  });
  informer.on('error', () => {
    if (!stopped) setTimeout(() => void informer.start().catch(() => undefined), 200);
  });
  await informer.start();
  return async () => {
    stopped = true;
    await informer.stop();
  };
}

/** BENCH_CPU_PROF=<dir>: each controller writes a V8 CPU profile there when it stops. */
const controllerNodeArgs = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [];

class Bench {
  constructor(
    readonly bed: Testbed,
    readonly kc: k8s.KubeConfig,
    readonly kafka: Kafka,
    readonly admin: Admin,
    readonly producer: Producer,
  ) {}

  /** A namespace with the controller's Role, and the ServiceAccount's kubeconfig. */
  async namespace(name: string): Promise<string> {
    await this.kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name } } });
    await applyControllerRbac(this.kc, name);
    return serviceAccountKubeconfig(this.kc, name, 'mcp-job-controller');
  }

  controllerEnv(kubeconfig: string, ns: string, topic: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
      KUBECONFIG: kubeconfig,
      KAFKA_BROKERS: this.bed.env.KAFKA_BROKERS,
      KAFKA_TOPIC: topic,
      KAFKA_CONSUMER_GROUP: `${topic}-group`,
      JOB_NAMESPACE: ns,
      JOB_TEMPLATE: join(repoRoot, 'test', 'fixtures', 'suspended-job.yaml'),
      MAX_ACTIVE_JOBS: '0',
      METRICS_PORT: '0',
      LOG_LEVEL: 'info',
      ...(process.env.BENCH_MAX_IN_FLIGHT ? { MAX_IN_FLIGHT: process.env.BENCH_MAX_IN_FLIGHT } : {}),
      ...extra,
    };
  }

  async countJobs(ns: string): Promise<number> {
    const batch = this.kc.makeApiClient(k8s.BatchV1Api);
    let n = 0;
    let _continue: string | undefined;
    do {
      const l = await batch.listNamespacedJob({ namespace: ns, limit: 1000, _continue });
      n += l.items.length;
      _continue = l.metadata?._continue;
    } while (_continue);
    return n;
  }
}

async function jobCost(bed: Testbed, b: Bench): Promise<Record<string, number | string>> {
  const topic = 'bench-cost';
  await b.admin.createTopics({ topics: [{ topic }], waitForLeaders: true });
  const [r] = await b.producer.send({ topic, messages: [{ value: value(0), partition: 0 }] });
  const dir = mkdtempSync(join(tmpdir(), 'bench-cost-'));
  const jobEnv = {
    PATH: process.env.PATH,
    HOME: dir,
    KAFKA_BROKERS: bed.env.KAFKA_BROKERS,
    KAFKA_TOPIC: topic,
    KAFKA_PARTITION: '0',
    KAFKA_OFFSET: r!.baseOffset!,
    MCP_MESSAGE_SHA256: checksumOf(Buffer.from(value(0))),
    TERMINATION_MESSAGE_PATH: join(dir, 'term'),
    LOG_LEVEL: 'warn',
  };
  const runs = 15;
  await sleep(5000); // let the freshly started broker and control plane settle first
  const node0: number[] = [];
  const bare: number[] = [];
  const job: number[] = [];
  const nodePeak: number[] = [];
  const barePeak: number[] = [];
  const jobPeak: number[] = [];
  const bareClient = join(repoRoot, 'dist', 'test', 'fixtures', 'bare-client.js');
  for (let i = 0; i < runs + 1; i++) {
    // Interleaved, so drift on a shared machine hits all three alike; the first round warms caches.
    const a = await measure([process.execPath, '-e', '0'], process.env);
    // The same MCP mode on both sides: the job's default (MCP_PROTOCOL=auto).
    const c = await measure([process.execPath, bareClient, FIXTURE, 'auto'], process.env);
    const j = await measure([process.execPath, join(repoRoot, 'dist', 'src', 'job', 'main.js')], jobEnv);
    if (j.code !== 0 || c.code !== 0) throw new Error(`job cost run failed: job exit ${j.code}, bare client exit ${c.code}`);
    if (i === 0) continue;
    node0.push(a.ms);
    bare.push(c.ms);
    job.push(j.ms);
    if (a.peakKb) nodePeak.push(a.peakKb);
    if (c.peakKb) barePeak.push(c.peakKb);
    if (j.peakKb) jobPeak.push(j.peakKb);
  }
  const overhead = median(job) - median(bare);
  return {
    node_e0_ms: Math.round(median(node0)),
    bare_sdk_client_ms: Math.round(median(bare)),
    job_ms: Math.round(median(job)),
    job_overhead_ms: Math.round(overhead),
    job_over_bare_ratio: +(median(job) / median(bare)).toFixed(2),
    node_e0_peak_mb: nodePeak.length ? +(median(nodePeak) / 1024).toFixed(1) : 'n/a',
    bare_peak_mb: barePeak.length ? +(median(barePeak) / 1024).toFixed(1) : 'n/a',
    job_peak_mb: jobPeak.length ? +(median(jobPeak) / 1024).toFixed(1) : 'n/a',
    runs,
    mcp_protocol: 'auto (both)',
  } as Record<string, number | string>;
}

async function throughput(b: Bench): Promise<Record<string, number>> {
  const topic = 'bench-backlog';
  await b.admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
  await produceAll(b.producer, topic, 0, BACKLOG);

  // The limit: the same Jobs through the same client and credentials, at the best concurrency
  // found, run before and after the controller (the cluster grows as the run goes on); the
  // faster of the two is the limit.
  const limitNs = 'bench-limit';
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(await b.namespace(limitNs));
  // The same client the controller uses: one kept-alive agent.
  const saBatch = makeKeepAliveClient(kc, k8s.BatchV1Api);
  const cfg = parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: b.bed.env.KAFKA_BROKERS, KAFKA_TOPIC: topic, JOB_NAMESPACE: limitNs });
  const { loadJobTemplate } = await import('../src/controller/kube.js');
  const template = loadJobTemplate(join(repoRoot, 'test', 'fixtures', 'suspended-job.yaml'));
  const policy = { allowedCommands: cfg.ALLOWED_COMMANDS, secretsDir: cfg.SECRETS_DIR, maxMessageBytes: cfg.MAX_MESSAGE_BYTES };
  let next = 0;
  const make = () => {
    const i = next++;
    return buildJob({ topic: 'limit', partition: i % PARTITIONS, offset: String(i) }, parseMessage(Buffer.from(value(i)), policy), cfg, template);
  };
  let loopCpu = { clientMsPerJob: 0, machineBusyPct: 0 };
  const loop = async (count: number, concurrency: number): Promise<number> => {
    const jobs = Array.from({ length: count }, make);
    let k = 0;
    const t = performance.now();
    const m0 = machineCpu();
    const c0 = process.cpuUsage();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (k < jobs.length) await saBatch.createNamespacedJob({ namespace: limitNs, body: jobs[k++]! });
      }),
    );
    const c1 = process.cpuUsage(c0);
    loopCpu = { clientMsPerJob: (c1.user + c1.system) / 1000 / count, machineBusyPct: busyPct(m0, machineCpu()) };
    return count / ((performance.now() - t) / 1000);
  };
  let best = { c: 0, rate: 0 };
  const probes: string[] = [];
  for (const c of [8, 16, 32, 64, 128]) {
    const rate = await loop(200, c);
    probes.push(`${c}:${rate.toFixed(0)}`);
    if (rate > best.rate) best = { c, rate };
  }
  const limitBefore = await loop(BACKLOG, best.c);

  // The controller on the backlog.
  const ns = 'bench-controller';
  const kubeconfig = await b.namespace(ns);
  const seen: number[] = [];
  const stopWatch = await watchJobs(b.kc, ns, () => seen.push(performance.now()));
  const t0 = performance.now();
  const controller = new ControllerProcess(b.controllerEnv(kubeconfig, ns, topic), controllerNodeArgs).start();
  const pid = controller.child!.pid!;
  await waitFor(() => seen.length >= 1, { timeoutMs: 60_000, intervalMs: 10, description: 'the first Job' });
  const cpu0 = cpuMs(pid);
  const m0 = machineCpu();
  await waitFor(() => seen.length >= BACKLOG, { timeoutMs: 600_000, intervalMs: 50, description: `${BACKLOG} Jobs from the controller` });
  const ctlMsPerJob = (cpuMs(pid) - cpu0) / (BACKLOG - 1);
  const ctlBusy = busyPct(m0, machineCpu());
  const tEnd = seen[BACKLOG - 1]!;
  await controller.stop();
  await stopWatch();
  const ctlTotalS = (tEnd - t0) / 1000;
  const ctlCreateS = (tEnd - seen[0]!) / 1000;

  const cpuBefore = loopCpu;
  const limitAfter = await loop(BACKLOG, best.c);
  say(
    `  cpu: controller ${ctlMsPerJob.toFixed(2)} ms/Job with the machine ${ctlBusy}% busy; create loop ${cpuBefore.clientMsPerJob.toFixed(2)} / ${loopCpu.clientMsPerJob.toFixed(2)} ms/Job (client side, before/after) with the machine ${cpuBefore.machineBusyPct}% / ${loopCpu.machineBusyPct}% busy`,
  );
  say(
    `  limit loop: concurrency probes (jobs/s) ${probes.join(' ')}; at ${best.c}: ${limitBefore.toFixed(1)} before, ${limitAfter.toFixed(1)} after the controller`,
  );
  return {
    backlog: BACKLOG,
    controller_total_s: +ctlTotalS.toFixed(2),
    controller_startup_s: +((seen[0]! - t0) / 1000).toFixed(2),
    controller_jobs_per_s: +(BACKLOG / ctlCreateS).toFixed(1),
    controller_jobs_per_s_incl_startup: +(BACKLOG / ctlTotalS).toFixed(1),
    limit_jobs_per_s: +Math.max(limitBefore, limitAfter).toFixed(1),
    limit_concurrency: best.c,
  };
}

async function latency(b: Bench): Promise<Record<string, number>> {
  const topic = 'bench-latency';
  await b.admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
  const ns = 'bench-latency';
  const kubeconfig = await b.namespace(ns);
  const created = new Map<string, number>();
  const stopWatch = await watchJobs(b.kc, ns, (j) => created.set(j.metadata!.annotations!['mcp-job-controller.io/job-id']!, Date.now()));
  const controller = new ControllerProcess(b.controllerEnv(kubeconfig, ns, topic), controllerNodeArgs).start();
  await controller.ready();
  await sleep(1000);
  const sentAt = new Map<string, number>();
  const rate = 20;
  const seconds = 30;
  const start = Date.now();
  for (let i = 0; i < rate * seconds; i++) {
    const due = start + (i * 1000) / rate;
    if (due > Date.now()) await sleep(due - Date.now());
    const id = `bench-${100_000 + i}`;
    sentAt.set(id, Date.now());
    await b.producer.send({ topic, acks: -1, messages: [{ value: value(100_000 + i), partition: i % PARTITIONS }] });
  }
  await waitFor(() => created.size >= rate * seconds, { timeoutMs: 60_000, description: 'latency Jobs' });
  await controller.stop();
  await stopWatch();
  const lat = [...sentAt].map(([id, t]) => created.get(id)! - t);
  return { messages: lat.length, rate_per_s: rate, p50_ms: pct(lat, 50), p95_ms: pct(lat, 95), p99_ms: pct(lat, 99), max_ms: Math.max(...lat) };
}

async function memory(b: Bench): Promise<Record<string, number>> {
  const topic = 'bench-memory';
  await b.admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
  const ns = 'bench-memory';
  const kubeconfig = await b.namespace(ns);
  const batch = b.kc.makeApiClient(k8s.BatchV1Api);
  // Jobs "finish" as soon as they exist: deleted like the TTL controller would, so the active
  // count stays small and only the number of messages grows.
  let deleted = 0;
  const stopWatch = await watchJobs(
    b.kc,
    ns,
    (j) =>
      void batch.deleteNamespacedJob({ name: j.metadata!.name!, namespace: ns, propagationPolicy: 'Background' }).then(
        () => deleted++,
        () => undefined,
      ),
  );
  await produceAll(b.producer, topic, 200_000, 1000);
  const { freePort } = await import('./testbed/proc.js');
  const port = await freePort();
  const controller = new ControllerProcess(
    b.controllerEnv(kubeconfig, ns, topic, { MAX_ACTIVE_JOBS: '100', METRICS_PORT: String(port) }),
    controllerNodeArgs,
  ).start();
  const pid = controller.child!.pid!;
  /** Live heap as the controller's own metrics report it: what it keeps, not what V8 has reserved. */
  const heapMb = async () => {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return Number(/^mcp_job_controller_nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1] ?? NaN) / 2 ** 20;
  };
  const committed = async () => {
    const [c] = await b.admin.fetchOffsets({ groupId: `${topic}-group`, topics: [topic] });
    return c!.partitions.reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
  };
  const samples: number[] = [];
  const sampler = setInterval(() => samples.push(rssKb(pid)), 200);
  // RSS is read once the controller has gone idle: V8 gives back memory after ~10 s without work,
  // so a busy process's RSS says more about when the last GC ran than about what it keeps.
  const idleRss = async () => {
    let min = Infinity;
    for (let i = 0; i < 30; i++) {
      min = Math.min(min, rssKb(pid));
      await sleep(500);
    }
    return min;
  };
  await waitFor(async () => (await committed()) >= 1000, { timeoutMs: 300_000, intervalMs: 200, description: '1,000 messages' });
  const at1k = await idleRss();
  const heap1k = await heapMb();
  await produceAll(b.producer, topic, 300_000, MEMORY_MESSAGES - 1000);
  await waitFor(async () => (await committed()) >= MEMORY_MESSAGES, { timeoutMs: 900_000, intervalMs: 500, description: `${MEMORY_MESSAGES} messages` });
  const at10k = await idleRss();
  const heap10k = await heapMb();
  clearInterval(sampler);
  await controller.stop();
  await stopWatch();
  return {
    rss_after_1k_mb: +(at1k / 1024).toFixed(1),
    [`rss_after_${MEMORY_MESSAGES / 1000}k_mb`]: +(at10k / 1024).toFixed(1),
    peak_rss_mb: +(Math.max(...samples) / 1024).toFixed(1),
    growth_pct: +(((at10k - at1k) / at1k) * 100).toFixed(1),
    heap_used_after_1k_mb: +heap1k.toFixed(1),
    [`heap_used_after_${MEMORY_MESSAGES / 1000}k_mb`]: +heap10k.toFixed(1),
    jobs_deleted_by_bench: deleted,
  };
}

async function main(): Promise<void> {
  const bed = await Testbed.start({ initialRebalanceDelayMs: 3000 });
  try {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(bed.env.KUBECONFIG);
    const kafka = new Kafka({ clientId: 'bench', brokers: [bed.env.KAFKA_BROKERS], logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await Promise.all([admin.connect(), producer.connect()]);
    const b = new Bench(bed, kc, kafka, admin, producer);
    const { stdout: kver } = await promisify(execFile)(join(bed.env.KUBEBUILDER_ASSETS!, 'kubectl'), ['version', '--client', '-o', 'json']);
    say(
      `machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB; node ${process.version}; kubernetes ${JSON.parse(kver).clientVersion.gitVersion}; kafka ${process.env.TESTBED_KAFKA_VERSION ?? '4.4.0'} (group.initial.rebalance.delay.ms=3000)`,
    );

    const only = process.env.BENCH_ONLY;
    if (only === 'throughput') {
      const t = await throughput(b);
      say(
        `throughput: ${Object.entries(t)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')} ratio=${(t.controller_jobs_per_s! / t.limit_jobs_per_s!).toFixed(2)}`,
      );
      return;
    }
    if (only === 'cost') {
      const c = await jobCost(bed, b);
      say(
        `job cost:   ${Object.entries(c)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`,
      );
      return;
    }
    if (only === 'memory') {
      const m = await memory(b);
      say(
        `memory:     ${Object.entries(m)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`,
      );
      return;
    }
    const cost = await jobCost(bed, b);
    say(
      `job cost:   ${Object.entries(cost)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
    const tp = await throughput(b);
    const ratio = tp.controller_jobs_per_s! / tp.limit_jobs_per_s!;
    const ratioCold = tp.controller_jobs_per_s_incl_startup! / tp.limit_jobs_per_s!;
    say(
      `throughput: ${Object.entries(tp)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')} ratio_incl_startup=${ratioCold.toFixed(2)}`,
    );
    const lat = await latency(b);
    say(
      `latency:    ${Object.entries(lat)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
    const mem = await memory(b);
    say(
      `memory:     ${Object.entries(mem)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')}`,
    );
    say('');
    say('| measure | value | target |');
    say('|---|---|---|');
    say(`| throughput_ratio (controller / create loop, create phase) | ${ratio.toFixed(2)} | ≥ 0.9 |`);
    say(`| same, counting the controller's start and group join | ${ratioCold.toFixed(2)} | |`);
    say(`| produce→Job p50 / p95 / p99 at 20 msg/s | ${lat.p50_ms} / ${lat.p95_ms} / ${lat.p99_ms} ms | p99 < 250 ms |`);
    say(`| job overhead over bare node + bare MCP initialize | ${cost.job_overhead_ms} ms | < 300 ms |`);
    say(`| controller RSS growth 1k → ${MEMORY_MESSAGES / 1000}k messages | ${mem.growth_pct}% | < 10% |`);
    await Promise.all([admin.disconnect(), producer.disconnect()]);
    say(`throughput_ratio=${ratio.toFixed(2)}`);
  } finally {
    await bed.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
