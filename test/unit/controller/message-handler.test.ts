import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import type { ProducerRecord, RecordMetadata } from 'kafkajs';
import pino from 'pino';
import { Registry } from 'prom-client';
import { ControllerConfigSchema } from '../../../src/controller/config.js';
import { DlqHeader, recordBatchBytes, TruncatedHeader } from '../../../src/controller/reporting/dead-letter.js';
import { MessageHandler, type HandlerDeps, type JobsApi } from '../../../src/controller/intake/message-handler.js';
import { createMetrics, Pauses } from '../../../src/controller/reporting/metrics.js';
import { ActiveJobSlots } from '../../../src/controller/intake/slots.js';
import { Annotation } from '../../../src/shared/contract/identity.js';
import { validationPolicy } from '../../../src/shared/contract/policy.js';
import { jobName, legacyJobName } from '../../../src/shared/contract/naming.js';
import { LegacyJobs } from '../../../src/controller/intake/legacy-jobs.js';
import { waitFor } from '../../../src/shared/wait.js';
import { parseConfig } from '../../../src/shared/settings.js';

const log = pino({ level: 'silent' });
const config = parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 'work', JOB_NAMESPACE: 'jobs' });
const valid = (id = 'j-1') => ({
  key: null,
  value: Buffer.from(JSON.stringify({ jobID: id, jobType: 'server-init', payload: { mcpServers: { s: { command: 'node', args: ['x.js'] } } } })),
});
const at = (offset: string) => ({ topic: 'work', partition: 0, offset });
const heartbeat = async () => undefined;

/** An API error shaped as client-node's ApiException. */
const apiError = (code: number, message = 'x') =>
  Object.assign(new Error(`HTTP-Code: ${code}`), { code, body: JSON.stringify({ kind: 'Status', code, message }) });

/** An in-memory Jobs API whose answers a test scripts, one per call. */
class FakeJobs implements JobsApi {
  readonly stored = new Map<string, k8s.V1Job>();
  creates = 0;
  createFailures: unknown[] = [];
  async createNamespacedJob({ body }: { namespace: string; body: k8s.V1Job }): Promise<k8s.V1Job> {
    this.creates++;
    const f = this.createFailures.shift();
    if (f) throw f;
    const name = body.metadata!.name!;
    if (this.stored.has(name)) throw apiError(409, 'already exists');
    this.stored.set(name, body);
    return body;
  }
  async readNamespacedJob({ name }: { name: string }): Promise<k8s.V1Job> {
    const j = this.stored.get(name);
    if (!j) throw apiError(404);
    return j;
  }
}

class FakeProducer {
  sent: ProducerRecord[] = [];
  failures: unknown[] = [];
  /** The topic's max.message.bytes, checked as the broker does (the whole batch), when set. */
  limit?: number;
  async send(r: ProducerRecord): Promise<RecordMetadata[]> {
    const f = this.failures.shift();
    if (f) throw f;
    if (this.limit !== undefined && r.messages.some((m) => recordBatchBytes(m) > this.limit!)) {
      throw Object.assign(new Error('The request included a message larger than the max message size the server will accept'), { type: 'MESSAGE_TOO_LARGE' });
    }
    this.sent.push(r);
    return [];
  }
}

function setup(o: Partial<HandlerDeps> = {}, jobs = new FakeJobs()) {
  const producer = new FakeProducer();
  const metrics = createMetrics(new Registry(), false);
  const pauses = new Pauses(metrics.paused);
  const slots = new ActiveJobSlots({ cap: 0, log, pauses });
  const handler = new MessageHandler({
    config,
    policy: validationPolicy(config),
    jobs,
    producer,
    slots,
    pauses,
    log,
    metrics,
    signal: new AbortController().signal,
    now: () => new Date('2026-01-01T00:00:00Z'),
    backoff: { initialMs: 1, maxMs: 5 },
    ...o,
  });
  return { jobs, producer, metrics, pauses, slots, handler };
}

