/**
 * `npm run chaos`: the fault-injection suite, on its own test bed.
 *
 * Named scenarios (the default; `CHAOS_ONLY=name,name` picks some): it streams messages (valid
 * and malformed) at the controller while it kills the controller, restarts the broker, takes
 * the API server away, fills a ResourceQuota, adds a second controller, denies Jobs by
 * admission policy, lets retention pass the committed offset. Each scenario is judged on its
 * own figures — lost, duplicates, wrong reasons, untruncated over-limit records, the peak of
 * active Jobs, and what the scenario itself says it checks — and any violation in any of them
 * makes the exit code 1.
 *
 * `npm run chaos -- --random --seed S --minutes M`: record shapes drawn at random (every codec,
 * committed and aborted transactions, keys and headers up to the topic's limit, empty values,
 * tombstones, invalid JSON, policy refusals, admission denials) mixed with faults at random
 * points (controller SIGKILL and SIGTERM, broker restart, API server restart, a second
 * controller joining); then lost=0 duplicates=0 stuck=0 must hold. The seed is printed first,
 * so a failure replays.
 *
 * The audit counts from outside the controller: every Job its own watch saw ADDED (by uid, so a
 * Job the TTL deleted still counts; the results topic and a final list fill any watch gap) and
 * every dead-letter record on the topic — never from the controller's logs or counters.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { CompressionTypes, Kafka, logLevel, Partitioners, type Admin, type IHeaders, type Producer } from 'kafkajs';
import { DlqHeader, LossHeader } from '../src/controller/reporting/dead-letter.js';
import { Annotation, isFinished, jobSelector } from '../src/shared/contract/identity.js';
import { registerKafkaCodecs } from '../src/shared/kafka/kafka-codecs.js';
import { PartitionReader } from '../src/shared/kafka/read-message.js';
import { sleep, waitFor } from '../src/shared/wait.js';
import { Ledger, zeroFigures, type Due, type Figures, type SeenJob, type SeenRecord, type Sent } from './chaos/audit.js';
import { Draw, FAULTS, generator, parseRandomArgs, SHAPE_WEIGHTS, type Fault, type Shape } from './chaos/random.js';
import { applyControllerRbac, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from './support.js';
import { repoRoot } from './testbed/cache.js';
import { compressions, javaProduce, type Compression } from './testbed/java-producer.js';
import { Testbed } from './testbed/testbed.js';

const CAP = 8;
const PARTITIONS = 3;
const RESULTS = 'chaos-results';
const NS = 'chaos';
/** Jobs whose jobID starts with this are refused by the bed's ValidatingAdmissionPolicy. */
const DENY_PREFIX = 'deny-';
/** Kafka's default max.message.bytes, set on the topic (the bed's broker allows more). */
const TOPIC_MAX_BYTES = 1_048_588;
/**
 * Bytes of key, value and headers that fill a record to just under the topic's limit (as the
 * `huge` message does): the record fits, its dead-letter record with the controller's headers
 * does not. Kept in step with what is known to land: 1,048,420 value bytes and nothing else.
 */
const NEAR_LIMIT = 1_048_420 - 16 * 12;

/** Headers `x-big-00`… whose names and values add up to `total` bytes, values cut from `chunk()`. */
function fill(total: number, chunk: () => Buffer): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (let i = 0, left = total; left > 8; i++) {
    const name = `x-big-${String(i).padStart(2, '0')}`;
    const v = chunk().subarray(0, Math.min(65_536, left - name.length));
    out[name] = v;
    left -= name.length + v.length;
  }
  return out;
}
const WITHOUT_ZSTD = pathToFileURL(join(repoRoot, 'dist', 'test', 'fixtures', 'without-zstd.js')).href;
const say = (s: string) => process.stdout.write(`${s}\n`);

function valid(id: string): string {
  return JSON.stringify({ jobID: id, jobType: 'server-init', payload: JSON.stringify({ mcpServers: { fixture: { command: 'node', args: [FIXTURE] } } }) });
}

