import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { Client, InMemoryTransport } from '@modelcontextprotocol/client';
import { serveConfig, servePolicy } from '../../../src/serve/config.js';
import { TokenBucket } from '../../../src/serve/rate-limit.js';
import { LIST_JOBS_SCAN, serveServerFactory, type ServeDeps } from '../../../src/serve/tools.js';
import { Annotation, Label, MANAGED_BY } from '../../../src/shared/contract/identity.js';
import { createLogger } from '../../../src/shared/logger.js';

const ENV = { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 't', SERVE_TOKEN_FILE: '/x', JOB_NAMESPACE: 'jobs' };

/** The tools of `serve` over an in-memory pair, with `deps` overriding recording fakes. */
async function tools(env: Record<string, string> = {}, deps: Partial<ServeDeps> = {}) {
  const cfg = serveConfig({}, { ...ENV, ...env });
  const calls = { initialize: [] as string[], getJob: [] as string[], listJobs: [] as [string, number][], scans: 0 };
  const factory = serveServerFactory({
    cfg,
    policy: servePolicy(cfg),
    log: createLogger({ level: 'silent', name: 'test' }),
    produce: () => Promise.reject(new Error('not produced here')),
    getJob: (name) => (calls.getJob.push(name), Promise.resolve(undefined)),
    listJobs: (selector, limit) => (calls.listJobs.push([selector, limit]), Promise.resolve({ items: [], more: false })),
    listPods: () => Promise.resolve([]),
    findDeadLetter: () => (calls.scans++, Promise.resolve({ scanned: 0 })),
    initialize: (name) => {
      calls.initialize.push(name);
      return Promise.resolve({ name, status: 'initialized', transport: 'stdio', durationMs: 1 });
    },
    submitLimit: new TokenBucket(1, 1),
    scanLimit: new TokenBucket(1, 100),
    initLimit: new TokenBucket(1, 100),
    ...deps,
  });
  const [a, b] = InMemoryTransport.createLinkedPair();
  await factory().connect(b);
  const client = new Client({ name: 'unit', version: '0' });
  await client.connect(a);
  const call = async (name: string, args: Record<string, unknown>) => client.callTool({ name, arguments: args });
  return { call, calls, close: () => client.close() };
}

const text = (r: { content?: unknown }) => JSON.stringify(r.content);

describe('serve: server_initialize in its own pod', () => {
  it('refuses a stdio server, naming ALLOWED_COMMAND_PATTERNS, while the setting is unset, and starts nothing', async () => {
    const t = await tools();
    try {
      const r = await t.call('server_initialize', { serverName: 'pkg', config: { command: 'npx', args: ['-y', 'any-package'] } });
      assert.equal(r.isError, true);
      assert.match(text(r), /ALLOWED_COMMAND_PATTERNS/);
      assert.deepEqual(t.calls.initialize, []);
    } finally {
      await t.close();
    }
  });

  it('starts a stdio server whose command line matches ALLOWED_COMMAND_PATTERNS, and refuses one that does not', async () => {
    const t = await tools({ ALLOWED_COMMAND_PATTERNS: 'node /srv/fixture.js' });
    try {
      const ok = await t.call('server_initialize', { serverName: 'fixture', config: { command: 'node', args: ['/srv/fixture.js'] } });
      assert.notEqual(ok.isError, true, text(ok));
      const bad = await t.call('server_initialize', { serverName: 'pkg', config: { command: 'npx', args: ['-y', 'any-package'] } });
      assert.equal(bad.isError, true);
      assert.match(text(bad), /command-args-not-allowed/);
      assert.deepEqual(t.calls.initialize, ['fixture']);
    } finally {
      await t.close();
    }
  });

  it('still reaches a remote server without ALLOWED_COMMAND_PATTERNS: only stdio runs code in the pod', async () => {
    const t = await tools();
    try {
      const r = await t.call('server_initialize', { serverName: 'web', config: { type: 'http', url: 'https://mcp.example.com/mcp' } });
      assert.notEqual(r.isError, true, text(r));
      assert.deepEqual(t.calls.initialize, ['web']);
    } finally {
      await t.close();
    }
  });
});

/** A Job as the controller makes it for topic `t`, with `labels`/`annotations` overriding. */
const jobOf = (name: string, labels: Record<string, string> = {}, annotations: Record<string, string> = {}): k8s.V1Job => ({
  metadata: {
    name,
    labels: { [Label.managedBy]: MANAGED_BY, [Label.topic]: 't', ...labels },
    annotations: { [Annotation.topic]: 't', [Annotation.jobID]: 'j', [Annotation.partition]: '0', [Annotation.offset]: '7', ...annotations },
  },
  status: { conditions: [{ type: 'Complete', status: 'True' }] },
});

