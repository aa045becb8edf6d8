import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildSummary } from '../../../src/job/summary.js';
import { TERMINATION_MESSAGE_LIMIT } from '../../../src/shared/summary.js';
import type { ServerResult } from '../../../src/job/mcp-init.js';

describe('buildSummary', () => {
  const ok = (name: string, tools: string[]): ServerResult => ({
    name,
    status: 'initialized',
    transport: 'stdio',
    serverInfo: { name: 's', version: '1' },
    protocolVersion: '2025-06-18',
    tools,
    durationMs: 12,
  });

  it("lists each server's status and tools", () => {
    const s = JSON.parse(buildSummary({ jobID: 'j', topic: 't', partition: 0, offset: '1', exitCode: 0 }, [ok('a', ['echo', 'add'])]));
    assert.deepEqual(s, {
      jobID: 'j',
      topic: 't',
      partition: 0,
      offset: '1',
      exitCode: 0,
      status: 'initialized',
      servers: { a: { status: 'initialized', server: 's@1', protocol: '2025-06-18', tools: ['echo', 'add'], ms: 12 } },
    });
  });

  it("stays valid JSON within the kubelet's 4 KiB, shortening tool lists but keeping every status", () => {
    const many = Array.from({ length: 500 }, (_, i) => `tool_number_${i}`);
    const results = Array.from({ length: 8 }, (_, i) => ok(`server${i}`, many));
    const text = buildSummary({ jobID: 'j', topic: 't', partition: 0, offset: '1', exitCode: 0 }, results);
    assert.ok(text.length <= TERMINATION_MESSAGE_LIMIT, `${text.length} bytes`);
    const s = JSON.parse(text);
    assert.equal(Object.keys(s.servers).length, 8);
    for (const v of Object.values(s.servers) as { status: string; tools: string[] }[]) {
      assert.equal(v.status, 'initialized');
      assert.match(v.tools.at(-1)!, /^…\+\d+$/);
    }
  });
});
