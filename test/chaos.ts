/**
 * `npm run chaos`: the fault-injection suite. On its own test bed it streams messages (valid and
 * malformed) at the controller while it kills the controller, restarts the broker, takes the
 * API server away, and fills a ResourceQuota. After each scenario it checks, from the cluster
 * and the topics alone, that every valid message has exactly one Job and every malformed one
 * exactly one dead-letter record, and that the active-Job cap held. One line per scenario, then
 * `chaos: N scenarios, lost=L duplicates=D`; a non-zero exit if anything was lost or doubled.
 */
import { randomBytes } from 'node:crypto';
import * as k8s from '@kubernetes/client-node';
import { Kafka, logLevel, Partitioners, type Admin, type Producer } from 'kafkajs';
import { isFinished } from '../src/shared/identity.js';
import { DlqHeader } from '../src/controller/dead-letter.js';
import { Annotation, jobSelector } from '../src/shared/identity.js';
import { PartitionReader } from '../src/shared/read-message.js';
import { sleep, waitFor } from '../src/shared/wait.js';
import { applyControllerRbac, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from './support.js';
import { Testbed } from './testbed/testbed.js';

const CAP = 8;
const PARTITIONS = 3;
const say = (s: string) => process.stdout.write(`${s}\n`);
const rand = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

/** Malformed messages of every kind, with the dead-letter reason each must get. */
const MALFORMED: { kind: string; reason: string; value: () => Buffer | string | null }[] = [
  { kind: 'not-json', reason: 'invalid-json', value: () => 'this is not json' },
  { kind: 'truncated', reason: 'invalid-json', value: () => valid('t').slice(0, 40) },
  { kind: 'huge', reason: 'message-too-large', value: () => JSON.stringify({ jobID: 'huge', jobType: 'server-init', payload: 'x'.repeat(1_200_000) }) },
  { kind: 'binary', reason: 'invalid-json', value: () => randomBytes(64) },
  { kind: 'wrong-types', reason: 'invalid-envelope', value: () => JSON.stringify({ jobID: 17, jobType: ['server-init'], payload: 3 }) },
  { kind: 'unknown-job-type', reason: 'unknown-job-type', value: () => JSON.stringify({ jobID: 'u', jobType: 'mine-bitcoin', payload: '{}' }) },
  {
    kind: 'disallowed-command',
    reason: 'command-not-allowed',
    value: () => JSON.stringify({ jobID: 'd', jobType: 'server-init', payload: { mcpServers: { x: { command: 'sh', args: ['-c', 'reboot'] } } } }),
  },
  {
    kind: 'envfile-traversal',
    reason: 'env-file-outside-secrets',
    value: () => JSON.stringify({ jobID: 'e', jobType: 'server-init', payload: { mcpServers: { x: { command: 'node', envFile: '../../../etc/passwd' } } } }),
  },
  { kind: 'empty', reason: 'empty-message', value: () => '' },
  { kind: 'not-a-config', reason: 'invalid-payload', value: () => JSON.stringify({ jobID: 'n', jobType: 'server-init', payload: { servers: [] } }) },
];

let seq = 0;
function valid(id: string): string {
  return JSON.stringify({ jobID: id, jobType: 'server-init', payload: JSON.stringify({ mcpServers: { fixture: { command: 'node', args: [FIXTURE] } } }) });
}

interface Sent {
  coords: string;
  jobID?: string;
  malformed?: { kind: string; reason: string };
}

/** The controller as a Deployment would keep it: restarted whenever it exits. */
class Supervisor {
  current?: ControllerProcess;
  restarts = 0;
  private stopped = false;
  constructor(private readonly env: Record<string, string>) {}

  start(): void {
    const p = new ControllerProcess(this.env).start();
    this.current = p;
    p.child!.once('exit', () => {
      if (this.stopped || this.current !== p) return;
      this.restarts++;
      setTimeout(() => !this.stopped && this.start(), 1000);
    });
  }

  async kill(): Promise<void> {
    const p = this.current!;
    this.current = undefined;
    await p.kill();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.current?.stop();
  }
}

class Chaos {
  sent: Sent[] = [];
  maxActive = 0;
  private watch?: k8s.ListWatch<k8s.V1Job>;

  constructor(
    readonly bed: Testbed,
    readonly kc: k8s.KubeConfig,
    readonly ns: string,
    readonly topic: string,
    readonly group: string,
    readonly admin: Admin,
    readonly producer: Producer,
    readonly reader: PartitionReader,
  ) {}

  /** Watches the namespace from outside the controller, keeping the highest active count. */
  async watchCap(): Promise<void> {
    const batch = this.kc.makeApiClient(k8s.BatchV1Api);
    const w = new k8s.ListWatch<k8s.V1Job>(
      `/apis/batch/v1/namespaces/${this.ns}/jobs`,
      new k8s.Watch(this.kc),
      () => batch.listNamespacedJob({ namespace: this.ns }),
      false,
    );
    const count = () => {
      this.maxActive = Math.max(this.maxActive, w.list().filter((j) => !isFinished(j)).length);
    };
    w.on('add', count);
    w.on('update', count);
    w.on('error', () => setTimeout(() => void w.start().catch(() => undefined), 2000));
    await w.start();
    this.watch = w;
  }

  async stopWatch(): Promise<void> {
    await this.watch?.stop();
  }

  /** Sends one message and records where it landed; only acknowledged sends count. */
  async send(malformedEvery = 0): Promise<void> {
    const n = seq++;
    const m = malformedEvery > 0 && n % malformedEvery === malformedEvery - 1 ? MALFORMED[Math.floor(n / malformedEvery) % MALFORMED.length]! : undefined;
    const value = m ? m.value() : valid(`chaos-${n}`);
    const [r] = await this.producer.send({ topic: this.topic, acks: -1, messages: [{ value: value as Buffer | string | null, partition: n % PARTITIONS }] });
    this.sent.push({ coords: `${r!.partition}/${r!.baseOffset}`, ...(m ? { malformed: { kind: m.kind, reason: m.reason } } : { jobID: `chaos-${n}` }) });
  }

  async stream(count: number, perSecond: number, malformedEvery: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      await this.send(malformedEvery);
      await sleep(1000 / perSecond);
    }
  }

  /** Everything sent has been handled: the group's committed offsets reached every partition's end. */
  async caughtUp(): Promise<boolean> {
    const [committed] = await this.admin.fetchOffsets({ groupId: this.group, topics: [this.topic] });
    const ends = await this.admin.fetchTopicOffsets(this.topic);
    return ends.every((e) => committed!.partitions.find((p) => p.partition === e.partition)?.offset === e.high);
  }

  /** Counts, from the cluster and the topics alone. */
  async audit(): Promise<{ jobs: number; duplicates: number; lost: number; deadLettered: number; wrongReason: number }> {
    const batch = this.kc.makeApiClient(k8s.BatchV1Api);
    const jobs = (await batch.listNamespacedJob({ namespace: this.ns, labelSelector: jobSelector(this.group) })).items;
    const byCoords = new Map<string, number>();
    const byJobID = new Map<string, number>();
    for (const j of jobs) {
      const a = j.metadata!.annotations!;
      const c = `${a[Annotation.partition]}/${a[Annotation.offset]}`;
      byCoords.set(c, (byCoords.get(c) ?? 0) + 1);
      byJobID.set(a[Annotation.jobID]!, (byJobID.get(a[Annotation.jobID]!) ?? 0) + 1);
    }
    const dlq = new Map<string, string[]>();
    const ends = await this.admin.fetchTopicOffsets(`${this.topic}.dlq`);
    for (const e of ends) {
      for await (const rec of this.reader.range(`${this.topic}.dlq`, e.partition, BigInt(e.low), BigInt(e.high))) {
        if (rec.headers[DlqHeader.stage] !== 'controller') continue;
        const c = `${rec.headers[DlqHeader.partition]}/${rec.headers[DlqHeader.offset]}`;
        dlq.set(c, [...(dlq.get(c) ?? []), rec.headers[DlqHeader.reason] ?? '']);
      }
    }
    let lost = 0;
    let duplicates = 0;
    let wrongReason = 0;
    for (const s of this.sent) {
      if (s.malformed) {
        const recs = dlq.get(s.coords) ?? [];
        if (recs.length === 0) lost++;
        duplicates += Math.max(0, recs.length - 1);
        if (recs.length && recs[0] !== s.malformed.reason) wrongReason++;
        if (byCoords.has(s.coords)) duplicates++; // a Job for a malformed message is a second outcome
      } else {
        const n = byCoords.get(s.coords) ?? 0;
        if (n === 0) lost++;
        duplicates += Math.max(0, n - 1) + Math.max(0, (byJobID.get(s.jobID!) ?? 0) - 1);
      }
    }
    return { jobs: jobs.length, duplicates, lost, deadLettered: [...dlq.values()].reduce((n, r) => n + r.length, 0), wrongReason };
  }
}