describe('MessageHandler', () => {
  it('creates the Job for a valid message (201) and holds a slot for it', async () => {
    const { handler, jobs, slots } = setup();
    const r = await handler.handle(valid(), at('7'), heartbeat);
    assert.deepEqual(r, { kind: 'job', name: 'mcp-work-405baf60-0-7', existed: false });
    assert.equal(jobs.stored.get('mcp-work-405baf60-0-7')!.metadata!.annotations![Annotation.offset], '7');
    assert.equal(slots.count, 1);
  });

  it("passes the record's W3C trace context to the Job it creates", async () => {
    const { handler, jobs } = setup();
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    await handler.handle({ ...valid(), headers: { traceparent: Buffer.from(tp) } }, at('8'), heartbeat);
    const env = jobs.stored.get('mcp-work-405baf60-0-8')!.spec!.template.spec!.containers[0]!.env!;
    assert.equal(env.find((e) => e.name === 'TRACEPARENT')?.value, tp);
  });

  it('takes a 409 for the same message as success: a redelivery finds the Job it made before', async () => {
    const { handler, jobs } = setup();
    await handler.handle(valid(), at('7'), heartbeat);
    const r = await handler.handle(valid(), at('7'), heartbeat);
    assert.deepEqual(r, { kind: 'job', name: 'mcp-work-405baf60-0-7', existed: true });
    assert.equal(jobs.stored.size, 1);
  });

  it('gives the slot back when the existing Job of the same message has already finished', async () => {
    const { handler, jobs, slots } = setup();
    await handler.handle(valid(), at('7'), heartbeat);
    slots.observe({ ...jobs.stored.get('mcp-work-405baf60-0-7')!, status: { conditions: [{ type: 'Complete', status: 'True' }] } });
    jobs.stored.get('mcp-work-405baf60-0-7')!.status = { conditions: [{ type: 'Complete', status: 'True' }] };
    await handler.handle(valid(), at('7'), heartbeat);
    assert.equal(slots.count, 0);
  });

  it('dead-letters a message whose Job name is taken by another message (409, different bytes)', async () => {
    const { handler, producer } = setup();
    await handler.handle(valid('first'), at('7'), heartbeat);
    const r = await handler.handle(valid('second'), at('7'), heartbeat);
    assert.deepEqual(r, { kind: 'dead-lettered', reason: 'job-name-conflict' });
    assert.equal(producer.sent.length, 1);
    assert.equal(producer.sent[0]!.topic, 'work.dlq');
  });

  it('dead-letters a Job the API server refuses as invalid (422), with the reason, and creates nothing', async () => {
    const { handler, producer, jobs } = setup();
    jobs.createFailures.push(apiError(422, 'spec.template: Invalid value'));
    const r = await handler.handle(valid(), at('3'), heartbeat);
    assert.deepEqual(r, { kind: 'dead-lettered', reason: 'invalid-job' });
    const headers = producer.sent[0]!.messages[0]!.headers!;
    assert.equal(headers[DlqHeader.reason], 'invalid-job');
    assert.match(String(headers[DlqHeader.error]), /Invalid value/);
    assert.equal(jobs.stored.size, 0);
  });

  it('retries server errors (5xx) and network failures until the Job exists', async () => {
    const { handler, jobs, metrics } = setup();
    jobs.createFailures.push(apiError(500), apiError(503), Object.assign(new Error('ECONNRESET'), { code: 'ECONNRESET' }));
    const r = await handler.handle(valid(), at('4'), heartbeat);
    assert.equal(r.kind, 'job');
    assert.equal(jobs.creates, 4);
    assert.equal((await metrics.retries.get()).values.find((v) => v.labels.op === 'create-job')!.value, 3);
  });

  it('pauses on a full quota and resolves only once the Job exists, so nothing is committed meanwhile', async () => {
    const { handler, jobs, pauses } = setup();
    const quota = apiError(403, 'jobs.batch "x" is forbidden: exceeded quota: q, requested: count/jobs.batch=1');
    jobs.createFailures.push(quota, quota, quota, quota);
    let resolved = false;
    const pausedSeen: boolean[] = [];
    const p = handler
      .handle(valid(), at('9'), async () => {
        pausedSeen.push(pauses.paused);
      })
      .then((r) => ((resolved = true), r));
    await waitFor(() => jobs.creates >= 3, { timeoutMs: 5000, intervalMs: 2, description: 'three refused creates' });
    assert.equal(resolved, false, 'not resolved while the quota refuses');
    assert.ok(pausedSeen.includes(true), 'paused while refused');
    const r = await p;
    assert.equal(r.kind, 'job');
    assert.equal(pauses.paused, false, 'resumed once created');
  });

  it('dead-letters invalid input once, with its original bytes, and not again when it is redelivered before the commit', async () => {
    const { handler, producer } = setup();
    const bad = { key: Buffer.from('k'), value: Buffer.from('{not json'), headers: { trace: 'x' } };
    assert.deepEqual(await handler.handle(bad, at('5'), heartbeat), { kind: 'dead-lettered', reason: 'invalid-json' });
    assert.deepEqual(await handler.handle(bad, at('5'), heartbeat), { kind: 'dead-lettered', reason: 'invalid-json' });
    assert.equal(producer.sent.length, 1);
    const m = producer.sent[0]!.messages[0]!;
    assert.equal(String(m.value), '{not json');
    assert.equal(m.headers![DlqHeader.offset], '5');
    handler.committed(0, '6');
    assert.equal(handler.hasDeadLettered({ partition: 0, offset: '5' }), false, 'forgotten once committed');
  });

  it('does not write a record again that a previous run wrote before it was killed', async () => {
    const { handler, producer } = setup();
    handler.seedDeadLettered(new Set(['0/5']));
    await handler.handle({ key: null, value: Buffer.from('x') }, at('5'), heartbeat);
    assert.equal(producer.sent.length, 0);
  });

  it('retries a failed dead-letter send until the record is written', async () => {
    const { handler, producer } = setup();
    producer.failures.push(Object.assign(new Error('leader not available'), { type: 'LEADER_NOT_AVAILABLE', retriable: true }));
    await handler.handle({ key: null, value: Buffer.from('x') }, at('1'), heartbeat);
    assert.equal(producer.sent.length, 1);
  });
});

