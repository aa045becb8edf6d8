import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FetchLog, installedSource, openPackageCache, packageEnv, packageTool } from '../../../src/job/mcp/package-source.js';
import { warmCommand, warmList } from '../../../src/job/warm.js';

// Lines as npm 11 prints them with loglevel=http (captured from `npx -y @modelcontextprotocol/server-memory`).
const COLD = [
  'npm http fetch GET 200 https://registry.npmjs.org/@modelcontextprotocol%2fserver-memory 736ms (cache miss)',
  'npm http fetch GET 200 https://registry.npmjs.org/ajv 34ms (cache miss)',
  'npm http fetch GET 200 https://registry.npmjs.org/ajv/-/ajv-8.17.1.tgz 21ms (cache miss)',
  'npm http fetch GET 200 https://registry.npmjs.org/@modelcontextprotocol/server-memory/-/server-memory-2026.8.31.tgz 40ms (cache miss)',
  'Knowledge Graph MCP Server running on stdio',
];
const WARM = [
  'npm http fetch GET 200 https://registry.npmjs.org/@modelcontextprotocol%2fserver-memory 13ms (cache stale)',
  'npm http cache isexe@https://registry.npmjs.org/isexe/-/isexe-2.0.0.tgz 0ms (cache hit)',
  'Knowledge Graph MCP Server running on stdio',
];

describe('package source', () => {
  it("counts npm's requests that reached the registry, and its tarballs among them, from its http log lines", () => {
    const log = new FetchLog('npm');
    log.started(1000);
    COLD.forEach((l, i) => log.line(l, 1100 + i * 100));
    assert.deepEqual(log.source(), { from: 'registry', ms: 400, requests: 4, tarballs: 2 });
  });

  it('reports a cache hit when every npm line was served from the cache, stale entries included (prefer-offline)', () => {
    const log = new FetchLog('npm');
    log.started(0);
    for (const l of WARM) log.line(l, 50);
    assert.deepEqual(log.source(), { from: 'cache', ms: 50, requests: 0, tarballs: 0 });
  });

  it('counts a revalidation or an update as a request, and ignores the server’s own stderr', () => {
    const log = new FetchLog('npm');
    log.started(0);
    assert.equal(log.line('npm http fetch GET 304 https://registry.npmjs.org/ajv 30ms (cache revalidated)', 1), true);
    assert.equal(log.line('npm http fetch GET 200 https://registry.npmjs.org/npm 324ms', 2), true);
    assert.equal(log.line('npm http is not how this server logs', 3), false);
    assert.deepEqual(log.source(), { from: 'registry', ms: 2, requests: 2, tarballs: 0 });
  });

  it('says unknown when the package manager printed nothing to go by', () => {
    const log = new FetchLog('npm');
    log.line('Knowledge Graph MCP Server running on stdio', 5);
    assert.deepEqual(log.source(), { from: 'unknown' });
  });

  it("reads uv's summary lines: Prepared N packages are downloads, Installed alone is the cache", () => {
    const cold = new FetchLog('uv');
    cold.started(0);
    for (const l of ['Resolved 7 packages in 310ms', 'Prepared 7 packages in 1.20s', 'Installed 7 packages in 12ms']) cold.line(l, 10);
    assert.deepEqual(cold.source(), { from: 'registry', ms: 10, requests: 7, tarballs: 7 });
    const warm = new FetchLog('uv');
    warm.started(0);
    for (const l of ['Resolved 7 packages in 3ms', 'Installed 7 packages in 9ms']) warm.line(l, 4);
    assert.deepEqual(warm.source(), { from: 'cache', ms: 4, requests: 0, tarballs: 0 });
  });

  it('knows which commands fetch packages and gives the others their installed path', () => {
    assert.equal(packageTool({ command: 'npx', args: ['-y', 'x@1.0.0'] }), 'npm');
    assert.equal(packageTool({ command: '/usr/local/bin/npm', args: ['exec', 'x'] }), 'npm');
    assert.equal(packageTool({ command: 'uvx', args: ['mcp-server-fetch'] }), 'uv');
    assert.equal(packageTool({ command: 'uv', args: ['tool', 'run', 'x'] }), 'uv');
    assert.equal(packageTool({ command: 'node', args: ['/opt/mcp/dist/index.js'] }), undefined);
    assert.deepEqual(installedSource({ command: 'node', args: ['--no-warnings', '/opt/mcp/dist/index.js'] }), {
      from: 'installed',
      path: '/opt/mcp/dist/index.js',
    });
    assert.deepEqual(installedSource({ command: '/usr/bin/mcp-server', args: [] }), { from: 'installed', path: '/usr/bin/mcp-server' });
  });

  it('points npm and uv at the shared cache only when it is usable; npm always logs its requests', () => {
    assert.deepEqual(packageEnv('npm', { dir: '/c' }), {
      npm_config_loglevel: 'http',
      npm_config_update_notifier: 'false',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      npm_config_cache: '/c/npm',
      npm_config_prefer_offline: 'true',
    });
    assert.deepEqual(packageEnv('npm', { unavailable: 'missing' }), {
      npm_config_loglevel: 'http',
      npm_config_update_notifier: 'false',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
    });
    assert.deepEqual(packageEnv('uv', { dir: '/c' }), { UV_CACHE_DIR: '/c/uv' });
    assert.deepEqual(packageEnv('uv', undefined), {});
    assert.deepEqual(packageEnv(undefined, { dir: '/c' }), {});
  });
});

