/**
 * The message policy where the job applies it, against real servers on loopback: secret
 * references resolved from mounted files, envFile keys, the remote-URL policy at connect time
 * (after DNS, on redirects), and failures that never carry what a server answered.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { initializeServer } from '../../src/job/mcp/initialize.js';
import type { InitOptions } from '../../src/job/mcp/result.js';
import { policyFetch, urlRefusalIn } from '../../src/job/mcp/transports/remote-fetch.js';
import { serveConfig, serveInitOptions, servePolicy } from '../../src/serve/config.js';
import type { RemotePolicy } from '../../src/shared/contract/policy.js';
import { startHttp2025Fixture } from '../fixtures/http-server-2025.js';
import { repoRoot } from '../testbed/cache.js';

const FIXTURE = join(repoRoot, 'dist', 'test', 'fixtures', 'mcp-server.js');
const remote = (allow: string[]): RemotePolicy => ({ allow, serviceCidrs: [], podCidrs: [], apiServerHosts: [] });
const digest = (v: string) => createHash('sha256').update(v).digest('hex').slice(0, 16);

/** An HTTP server on a loopback address that counts the connections it accepts. */
async function countingServer(host: string, handler: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void) {
  const server: Server = createServer(handler);
  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    url: `http://${host}:${(server.address() as AddressInfo).port}`,
    connections: () => connections,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('secret references at the job', () => {
  const dir = mkdtempSync(join(tmpdir(), 'refs-'));
  const SECRET_VALUE = 's3cr3t-value-that-must-not-leak';
  mkdirSync(join(dir, 'mcp-ref-a'));
  writeFileSync(join(dir, 'mcp-ref-a', 'TOKEN'), SECRET_VALUE);
  const opts = (over: Partial<InitOptions> = {}): InitOptions => ({
    timeoutMs: 15_000,
    secretsDir: dir,
    allowedCommands: ['node'],
    protocol: '2025',
    secretRefsDir: dir,
    policy: { allowedSecrets: ['mcp-ref-*'], remote: remote(['127.0.0.1']) },
    ...over,
  });

  it('gives a stdio server the value of a referenced key, and reports only its digest', async () => {
    const r = await initializeServer('s', { command: 'node', args: [FIXTURE], env: { HASH_ENV: 'T', T: 'secret_ref:mcp-ref-a:TOKEN' } }, opts());
    assert.equal(r.status, 'initialized', r.error);
    assert.ok(r.tools?.includes(`sha256-T-${digest(SECRET_VALUE)}`), JSON.stringify(r.tools));
    assert.doesNotMatch(JSON.stringify(r), new RegExp(SECRET_VALUE));
  });

  it("sends a remote server the value of a referenced header and the URL provider's bearer token", async () => {
    const web = await startHttp2025Fixture();
    try {
      const r = await initializeServer('h', { type: 'http', url: web.url, headers: { Authorization: 'Bearer secret_ref:mcp-ref-a:TOKEN' } }, opts());
      assert.equal(r.status, 'initialized', r.error);
      assert.ok(web.authorization.length > 0 && web.authorization.every((a) => a === `Bearer ${SECRET_VALUE}`));
      assert.doesNotMatch(JSON.stringify(r), new RegExp(SECRET_VALUE));
    } finally {
      await web.close();
    }
  });

  it('fails for good naming the Secret and key when the key is missing, and never starts the server', async () => {
    const r = await initializeServer('s', { command: 'node', args: [FIXTURE], env: { T: 'secret_ref:mcp-ref-a:ABSENT' } }, opts());
    assert.equal(r.status, 'failed-permanent');
    assert.equal(r.reason, 'secret-missing');
    assert.match(r.error!, /Secret "mcp-ref-a" has no key "ABSENT"/);
    assert.equal(r.phases, undefined, 'nothing was spawned');
  });

  it('refuses a reference to a Secret the operator did not allow, even when the job is called directly', async () => {
    const r = await initializeServer('s', { command: 'node', args: [FIXTURE], env: { T: 'secret_ref:kafka-admin:password' } }, opts());
    assert.equal(r.status, 'failed-permanent');
    assert.equal(r.reason, 'secret-not-allowed');
  });

  it("refuses an envFile that sets a code-loading key, naming the key, and runs one that doesn't", async () => {
    writeFileSync(join(dir, 'bad.env'), 'OK=1\nNODE_OPTIONS=--require=/tmp/x.js\n');
    writeFileSync(join(dir, 'good.env'), 'EXTRA_TOOL=from-file\n');
    const bad = await initializeServer('s', { command: 'node', args: [FIXTURE], envFile: 'bad.env' }, opts());
    assert.equal(bad.status, 'failed-permanent');
    assert.equal(bad.reason, 'env-key-not-allowed');
    assert.match(bad.error!, /key "NODE_OPTIONS"/);
    assert.doesNotMatch(bad.error!, /x\.js/);
    const good = await initializeServer('s', { command: 'node', args: [FIXTURE], envFile: 'good.env' }, opts());
    assert.equal(good.status, 'initialized', good.error);
    assert.ok(good.tools?.includes('from-file'));
    writeFileSync(join(dir, 'tuned.env'), 'NODE_OPTIONS=--max-old-space-size=96\nEXTRA_TOOL=tuned\n');
    const tuned = await initializeServer(
      's',
      { command: 'node', args: [FIXTURE], envFile: 'tuned.env' },
      opts({ policy: { allowedEnvKeys: ['NODE_OPTIONS'] } }),
    );
    assert.equal(tuned.status, 'initialized', tuned.error);
    assert.ok(tuned.tools?.includes('tuned'));
  });

  it('refuses an env or envFile key that is not a variable name, such as one carrying "=", before spawning', async () => {
    const viaEnv = await initializeServer('s', { command: 'node', args: [FIXTURE], env: { 'NODE_OPTIONS=--require=/x': '' } }, opts());
    assert.equal(viaEnv.reason, 'env-key-not-allowed');
    assert.match(viaEnv.error!, /not an environment variable name/);
    assert.equal(viaEnv.phases, undefined, 'nothing was spawned');
    writeFileSync(join(dir, 'dashed.env'), 'OK=1\nA-B=2\n');
    const viaFile = await initializeServer('s', { command: 'node', args: [FIXTURE], envFile: 'dashed.env' }, opts());
    assert.equal(viaFile.reason, 'env-key-not-allowed');
    assert.match(viaFile.error!, /envFile dashed.env: key "A-B" is not an environment variable name/);
  });

  it('fails for good naming only Secret and key when a value cannot be an env value or a header, and never sends it', async () => {
    const VALUE = 'leaky-value-7c1d';
    writeFileSync(join(dir, 'mcp-ref-a', 'NUL'), `${VALUE}\0tail`);
    writeFileSync(join(dir, 'mcp-ref-a', 'CRLF'), `${VALUE}\r\nX-Injected: 1`);
    const web = await countingServer('127.0.0.1', (_req, res) => res.end('{}'));
    try {
      const env = await initializeServer('s', { command: 'node', args: [FIXTURE], env: { T: 'secret_ref:mcp-ref-a:NUL' } }, opts());
      const header = await initializeServer(
        'h',
        { type: 'http', url: `${web.url}/mcp`, headers: { Authorization: 'Bearer secret_ref:mcp-ref-a:CRLF' } },
        opts(),
      );
      for (const [r, key] of [
        [env, 'NUL'],
        [header, 'CRLF'],
      ] as const) {
        assert.equal(r.status, 'failed-permanent', JSON.stringify(r));
        assert.equal(r.reason, 'secret-invalid');
        assert.match(r.error!, new RegExp(`Secret "mcp-ref-a" key "${key}"`));
        assert.doesNotMatch(JSON.stringify(r), /leaky-value|Injected/);
      }
      assert.equal(web.connections(), 0);
    } finally {
      await web.close();
    }
  });

  it('refuses a command line outside the patterns before spawning it', async () => {
    const r = await initializeServer('s', { command: 'node', args: ['-e', 'process.exit(0)'] }, opts({ policy: { commandPatterns: [`node ${FIXTURE}`] } }));
    assert.equal(r.reason, 'command-args-not-allowed');
    const ok = await initializeServer('s', { command: 'node', args: [FIXTURE] }, opts({ policy: { commandPatterns: [`node ${FIXTURE}`] } }));
    assert.equal(ok.status, 'initialized', ok.error);
  });
});

describe('the remote-URL policy at connect time', () => {
  let refused: Awaited<ReturnType<typeof countingServer>>;
  let allowed: Awaited<ReturnType<typeof countingServer>>;
  before(async () => {
    refused = await countingServer('127.0.0.1', (_req, res) => res.end('reached'));
    // 127.0.0.2 stands for an allowed server; it redirects to the refused one.
    allowed = await countingServer('127.0.0.2', (req, res) => {
      if (req.url?.startsWith('/redirect')) res.writeHead(307, { Location: `${refused.url}/mcp` }).end();
      else res.end('fine');
    });
  });
  after(async () => {
    await refused.close();
    await allowed.close();
  });

  it('refuses a literal loopback address without connecting', async () => {
    const { fetch, close } = await policyFetch(remote([]));
    try {
      const err = await fetch(`${refused.url}/mcp`).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.match(String(urlRefusalIn(err)?.message), /refused \(loopback\)/);
      assert.equal(refused.connections(), 0);
    } finally {
      await close();
    }
  });

  it('checks every address a name resolves to, and connects to the address it checked', async () => {
    const port = (u: string) => new URL(u).port;
    const toLoopback = await policyFetch(remote(['127.0.0.2']), async () => ['127.0.0.2', '127.0.0.1']);
    const toAllowed = await policyFetch(remote(['127.0.0.2']), async () => ['127.0.0.2']);
    try {
      const err = await toLoopback.fetch(`http://mcp.test:${port(refused.url)}/mcp`).catch((e: unknown) => e);
      assert.match(String(urlRefusalIn(err)?.message), /"mcp.test" is refused \(resolves to a loopback address\)/);
      assert.equal(refused.connections(), 0);
      const res = await toAllowed.fetch(`http://mcp.test:${port(allowed.url)}/`);
      assert.equal(await res.text(), 'fine');
    } finally {
      await toLoopback.close();
      await toAllowed.close();
    }
  });

  it('refuses a redirect from an allowed server to a refused address before connecting to it', async () => {
    const { fetch, close } = await policyFetch(remote(['127.0.0.2']));
    try {
      const err = await fetch(`${allowed.url}/redirect`, { redirect: 'follow' }).catch((e: unknown) => e);
      assert.match(String(urlRefusalIn(err)?.message), /"127.0.0.1" is refused \(loopback\)/);
      assert.ok(allowed.connections() > 0);
      assert.equal(refused.connections(), 0);
    } finally {
      await close();
    }
  });

  it('refuses a redirect to a refused address at the connector even when the MCP client follows every redirect', async () => {
    const { fetch, close } = await policyFetch(remote(['127.0.0.2']));
    const client = new Client({ name: 't', version: '0' }, { versionNegotiation: { mode: 'legacy' } });
    try {
      const transport = new StreamableHTTPClientTransport(new URL(`${allowed.url}/redirect`), { fetch, redirectPolicy: 'follow' });
      const err = await client.connect(transport).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.match(String(urlRefusalIn(err)?.message), /"127.0.0.1" is refused \(loopback\)/, String(err));
      assert.equal(refused.connections(), 0);
    } finally {
      await client.close().catch(() => undefined);
      await close();
    }
  });

  it('fails a server entry whose name or address is refused, for good and without a connection', async () => {
    const opts: InitOptions = { timeoutMs: 5_000, secretsDir: '/none', allowedCommands: [], protocol: 'auto', policy: { remote: remote([]) } };
    for (const url of [`${refused.url}/mcp`, `http://localhost:${new URL(refused.url).port}/mcp`, `${allowed.url}/redirect`]) {
      const r = await initializeServer('web', { type: 'http', url, sseFallback: true }, opts);
      assert.equal(r.status, 'failed-permanent', url);
      assert.equal(r.reason, 'url-not-allowed', url);
    }
    const viaRedirect = await initializeServer('web', { type: 'http', url: `${allowed.url}/redirect` }, { ...opts, policy: { remote: remote(['127.0.0.2']) } });
    // The SDK itself follows no cross-origin redirect (its default redirectPolicy); the fetch under
    // it would refuse the hop anyway (above). Either way nothing reaches the refused address.
    assert.notEqual(viaRedirect.status, 'initialized', JSON.stringify(viaRedirect));
    assert.match(viaRedirect.error!, /HTTP 307/);
    assert.equal(refused.connections(), 0);
  });
});

describe('the remote-URL policy of serve', () => {
  const serveOptions = (env: Record<string, string>) => {
    const cfg = serveConfig({}, { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 't', SERVE_TOKEN_FILE: '/x', MCP_INIT_TIMEOUT_MS: '5000', ...env });
    return serveInitOptions(cfg, servePolicy(cfg));
  };

  it('connects to an address the operator allowed, which the default policy refuses, and refuses it when not allowed', async () => {
    const web = await startHttp2025Fixture();
    try {
      const allowed = await initializeServer('web', { type: 'http', url: web.url }, serveOptions({ ALLOWED_REMOTE_HOSTS: '127.0.0.1' }));
      assert.equal(allowed.status, 'initialized', allowed.error);
      const refused = await initializeServer('web', { type: 'http', url: web.url }, serveOptions({}));
      assert.equal(refused.reason, 'url-not-allowed', JSON.stringify(refused));
    } finally {
      await web.close();
    }
  });
});

describe("what a remote server's failure may say", () => {
  it('reduces a reply that is not JSON to a fixed reason, without the body', async () => {
    const junk = await countingServer('127.0.0.1', (_req, res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('not json; body-marker-XYZ');
    });
    try {
      const opts: InitOptions = { timeoutMs: 5_000, secretsDir: '/none', allowedCommands: [], protocol: '2025', policy: { remote: remote(['127.0.0.1']) } };
      const r = await initializeServer('web', { type: 'http', url: `${junk.url}/mcp` }, opts);
      assert.notEqual(r.status, 'initialized');
      assert.doesNotMatch(JSON.stringify(r), /body-marker-XYZ|not json/, JSON.stringify(r));
      assert.match(r.error!, /unusable reply \(not JSON\)/);
    } finally {
      await junk.close();
    }
  });

  const TOKEN = 'tok-4f9c2e-not-for-logs';
  let server: Awaited<ReturnType<typeof countingServer>>;
  before(async () => {
    // Answers every request with an error whose body echoes the request's headers, as some
    // proxies and metadata endpoints do.
    server = await countingServer('127.0.0.1', (req, res) => {
      const status = req.url?.includes('500') ? 500 : req.url?.includes('403') ? 403 : 401;
      res.writeHead(status, { 'Content-Type': 'text/plain' }).end(`denied; you sent ${JSON.stringify(req.headers)} body-marker-XYZ`);
    });
  });
  after(async () => {
    await server.close();
  });

  it('keeps only the status and its standard phrase, never the body or a header value', async () => {
    const opts: InitOptions = { timeoutMs: 5_000, secretsDir: '/none', allowedCommands: [], protocol: 'auto', policy: { remote: remote(['127.0.0.1']) } };
    for (const [path, status] of [
      ['/401', 401],
      ['/403', 403],
      ['/500', 500],
    ] as const) {
      for (const type of ['http', 'sse'] as const) {
        const r = await initializeServer('web', { type, url: `${server.url}${path}`, headers: { Authorization: `Bearer ${TOKEN}` } }, opts);
        const text = JSON.stringify(r);
        assert.notEqual(r.status, 'initialized');
        assert.doesNotMatch(text, /body-marker-XYZ/, `${type} ${path}: ${text}`);
        assert.doesNotMatch(text, new RegExp(TOKEN), `${type} ${path}: ${text}`);
        assert.match(r.error ?? '', new RegExp(`HTTP ${status}|${status}`), `${type} ${path}: ${text}`);
      }
    }
  });
});