describe('MessageHandler, what no retry fixes', () => {
  const tooLarge = () =>
    Object.assign(new Error('The request included a message larger than the max message size the server will accept'), {
      type: 'MESSAGE_TOO_LARGE',
      retriable: false,
    });

  it('writes a dead-letter record over the topic limit again, truncated, with headers saying so', async () => {
    const { handler, producer, metrics } = setup();
    producer.failures.push(tooLarge());
    const big = { key: null, value: Buffer.alloc(5000, 0xff) };
    const r = await handler.handle(big, at('2'), heartbeat);
    assert.deepEqual(r, { kind: 'dead-lettered', reason: 'invalid-json' });
    const m = producer.sent[0]!.messages[0]!;
    assert.equal(m.headers!['mcp.dlq.truncated'], 'true');
    assert.equal(m.headers!['mcp.dlq.original.size'], '5000');
    assert.equal(producer.sent[0]!.compression, 1, 'dead-letter records are sent gzip-compressed');
    assert.equal((await metrics.deadLetterTruncated.get()).values[0]!.value, 1);
  });

  it('dead-letters a `{}` message with a ~1 MB header at the default max.message.bytes, cutting the header, instead of ending the controller', async () => {
    const { handler, producer } = setup();
    producer.limit = 1048588;
    const blob = randomBytes(1048588 - 300);
    const r = await handler.handle({ key: null, value: Buffer.from('{}'), headers: { blob } }, at('3'), heartbeat);
    assert.deepEqual(r, { kind: 'dead-lettered', reason: 'invalid-envelope' });
    const m = producer.sent[0]!.messages[0]!;
    assert.ok(recordBatchBytes(m) <= 1048588);
    assert.equal(m.headers![TruncatedHeader.truncated], 'true');
    assert.equal(m.headers![TruncatedHeader.headersSize], String(4 + blob.length), 'the header keeps its original size');
    assert.equal(m.headers![DlqHeader.reason], 'invalid-envelope');
  });

  it('writes a minimal record when the broker refuses a dead-letter record as invalid, instead of ending the controller', async () => {
    const { handler, producer } = setup();
    producer.failures.push(Object.assign(new Error('invalid record'), { type: 'INVALID_RECORD' }));
    const r = await handler.handle({ key: Buffer.from('k'), value: Buffer.from('x') }, at('4'), heartbeat);
    assert.deepEqual(r, { kind: 'dead-lettered', reason: 'invalid-json' });
    const m = producer.sent[0]!.messages[0]!;
    assert.equal(m.headers![TruncatedHeader.truncated], 'minimal');
    assert.equal(String(m.headers![DlqHeader.offset]), '4');
    assert.equal(m.value, null);
  });

  it('ends the controller (FatalError) when the dead-letter topic refuses the write for good, rather than skip or stall', async () => {
    const { handler, producer } = setup();
    producer.failures.push(Object.assign(new Error('Not authorized to access topics'), { type: 'TOPIC_AUTHORIZATION_FAILED' }));
    await assert.rejects(
      handler.handle({ key: null, value: Buffer.from('x') }, at('1'), heartbeat),
      (e: Error) => e.name === 'FatalError' && /work\.dlq/.test(e.message),
    );
  });

  it('ends the controller when another consumer group owns the Job name: two controllers share a prefix and namespace', async () => {
    const { handler, jobs } = setup();
    await handler.handle(valid(), at('7'), heartbeat);
    jobs.stored.get('mcp-work-405baf60-0-7')!.metadata!.annotations![Annotation.group] = 'other-controller';
    await assert.rejects(handler.handle(valid(), at('7'), heartbeat), (e: Error) => e.name === 'FatalError' && /JOB_NAME_PREFIX/.test(e.message));
  });

  it('gives up waiting at the cap when its batch is abandoned (a rebalance), so the batch can drain', async () => {
    const jobs = new FakeJobs();
    const metrics = createMetrics(new Registry(), false);
    const pauses = new Pauses(metrics.paused);
    const slots = new ActiveJobSlots({ cap: 1, log, pauses });
    slots.observe({ metadata: { name: 'busy' }, status: {} });
    const handler = new MessageHandler({
      config,
      policy: validationPolicy(config),
      jobs,
      producer: new FakeProducer(),
      slots,
      pauses,
      log,
      metrics,
      signal: new AbortController().signal,
    });
    const rebalance = new AbortController();
    const p = handler.handle(valid(), at('1'), heartbeat, rebalance.signal);
    rebalance.abort();
    await assert.rejects(p, (e: Error) => e.name === 'AbortedError');
    assert.equal(jobs.creates, 0);
  });
});

