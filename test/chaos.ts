/**
 * `npm run chaos`: the fault-injection suite. On its own test bed it streams messages (valid and
 * malformed) at the controller while it kills the controller, restarts the broker, takes the
 * API server away, and fills a ResourceQuota. After each scenario it checks, from the cluster
 * and the topics alone, that every valid message has exactly one Job and every malformed one
 * exactly one dead-letter record, and that the active-Job cap held. One line per scenario, then
 * `chaos: N scenarios, lost=L duplicates=D`; a non-zero exit if anything was lost or doubled.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { Kafka, logLevel, Partitioners, type Admin, type Producer } from 'kafkajs';
import { isFinished } from '../src/shared/contract/identity.js';
import { DlqHeader } from '../src/controller/reporting/dead-letter.js';
import { Annotation, jobSelector } from '../src/shared/contract/identity.js';
import { PartitionReader } from '../src/shared/kafka/read-message.js';
import { sleep, waitFor } from '../src/shared/wait.js';
import { applyControllerRbac, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from './support.js';
import { Testbed } from './testbed/testbed.js';
import { repoRoot } from './testbed/cache.js';
import { javaProduce } from './testbed/java-producer.js';
import { LossHeader } from '../src/controller/reporting/dead-letter.js';

const CAP = 8;
const PARTITIONS = 3;
const say = (s: string) => process.stdout.write(`${s}\n`);
const rand = (lo: number, hi: number) => lo + Math.random() * (hi - lo);

/** Malformed messages of every kind, with the dead-letter reason each must get. */
const MALFORMED: { kind: string; reason: string; value: () => Buffer | string | null }[] = [
  { kind: 'not-json', reason: 'invalid-json', value: () => 'this is not json' },
  { kind: 'truncated', reason: 'invalid-json', value: () => valid('t').slice(0, 40) },
  // Over MAX_MESSAGE_BYTES, incompressible, and so close to the topic's 1 MiB limit (Kafka's default) that
  // its dead-letter record, with its headers, is over it: it must be written truncated.
  { kind: 'huge', reason: 'message-too-large', value: () => randomBytes(1_048_420) },
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
  /** Deleted by retention before the controller consumed it: it must be recorded in a gap record. */
  deleted?: boolean;
}

/** The controller as a Deployment would keep it: restarted whenever it exits. */
class Supervisor {
  current?: ControllerProcess;
  restarts = 0;
  /** Exit codes of every controller process that ended, in order. */
  exits: (number | null)[] = [];
  private stopped = false;
  constructor(public env: Record<string, string>) {}

  start(): void {
    const p = new ControllerProcess(this.env).start();
    this.current = p;
    p.child!.once('exit', (code) => {
      this.exits.push(code);
      if (this.stopped || this.current !== p) return;
      this.restarts++;
      // Unless the harness replaced (or killed) it meanwhile: never two controllers at once.
      setTimeout(() => !this.stopped && this.current === p && this.start(), 1000);
    });
  }

  /** SIGTERM, as a rolling update does, without the restart; resolves the exit code. */
  async terminate(): Promise<number | null> {
    const p = this.current!;
    this.current = undefined;
    return p.stop();
  }

