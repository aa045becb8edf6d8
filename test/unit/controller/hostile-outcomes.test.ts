import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import fc from 'fast-check';
import type { EachBatchPayload, KafkaMessage, ProducerRecord, RecordMetadata } from 'kafkajs';
import pino from 'pino';
import { Registry } from 'prom-client';
import { ControllerConfigSchema } from '../../../src/controller/config.js';
import { processBatch } from '../../../src/controller/intake/batch-processor.js';
import { CommitWindow } from '../../../src/controller/intake/commit-window.js';
import { MessageHandler, type JobsApi } from '../../../src/controller/intake/message-handler.js';
import { ActiveJobSlots } from '../../../src/controller/intake/slots.js';
import { DlqHeader } from '../../../src/controller/reporting/dead-letter.js';
import { createMetrics, Pauses } from '../../../src/controller/reporting/metrics.js';
import { Annotation } from '../../../src/shared/contract/identity.js';
import { validationPolicy } from '../../../src/shared/contract/policy.js';
import { parseConfig } from '../../../src/shared/settings.js';

const log = pino({ level: 'silent' });
const config = parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 'work', JOB_NAMESPACE: 'jobs' });

const apiError = (code: number, message: string) =>
  Object.assign(new Error(`HTTP-Code: ${code}`), { code, body: JSON.stringify({ kind: 'Status', code, message }) });

/** What the API server answers a message's creates, one script per message. */
const KINDS = [
  '201',
  '409-same',
  '409-other',
  '409-deleting-goes',
  '409-deleting-stays',
  '403-admission',
  '403-vap',
  '422-vap',
  '403-rbac',
  '413',
  '422',
  '500-too-large',
  'transient',
  'invalid-message',
] as const;
type Kind = (typeof KINDS)[number];

/** Refusals a retry cannot fix: each may be tried once, never again. */
const PERMANENT: ReadonlySet<Kind> = new Set(['403-admission', '403-vap', '422-vap', '413', '422', '500-too-large']);

const permanentError = (kind: Kind) =>
  ({
    '403-admission': () => apiError(403, 'admission webhook "deny.example.com" denied the request: no'),
    '403-vap': () => apiError(403, "jobs.batch \"x\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: no"),
    '422-vap': () => apiError(422, "jobs.batch \"x\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: no"),
    '413': () => apiError(413, 'Request entity too large: limit is 3145728'),
    '422': () => apiError(422, 'Job.batch "x" is invalid: spec.template: Invalid value'),
    '500-too-large': () => apiError(500, 'etcdserver: request is too large'),
  })[kind as '413']!();

const transientErrors = [
  () => apiError(429, 'too many requests'),
  () => apiError(503, 'service unavailable'),
  () => apiError(500, 'Internal error occurred: etcdserver: leader changed'),
  () => apiError(504, 'the server was unable to return a response in the time allotted'),
  () => apiError(403, 'jobs.batch "x" is forbidden: exceeded quota: q, requested: count/jobs.batch=1, used: count/jobs.batch=1, limited: count/jobs.batch=1'),
  () => Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
  () => new DOMException('The operation was aborted due to timeout', 'TimeoutError'),
];

interface Script {
  kind: Kind;
  /** Milliseconds the create takes: messages finish out of order. */
  delayMs: number;
  /** How many times a transient failure repeats, or a being-deleted Job is read before it is gone. */
  times: number;
}

/** Past this many creates of one message, it is being retried for ever: the fake answers with a bug, which the property then sees as a fatal. */
const RETRY_CAP = 40;

/** A Jobs API scripted per message (by the offset the controller annotates), keeping every Job it holds. */
class ScriptedJobs implements JobsApi {
  readonly stored = new Map<string, k8s.V1Job>();
  readonly attempts = new Map<string, number>();
  private readonly reads = new Map<string, number>();
  constructor(private readonly scripts: Map<string, Script>) {}

