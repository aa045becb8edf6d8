import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client, InMemoryTransport } from '@modelcontextprotocol/client';
import { serveConfig, servePolicy } from '../../../src/serve/config.js';
import { TokenBucket } from '../../../src/serve/rate-limit.js';
import { serveServerFactory, type ServeDeps } from '../../../src/serve/tools.js';
import { createLogger } from '../../../src/shared/logger.js';

const ENV = { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 't', SERVE_TOKEN_FILE: '/x', JOB_NAMESPACE: 'jobs' };

/** The tools of `serve` over an in-memory pair, with `deps` overriding recording fakes. */
async function tools(env: Record<string, string> = {}, deps: Partial<ServeDeps> = {}) {
  const cfg = serveConfig({}, { ...ENV, ...env });
  const calls = { initialize: [] as string[], getJob: [] as string[] };
  const factory = serveServerFactory({
    cfg,
    policy: servePolicy(cfg),
    log: createLogger({ level: 'silent', name: 'test' }),
    produce: () => Promise.reject(new Error('not produced here')),
    getJob: (name) => (calls.getJob.push(name), Promise.resolve(undefined)),
    listJobs: () => Promise.resolve([]),
    listPods: () => Promise.resolve([]),
    findDeadLetter: () => Promise.resolve({ scanned: 0 }),
    initialize: (name) => {
      calls.initialize.push(name);
      return Promise.resolve({ name, status: 'initialized', transport: 'stdio', durationMs: 1 });
    },
    submitLimit: new TokenBucket(1, 1),
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