/** Malformed messages of every kind, with the dead-letter reason each must get. */
const MALFORMED: { kind: string; reason: string; truncated?: boolean; value: () => Buffer | string | null }[] = [
  { kind: 'not-json', reason: 'invalid-json', value: () => 'this is not json' },
  { kind: 'truncated', reason: 'invalid-json', value: () => valid('t').slice(0, 40) },
  // Over MAX_MESSAGE_BYTES, incompressible, and so close to the topic's limit that its dead-letter
  // record, with its headers, is over it: it must be written truncated.
  { kind: 'huge', reason: 'message-too-large', truncated: true, value: () => randomBytes(1_048_420) },
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
const malformed = (kind: string) => MALFORMED.find((m) => m.kind === kind)!;

/**
 * Every Job of the group, from the harness's own list-then-watch: each uid seen ADDED is kept
 * for good (whatever the TTL does later), and the active count (not finished) when a Job is
 * created gives the peak.
 * A watch that ends is resumed from its last resourceVersion; one the server no longer has
 * (410) is relisted and counted, as a relist cannot show what came and went meanwhile.
 */
class JobWatch {
  readonly seen = new Map<string, SeenJob>();
  private readonly active = new Map<string, boolean>();
  /**
   * Peak active while one controller runs, and while two do: both count every Job of the group,
   * but neither sees the other's reservations until its watch shows the Jobs, so together they
   * may reach twice the cap (each reserving up to the cap it sees).
   */
  peak = 0;
  peakTwo = 0;
  twoControllers = false;
  relists = 0;
  private rv = '';
  private gone = false;
  private stopped = false;
  private req?: AbortController;
  private readonly batch: k8s.BatchV1Api;

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly ns: string,
    private readonly selector: string,
  ) {
    this.batch = kc.makeApiClient(k8s.BatchV1Api);
  }

  async start(): Promise<void> {
    await this.list();
    this.watch();
  }

  stop(): void {
    this.stopped = true;
    this.req?.abort();
  }

  activeNow(): number {
    return [...this.active.values()].filter(Boolean).length;
  }

  /** Starts new peaks: the next scenario is judged by the Jobs created in it. */
  resetPeaks(): void {
    this.peak = this.peakTwo = 0;
  }

  /** Adds every Job a fresh list shows (one the watch has not delivered yet). */
  async list(): Promise<void> {
    const l = await this.batch.listNamespacedJob({ namespace: this.ns, labelSelector: this.selector });
    const live = new Set<string>();
    for (const j of l.items) {
      this.note(j);
      live.add(j.metadata!.uid!);
    }
    for (const uid of this.active.keys()) if (!live.has(uid)) this.active.delete(uid);
    this.rv = l.metadata?.resourceVersion ?? '';
  }

  private note(j: k8s.V1Job): void {
    const a = j.metadata?.annotations ?? {};
    const uid = j.metadata!.uid!;
    const created = !this.seen.has(uid);
    if (created) this.seen.set(uid, { uid, coords: `${a[Annotation.partition]}/${a[Annotation.offset]}`, jobID: a[Annotation.jobID] ?? '' });
    this.active.set(uid, !isFinished(j));
    // The cap governs creates: the peak is the active count a new Job brings. Judged on every
    // update instead, the Jobs two controllers made would count against one controller's cap
    // after the second left, while they drain; a Job created then (over the cap) still counts.
    if (!created) return;
    const n = this.activeNow();
    if (this.twoControllers) this.peakTwo = Math.max(this.peakTwo, n);
    else this.peak = Math.max(this.peak, n);
  }

  private watch(): void {
    if (this.stopped) return;
    const path = `/apis/batch/v1/namespaces/${this.ns}/jobs`;
    new k8s.Watch(this.kc)
      .watch(
        path,
        { resourceVersion: this.rv, allowWatchBookmarks: true, labelSelector: this.selector },
        (type: string, obj: k8s.V1Job & { code?: number }) => {
          if (type === 'ERROR') {
            if (obj.code === 410) this.gone = true;
            return;
          }
          if (obj.metadata?.resourceVersion) this.rv = obj.metadata.resourceVersion;
          if (type === 'BOOKMARK') return;
          if (type === 'DELETED') this.active.delete(obj.metadata!.uid!);
          else this.note(obj);
        },
        () => this.resume(),
      )
      .then(
        (req) => (this.req = req),
        () => this.resume(),
      );
  }

  private resume(): void {
    if (this.stopped) return;
    setTimeout(() => {
      void (async () => {
        if (this.gone) {
          try {
            await this.list();
            this.gone = false;
            this.relists++;
          } catch {
            return this.resume(); // the API server is away: try again
          }
        }
        this.watch();
      })();
    }, 1000);
  }
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

interface Outgoing {
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: IHeaders;
  partition?: number;
  compression?: CompressionTypes;
}

class Chaos {
  sent: Sent[] = [];
  seq = 0;

  constructor(
    readonly bed: Testbed,
    readonly kc: k8s.KubeConfig,
    readonly topic: string,
    readonly group: string,
    readonly admin: Admin,
    readonly producer: Producer,
    readonly reader: PartitionReader,
    readonly jobs: JobWatch,
  ) {}

  /** Sends one record with kafkajs and records where it landed and what it is due; only acknowledged sends count. */
  async sendOne(m: Outgoing, due: Due, shape: string): Promise<void> {
    const partition = m.partition ?? this.seq % PARTITIONS;
    this.seq++;
    const [r] = await this.producer.send({
      topic: this.topic,
      acks: -1,
      compression: m.compression,
      messages: [{ key: m.key ?? null, value: m.value, headers: m.headers, partition }],
    });
    this.sent.push({ coords: `${r!.partition}/${r!.baseOffset}`, due, shape });
  }

  async sendValid(shape = 'valid', extra: Partial<Outgoing> = {}, prefix = 'chaos'): Promise<void> {
    const jobID = `${prefix}-${this.seq}`;
    await this.sendOne({ value: valid(jobID), ...extra }, { kind: 'job', jobID }, shape);
  }

  async sendMalformed(kind: string, extra: Partial<Outgoing> = {}): Promise<void> {
    const m = malformed(kind);
    await this.sendOne({ value: m.value(), ...extra }, { kind: 'record', reason: m.reason, truncated: m.truncated }, kind);
  }

  /** `count` messages at `perSecond`, every `malformedEvery`-th malformed (cycling through the kinds). */
  async stream(count: number, perSecond: number, malformedEvery: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const n = this.seq;
      if (malformedEvery > 0 && n % malformedEvery === malformedEvery - 1)
        await this.sendMalformed(MALFORMED[Math.floor(n / malformedEvery) % MALFORMED.length]!.kind);
      else await this.sendValid();
      await sleep(1000 / perSecond);
    }
  }

  /** Committed offset and end of every partition. */
  async offsets(): Promise<{ partition: number; committed: bigint; high: bigint }[]> {
    const [committed] = await this.admin.fetchOffsets({ groupId: this.group, topics: [this.topic] });
    const ends = await this.admin.fetchTopicOffsets(this.topic);
    return ends.map((e) => {
      const c = committed!.partitions.find((p) => p.partition === e.partition)?.offset ?? '-1';
      return { partition: e.partition, committed: c === '-1' ? -1n : BigInt(c), high: BigInt(e.high) };
    });
  }

  /**
   * Everything sent that is due an outcome has been handled: each partition's committed offset
   * is past its last such message (a record of an aborted transaction is never delivered).
   */
  async caughtUp(): Promise<boolean> {
    const last = new Map<number, bigint>();
    for (const s of this.sent) {
      if (s.due.kind === 'nothing') continue;
      const [p, o] = s.coords.split('/').map((x) => BigInt(x));
      if (o! >= (last.get(Number(p)) ?? -1n)) last.set(Number(p), o!);
    }
    return (await this.offsets()).every((o) => o.committed > (last.get(o.partition) ?? -1n));
  }

  /** Every dead-letter record the controller wrote. */
  async deadLetters(): Promise<SeenRecord[]> {
    const out: SeenRecord[] = [];
    for (const e of await this.admin.fetchTopicOffsets(`${this.topic}.dlq`)) {
      for await (const rec of this.reader.range(`${this.topic}.dlq`, e.partition, BigInt(e.low), BigInt(e.high))) {
        if (rec.headers[DlqHeader.stage] !== 'controller') continue;
        const t = rec.headers['mcp.dlq.truncated'];
        out.push({
          coords: `${rec.headers[DlqHeader.partition]}/${rec.headers[DlqHeader.offset]}`,
          reason: rec.headers[DlqHeader.reason] ?? '',
          truncated: t !== undefined && t !== 'false',
          lastOffset: rec.headers[LossHeader.lastOffset],
        });
      }
    }
    return out;
  }

  /**
   * Every Job ever made: the watch's, a fresh list's (a create the watch has not delivered yet),
   * and the results topic's (a Job made and TTL-deleted while the watch had to relist).
   */
  async allJobs(): Promise<SeenJob[]> {
    await this.jobs.list().catch(() => undefined);
    const all = new Map(this.jobs.seen);
    for (const e of await this.admin.fetchTopicOffsets(RESULTS)) {
      for await (const rec of this.reader.range(RESULTS, e.partition, BigInt(e.low), BigInt(e.high))) {
        const o = JSON.parse(String(rec.value)) as { uid?: string; jobID?: string; source?: { partition: number; offset: string } };
        if (o.uid && o.source && !all.has(o.uid)) all.set(o.uid, { uid: o.uid, coords: `${o.source.partition}/${o.source.offset}`, jobID: o.jobID ?? '' });
      }
    }
    return [...all.values()];
  }

  async ledger(): Promise<Ledger> {
    return new Ledger(await this.allJobs(), await this.deadLetters());
  }
}