describe('serve: get_job and list_jobs see only the Jobs of the topic', () => {
  it("answers not-found for a Job of the namespace the controller did not make for this topic, and shows the controller's", async () => {
    const jobs: Record<string, k8s.V1Job> = {
      'mcp-t-0-7': jobOf('mcp-t-0-7'),
      'someone-elses': { metadata: { name: 'someone-elses' }, status: { conditions: [{ type: 'Complete', status: 'True' }] } },
      'mcp-t-0-8': jobOf('mcp-t-0-8', {}, { [Annotation.topic]: 'other' }),
      'mcp-t-0-9': jobOf('mcp-t-0-9', { [Label.managedBy]: 'helm' }),
    };
    const t = await tools({}, { getJob: (name) => Promise.resolve(jobs[name]) });
    try {
      const status = async (name: string) => ((await t.call('get_job', { name })).structuredContent as { status: string }).status;
      assert.equal(await status('mcp-t-0-7'), 'succeeded');
      for (const name of ['someone-elses', 'mcp-t-0-8', 'mcp-t-0-9']) assert.equal(await status(name), 'not-found', name);
    } finally {
      await t.close();
    }
  });

  it("asks the API for one bounded page of the topic's Jobs, and says when there were more", async () => {
    const t = await tools({}, { listJobs: () => Promise.resolve({ items: [jobOf('mcp-t-0-7')], more: true }) });
    try {
      const r = (await t.call('list_jobs', {})).structuredContent as { jobs: { name: string }[]; truncated?: boolean };
      assert.deepEqual(
        r.jobs.map((j) => j.name),
        ['mcp-t-0-7'],
      );
      assert.equal(r.truncated, true);
    } finally {
      await t.close();
    }
    const u = await tools();
    try {
      const r = (await u.call('list_jobs', { jobID: 'j' })).structuredContent as { truncated?: boolean };
      assert.equal(r.truncated, undefined);
      assert.deepEqual(u.calls.listJobs, [[`${Label.managedBy}=${MANAGED_BY},${Label.topic}=t,${Label.jobID}=j`, LIST_JOBS_SCAN]]);
    } finally {
      await u.close();
    }
  });
});

describe('serve: the costly tools are throttled like submit', () => {
  /** A bucket of `burst` tokens whose clock never moves: nothing refills during the test. */
  const frozen = (burst: number) => new TokenBucket(1, burst, () => 0);

  it("refuses get_job's dead-letter scan past its burst with a retry time, and scans nothing more", async () => {
    const t = await tools({}, { scanLimit: frozen(2) });
    try {
      for (const offset of ['1', '2']) {
        const r = await t.call('get_job', { partition: 0, offset });
        assert.notEqual(r.isError, true, text(r));
      }
      const third = await t.call('get_job', { partition: 0, offset: '3' });
      assert.equal(third.isError, true);
      assert.match(text(third), /rate limited: try again in \d+ s/);
      assert.equal(t.calls.scans, 2);
    } finally {
      await t.close();
    }
  });

  it('answers get_job for a Job that needs no scan whatever the scan budget', async () => {
    const t = await tools({}, { scanLimit: frozen(1), getJob: (name) => Promise.resolve(jobOf(name)) });
    try {
      for (let i = 0; i < 3; i++) {
        const r = await t.call('get_job', { name: 'mcp-t-0-7' });
        assert.equal((r.structuredContent as { status: string }).status, 'succeeded', text(r));
      }
      assert.equal(t.calls.scans, 0);
    } finally {
      await t.close();
    }
  });

  it('refuses server_initialize past its burst with a retry time, and starts nothing more', async () => {
    const t = await tools({}, { initLimit: frozen(1) });
    try {
      const config = { type: 'http', url: 'https://mcp.example.com/mcp' };
      const first = await t.call('server_initialize', { serverName: 'a', config });
      assert.notEqual(first.isError, true, text(first));
      const second = await t.call('server_initialize', { serverName: 'b', config });
      assert.equal(second.isError, true);
      assert.match(text(second), /rate limited: try again in \d+ s/);
      assert.deepEqual(t.calls.initialize, ['a']);
    } finally {
      await t.close();
    }
  });
});