interface Scenario {
  name: string;
  /** Runs the fault while messages flow; resolves when the fault is over (the clock for recovery starts). */
  run: (c: Chaos, sup: Supervisor) => Promise<string>;
}

const scenarios: Scenario[] = [
  {
    name: 'controller-sigkill-x10',
    run: async (c, sup) => {
      const flow = c.stream(60, 3, 6);
      for (let i = 0; i < 10; i++) {
        await sleep(rand(1500, 4500));
        await sup.kill();
        sup.start();
      }
      await flow;
      return '10 SIGKILLs';
    },
  },
  {
    name: 'broker-restart',
    run: async (c) => {
      await c.stream(15, 5, 5);
      await c.bed.kafka.stop();
      await sleep(5000);
      await c.bed.kafka.start();
      await c.stream(15, 5, 5);
      return 'broker stopped 5 s';
    },
  },
  {
    name: 'apiserver-down-30s',
    run: async (c) => {
      await c.stream(10, 5, 5);
      await c.bed.control.stopApiserver();
      await c.stream(20, 1, 5); // keep producing through the outage (~20 s)
      await sleep(10_000);
      const restarted = await c.bed.control.ensureRunning();
      await c.stream(10, 5, 5);
      return `API server stopped 30 s; restarted ${restarted.join(', ')}`;
    },
  },
  {
    name: 'resourcequota-full',
    run: async (c) => {
      const core = c.kc.makeApiClient(k8s.CoreV1Api);
      const batch = c.kc.makeApiClient(k8s.BatchV1Api);
      const existing = (await batch.listNamespacedJob({ namespace: c.ns })).items.length;
      await core.createNamespacedResourceQuota({
        namespace: c.ns,
        body: { metadata: { name: 'chaos' }, spec: { hard: { 'count/jobs.batch': String(existing + 3) } } },
      });
      await sleep(1000);
      await c.stream(20, 4, 5);
      await sleep(10_000);
      await core.deleteNamespacedResourceQuota({ name: 'chaos', namespace: c.ns });
      return `quota of ${existing + 3} Jobs held 15 s`;
    },
  },
  {
    name: 'malformed-burst',
    run: async (c) => {
      await c.stream(120, 8, 2); // 60 malformed of 10 kinds between 60 valid
      return `${MALFORMED.length} kinds of malformed messages`;
    },
  },
];