interface Ctx {
  c: Chaos;
  sup: Supervisor;
  env: Record<string, string>;
  kc: k8s.KubeConfig;
}

interface Scenario {
  name: string;
  /** Runs the fault while messages flow; resolves with what it did (the clock for recovery starts then). */
  run: (x: Ctx) => Promise<string>;
  /** Two controllers run at once for part of it: neither sees the other's creates in flight, so the peak is judged against twice the cap. */
  twoControllers?: boolean;
  /** What the scenario checks beyond its figures, once the controller has caught up; returns what failed. */
  check?: (x: Ctx, figures: Figures, ledger: Ledger, mine: Sent[]) => Promise<string | undefined> | string | undefined;
}

/** The message at `partition/offset` sent by the harness, if any. */
const sentAt = (sent: readonly Sent[], partition: number) =>
  sent
    .filter((s) => Number(s.coords.split('/')[0]) === partition)
    .map((s) => ({ s, offset: BigInt(s.coords.split('/')[1]!) }))
    .sort((a, b) => (a.offset < b.offset ? -1 : 1));

const scenarios: Scenario[] = [
  {
    name: 'controller-sigkill-x10',
    run: async ({ c, sup }) => {
      const flow = c.stream(60, 3, 6);
      for (let i = 0; i < 10; i++) {
        await sleep(1500 + Math.random() * 3000);
        await sup.kill();
        sup.start();
      }
      await flow;
      return '10 SIGKILLs';
    },
  },
  {
    name: 'broker-restart',
    run: async ({ c }) => {
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
    run: async ({ c }) => {
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
    run: async ({ c, kc }) => {
      const core = kc.makeApiClient(k8s.CoreV1Api);
      const existing = (await kc.makeApiClient(k8s.BatchV1Api).listNamespacedJob({ namespace: NS })).items.length;
      await core.createNamespacedResourceQuota({
        namespace: NS,
        body: { metadata: { name: 'chaos' }, spec: { hard: { 'count/jobs.batch': String(existing + 3) } } },
      });
      await sleep(1000);
      await c.stream(20, 4, 5);
      await sleep(10_000);
      await core.deleteNamespacedResourceQuota({ name: 'chaos', namespace: NS });
      return `quota of ${existing + 3} Jobs held 15 s`;
    },
  },
  {
    name: 'malformed-burst',
    check: (_x, f, _l, mine) => {
      const due = mine.filter((s) => s.due.kind === 'record' && s.due.truncated).length;
      return f.untruncated > 0 ? `${f.untruncated} of ${due} over-limit records not truncated` : undefined;
    },
    run: async ({ c }) => {
      await c.stream(120, 8, 2); // 60 malformed of 10 kinds between 60 valid
      return `${MALFORMED.length} kinds of malformed messages`;
    },
  },
  {
    name: 'sigterm-mid-burst',
    run: async ({ c, sup }) => {
      const flow = c.stream(60, 40, 6); // faster than the cap lets Jobs run: creates wait at the cap
      await sleep(1200);
      const code = await sup.terminate();
      // At the exit, per partition: every message below the committed offset has its Job or record,
      // and the first one at or past it has neither — nothing that existed was left uncommitted.
      const offsets = await c.offsets();
      const ledger = await c.ledger();
      let committed = 0;
      let prefix = 0;
      let withOutcome = 0;
      const bad: string[] = [];
      for (const o of offsets) {
        const msgs = sentAt(c.sent, o.partition).filter((m) => m.s.due.kind !== 'nothing');
        const has = (m: (typeof msgs)[number]) => {
          const x = ledger.outcomes(m.s.coords);
          return x.jobs + x.records > 0;
        };
        withOutcome += msgs.filter(has).length;
        committed += msgs.filter((m) => m.offset < o.committed).length;
        const firstWithout = msgs.findIndex((m) => !has(m));
        prefix += firstWithout < 0 ? msgs.length : firstWithout;
        const below = msgs.filter((m) => m.offset < o.committed && !has(m));
        if (below.length) bad.push(`partition ${o.partition}: ${below.length} message(s) below the committed offset ${o.committed} have no Job or record`);
        const firstAt = msgs.find((m) => m.offset >= o.committed);
        if (firstAt && has(firstAt)) bad.push(`partition ${o.partition}: the message at the committed offset ${o.committed} has a Job or record`);
      }
      await flow;
      sup.start();
      if (code !== 0) throw new Error(`SIGTERM ended the controller with exit ${code}, not 0`);
      if (bad.length) throw new Error(bad.join('; '));
      if (committed !== prefix) throw new Error(`committed at exit ${committed} ≠ ${prefix} messages with a Job or record before the first without`);
      return `SIGTERM mid-burst: exit ${code}; messages committed at exit ${committed} = ${prefix} with a Job or record before the first without (${withOutcome - prefix} more past it, redelivered)`;
    },
  },
  {
    name: 'undecodable-record',
    run: async ({ c, sup, env }) => {
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
      c.sent.push({ coords: `${r!.partition}/${r!.offset}`, due: { kind: 'record', reason: 'undecodable-record' }, shape: 'undecodable' });
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
    check: (_x, f) => (f.untruncated > 0 || f.truncated < 3 ? `${3 - f.untruncated} of 3 over-limit records truncated` : undefined),
    run: async ({ c }) => {
      for (let i = 0; i < 3; i++) {
        await c.stream(3, 6, 0);
        await c.sendMalformed('huge');
      }
      return "3 records whose dead-letter records are over the topic's 1 MiB max.message.bytes (Kafka's default)";
    },
  },
  {
    name: 'retention-gap',
    check: (_x, f) => (f.gap === 0 ? 'no deleted message was recorded in a gap record' : undefined),
    run: async ({ c, sup }) => {
      await sup.terminate();
      const from = c.sent.length;
      await c.stream(24, 24, 0);
      const deleted = await deleteAllButLast(c, 2, from);
      sup.start();
      return `retention deleted ${deleted} unconsumed messages while the controller was down`;
    },
  },
  {
    name: 'second-instance-rebalance',
    twoControllers: true,
    run: async ({ c, env }) => {
      const flow = c.stream(60, 10, 5);
      await sleep(2000);
      c.jobs.twoControllers = true;
      const second = new ControllerProcess(env).start();
      await sleep(10_000);
      await second.stop();
      c.jobs.twoControllers = false;
      await flow;
      return 'a second controller joined mid-burst for 10 s, then left (two rebalances)';
    },
  },
  {
    name: 'ttl-expiry-redelivery',
    run: async ({ c, sup, env }) => {
      // A 1 s TTL: a Job deleted before its offset is committed would be made again on redelivery,
      // and only the harness's own watch still knows the first one.
      sup.env = { ...env, JOB_TTL_SECONDS_AFTER_FINISHED: '1' };
      await sup.kill();
      sup.start();
      const flow = c.stream(36, 6, 0);
      for (let i = 0; i < 3; i++) {
        await sleep(1500 + Math.random() * 1500);
        await sup.kill();
        await sleep(6000); // its Jobs finish and would pass their TTL before the redelivery
        sup.start();
      }
      await flow;
      sup.env = env;
      return '3 SIGKILLs with a 1 s TTL, 6 s down each';
    },
  },
  {
    name: 'mid-generation-retention-gap',
    check: (_x, f) => (f.gap === 0 ? 'no deleted message was recorded in a gap record' : undefined),
    run: async ({ c, kc, sup }) => {
      // The controller stays in its group (no rejoin) but is held back by a full quota; retention
      // passes its position meanwhile, so the next batch it fetches starts past the committed offset.
      // A hard limit of 0, not the count of Jobs there: TTL deletions would make room.
      const core = kc.makeApiClient(k8s.CoreV1Api);
      let deleted = 0;
      await core.createNamespacedResourceQuota({
        namespace: NS,
        body: { metadata: { name: 'chaos-gap' }, spec: { hard: { 'count/jobs.batch': '0' } } },
      });
      await waitFor(
        async () => {
          const q = await core.readNamespacedResourceQuota({ name: 'chaos-gap', namespace: NS });
          return q.status?.hard?.['count/jobs.batch'] !== undefined;
        },
        { timeoutMs: 30_000, description: 'the quota to be in force' },
      );
      // The held messages count too: kafkajs fetches no partition again until the held batch is
      // done, so another partition's may be deleted unread (then the gap record must cover it).
      const from = c.sent.length;
      try {
        const held = sup.current!.logs.length;
        for (let p = 0; p < PARTITIONS; p++) await c.sendValid('valid', { partition: p }); // one per partition: held at the quota
        await waitFor(() => sup.current!.logs.slice(held).some((l) => /quota exceeded/.test(String(l.msg))), {
          timeoutMs: 60_000,
          description: 'a create held at the quota',
        });
        await sleep(3000); // the other partitions' first messages are fetched and held too (at the quota or the pause it sets)
        await c.stream(24, 24, 0);
        deleted = await deleteAllButLast(c, 2, from);
      } finally {
        await core.deleteNamespacedResourceQuota({ name: 'chaos-gap', namespace: NS });
      }
      return `retention deleted ${deleted} messages behind a quota-held batch while the controller stayed in its group`;
    },
  },
  {
    name: 'big-header-record',
    check: (_x, f) => (f.untruncated > 0 ? `${f.untruncated} record(s) with big headers or key not truncated` : undefined),
    run: async ({ c }) => {
      // Headers (and a key) so large the record is just under the topic's limit: its dead-letter
      // record, with the controller's own headers, is over it and must be cut (headers too) to fit.
      const big = (total: number) => fill(total, () => randomBytes(65_536));
      await c.stream(3, 6, 0);
      await c.sendOne({ value: 'not json', headers: big(NEAR_LIMIT) }, { kind: 'record', reason: 'invalid-json', truncated: true }, 'big-header-invalid');
      await c.sendOne({ key: randomBytes(NEAR_LIMIT), value: 'not json' }, { kind: 'record', reason: 'invalid-json', truncated: true }, 'big-key-invalid');
      await c.sendValid('big-header-valid', { headers: big(NEAR_LIMIT - 1000) });
      await c.sendOne(
        { value: randomBytes(600_000), headers: big(NEAR_LIMIT - 600_000) },
        { kind: 'record', reason: 'message-too-large', truncated: true },
        'big-header-too-large',
      );
      await c.stream(3, 6, 0);
      return "4 records with headers or a key close to the topic's limit (2 malformed, 1 over MAX_MESSAGE_BYTES, 1 valid)";
    },
  },
  {
    name: 'admission-denied',
    check: (_x, f, l, mine) => {
      const denied = mine.filter((s) => s.shape === 'admission-denied');
      const recorded = denied.filter((s) => l.outcomes(s.coords).records > 0).length;
      return recorded < denied.length || f.wrongReason > 0
        ? `${recorded} of ${denied.length} denied Jobs dead-lettered job-rejected (wrong-reason=${f.wrongReason})`
        : undefined;
    },
    run: async ({ c }) => {
      for (let i = 0; i < 12; i++) {
        if (i % 3 === 1) await c.sendOne(...deniedMessage(c));
        else await c.sendValid();
        await sleep(200);
      }
      return 'a ValidatingAdmissionPolicy denied 4 Jobs (jobID deny-*) between 8 allowed';
    },
  },
];

/** Deletes (as retention would) every record of the partitions but the last `keep`; marks the harness's own messages among them. */
async function deleteAllButLast(c: Chaos, keep: number, from: number): Promise<number> {
  const ends = await c.admin.fetchTopicOffsets(c.topic);
  const cut = new Map(ends.map((e) => [e.partition, BigInt(e.high) - BigInt(keep)]));
  await c.admin.deleteTopicRecords({ topic: c.topic, partitions: ends.map((e) => ({ partition: e.partition, offset: cut.get(e.partition)!.toString() })) });
  let deleted = 0;
  for (const m of c.sent.slice(from)) {
    const [p, o] = m.coords.split('/');
    if (BigInt(o!) < cut.get(Number(p))! && m.due.kind !== 'nothing') {
      m.due = { kind: 'gap-or-outcome' };
      deleted++;
    }
  }
  return deleted;
}

function deniedMessage(c: Chaos): [Outgoing, Due, string] {
  return [{ value: valid(`${DENY_PREFIX}${c.seq}`) }, { kind: 'record', reason: 'job-rejected' }, 'admission-denied'];
}

/** A policy on the bed's API server that refuses Jobs made for messages whose jobID starts with `deny-`. */
async function installAdmissionPolicy(kc: k8s.KubeConfig): Promise<void> {
  const api = kc.makeApiClient(k8s.AdmissionregistrationV1Api);
  const name = 'chaos-deny-marked-jobs';
  await api.createValidatingAdmissionPolicy({
    body: {
      metadata: { name },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: [{ apiGroups: ['batch'], apiVersions: ['v1'], operations: ['CREATE'], resources: ['jobs'] }] },
        validations: [
          {
            expression: `!has(object.metadata.annotations) || !('${Annotation.jobID}' in object.metadata.annotations) || !object.metadata.annotations['${Annotation.jobID}'].startsWith('${DENY_PREFIX}')`,
            message: `jobs whose job-id starts with ${DENY_PREFIX} are not allowed here`,
            // As a webhook answers (403); without it a policy answers 422 Invalid.
            reason: 'Forbidden',
          },
        ],
      },
    },
  });
  await api.createValidatingAdmissionPolicyBinding({
    body: {
      metadata: { name },
      spec: { policyName: name, validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } } } },
    },
  });
  // In force once a dry-run create of a marked Job is refused.
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const probe: k8s.V1Job = {
    metadata: { generateName: 'probe-', annotations: { [Annotation.jobID]: `${DENY_PREFIX}probe` } },
    spec: { template: { spec: { restartPolicy: 'Never', containers: [{ name: 'c', image: 'x' }] } } },
  };
  await waitFor(
    async () => {
      try {
        await batch.createNamespacedJob({ namespace: NS, body: probe, dryRun: 'All' });
        return false;
      } catch (err) {
        return (err as { code?: number }).code === 403;
      }
    },
    { timeoutMs: 60_000, description: 'the admission policy to be in force' },
  );
}

