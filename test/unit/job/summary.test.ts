import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildSummary } from '../../../src/job/summary.js';
import { JobSummarySchema, TERMINATION_MESSAGE_LIMIT } from '../../../src/shared/contract/summary.js';
import type { ServerResult } from '../../../src/job/mcp/result.js';

const base = { jobID: 'j', topic: 't', partition: 0, offset: '1' };

const ok = (name: string, tools: string[]): ServerResult => ({
  name,
  status: 'initialized',
  transport: 'stdio',
  serverInfo: { name: 's', version: '1' },
  protocolVersion: '2025-06-18',
  tools,
  durationMs: 12,
});

const failed = (name: string, error: string): ServerResult => ({
  name,
  status: 'failed-retriable',
  reason: 'timeout',
  error,
  transport: 'http',
  durationMs: 30_000,
});

/** Asserts the contract the kubelet and the controller hold the job to, and returns the parsed summary. */
function whole(text: string) {
  assert.ok(Buffer.byteLength(text, 'utf8') <= TERMINATION_MESSAGE_LIMIT, `${Buffer.byteLength(text, 'utf8')} bytes`);
  const parsed = JobSummarySchema.safeParse(JSON.parse(text));
  assert.ok(parsed.success, parsed.error?.message);
  return parsed.data;
}

describe('buildSummary', () => {
  it("lists each server's status and tools", () => {
    const s = JSON.parse(buildSummary({ ...base, exitCode: 0 }, [ok('a', ['echo', 'add'])]));
    assert.deepEqual(s, {
      ...base,
      exitCode: 0,
      status: 'initialized',
      servers: { a: { status: 'initialized', server: 's@1', protocol: '2025-06-18', tools: ['echo', 'add'], ms: 12, transport: 'stdio', instructions: false } },
    });
  });

  it('leaves a summary that fits unchanged, with every detail and no shortening mark', () => {
    const r: ServerResult = {
      ...ok('a', ['echo', 'add']),
      generation: '2026-07-28',
      protocolVersion: '2026-07-28',
      instructions: 'Use echo.',
      capabilities: { tools: {}, prompts: {} },
      prompts: ['greet'],
      resources: ['fixture://readme'],
      phases: { spawn: 40, handshake: 80, lists: 10 },
    };
    const s = whole(buildSummary({ ...base, exitCode: 0 }, [r, failed('b', 'connect ECONNREFUSED 127.0.0.1:1')]));
    assert.equal(s.shortened, undefined);
    assert.deepEqual(s.servers!.a, {
      status: 'initialized',
      server: 's@1',
      protocol: '2026-07-28',
      tools: ['echo', 'add'],
      prompts: ['greet'],
      resources: 1,
      ms: 12,
      generation: '2026-07-28',
      transport: 'stdio',
      instructions: true,
      caps: ['tools', 'prompts'],
      phases: { spawn: 40, handshake: 80, lists: 10 },
    });
    assert.deepEqual(s.servers!.b, { status: 'failed-retriable', reason: 'timeout', error: 'connect ECONNREFUSED 127.0.0.1:1', ms: 30_000 });
  });

  it("stays valid JSON within the kubelet's 4 KiB, shortening tool lists but keeping every status", () => {
    const many = Array.from({ length: 500 }, (_, i) => `tool_number_${i}`);
    const results = Array.from({ length: 8 }, (_, i) => ok(`server${i}`, many));
    const s = whole(buildSummary({ ...base, exitCode: 0 }, results));
    assert.equal(s.shortened, 'lists');
    assert.equal(Object.keys(s.servers!).length, 8);
    for (const v of Object.values(s.servers!)) {
      assert.equal(v.status, 'initialized');
      assert.match(v.tools!.at(-1)!, /^…\+\d+$/);
    }
  });

  it('fits 32 failing servers with long non-ASCII errors into 4096 bytes of valid JSON, every status kept', () => {
    const error = 'Verbindung fehlgeschlagen — サーバーが応答しません 🚫 '.repeat(40);
    const results = Array.from({ length: 32 }, (_, i) => failed(`server-with-a-long-name-number-${String(i).padStart(2, '0')}`, error));
    const text = buildSummary({ ...base, exitCode: 75, reason: 'retriable', error }, results);
    const s = whole(text);
    assert.equal(Object.keys(s.servers!).length, 32);
    for (const r of results) assert.equal(s.servers![r.name]!.status, 'failed-retriable');
    assert.ok(s.shortened);
  });

  it('keeps every status even with the longest names the contract allows', () => {
    const results = Array.from({ length: 32 }, (_, i) => failed(`${String(i).padStart(2, '0')}${'n'.repeat(62)}`, 'é'.repeat(1000)));
    const s = whole(
      buildSummary({ jobID: 'J'.repeat(253), topic: 'T'.repeat(249), partition: 0, offset: '123456789012', exitCode: 75, error: 'x'.repeat(1000) }, results),
    );
    assert.equal(Object.keys(s.servers!).length, 32);
    for (const r of results) assert.equal(s.servers![r.name]!.status, 'failed-retriable');
  });

  it('says where each server came from and whether the shared package cache was used, dropping the source only at the details step', () => {
    const pkg = { ...ok('memory', ['a']), package: { from: 'cache' as const, ms: 840, requests: 0, tarballs: 0 } };
    const s = whole(buildSummary({ ...base, exitCode: 0, packageCache: 'shared' }, [pkg]));
    assert.equal(s.packageCache, 'shared');
    assert.deepEqual(s.servers!.memory!.package, { from: 'cache', ms: 840, requests: 0, tarballs: 0 });
    const many = Array.from({ length: 32 }, (_, i) => ({
      ...failed(`server-${String(i).padStart(2, '0')}`, 'é'.repeat(400)),
      package: { from: 'registry' as const, ms: 9000, requests: 120, tarballs: 99 },
    }));
    const short = whole(buildSummary({ ...base, exitCode: 75, packageCache: 'unavailable: full: 3 MiB free at /var/cache/mcp-packages' }, many));
    assert.equal(short.packageCache, 'unavailable: full: 3 MiB free at /var/cache/mcp-packages');
    assert.equal(short.shortened, 'details');
    assert.equal(short.servers!['server-00']!.package, undefined);
  });

  it('shortens the same way every time', () => {
    const results = Array.from({ length: 32 }, (_, i) => failed(`s${i}`, 'ü'.repeat(900)));
    const a = buildSummary({ ...base, exitCode: 75 }, results);
    const b = buildSummary({ ...base, exitCode: 75 }, results);
    assert.equal(a, b);
    whole(a);
  });
});

describe('a list the job cut short', () => {
  it('says in the summary which lists stopped early and why, while the list still fits shortened', () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `tool-${i}`);
    const r: ServerResult = { ...ok('big', names), capped: ['tools', 'resources'], cut: { tools: 'names', resources: 'response-bytes' }, resources: [] };
    const s = whole(buildSummary({ ...base, exitCode: 0 }, [r]));
    const line = s.servers!.big!;
    assert.deepEqual(line.capped, ['tools', 'resources']);
    assert.deepEqual(line.cut, { tools: 'names', resources: 'response-bytes' });
    assert.equal(line.tools!.at(-1), `…+${10_000 - (line.tools!.length - 1)}`);
  });
});
