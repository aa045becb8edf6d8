/**
 * The job's initializer and `serve` against a real hostile MCP server process
 * (test/fixtures/hostile-server.ts): pages of 100,000 tools with a cursor that never ends, over
 * stdio and Streamable HTTP, and a server that logs ~200 KB to stderr before it reads anything.
 * No broker needed.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { Client, InMemoryTransport } from '@modelcontextprotocol/client';
import { repoRoot } from '../testbed/cache.js';
import { initializeServer } from '../../src/job/mcp/initialize.js';
import { LIST_LIMITS, type InitOptions, type ServerResult } from '../../src/job/mcp/result.js';
import { buildSummary } from '../../src/job/summary.js';
import { serveConfig, serveInitOptions, servePolicy } from '../../src/serve/config.js';
import { TokenBucket } from '../../src/serve/rate-limit.js';
import { serveServerFactory } from '../../src/serve/tools.js';
import { createLogger } from '../../src/shared/logger.js';
import type { ServerConfig } from '../../src/shared/contract/servers.js';
import { JobSummarySchema } from '../../src/shared/contract/summary.js';

const HOSTILE = join(repoRoot, 'dist', 'test', 'fixtures', 'hostile-server.js');
/** RSS the initializer may add while a hostile server floods it: generous, far below a Job's 256 Mi. */
const RSS_BOUND = 200 * 1024 * 1024;

const opts = (over: Partial<InitOptions> = {}): InitOptions => ({
  timeoutMs: 20_000,
  secretsDir: '/nonexistent',
  allowedCommands: ['node'],
  protocol: 'auto',
  policy: { remote: { allow: ['127.0.0.1'], serviceCidrs: [], podCidrs: [], apiServerHosts: [] } },
  ...over,
});

/** Runs `work`, sampling this process's RSS, and returns its result with the peak growth. */
async function withRss<T>(work: () => Promise<T>): Promise<{ value: T; growth: number }> {
  const start = process.memoryUsage().rss;
  let peak = start;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const value = await work();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { value, growth: peak - start };
  } finally {
    clearInterval(timer);
  }
}

/** The summary the job would write for this one result, parsed back as the controller reads it. */
const summaryLine = (r: ServerResult) =>
  JobSummarySchema.parse(JSON.parse(buildSummary({ topic: 't', partition: 0, offset: '1', exitCode: 0 }, [r]))).servers![r.name]!;

describe('a server that answers tools/list with 100,000 tools a page, without end', () => {
  let http: ChildProcess;
  let url: string;
  before(async () => {
    http = spawn(process.execPath, [HOSTILE, '--http'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: http.stdout! });
    const port = await new Promise<string>((resolve, reject) => {
      lines.once('line', (l) => resolve(l.replace('listening ', '')));
      http.once('exit', (code) => reject(new Error(`hostile server exited ${code}`)));
    });
    url = `http://127.0.0.1:${port}/mcp`;
  });
  after(() => void http.kill());

  for (const transport of ['stdio', 'http'] as const) {
    it(`is initialized over ${transport} within a bounded memory, its tools list cut and the summary saying so`, async () => {
      const cfg: ServerConfig = transport === 'stdio' ? { command: 'node', args: [HOSTILE] } : { type: 'http', url };
      const { value: r, growth } = await withRss(() => initializeServer('flood', cfg, opts()));
      assert.equal(r.status, 'initialized', r.error);
      assert.deepEqual(r.capped, ['tools']);
      assert.equal(r.cut?.tools, 'response-bytes');
      assert.ok(growth < RSS_BOUND, `RSS grew ${Math.round(growth / 1048576)} MiB`);
      const line = summaryLine(r);
      assert.deepEqual(line.capped, ['tools']);
      assert.deepEqual(line.cut, { tools: 'response-bytes' });
    });
  }

  it('keeps at most the name cap from pages under the response cap, across pages, and says the list was cut by count', async () => {
    const perPage = 4000;
    const { value: r, growth } = await withRss(() =>
      initializeServer('many', { command: 'node', args: [HOSTILE, '--tools-per-page', String(perPage)] }, opts()),
    );
    assert.equal(r.status, 'initialized', r.error);
    assert.equal(r.tools?.length, LIST_LIMITS.names);
    assert.equal(r.tools?.[perPage], 'tool-1-0');
    assert.equal(r.cut?.tools, 'names');
    assert.ok(growth < RSS_BOUND, `RSS grew ${Math.round(growth / 1048576)} MiB`);
    assert.deepEqual(summaryLine(r).cut, { tools: 'names' });
  });
});

describe('a stdio server that logs ~200 KB to stderr before it answers', () => {
  const noisy = ['--tools-per-page', '3', '--stderr-bytes', '200000'];

  it('is initialized by a caller that does not read its stderr lines', async () => {
    const r = await initializeServer('noisy', { command: 'node', args: [HOSTILE, ...noisy] }, opts({ timeoutMs: 10_000 }));
    assert.equal(r.status, 'initialized', r.error);
  });

  it("is initialized by serve's server_initialize, its stderr lines reaching serve's log", async () => {
    const env = { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 't', SERVE_TOKEN_FILE: '/x', ALLOWED_COMMAND_PATTERNS: `node ${HOSTILE} ${noisy.join(' ')}` };
    const cfg = serveConfig({}, env);
    const policy = servePolicy(cfg);
    const lines: string[] = [];
    const initOptions = serveInitOptions({ ...cfg, MCP_INIT_TIMEOUT_MS: 10_000 }, policy, (_server, line) => lines.push(line));
    const unused = () => Promise.reject(new Error('not used by server_initialize'));
    const factory = serveServerFactory({
      cfg,
      policy,
      log: createLogger({ level: 'silent', name: 'test' }),
      produce: unused,
      getJob: unused,
      listJobs: unused,
      listPods: unused,
      findDeadLetter: unused,
      initialize: (name, server) => initializeServer(name, server, initOptions),
      submitLimit: new TokenBucket(1, 1),
      scanLimit: new TokenBucket(1, 1),
      initLimit: new TokenBucket(1, 1),
    });
    const [a, b] = InMemoryTransport.createLinkedPair();
    await factory().connect(b);
    const client = new Client({ name: 'it', version: '0' });
    await client.connect(a);
    try {
      const r = await client.callTool({
        name: 'server_initialize',
        arguments: { serverName: 'noisy', config: { command: 'node', args: [HOSTILE, ...noisy] } },
      });
      assert.notEqual(r.isError, true, JSON.stringify(r.content));
      const result = r.structuredContent as ServerResult;
      assert.equal(result.status, 'initialized');
      assert.deepEqual(result.tools?.slice(0, 4), ['tool-0-0', 'tool-0-1', 'tool-0-2', 'tool-1-0']);
      assert.equal(result.tools?.length, 3 * LIST_LIMITS.pages);
      assert.equal(result.cut?.tools, 'pages');
      assert.ok(lines.length > 1000 && lines.every((l) => l.startsWith('hostile: ')), `${lines.length} lines`);
    } finally {
      await client.close();
    }
  });
});