interface Bed {
  bed: Testbed;
  kc: k8s.KubeConfig;
  chaos: Chaos;
  env: Record<string, string>;
  close: () => Promise<void>;
}

async function setUp(o: { ttlSeconds?: number }): Promise<Bed> {
  const bed = await Testbed.start();
  try {
    return await prepare(bed, o);
  } catch (err) {
    await bed.stop();
    throw err;
  }
}

async function prepare(bed: Testbed, o: { ttlSeconds?: number }): Promise<Bed> {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(bed.env.KUBECONFIG);
  await kc.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } } });
  await applyControllerRbac(kc, NS);
  await installAdmissionPolicy(kc);
  const kafka = new Kafka({ clientId: 'chaos', brokers: [bed.env.KAFKA_BROKERS], logLevel: logLevel.NOTHING, retry: { retries: 12 } });
  const admin = kafka.admin();
  await admin.connect();
  const topic = 'chaos-jobs';
  const group = 'chaos-controller';
  // The dead-letter topic takes the source's limit over, so a near-limit record's dead-letter record meets the limit production has.
  await admin.createTopics({
    topics: [
      { topic, numPartitions: PARTITIONS, configEntries: [{ name: 'max.message.bytes', value: String(TOPIC_MAX_BYTES) }] },
      { topic: RESULTS, numPartitions: 1 },
    ],
    waitForLeaders: true,
  });
  // Idempotent, so a send retried across the broker restart cannot put a message on the topic twice.
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const reader = new PartitionReader({ connection: { brokers: [bed.env.KAFKA_BROKERS], clientId: 'chaos-audit', logLevel: logLevel.NOTHING } });
  const env: Record<string, string> = {
    KUBECONFIG: await serviceAccountKubeconfig(kc, NS, 'mcp-job-controller'),
    KAFKA_BROKERS: bed.env.KAFKA_BROKERS,
    KAFKA_TOPIC: topic,
    KAFKA_CONSUMER_GROUP: group,
    JOB_NAMESPACE: NS,
    MAX_ACTIVE_JOBS: String(CAP),
    METRICS_PORT: '0',
    KAFKA_SESSION_TIMEOUT_MS: '10000',
    JOB_BACKOFF_LIMIT: '4',
    MAX_MESSAGE_BYTES: '524288',
    RESULTS_TOPIC: RESULTS,
    ...(o.ttlSeconds !== undefined ? { JOB_TTL_SECONDS_AFTER_FINISHED: String(o.ttlSeconds) } : {}),
  };
  const jobs = new JobWatch(kc, NS, jobSelector(group));
  await jobs.start();
  const chaos = new Chaos(bed, kc, topic, group, admin, producer, reader, jobs);
  return {
    bed,
    kc,
    chaos,
    env,
    close: async () => {
      jobs.stop();
      await reader.close();
      await producer.disconnect().catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
      await bed.stop({ keepState: process.env.TESTBED_KEEP === '1' });
    },
  };
}