describe('openPackageCache', () => {
  const root = mkdtempSync(join(tmpdir(), 'pkg-cache-'));
  after(() => {
    chmodSync(join(root, 'ro'), 0o755);
    rmSync(root, { recursive: true, force: true });
  });

  it('uses a writable folder with room, making its npm/ and uv/ folders', () => {
    assert.deepEqual(openPackageCache(root, 0), { dir: root });
    assert.ok(existsSync(join(root, 'npm')) && existsSync(join(root, 'uv')));
  });

  it('reports a missing, a read-only and a full cache as unavailable, naming why', () => {
    assert.match((openPackageCache(join(root, 'absent')) as { unavailable: string }).unavailable, /^missing: ENOENT/);
    const ro = join(root, 'ro');
    mkdirSync(ro, { mode: 0o555 });
    if (process.getuid?.() !== 0) assert.match((openPackageCache(ro, 0) as { unavailable: string }).unavailable, /^not writable: EACCES/);
    assert.match((openPackageCache(root, Number.MAX_SAFE_INTEGER) as { unavailable: string }).unavailable, /^full: \d+ MiB free/);
  });
});

describe('warm-cache', () => {
  it('fetches WARM_PACKAGES and the exact versions the command patterns pin, skipping ranges and globs', () => {
    assert.deepEqual(
      warmList({
        WARM_PACKAGES: ['@modelcontextprotocol/server-memory@2026.8.31', 'uv:mcp-server-fetch==2025.4.7'],
        ALLOWED_COMMAND_PATTERNS: [
          'npx -y @modelcontextprotocol/server-memory@2026.8.31',
          'npx -y --package=is-number@7.0.0 -- node **',
          'npx -y @modelcontextprotocol/server-everything@*',
          'npx -y left-pad@^1.3.0',
          'uvx mcp-server-time@2025.9.25 **',
          'uvx --from mcp-server-git==2025.1.14 mcp-server-git',
          'node /opt/mcp/*.js',
        ],
      }),
      [
        { tool: 'npm', spec: '@modelcontextprotocol/server-memory@2026.8.31' },
        { tool: 'uv', spec: 'mcp-server-fetch==2025.4.7' },
        { tool: 'npm', spec: 'is-number@7.0.0' },
        { tool: 'uv', spec: 'mcp-server-time==2025.9.25' },
        { tool: 'uv', spec: 'mcp-server-git==2025.1.14' },
      ],
    );
  });

  it('installs an npm package into the npx folder a server’s own `npx -y <spec>` uses, running a no-op instead of it', () => {
    assert.deepEqual(warmCommand({ tool: 'npm', spec: 'x@1.0.0' }), ['npx', ['-y', '--package=x@1.0.0', '--', 'node', '-e', '']]);
  });
});