  async createNamespacedJob({ body }: { namespace: string; body: k8s.V1Job }): Promise<k8s.V1Job> {
    const offset = body.metadata!.annotations![Annotation.offset]!;
    const s = this.scripts.get(offset)!;
    const n = (this.attempts.get(offset) ?? 0) + 1;
    this.attempts.set(offset, n);
    if (n > RETRY_CAP) throw new TypeError(`message ${offset} retried for ever`);
    await new Promise((r) => setTimeout(r, s.delayMs));
    const name = body.metadata!.name!;
    if (n === 1) {
      if (PERMANENT.has(s.kind)) throw permanentError(s.kind);
      if (s.kind === '403-rbac') {
        throw apiError(
          403,
          'jobs.batch is forbidden: User "system:serviceaccount:mcp:c" cannot create resource "jobs" in API group "batch" in the namespace "jobs"',
        );
      }
      if (s.kind === '409-same') this.stored.set(name, structuredClone(body));
      if (s.kind === '409-other') {
        const other = structuredClone(body);
        other.metadata!.annotations![Annotation.checksum] = 'another-message';
        this.stored.set(name, other);
      }
      if (s.kind === '409-deleting-goes' || s.kind === '409-deleting-stays') {
        this.stored.set(name, {
          ...structuredClone(body),
          metadata: { ...structuredClone(body.metadata), deletionTimestamp: new Date(), finalizers: ['test/hold'] },
        });
      }
    }
    if (PERMANENT.has(s.kind)) throw permanentError(s.kind);
    if (s.kind === 'transient' && n <= s.times) throw transientErrors[(n + Number(offset)) % transientErrors.length]!();
    if (this.stored.has(name)) throw apiError(409, `jobs.batch "${name}" already exists`);
    this.stored.set(name, structuredClone(body));
    return body;
  }

  async readNamespacedJob({ name }: { name: string; namespace: string }): Promise<k8s.V1Job> {
    const j = this.stored.get(name);
    if (!j) throw apiError(404, `jobs.batch "${name}" not found`);
    const offset = j.metadata!.annotations![Annotation.offset]!;
    const s = this.scripts.get(offset)!;
    const reads = (this.reads.get(name) ?? 0) + 1;
    this.reads.set(name, reads);
    // The finalizer is removed after a few looks: the Job goes.
    if (s.kind === '409-deleting-goes' && j.metadata?.deletionTimestamp && reads > s.times) {
      this.stored.delete(name);
      throw apiError(404, `jobs.batch "${name}" not found`);
    }
    return j;
  }
}

class RecordingProducer {
  readonly sent: ProducerRecord[] = [];
  async send(r: ProducerRecord): Promise<RecordMetadata[]> {
    this.sent.push(r);
    return [];
  }
}

const valid = (o: number) =>
  Buffer.from(JSON.stringify({ jobID: `j-${o}`, jobType: 'server-init', payload: { mcpServers: { s: { command: 'node', args: ['x.js'] } } } }));

async function runBatch(scripts: Script[], limit: number) {
  const offsets = scripts.map((_, i) => String(100 + i));
  const byOffset = new Map(offsets.map((o, i) => [o, scripts[i]!]));
  const jobs = new ScriptedJobs(byOffset);
  const producer = new RecordingProducer();
  const metrics = createMetrics(new Registry(), false);
  const pauses = new Pauses(metrics.paused);
  const handler = new MessageHandler({
    config,
    policy: validationPolicy(config),
    jobs,
    producer,
    slots: new ActiveJobSlots({ cap: 0, log, pauses }),
    pauses,
    log,
    metrics,
    signal: new AbortController().signal,
    backoff: { initialMs: 1, maxMs: 2 },
    terminatingWaitMs: 15,
  });
  const commits: string[] = [];
  const fatals: unknown[] = [];
  const payload = {
    batch: {
      topic: 'work',
      partition: 0,
      highWatermark: String(100 + scripts.length),
      messages: offsets.map(
        (offset, i) =>
          ({
            offset,
            key: null,
            headers: {},
            value: scripts[i]!.kind === 'invalid-message' ? Buffer.from('{') : valid(Number(offset)),
          }) as unknown as KafkaMessage,
      ),
    },
    resolveOffset: () => undefined,
    heartbeat: async () => undefined,
    isRunning: () => true,
    isStale: () => false,
    commitOffsetsIfNecessary: async (o: { topics: { partitions: { offset: string }[] }[] }) => void commits.push(o.topics[0]!.partitions[0]!.offset),
  } as unknown as EachBatchPayload;
  const error = await processBatch({ handler, limit, stopping: new AbortController().signal, onFatal: (e) => fatals.push(e), log, metrics }, payload).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { offsets, jobs, producer, commits, fatals, error };
}