const figuresText = (f: Figures) =>
  `lost=${f.lost} duplicates=${f.duplicates} wrong-reason=${f.wrongReason} untruncated=${f.untruncated} gap=${f.gap} jobs=${f.jobs} dead-lettered=${f.records} truncated=${f.truncated}`;

/** What in `f` breaks a guarantee. */
const violations = (f: Figures): string[] =>
  [
    f.lost && `lost=${f.lost}`,
    f.duplicates && `duplicates=${f.duplicates}`,
    f.wrongReason && `wrong-reason=${f.wrongReason}`,
    f.untruncated && `untruncated=${f.untruncated}`,
  ].filter((x): x is string => typeof x === 'string');

async function catchUp(c: Chaos, sup: Supervisor, what: string, timeoutMs = 300_000): Promise<void> {
  await waitFor(() => c.caughtUp(), { timeoutMs, intervalMs: 500, description: `${what}: the controller to catch up` }).catch((err: unknown) => {
    process.stderr.write(`controller log tail:\n${sup.current?.tail(40) ?? '(no controller running)'}\n`);
    throw err;
  });
}

async function named(): Promise<number> {
  const { chaos, env, kc, close } = await setUp({});
  const sup = new Supervisor(env);
  sup.start();
  await waitFor(() => sup.current?.logs.some((l) => l.msg === 'joined consumer group'), { timeoutMs: 60_000, description: 'controller ready' });
  const failures: string[] = [];
  const totals = zeroFigures();
  let ran = 0;
  try {
    // CHAOS_ONLY=name,name runs those scenarios alone (after the first, which warms the controller up).
    const only = process.env.CHAOS_ONLY?.split(',');
    for (const [i, sc] of scenarios.entries()) {
      if (only && i > 0 && !only.includes(sc.name)) continue;
      ran++;
      const from = chaos.sent.length;
      chaos.jobs.resetPeaks();
      const relists = chaos.jobs.relists;
      const t0 = Date.now();
      const problems: string[] = [];
      let what: string;
      const x: Ctx = { c: chaos, sup, env, kc };
      try {
        what = await sc.run(x);
      } catch (err) {
        what = 'the fault did not complete';
        problems.push(`run: ${(err as Error).message}`);
      }
      const faultOver = Date.now();
      let caught = true;
      await catchUp(chaos, sup, sc.name).catch((err: unknown) => {
        caught = false;
        problems.push((err as Error).message);
      });
      const recovery = (Date.now() - faultOver) / 1000;
      const mine = chaos.sent.slice(from);
      const ledger = await chaos.ledger();
      const f = ledger.figures(mine);
      problems.push(...violations(f));
      const cap = sc.twoControllers ? 2 * CAP : CAP;
      const peak = Math.max(chaos.jobs.peak, chaos.jobs.peakTwo);
      if (chaos.jobs.peak > CAP) problems.push(`max-active ${chaos.jobs.peak} over the cap ${CAP}`);
      if (chaos.jobs.peakTwo > cap) problems.push(`max-active ${chaos.jobs.peakTwo} with two controllers over ${cap}`);
      if (caught) {
        const broken = await sc.check?.(x, f, ledger, mine);
        if (broken) problems.push(broken);
      }
      for (const k of Object.keys(totals) as (keyof Figures)[]) totals[k] += f[k];
      const bad = mine.filter((s) => s.due.kind === 'record').length;
      say(
        `scenario ${i + 1} ${sc.name}: ${what}; messages=${mine.length} (valid=${mine.filter((s) => s.due.kind === 'job').length} malformed=${bad}) ${figuresText(f)} max-active=${peak}/${cap}${sc.twoControllers ? ' (two controllers)' : ''} watch-relists=${chaos.jobs.relists - relists} controller-restarts=${sup.restarts} nonzero-exits=${sup.exits.filter((e) => e !== 0 && e !== null).length} recovery=${recovery.toFixed(1)}s elapsed=${((faultOver - t0) / 1000).toFixed(0)}s${problems.length ? ` FAILED: ${problems.join('; ')}` : ''}`,
      );
      if (problems.length) failures.push(sc.name);
      if (!caught) break; // a stalled partition stalls every scenario after it
    }
    // Outcomes written late (after a scenario's line) for an earlier scenario's messages.
    const all = (await chaos.ledger()).figures(chaos.sent);
    const late = violations({ ...all, lost: 0, duplicates: all.duplicates - totals.duplicates, wrongReason: 0, untruncated: 0 });
    if (late.length) {
      failures.push('late');
      say(`late: ${late.join(' ')} (outcomes written after their scenario was judged)`);
    }
    say(`totals: messages=${chaos.sent.length} ${figuresText(all)}`);
    say(
      `chaos: ${ran} scenarios, ${failures.length ? `FAILED ${failures.join(', ')}` : 'all held'}; lost=${all.lost} duplicates=${all.duplicates} gap=${all.gap}`,
    );
  } finally {
    await sup.stop();
    await close();
  }
  return failures.length ? 1 : 0;
}

