/**
 * The MCP conformance suite's client-credentials scenarios against the job's OAuth support. They
 * are extension scenarios, outside the specification's revision timeline, so they run without
 * `--spec-version`. The suite and its Node 22 are installed (once, into the cache) by
 * ensureConformance, as for the other conformance runs.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../testbed/cache.js';
import { ensureConformance } from '../testbed/conformance.js';

const client = join(repoRoot, 'dist', 'test', 'fixtures', 'conformance-oauth-client.js');

function scenario(name: string): Promise<{ code: number | null; output: string }> {
  const { node, cli } = ensureConformance();
  return new Promise((resolve, reject) => {
    const p = spawn(node, [cli, 'client', '--command', `${process.execPath} ${client}`, '--scenario', name], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1' },
    });
    let output = '';
    p.stdout.on('data', (c: Buffer) => (output += c.toString()));
    p.stderr.on('data', (c: Buffer) => (output += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, output }));
  });
}

describe('the conformance suite: OAuth client credentials', () => {
  for (const name of ['auth/client-credentials-basic', 'auth/client-credentials-jwt']) {
    it(`passes ${name}: metadata discovery, the token request and the bearer token on every request`, async () => {
      const r = await scenario(name);
      const m = /Passed: (\d+)\/(\d+), (\d+) failed/.exec(r.output);
      assert.ok(m, r.output);
      assert.equal(Number(m[3]), 0, r.output);
      assert.ok(Number(m[1]) >= 8, r.output);
      assert.equal(r.code, 0, r.output);
    });
  }
});
