import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { messageValueFor, renderTable, serverNameOf } from '../../../src/job/check.js';
import type { ServerResult } from '../../../src/job/mcp/result.js';

const ok: ServerResult = {
  name: 'memory',
  status: 'initialized',
  transport: 'stdio',
  generation: '2026-07-28',
  protocolVersion: '2026-07-28',
  tools: ['read', 'write'],
  prompts: [],
  durationMs: 412,
  toolsDigest: 'a'.repeat(64),
  toolDigests: { read: 'b'.repeat(64), write: 'c'.repeat(64) },
};
const down: ServerResult = {
  name: 'remote-api',
  status: 'failed-permanent',
  reason: 'url-not-allowed',
  error: 'connect: 127.0.0.1 is a loopback address',
  transport: 'http',
  durationMs: 3,
};

describe('mcp-job check', () => {
  it('prints one aligned row per server with generation, version, transport, counts, ms and reason', () => {
    const lines = renderTable([ok, down]).split('\n');
    assert.equal(lines[0], 'SERVER      STATUS            GENERATION  VERSION     TRANSPORT  TOOLS  PROMPTS  RESOURCES  MS   REASON');
    assert.equal(lines[1], 'memory      initialized       2026-07-28  2026-07-28  stdio      2      0        -          412');
    assert.equal(lines[2], 'remote-api  failed-permanent  -           -           http       -      -        -          3    url-not-allowed');
  });

  it("prints each server's list digest and tool digests, ready to pin, and the failures' texts", () => {
    const text = renderTable([ok, down]);
    assert.ok(text.includes(`\nmemory toolsDigest ${'a'.repeat(64)}\n  read   ${'b'.repeat(64)}\n  write  ${'c'.repeat(64)}\n`), text);
    assert.ok(text.endsWith('\nremote-api: connect: 127.0.0.1 is a loopback address\n'), text);
  });

  it("takes only a config file's servers (Claude's mcpServers or VS Code's servers) into the message the job would read", () => {
    const file = Buffer.from(JSON.stringify({ globalShortcut: 'x', servers: { s: { command: 'node' } }, inputs: [] }));
    const msg = JSON.parse(messageValueFor({ config: 'f.json' }, () => file).toString()) as { jobType: string; payload: unknown };
    assert.equal(msg.jobType, 'server-init');
    assert.deepEqual(msg.payload, { servers: { s: { command: 'node' } } });
    assert.throws(() => messageValueFor({ config: 'f.json' }, () => Buffer.from('{}')), /neither "mcpServers" nor "servers"/);
  });

  it("names a --url server after its host, within the message contract's name rule", () => {
    assert.equal(serverNameOf('https://mcp.example.com/mcp'), 'mcp.example.com');
    assert.equal(serverNameOf('http://[::1]:8080/mcp'), '--1');
  });
});