/** A random shape's records: one kafkajs send, or one Java-producer batch (codecs, transactions). */
async function sendShape(c: Chaos, shape: Shape, d: Draw, seed: number): Promise<void> {
  const id = () => `r${seed}-${c.seq}`;
  const codec = (): CompressionTypes => d.pick([CompressionTypes.None, CompressionTypes.GZIP, CompressionTypes.Snappy, CompressionTypes.LZ4]);
  const headers = (): IHeaders => Object.fromEntries(Array.from({ length: d.int(1, 4) }, (_, i) => [`h-${i}`, d.bytes(d.int(0, 200))]));
  const key = () => (d.chance(0.5) ? d.bytes(d.int(0, 64)) : null);
  switch (shape) {
    case 'valid':
      return c.sendValid('valid', { compression: codec() }, `r${seed}`);
    case 'valid-keyed-headers':
      return c.sendValid(shape, { key: key(), headers: headers(), compression: codec() }, `r${seed}`);
    case 'invalid-json':
      return c.sendOne({ key: key(), value: 'not json {', headers: d.chance(0.5) ? headers() : undefined }, { kind: 'record', reason: 'invalid-json' }, shape);
    case 'binary-value':
      return c.sendOne({ value: Buffer.concat([Buffer.from([0xff]), d.bytes(d.int(1, 300))]) }, { kind: 'record', reason: 'invalid-json' }, shape);
    case 'empty-value':
      return c.sendOne({ key: key(), value: Buffer.alloc(0) }, { kind: 'record', reason: 'empty-message' }, shape);
    case 'tombstone':
      return c.sendOne({ key: d.bytes(8), value: null }, { kind: 'record', reason: 'empty-message' }, shape);
    case 'wrong-types':
      return c.sendMalformed('wrong-types');
    case 'unknown-job-type':
      return c.sendMalformed('unknown-job-type');
    case 'policy-command':
      return c.sendMalformed('disallowed-command');
    case 'policy-env-file':
      return c.sendMalformed('envfile-traversal');
    case 'not-a-config':
      return c.sendMalformed('not-a-config');
    case 'over-max-bytes':
      return c.sendOne({ value: d.bytes(d.int(600_000, 1_040_000)) }, { kind: 'record', reason: 'message-too-large', truncated: undefined }, shape);
    case 'big-header':
      return c.sendOne(
        { value: 'not json', headers: fill(NEAR_LIMIT, () => d.bytes(65_536)) },
        { kind: 'record', reason: 'invalid-json', truncated: true },
        shape,
      );
    case 'big-key':
      // A key near the topic's limit: kafkajs' own key hash took minutes on one (the partitioner's tests).
      return d.chance(0.5)
        ? c.sendValid(shape, { key: d.bytes(NEAR_LIMIT - 4096) }, `r${seed}`)
        : c.sendOne({ key: d.bytes(NEAR_LIMIT), value: 'not json' }, { kind: 'record', reason: 'invalid-json', truncated: true }, shape);
    case 'admission-denied': {
      const [m, due, s] = deniedMessage(c);
      return c.sendOne(m, due, s);
    }
    case 'java-batch':
    case 'java-transaction-committed':
    case 'java-transaction-aborted': {
      const compression: Compression = d.pick(compressions);
      const n = d.int(1, 6);
      const partition = d.int(0, PARTITIONS - 1);
      const records: { key: Buffer | null; value: Buffer | null; headers?: Record<string, Buffer> }[] = [];
      const dues: { due: Due; shape: string }[] = [];
      const aborted = shape === 'java-transaction-aborted';
      for (let i = 0; i < n; i++) {
        const kind = d.pick(['valid', 'valid', 'valid', 'invalid-json', 'tombstone', 'empty-value'] as const);
        const jobID = `${id()}-j${i}`;
        const value =
          kind === 'valid' ? Buffer.from(valid(jobID)) : kind === 'invalid-json' ? Buffer.from('{not json') : kind === 'tombstone' ? null : Buffer.alloc(0);
        records.push({ key: key(), value, headers: d.chance(0.5) ? { 'h-java': d.bytes(d.int(0, 100)) } : undefined });
        const due: Due = aborted
          ? { kind: 'nothing' }
          : kind === 'valid'
            ? { kind: 'job', jobID }
            : { kind: 'record', reason: kind === 'invalid-json' ? 'invalid-json' : 'empty-message' };
        dues.push({ due, shape: `${shape}:${compression}:${kind}` });
      }
      c.seq++;
      const landed = await javaProduce({
        home: c.bed.kafka.home,
        brokers: c.bed.env.KAFKA_BROKERS,
        topic: c.topic,
        partition,
        compression,
        values: [],
        records,
        ...(shape === 'java-batch' ? {} : { transactionalId: `chaos-${seed}-${c.seq}`, abort: aborted }),
      });
      landed.forEach((r, i) => c.sent.push({ coords: `${r.partition}/${r.offset}`, ...dues[i]! }));
      return;
    }
  }
}