async function main(): Promise<number> {
  const bed = await Testbed.start();
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(bed.env.KUBECONFIG);
  const ns = 'chaos';
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: ns, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } } });
  await applyControllerRbac(kc, ns);
  const kafka = new Kafka({ clientId: 'chaos', brokers: [bed.env.KAFKA_BROKERS], logLevel: logLevel.NOTHING, retry: { retries: 10 } });
  const admin = kafka.admin();
  await admin.connect();
  const topic = 'chaos-jobs';
  const group = 'chaos-controller';
  await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
  // Idempotent, so a send retried across the broker restart cannot put a message on the topic twice.
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const reader = new PartitionReader({ connection: { brokers: [bed.env.KAFKA_BROKERS], clientId: 'chaos-audit', logLevel: logLevel.NOTHING } });
  const env = {
    KUBECONFIG: await serviceAccountKubeconfig(kc, ns, 'mcp-job-controller'),
    KAFKA_BROKERS: bed.env.KAFKA_BROKERS,
    KAFKA_TOPIC: topic,
    KAFKA_CONSUMER_GROUP: group,
    JOB_NAMESPACE: ns,
    MAX_ACTIVE_JOBS: String(CAP),
    METRICS_PORT: '0',
    KAFKA_SESSION_TIMEOUT_MS: '10000',
    JOB_BACKOFF_LIMIT: '4',
  };
  const chaos = new Chaos(bed, kc, ns, topic, group, admin, producer, reader);
  await chaos.watchCap();
  const sup = new Supervisor(env);
  sup.start();
  await waitFor(() => sup.current?.logs.some((l) => l.msg === 'joined consumer group'), { timeoutMs: 60_000, description: 'controller ready' });

  let lostTotal = 0;
  let dupTotal = 0;
  let capBroken = false;
  try {
    for (const [i, sc] of scenarios.entries()) {
      const before = chaos.sent.length;
      const t0 = Date.now();
      const what = await sc.run(chaos, sup);
      const faultOver = Date.now();
      await waitFor(() => chaos.caughtUp(), { timeoutMs: 300_000, intervalMs: 500, description: `${sc.name}: the controller to catch up` });
      const recovery = (Date.now() - faultOver) / 1000;
      const a = await chaos.audit();
      const mine = chaos.sent.slice(before);
      const malformed = mine.filter((s) => s.malformed).length;
      lostTotal = a.lost;
      dupTotal = a.duplicates;
      capBroken ||= chaos.maxActive > CAP;
      say(
        `scenario ${i + 1} ${sc.name}: ${what}; messages=${mine.length} (valid=${mine.length - malformed} malformed=${malformed}) jobs=${a.jobs} duplicates=${a.duplicates} lost=${a.lost} dead-lettered=${a.deadLettered} wrong-reason=${a.wrongReason} max-active=${chaos.maxActive}/${CAP} controller-restarts=${sup.restarts} recovery=${recovery.toFixed(1)}s elapsed=${((faultOver - t0) / 1000).toFixed(0)}s`,
      );
    }
  } finally {
    await sup.stop();
    await chaos.stopWatch();
    await reader.close();
    await producer.disconnect().catch(() => undefined);
    await admin.disconnect().catch(() => undefined);
    await bed.stop({ keepState: process.env.TESTBED_KEEP === '1' });
  }
  const total = chaos.sent.length;
  const malformed = chaos.sent.filter((s) => s.malformed).length;
  say(`totals: messages=${total} valid=${total - malformed} malformed=${malformed} max-active=${chaos.maxActive}/${CAP}${capBroken ? ' CAP EXCEEDED' : ''}`);
  say(`chaos: ${scenarios.length} scenarios, lost=${lostTotal} duplicates=${dupTotal}`);
  return lostTotal === 0 && dupTotal === 0 && !capBroken ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(2);
  },
);