const script = fc.record({ kind: fc.constantFrom(...KINDS), delayMs: fc.integer({ min: 0, max: 4 }), times: fc.integer({ min: 1, max: 3 }) });

describe('the controller over random interleavings of API answers (property)', () => {
  it('commits an offset only behind messages that each have exactly one Job or one dead-letter record, and retries nothing for ever that a retry cannot fix', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(script, { minLength: 1, maxLength: 10 }), fc.integer({ min: 1, max: 4 }), async (scripts, limit) => {
        const r = await runBatch(scripts, limit);
        const committed = r.commits.length ? BigInt(r.commits.at(-1)!) : 100n;
        for (const [i, o] of r.offsets.entries()) {
          const kind = scripts[i]!.kind;
          const liveJobs = [...r.jobs.stored.values()].filter(
            (j) =>
              j.metadata!.annotations![Annotation.offset] === o &&
              j.metadata!.annotations![Annotation.checksum] !== 'another-message' &&
              !j.metadata!.deletionTimestamp,
          ).length;
          const records = r.producer.sent.filter((s) => s.messages.some((m) => String(m.headers![DlqHeader.offset]) === o)).length;
          if (BigInt(o) < committed) assert.equal(liveJobs + records, 1, `offset ${o} (${kind}) is committed with ${liveJobs} Job(s) and ${records} record(s)`);
          assert.ok(liveJobs + records <= 1, `offset ${o} (${kind}) has ${liveJobs} Job(s) and ${records} record(s)`);
          if (PERMANENT.has(kind)) assert.ok((r.jobs.attempts.get(o) ?? 0) <= 1, `offset ${o} (${kind}) was tried again`);
        }
        const rbac = scripts.findIndex((s) => s.kind === '403-rbac');
        if (rbac < 0) {
          assert.deepEqual(r.fatals, [], 'nothing but an RBAC denial stops the controller');
          assert.equal(r.commits.at(-1), String(100 + scripts.length), 'every message finished and is committed');
        } else {
          assert.ok(r.fatals.length === 1 && (r.fatals[0] as Error).name === 'FatalError', 'an RBAC denial fails loudly');
          assert.match((r.fatals[0] as Error).message, /Role/);
          assert.ok(committed <= BigInt(100 + rbac), 'never committed past the message the RBAC denial stopped');
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('CommitWindow over random completion orders (property)', () => {
  it('hands out only offsets behind a run of finished messages, and the last one once all are', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 40 }).chain((n) => fc.tuple(fc.constant(n), fc.shuffledSubarray([...Array(n).keys()], { minLength: 0, maxLength: n }))),
        fc.integer({ min: 1, max: 8 }),
        ([n, order], every) => {
          let t = 0;
          const offsets = Array.from({ length: n }, (_, i) => String(1000 + i * 2));
          const w = new CommitWindow(offsets, { every, intervalMs: 3, now: () => t });
          const done = new Set<number>();
          let handed = -1n;
          for (const i of order) {
            w.finish(i);
            done.add(i);
            t++;
            const c = w.take(t % 2 === 0);
            if (!c) continue;
            const upTo = offsets.indexOf(c.last);
            for (let k = 0; k <= upTo; k++) assert.ok(done.has(k), `handed out ${c.next} with message ${k} unfinished`);
            assert.equal(c.next, (BigInt(c.last) + 1n).toString());
            assert.ok(BigInt(c.next) > handed, 'offsets only move forward');
            handed = BigInt(c.next);
          }
          const last = w.take(true);
          if (done.size === n) assert.equal(last?.next ?? handed.toString(), String(1000 + (n - 1) * 2 + 1));
        },
      ),
      { numRuns: 500 },
    );
  });
});