async function random(seed: number, minutes: number): Promise<number> {
  say(`chaos --random --seed ${seed} --minutes ${minutes}`);
  const d = new Draw(generator(seed));
  // A short TTL: finished Jobs go while the run goes on, so only the harness's watch still knows them.
  const { chaos, env, close } = await setUp({ ttlSeconds: 20 });
  const sup = new Supervisor(env);
  sup.start();
  await waitFor(() => sup.current?.logs.some((l) => l.msg === 'joined consumer group'), { timeoutMs: 60_000, description: 'controller ready' });
  const shapes = new Map<string, number>();
  const faults = new Map<Fault, number>();
  const problems: string[] = [];
  let brokerDown = false;
  let stuck = 0;
  let unconfirmed = 0;
  let f = zeroFigures();
  try {
    const end = Date.now() + minutes * 60_000;
    // Faults fall at seeded times (which fault, how long) into a stream of seeded shapes.
    let nextFaultAt = Date.now() + d.int(8, 20) * 1000;
    let fault: Promise<void> | undefined;
    while (Date.now() < end) {
      if (Date.now() >= nextFaultAt && !fault) {
        const which = d.pick(FAULTS);
        const pause = d.int(1000, 12_000);
        faults.set(which, (faults.get(which) ?? 0) + 1);
        fault = applyFault(which, pause, chaos, sup, env, (down) => (brokerDown = down))
          .catch((err: unknown) => void problems.push(`${which}: ${(err as Error).message}`))
          .finally(() => (fault = undefined));
        nextFaultAt = Date.now() + d.int(15, 40) * 1000;
      }
      let shape = d.weighted(SHAPE_WEIGHTS);
      // The Java producer gives up within 20 s: its records would land unrecorded. Not while the broker is away.
      if (brokerDown && shape.startsWith('java')) shape = 'valid';
      try {
        await sendShape(chaos, shape, d, seed);
        shapes.set(shape, (shapes.get(shape) ?? 0) + 1);
      } catch (err) {
        // Not acknowledged (the broker away too long, a JVM that gave up): where its records went is
        // unknown, so they are not judged; the partitions' ends still are (stuck).
        unconfirmed++;
        process.stderr.write(`chaos: a ${shape} send was not acknowledged: ${(err as Error).message}\n`);
      }

      await sleep(d.int(200, 900));
    }
    await fault;
    if (!sup.current) sup.start();
    await chaos.bed.control.ensureRunning();
    // Faults have stopped: every partition must reach its end.
    await catchUp(chaos, sup, 'random', 600_000).catch((err: unknown) => void problems.push((err as Error).message));
    await waitFor(async () => (await chaos.offsets()).every((o) => o.committed === o.high), { timeoutMs: 60_000, intervalMs: 1000 }).catch(() => undefined);
    const offsets = await chaos.offsets();
    const behind = offsets.filter((o) => o.committed !== o.high);
    stuck = behind.length;
    if (stuck) problems.push(`stuck: ${behind.map((o) => `partition ${o.partition} committed ${o.committed} end ${o.high}`).join(', ')}`);
    f = (await chaos.ledger()).figures(chaos.sent);
    problems.push(...violations(f));
    if (chaos.jobs.peak > CAP) problems.push(`max-active ${chaos.jobs.peak} over the cap ${CAP}`);
    if (chaos.jobs.peakTwo > 2 * CAP) problems.push(`max-active ${chaos.jobs.peakTwo} with two controllers over ${2 * CAP}`);
    const terms = sup.exits.filter((e) => e !== 0 && e !== null).length;
    say(`shapes: ${[...shapes.entries()].map(([k, v]) => `${k}=${v}`).join(' ')} unacknowledged=${unconfirmed}`);
    say(`faults: ${FAULTS.map((k) => `${k}=${faults.get(k) ?? 0}`).join(' ')}`);
    say(
      `records: messages=${chaos.sent.length} ${figuresText(f)} max-active=${chaos.jobs.peak}/${CAP} (two controllers ${chaos.jobs.peakTwo}/${2 * CAP}) watch-relists=${chaos.jobs.relists} nonzero-exits=${terms}`,
    );
  } catch (err) {
    problems.push(`run: ${(err as Error).message}`);
  } finally {
    await sup.stop();
    await close();
  }
  if (problems.length) say(`FAILED: ${problems.join('; ')}`);
  say(`chaos --random --seed ${seed}: lost=${f.lost} duplicates=${f.duplicates} stuck=${stuck}${problems.length ? ' FAILED' : ''}`);
  return problems.length ? 1 : 0;
}