describe('MessageHandler, per-message refusals from the API server', () => {
  const rbac = () =>
    apiError(
      403,
      'jobs.batch is forbidden: User "system:serviceaccount:mcp:controller" cannot create resource "jobs" in API group "batch" in the namespace "jobs"',
    );

  it("dead-letters a Job an admission webhook denies (403), with the API server's message, after one try", async () => {
    const { handler, producer, jobs } = setup();
    jobs.createFailures.push(apiError(403, 'admission webhook "validate.kyverno.svc-fail" denied the request: policy require-labels: label team is required'));
    const r = await handler.handle(valid(), at('3'), heartbeat);
    assert.deepEqual(r, { kind: 'dead-lettered', reason: 'job-rejected' });
    assert.match(String(producer.sent[0]!.messages[0]!.headers![DlqHeader.error]), /label team is required/);
    assert.equal(jobs.creates, 1);
  });

  it('dead-letters a Job a ValidatingAdmissionPolicy denies (403) and goes on with the next message', async () => {
    const { handler, jobs } = setup();
    jobs.createFailures.push(apiError(403, "jobs.batch \"x\" is forbidden: ValidatingAdmissionPolicy 'no-x' with binding 'no-x' denied request: x"));
    assert.deepEqual(await handler.handle(valid(), at('3'), heartbeat), { kind: 'dead-lettered', reason: 'job-rejected' });
    assert.equal((await handler.handle(valid(), at('4'), heartbeat)).kind, 'job');
  });

  it('dead-letters a Job too large to store (413, etcd "request is too large") instead of retrying it for ever', async () => {
    for (const err of [apiError(413, 'Request entity too large: limit is 3145728'), apiError(500, 'etcdserver: request is too large')]) {
      const { handler, jobs } = setup();
      jobs.createFailures.push(err);
      assert.deepEqual(await handler.handle(valid(), at('3'), heartbeat), { kind: 'dead-lettered', reason: 'job-rejected' });
      assert.equal(jobs.creates, 1);
    }
  });

  it("fails loudly (FatalError) on an RBAC 403: the controller's Role is wrong, and no message is dead-lettered for it", async () => {
    const { handler, jobs, producer } = setup();
    jobs.createFailures.push(rbac());
    await assert.rejects(handler.handle(valid(), at('3'), heartbeat), (e: Error) => e.name === 'FatalError' && /cannot create resource "jobs"/.test(e.message));
    assert.equal(producer.sent.length, 0);
  });

  it("does not take a Job being deleted (409, deletionTimestamp) for the message's Job: it waits until it is gone, then creates it", async () => {
    const { handler, jobs } = setup();
    await handler.handle(valid(), at('7'), heartbeat);
    const name = jobName('mcp', 'work', 0, '7');
    jobs.stored.get(name)!.metadata!.deletionTimestamp = new Date();
    let settled = false;
    const p = handler.handle(valid(), at('7'), heartbeat).finally(() => (settled = true));
    await waitFor(() => jobs.creates >= 4, { timeoutMs: 5000, description: 'creates retried while the Job is terminating' });
    assert.equal(settled, false, 'not resolved while the Job is being deleted');
    jobs.stored.delete(name);
    assert.deepEqual(await p, { kind: 'job', name, existed: false });
    assert.ok(jobs.stored.get(name)!.metadata!.deletionTimestamp === undefined);
  });

  it('dead-letters the message (job-terminating) when a Job being deleted holds its name past the bound', async () => {
    // The clock moves 10 s a reading: the bound (60 s) passes after a few retries, whatever the wall clock does.
    let t = Date.parse('2026-01-01T00:00:00Z');
    const { handler, jobs } = setup({ terminatingWaitMs: 60_000, now: () => new Date((t += 10_000)) });
    await handler.handle(valid(), at('7'), heartbeat);
    jobs.stored.get(jobName('mcp', 'work', 0, '7'))!.metadata!.deletionTimestamp = new Date();
    assert.deepEqual(await handler.handle(valid(), at('7'), heartbeat), { kind: 'dead-lettered', reason: 'job-terminating' });
  });

  it('gives prefix mcp + topic prod-jobs and prefix mcp-prod + topic jobs each their own Job in one namespace', async () => {
    const jobs = new FakeJobs();
    const a = parseConfig(ControllerConfigSchema, {
      KAFKA_BROKERS: 'k:9092',
      KAFKA_TOPIC: 'prod-jobs',
      JOB_NAMESPACE: 'jobs',
      JOB_NAME_PREFIX: 'mcp',
      KAFKA_CONSUMER_GROUP: 'a',
    });
    const b = parseConfig(ControllerConfigSchema, {
      KAFKA_BROKERS: 'k:9092',
      KAFKA_TOPIC: 'jobs',
      JOB_NAMESPACE: 'jobs',
      JOB_NAME_PREFIX: 'mcp-prod',
      KAFKA_CONSUMER_GROUP: 'b',
    });
    const ra = await setup({ config: a, policy: validationPolicy(a) }, jobs).handler.handle(
      valid(),
      { topic: 'prod-jobs', partition: 0, offset: '5' },
      heartbeat,
    );
    const rb = await setup({ config: b, policy: validationPolicy(b) }, jobs).handler.handle(valid(), { topic: 'jobs', partition: 0, offset: '5' }, heartbeat);
    assert.deepEqual([ra.kind, rb.kind], ['job', 'job']);
    assert.equal(jobs.stored.size, 2);
  });

  it('recognises the Job a controller before the naming change made for an in-flight message, and makes no second one', async () => {
    const { handler: before, jobs } = setup();
    await before.handle(valid(), at('7'), heartbeat);
    // What the previous release made: the same Job under its old name.
    const made = jobs.stored.get(jobName('mcp', 'work', 0, '7'))!;
    jobs.stored.clear();
    const oldName = legacyJobName('mcp', 'work', 0, '7');
    jobs.stored.set(oldName, { ...made, metadata: { ...made.metadata, name: oldName } });
    const legacy = new LegacyJobs({ prefix: 'mcp', topic: 'work' });
    legacy.reconcile([...jobs.stored.values()]);
    const { handler } = setup({ legacyJob: (c) => legacy.find(c) }, jobs);
    assert.deepEqual(await handler.handle(valid(), at('7'), heartbeat), { kind: 'job', name: oldName, existed: true });
    assert.equal(jobs.stored.size, 1);
    assert.equal(jobs.creates, 1, 'only the first controller created');
  });
});