  async ready(): Promise<void> {
    await waitFor(() => this.current?.logs.some((l) => l.msg === 'joined consumer group'), { timeoutMs: 90_000, description: 'controller ready' });
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
  async send(malformedEvery = 0, kind?: string): Promise<void> {
    const n = seq++;
    const m = kind
      ? MALFORMED.find((x) => x.kind === kind)!
      : malformedEvery > 0 && n % malformedEvery === malformedEvery - 1
        ? MALFORMED[Math.floor(n / malformedEvery) % MALFORMED.length]!
        : undefined;
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

  /** Every dead-letter record the controller wrote, by source `partition/offset`. */
  async deadLetters(): Promise<Map<string, { reason: string; truncated: boolean; last?: string }[]>> {
    const dlq = new Map<string, { reason: string; truncated: boolean; last?: string }[]>();
    for (const e of await this.admin.fetchTopicOffsets(`${this.topic}.dlq`)) {
      for await (const rec of this.reader.range(`${this.topic}.dlq`, e.partition, BigInt(e.low), BigInt(e.high))) {
        if (rec.headers[DlqHeader.stage] !== 'controller') continue;
        const c = `${rec.headers[DlqHeader.partition]}/${rec.headers[DlqHeader.offset]}`;
        const r = {
          reason: rec.headers[DlqHeader.reason] ?? '',
          truncated: rec.headers['mcp.dlq.truncated'] === 'true',
          last: rec.headers[LossHeader.lastOffset],
        };
        dlq.set(c, [...(dlq.get(c) ?? []), r]);
      }
    }
    return dlq;
  }

  /**
   * Every Job ever made per message, by uid: the ones still there, and the ones the TTL deleted
   * after their outcome was recorded on the results topic (a Job is only deleted after that).
   */
  async jobsEver(): Promise<{ live: k8s.V1Job[]; uids: Map<string, Set<string>>; jobIDs: Map<string, number> }> {
    const batch = this.kc.makeApiClient(k8s.BatchV1Api);
    const live = (await batch.listNamespacedJob({ namespace: this.ns, labelSelector: jobSelector(this.group) })).items;
    const uids = new Map<string, Set<string>>();
    const add = (coords: string, uid: string) => uids.set(coords, (uids.get(coords) ?? new Set()).add(uid));
    const jobIDs = new Map<string, number>();
    for (const j of live) {
      const a = j.metadata!.annotations!;
      add(`${a[Annotation.partition]}/${a[Annotation.offset]}`, j.metadata!.uid!);
      jobIDs.set(a[Annotation.jobID]!, (jobIDs.get(a[Annotation.jobID]!) ?? 0) + 1);
    }
    for (const e of await this.admin.fetchTopicOffsets(RESULTS)) {
      for await (const rec of this.reader.range(RESULTS, e.partition, BigInt(e.low), BigInt(e.high))) {
        const o = JSON.parse(String(rec.value)) as { uid?: string; source?: { partition: number; offset: string } };
        if (o.uid && o.source) add(`${o.source.partition}/${o.source.offset}`, o.uid);
      }
    }
    return { live, uids, jobIDs };
  }

  /** Counts, from the cluster and the topics alone. */
  async audit(): Promise<{ jobs: number; duplicates: number; lost: number; gap: number; deadLettered: number; wrongReason: number; truncated: number }> {
    const { live, uids, jobIDs } = await this.jobsEver();
    const dlq = await this.deadLetters();
    const gaps = [...dlq.entries()].flatMap(([c, rs]) =>
      rs
        .filter((r) => r.reason === 'retention-gap')
        .map((r) => ({ partition: c.split('/')[0], from: BigInt(c.split('/')[1]!), to: BigInt(r.last ?? c.split('/')[1]!) })),
    );
    const inGap = (coords: string) => {
      const [p, o] = coords.split('/');
      return gaps.some((g) => g.partition === p && BigInt(o!) >= g.from && BigInt(o!) <= g.to);
    };
    let lost = 0;
    let duplicates = 0;
    let wrongReason = 0;
    let gap = 0;
    let truncated = 0;
    for (const s of this.sent) {
      const n = uids.get(s.coords)?.size ?? 0;
      const recs = (dlq.get(s.coords) ?? []).filter((r) => r.reason !== 'retention-gap');
      if (s.deleted) {
        if (inGap(s.coords)) gap++;
        else if (n === 0 && recs.length === 0) lost++;
        continue;
      }
      if (s.malformed) {
        if (recs.length === 0) lost++;
        duplicates += Math.max(0, recs.length - 1);
        if (recs.length && recs[0]!.reason !== s.malformed.reason) wrongReason++;
        if (recs.some((r) => r.truncated)) truncated++;
        if (n > 0) duplicates++; // a Job for a malformed message is a second outcome
      } else {
        if (n === 0) lost++;
        duplicates += Math.max(0, n - 1) + Math.max(0, (jobIDs.get(s.jobID!) ?? 0) - 1);
      }
    }
    return { jobs: live.length, duplicates, lost, gap, deadLettered: [...dlq.values()].reduce((n, r) => n + r.length, 0), wrongReason, truncated };
  }

  /**
   * Right after a graceful stop: per partition, the message at the committed offset must have
   * neither a Job nor a record — otherwise something that existed was left uncommitted.
   */
  async committedBehindExisting(): Promise<{ behind: number; committed: number }> {
    const [committed] = await this.admin.fetchOffsets({ groupId: this.group, topics: [this.topic] });
    const { uids } = await this.jobsEver();
    const dlq = await this.deadLetters();
    let behind = 0;
    let total = 0;
    for (const p of committed!.partitions) {
      total += Number(p.offset);
      const at = `${p.partition}/${p.offset}`;
      if ((uids.get(at)?.size ?? 0) > 0 || dlq.has(at)) behind++;
    }
    return { behind, committed: total };
  }
}

const RESULTS = 'chaos-results';
const WITHOUT_ZSTD = pathToFileURL(join(repoRoot, 'dist', 'test', 'fixtures', 'without-zstd.js')).href;

interface Scenario {
  name: string;
  /** Runs the fault while messages flow; resolves when the fault is over (the clock for recovery starts). */
  run: (c: Chaos, sup: Supervisor, env: Record<string, string>) => Promise<string>;
  /** Two controllers run at once: the cap is per controller (the Deployment runs one), so its peak is shown but not judged. */
  twoControllers?: boolean;
  /** What must hold after the scenario beyond lost=0 duplicates=0; returns why not. */
  check?: (now: Audit, before: Audit) => string | undefined;
}

type Audit = Awaited<ReturnType<Chaos['audit']>>;

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
  {
    name: 'sigterm-mid-burst',
    run: async (c, sup) => {
      const flow = c.stream(60, 40, 6); // faster than the cap lets Jobs run: creates wait at the cap
      await sleep(1200);
      const code = await sup.terminate();
      const { behind, committed } = await c.committedBehindExisting();
      await flow;
      sup.start();
      if (code !== 0) throw new Error(`SIGTERM ended the controller with exit ${code}, not 0`);
      if (behind > 0) throw new Error(`after SIGTERM, ${behind} partition(s) left a message with a Job or record uncommitted`);
      return `SIGTERM mid-burst: exit ${code}; committed at exit ${committed} = messages with a Job or record (partitions behind: ${behind})`;
    },
  },
  {
    name: 'undecodable-record',
    run: async (c, sup, env) => {
      // A controller that cannot decode zstd (its codec taken out), met by a zstd batch from Kafka's Java
      // producer with a backlog in front of and behind it, as after a controller was down: the valid
      // messages around it must still get their Jobs.
      await sup.terminate();
      await c.stream(9, 20, 0);
      const [r] = await javaProduce({
        home: c.bed.kafka.home,
        brokers: c.bed.env.KAFKA_BROKERS,
        topic: c.topic,
        partition: 0,
        compression: 'zstd',
        values: [valid('chaos-zstd')],
      });
      c.sent.push({ coords: `${r!.partition}/${r!.offset}`, malformed: { kind: 'undecodable', reason: 'undecodable-record' } });
      await c.stream(9, 20, 0);
      sup.env = { ...env, NODE_OPTIONS: `--import=${WITHOUT_ZSTD}` };
      const exitsBefore = sup.exits.length;
      sup.start();
      const crashed = await waitFor(() => sup.exits.slice(exitsBefore).find((code) => code !== 0 && code !== null), {
        timeoutMs: 60_000,
        description: 'the controller to exit non-zero on the undecodable record',
      });
      sup.env = env;
      await sup.kill();
      sup.start();
      return `a zstd batch the controller could not decode: it exited ${crashed}, was restarted, the record dead-lettered`;
    },
  },
  {
    name: 'dead-letter-over-limit',
    // The dead-letter topic took the source's 1 MiB limit (the broker allows 2 MiB): only then is the record over it.
    check: (now, before) => (now.truncated > before.truncated ? undefined : 'no dead-letter record was truncated'),
    run: async (c) => {
      for (let i = 0; i < 3; i++) {
        await c.stream(3, 6, 0);
        await c.send(0, 'huge');
      }
      return "3 records whose dead-letter records are over the topic's 1 MiB max.message.bytes (Kafka's default)";
    },
  },
  {
    name: 'retention-gap',
    run: async (c, sup) => {
      await sup.terminate();
      const from = c.sent.length;
      await c.stream(24, 24, 0);
      const ends = await c.admin.fetchTopicOffsets(c.topic);
      // Retention passes the committed offset while the controller is down: all but the last 2 of each partition go.
      const cut = new Map(ends.map((e) => [e.partition, BigInt(e.high) - 2n]));
      await c.admin.deleteTopicRecords({ topic: c.topic, partitions: ends.map((e) => ({ partition: e.partition, offset: cut.get(e.partition)!.toString() })) });
      let deleted = 0;
      for (const m of c.sent.slice(from)) {
        const [p, o] = m.coords.split('/');
        if (BigInt(o!) < cut.get(Number(p))!) {
          m.deleted = true;
          deleted++;
        }
      }
      sup.start();
      return `retention deleted ${deleted} unconsumed messages while the controller was down`;
    },
  },
  {
    name: 'second-instance-rebalance',
    twoControllers: true,
    run: async (c, _sup, env) => {
      const flow = c.stream(60, 10, 5);
      await sleep(2000);
      const second = new ControllerProcess(env).start();
      await sleep(10_000);
      await second.stop();
      await flow;
      return 'a second controller joined mid-burst for 10 s, then left (two rebalances)';
    },
  },
  {
    name: 'ttl-expiry-redelivery',
    run: async (c, sup, env) => {
      // A 1 s TTL: a Job deleted before its offset is committed would be made again on redelivery.
      sup.env = { ...env, JOB_TTL_SECONDS_AFTER_FINISHED: '1' };
      await sup.kill();
      sup.start();
      const flow = c.stream(36, 6, 0);
      for (let i = 0; i < 3; i++) {
        await sleep(rand(1500, 3000));
        await sup.kill();
        await sleep(6000); // its Jobs finish and would pass their TTL before the redelivery
        sup.start();
      }
      await flow;
      sup.env = env;
      return '3 SIGKILLs with a 1 s TTL, 6 s down each';
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
  // Kafka's default max.message.bytes, set on the topic (the bed's broker allows more): the dead-letter
  // topic takes it over, so a near-limit record's dead-letter record meets the limit production has.
  await admin.createTopics({
    topics: [
      { topic, numPartitions: PARTITIONS, configEntries: [{ name: 'max.message.bytes', value: '1048588' }] },
      { topic: RESULTS, numPartitions: 1 },
    ],
    waitForLeaders: true,
  });
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
    MAX_MESSAGE_BYTES: '524288',
    RESULTS_TOPIC: RESULTS,
  };
  const chaos = new Chaos(bed, kc, ns, topic, group, admin, producer, reader);
  await chaos.watchCap();
  const sup = new Supervisor(env);
  sup.start();
  await waitFor(() => sup.current?.logs.some((l) => l.msg === 'joined consumer group'), { timeoutMs: 60_000, description: 'controller ready' });

  let lostTotal = 0;
  let dupTotal = 0;
  let gapTotal = 0;
  let failed = false;
  let ran = 0;
  let lastAudit: Audit = { jobs: 0, duplicates: 0, lost: 0, gap: 0, deadLettered: 0, wrongReason: 0, truncated: 0 };
  let capBroken = false;
  try {
    // CHAOS_ONLY=name,name runs those scenarios alone (after the first, which warms the controller up).
    const only = process.env.CHAOS_ONLY?.split(',');
    for (const [i, sc] of scenarios.entries()) {
      if (only && i > 0 && !only.includes(sc.name)) continue;
      const before = chaos.sent.length;
      const maxBefore = chaos.maxActive;
      const t0 = Date.now();
      ran++;
      let what: string;
      try {
        what = await sc.run(chaos, sup, env);
      } catch (err) {
        failed = true;
        what = `FAILED: ${(err as Error).message}`;
      }
      const faultOver = Date.now();
      const auditBefore = lastAudit;
      await waitFor(() => chaos.caughtUp(), { timeoutMs: 300_000, intervalMs: 500, description: `${sc.name}: the controller to catch up` }).catch((err) => {
        process.stderr.write(`controller log tail:\n${sup.current?.tail(40) ?? '(no controller running)'}\n`);
        throw err;
      });
      const recovery = (Date.now() - faultOver) / 1000;
      const a = await chaos.audit();
      lastAudit = a;
      const broken = sc.check?.(a, auditBefore);
      if (broken) {
        failed = true;
        what = `FAILED: ${broken}; ${what}`;
      }
      const mine = chaos.sent.slice(before);
      const malformed = mine.filter((s) => s.malformed).length;
      lostTotal = a.lost;
      dupTotal = a.duplicates;
      gapTotal = a.gap;
      const peak = chaos.maxActive;
      if (sc.twoControllers) chaos.maxActive = maxBefore;
      capBroken ||= chaos.maxActive > CAP;
      say(
        `scenario ${i + 1} ${sc.name}: ${what}; messages=${mine.length} (valid=${mine.length - malformed} malformed=${malformed}) jobs=${a.jobs} duplicates=${a.duplicates} lost=${a.lost} gap=${a.gap} dead-lettered=${a.deadLettered} truncated=${a.truncated} wrong-reason=${a.wrongReason} max-active=${peak}/${CAP}${sc.twoControllers ? ' (two controllers, not judged)' : ''} controller-restarts=${sup.restarts} nonzero-exits=${sup.exits.filter((x) => x !== 0 && x !== null).length} recovery=${recovery.toFixed(1)}s elapsed=${((faultOver - t0) / 1000).toFixed(0)}s`,
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
  say(`chaos: ${ran} scenarios, lost=${lostTotal} duplicates=${dupTotal} gap=${gapTotal}`);
  return lostTotal === 0 && dupTotal === 0 && !capBroken && !failed ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(2);
  },
);