async function applyFault(
  which: Fault,
  pauseMs: number,
  c: Chaos,
  sup: Supervisor,
  env: Record<string, string>,
  brokerDown: (down: boolean) => void,
): Promise<void> {
  switch (which) {
    case 'controller-sigkill':
      if (sup.current) await sup.kill();
      await sleep(Math.min(pauseMs, 3000));
      sup.start();
      return;
    case 'controller-sigterm': {
      const code = sup.current ? await sup.terminate() : 0;
      sup.start();
      if (code !== 0) throw new Error(`SIGTERM ended the controller with exit ${code}, not 0`);
      return;
    }
    case 'broker-restart':
      brokerDown(true);
      try {
        await c.bed.kafka.stop();
        await sleep(Math.min(pauseMs, 6000));
        await c.bed.kafka.start();
      } finally {
        brokerDown(false);
      }
      return;
    case 'apiserver-restart':
      await c.bed.control.stopApiserver();
      await sleep(pauseMs);
      await c.bed.control.ensureRunning();
      return;
    case 'second-controller': {
      c.jobs.twoControllers = true;
      const second = new ControllerProcess(env).start();
      await sleep(pauseMs + 5000);
      await second.stop();
      c.jobs.twoControllers = false;
      return;
    }
  }
}

async function main(): Promise<number> {
  registerKafkaCodecs(); // the harness's producer sends snappy and lz4 too
  const args = parseRandomArgs(process.argv.slice(2));
  return args.random ? random(args.seed, args.minutes) : named();
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(2);
  },
);
