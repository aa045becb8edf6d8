/**
 * The job's MCP initialization against real servers of both protocol generations, over stdio and
 * Streamable HTTP, through `initializeServer` and the in-process `server_initialize` service: no
 * broker needed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repoRoot } from '../testbed/cache.js';
import { initializeServer } from '../../src/job/mcp/initialize.js';
import { MAX_LIST_PAGES, type InitOptions } from '../../src/job/mcp/result.js';
import { createInitService } from '../../src/job/mcp/service.js';
import { buildSummary } from '../../src/job/summary.js';
import type { ServerConfig } from '../../src/shared/contract/servers.js';
import { JobSummarySchema, TERMINATION_MESSAGE_LIMIT } from '../../src/shared/contract/summary.js';
import { PAGE_SIZE, startHttpFixture } from '../fixtures/server-2026.js';
import { startHttp2025Fixture } from '../fixtures/http-server-2025.js';
import { startSseFixture } from '../fixtures/sse-server-2025.js';

const FIXTURE_2025 = join(repoRoot, 'dist', 'test', 'fixtures', 'mcp-server.js');
const FIXTURE_2026 = join(repoRoot, 'dist', 'test', 'fixtures', 'mcp-server-2026.js');
const EVERYTHING = join(repoRoot, 'node_modules', '@modelcontextprotocol', 'server-everything', 'dist', 'index.js');

const opts = (over: Partial<InitOptions> = {}): InitOptions => ({
  timeoutMs: 15_000,
  secretsDir: '/nonexistent',
  allowedCommands: ['node'],
  protocol: 'auto',
  // The fixtures listen on loopback, which the remote-URL policy refuses unless allowed.
  policy: { remote: { allow: ['127.0.0.1'], serviceCidrs: [], podCidrs: [], apiServerHosts: [] } },
  ...over,
});
const stdio = (args: string[], extra: Partial<Extract<ServerConfig, { command: string }>> = {}): ServerConfig => ({ command: 'node', args, ...extra });
const v2026 = (legacy: 'serve' | 'reject', ...more: string[]) => stdio([FIXTURE_2026, '--legacy', legacy, ...more]);

describe('initializing a 2025-only server', () => {
  it('falls back to the 2025 handshake in auto mode and reports what the server offers', async () => {
    const r = await initializeServer('old', stdio([FIXTURE_2025]), opts());
    assert.equal(r.status, 'initialized', r.error);
    assert.equal(r.generation, '2025');
    assert.equal(r.protocolVersion, '2025-11-25');
    assert.deepEqual(r.serverInfo, { name: 'fixture-server', version: '1.2.3' });
    assert.equal(r.instructions, 'A test server.');
    assert.deepEqual(r.tools, ['echo', 'add']);
    assert.deepEqual(r.prompts, ['greet']);
    assert.deepEqual(r.resources, ['fixture://readme']);
    assert.ok(r.phases?.spawn !== undefined && r.phases.handshake !== undefined && r.phases.lists !== undefined, JSON.stringify(r.phases));
  });

  it('speaks 2025 without a probe when pinned to 2025', async () => {
    const r = await initializeServer('old', stdio([FIXTURE_2025]), opts({ protocol: '2025' }));
    assert.equal(r.status, 'initialized', r.error);
    assert.equal(r.generation, '2025');
  });

  it('fails for good with a clear reason when pinned to 2026-07-28', async () => {
    const r = await initializeServer('old', stdio([FIXTURE_2025], { protocol: '2026-07-28' }), opts({ protocol: 'auto' }));
    assert.equal(r.status, 'failed-permanent');
    assert.equal(r.reason, 'protocol-mismatch');
    assert.match(r.error!, /did not offer pinned protocol version 2026-07-28/);
  });

  it('starts a server that exits on the discover probe again, with the 2025 handshake, in auto mode', async () => {
    const r = await initializeServer('fragile', stdio([FIXTURE_2025, '--exit-on-discover']), opts());
    assert.equal(r.status, 'initialized', r.error);
    assert.equal(r.generation, '2025');
    assert.deepEqual(r.tools, ['echo', 'add']);
  });

  it('initializes the reference server-everything from npm', async () => {
    const r = await initializeServer('everything', stdio([EVERYTHING, 'stdio']), opts());
    assert.equal(r.status, 'initialized', r.error);
    assert.equal(r.generation, '2025');
    assert.ok((r.tools?.length ?? 0) > 3, `tools: ${r.tools?.join(',')}`);
  });
});

describe("a stdio entry's own fields", () => {
  it("starts the server in the entry's cwd with its inline env", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-cwd-'));
    const r = await initializeServer('placed', stdio([FIXTURE_2025], { cwd: dir, env: { EXTRA_TOOL: 'from-inline-env', CWD_TOOL: '1' } }), opts());
    assert.equal(r.status, 'initialized', r.error);
    assert.ok(r.tools?.includes('from-inline-env'), JSON.stringify(r.tools));
    assert.ok(r.tools?.includes(`cwd-${dir.split('/').at(-1)}`), JSON.stringify(r.tools));
  });
});

describe('initializing a 2026-07-28 server over stdio', () => {
  it('negotiates 2026-07-28 in auto mode when the server also serves 2025', async () => {
    const r = await initializeServer('new', v2026('serve'), opts());
    assert.equal(r.status, 'initialized', r.error);
    assert.equal(r.generation, '2026-07-28');
    assert.equal(r.protocolVersion, '2026-07-28');
    assert.deepEqual(r.serverInfo, { name: 'fixture-server-2026', version: '2.0.0' });
    assert.equal(r.instructions, 'A 2026-07-28 test server.');
    assert.deepEqual(Object.keys(r.capabilities ?? {}).sort(), ['prompts', 'resources', 'tools']);
  });

  it('speaks 2025 to it when pinned to 2025 and it serves legacy clients', async () => {
    const r = await initializeServer('new', v2026('serve'), opts({ protocol: '2025' }));
    assert.equal(r.status, 'initialized', r.error);
    assert.equal(r.generation, '2025');
  });

  it('negotiates 2026-07-28 in auto mode and when pinned, when the server rejects legacy clients', async () => {
    for (const protocol of ['auto', '2026-07-28'] as const) {
      const r = await initializeServer('strict', v2026('reject'), opts({ protocol }));
      assert.equal(r.status, 'initialized', `${protocol}: ${r.error}`);
      assert.equal(r.generation, '2026-07-28');
    }
  });

  it('fails for good when pinned to 2025 and the server rejects legacy clients', async () => {
    const r = await initializeServer('strict', v2026('reject'), opts({ protocol: '2025' }));
    assert.equal(r.status, 'failed-permanent');
    assert.equal(r.reason, 'protocol-mismatch');
  });

  it('follows every page of a paginated list', async () => {
    const r = await initializeServer('paged', v2026('serve', '--tools', String(PAGE_SIZE * 3 + 1)), opts({ protocol: '2026-07-28' }));
    assert.equal(r.status, 'initialized', r.error);
    assert.equal(r.tools?.length, PAGE_SIZE * 3 + 1);
    assert.equal(r.tools?.at(-1), `tool_${PAGE_SIZE * 3}`);
    assert.equal(r.capped, undefined);
  });

  it('stops a list at the page cap and says so, keeping what it read', async () => {
    const r = await initializeServer('endless', v2026('serve', '--tools', String(PAGE_SIZE * (MAX_LIST_PAGES + 5))), opts({ protocol: '2026-07-28' }));
    assert.equal(r.status, 'initialized', r.error);
    assert.equal(r.tools?.length, PAGE_SIZE * MAX_LIST_PAGES);
    assert.deepEqual(r.capped, ['tools']);
  });

  it("puts the job's trace context in each request's _meta on 2026-07-28", async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'meta-')), 'meta.jsonl');
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const r = await initializeServer('traced', v2026('serve', '--meta-file', file), opts({ trace: { traceparent, tracestate: 'vendor=x' } }));
    assert.equal(r.status, 'initialized', r.error);
    const metas = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(metas.length, 3);
    for (const m of metas) {
      assert.equal(m.traceparent, traceparent);
      assert.equal(m.tracestate, 'vendor=x');
    }
  });
});

describe('initializing a 2026-07-28 server over Streamable HTTP', () => {
  let serving: { url: string; close: () => Promise<void> };
  let strict: { url: string; close: () => Promise<void> };
  before(async () => {
    serving = await startHttpFixture('stateless', { tools: PAGE_SIZE * 2 + 1 });
    strict = await startHttpFixture('reject');
  });
  after(async () => {
    await serving.close();
    await strict.close();
  });

  it('negotiates 2026-07-28 in auto mode and when pinned, and reads every page', async () => {
    for (const protocol of ['auto', '2026-07-28'] as const) {
      const r = await initializeServer('web', { type: 'http', url: serving.url }, opts({ protocol }));
      assert.equal(r.status, 'initialized', `${protocol}: ${r.error}`);
      assert.equal(r.generation, '2026-07-28');
      assert.equal(r.transport, 'http');
      assert.equal(r.tools?.length, PAGE_SIZE * 2 + 1);
      assert.ok(r.phases?.connect !== undefined, JSON.stringify(r.phases));
    }
  });

  it('speaks 2025 when pinned to 2025 and the endpoint serves legacy clients', async () => {
    const r = await initializeServer('web', { type: 'http', url: serving.url }, opts({ protocol: '2025' }));
    assert.equal(r.status, 'initialized', r.error);
    assert.equal(r.generation, '2025');
  });

  it('negotiates 2026-07-28 with a strict endpoint in auto mode, and fails for good pinned to 2025', async () => {
    const ok = await initializeServer('strict', { type: 'http', url: strict.url }, opts());
    assert.equal(ok.status, 'initialized', ok.error);
    assert.equal(ok.generation, '2026-07-28');
    const pinned = await initializeServer('strict', { type: 'http', url: strict.url }, opts({ protocol: '2025' }));
    assert.equal(pinned.status, 'failed-permanent', pinned.error);
  });
});

describe('initializing a 2025-only server over Streamable HTTP', () => {
  let web: Awaited<ReturnType<typeof startHttp2025Fixture>>;
  before(async () => {
    web = await startHttp2025Fixture();
  });
  after(async () => {
    await web.close();
  });

  it("falls back to the 2025 handshake in auto mode, sending the entry's headers on every request", async () => {
    const r = await initializeServer('old-http', { type: 'http', url: web.url, headers: { Authorization: 'Bearer t0ken' } }, opts());
    assert.equal(r.status, 'initialized', r.error);
    assert.equal(r.transport, 'http');
    assert.equal(r.generation, '2025');
    assert.equal(r.serverInfo?.name, 'http-fixture-2025');
    assert.deepEqual(r.tools, ['echo']);
    assert.ok(web.authorization.length >= 2 && web.authorization.every((a) => a === 'Bearer t0ken'), JSON.stringify(web.authorization));
  });

  it('speaks 2025 without a probe when pinned to 2025, and fails for good pinned to 2026-07-28', async () => {
    const legacy = await initializeServer('old-http', { type: 'http', url: web.url }, opts({ protocol: '2025' }));
    assert.equal(legacy.status, 'initialized', legacy.error);
    assert.equal(legacy.protocolVersion?.startsWith('2025'), true);
    const pinned = await initializeServer('old-http', { type: 'http', url: web.url }, opts({ protocol: '2026-07-28' }));
    assert.equal(pinned.status, 'failed-permanent', pinned.error);
  });
});

describe('a url without type', () => {
  let sse: { url: string; close: () => Promise<void> };
  before(async () => {
    sse = await startSseFixture();
  });
  after(async () => {
    await sse.close();
  });

  it('falls back to SSE when Streamable HTTP answers 4xx, as clients do', async () => {
    const r = await initializeServer('old-web', { type: 'http', url: sse.url, sseFallback: true }, opts());
    assert.equal(r.status, 'initialized', r.error);
    assert.equal(r.transport, 'sse');
    assert.equal(r.generation, '2025');
    assert.deepEqual(r.tools, ['echo']);
  });

  it('does not fall back when the entry says http', async () => {
    const r = await initializeServer('old-web', { type: 'http', url: sse.url }, opts());
    assert.equal(r.status, 'failed-permanent', r.error);
    assert.equal(r.reason, 'http-rejected');
  });
});

describe('bounded in every phase', () => {
  let hanging: HttpServer;
  let url: string;
  before(async () => {
    // Accepts the SSE GET and never sends its `endpoint` event: the transport's start never ends.
    hanging = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.flushHeaders();
    });
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/sse`;
  });
  after(async () => {
    hanging.closeAllConnections();
    await new Promise((resolve) => hanging.close(resolve));
  });

  it('gives up on an SSE endpoint that never sends its endpoint event within the deadline, as a retriable timeout', async () => {
    const t0 = performance.now();
    const r = await initializeServer('hang', { type: 'sse', url }, opts({ timeoutMs: 1_000 }));
    const took = performance.now() - t0;
    assert.equal(r.status, 'failed-retriable');
    assert.equal(r.reason, 'timeout');
    assert.ok(took < 1_000 + 1_500, `took ${Math.round(took)} ms`);
  });

  it("gives up on a stdio server that never answers within the entry's own timeout", async () => {
    const t0 = performance.now();
    const r = await initializeServer('mute', stdio([FIXTURE_2025, '--hang'], { timeoutMs: 1_000 }), opts({ timeoutMs: 60_000, protocol: '2025' }));
    const took = performance.now() - t0;
    assert.equal(r.status, 'failed-retriable');
    assert.equal(r.reason, 'timeout');
    // The margin covers reaping a child that ignores stdin closing (SIGTERM, then SIGKILL after 2 s).
    assert.ok(took < 1_000 + 3_500, `took ${Math.round(took)} ms`);
  });

  it("keeps every other server's result when one hangs", async () => {
    // The deadline is the fine server's too: it must cover spawning a node server on a busy machine.
    const service = await createInitService(opts({ timeoutMs: 5_000 }));
    try {
      const [hang, fine] = await Promise.all([service.initialize('hang', { type: 'sse', url }), service.initialize('fine', v2026('serve'))]);
      assert.equal(hang!.reason, 'timeout');
      assert.equal(fine!.status, 'initialized', fine!.error);
    } finally {
      await service.close();
    }
  });

  it('reports a refused connection in auto mode as retriable, not as a protocol mismatch', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const r = await initializeServer('down', { type: 'http', url: `http://127.0.0.1:${port}/mcp`, sseFallback: true }, opts());
    assert.equal(r.status, 'failed-retriable', r.error);
    assert.equal(r.reason, 'connect-failed');
  });

  it('reports 32 failing servers in a valid summary of at most 4096 bytes', async () => {
    const service = await createInitService(opts({ timeoutMs: 2_000, protocol: '2025' }));
    try {
      const names = Array.from({ length: 32 }, (_, i) => `a-server-whose-name-is-rather-long-${String(i).padStart(2, '0')}`);
      // Port 1 on loopback refuses at once: 32 real connection failures in well under a second.
      const results = await Promise.all(names.map((n) => service.initialize(n, { type: 'http', url: `http://127.0.0.1:1/mcp/${'ü'.repeat(100)}` })));
      const text = buildSummary({ jobID: 'j', topic: 't', partition: 0, offset: '0', exitCode: 75, reason: 'retriable' }, results);
      assert.ok(Buffer.byteLength(text, 'utf8') <= TERMINATION_MESSAGE_LIMIT);
      const s = JobSummarySchema.parse(JSON.parse(text));
      for (const n of names) assert.equal(s.servers?.[n]?.status, 'failed-retriable');
    } finally {
      await service.close();
    }
  });
});
