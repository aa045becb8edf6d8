/**
 * The MCP conformance suite's client scenarios against the job's MCP client, driven the way a
 * user drives it: `mcp-job check --url <the suite's test server>`. The suite starts its own
 * servers; no broker needed.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../testbed/cache.js';
import { CLIENT_SCENARIOS } from '../conformance/scenarios.js';
import { runConformance } from '../conformance/run.js';

const CHECK = `${process.execPath} ${join(repoRoot, 'dist', 'job', 'main.js')} check --allowed-remote-hosts 127.0.0.1,localhost`;

describe('the MCP conformance suite against the job’s MCP client (mcp-job check --url)', () => {
  for (const s of CLIENT_SCENARIOS) {
    for (const revision of s.revisions) {
      it(`passes ${s.scenario} at ${revision}, or fails it only as the baseline says`, async (t) => {
        const command = [CHECK, ...(s.checkArgs ?? []), '--url'].join(' ');
        const r = await runConformance(revision, ['client', '--command', command, '--scenario', s.scenario]);
        t.diagnostic(`${s.scenario} @ ${revision}: ${r.passed}/${r.total} checks passed, ${r.failed} failed`);
        assert.equal(r.code, 0, r.output.slice(-3000));
        assert.ok(r.total > 0, `the suite ran checks: ${r.output.slice(-1000)}`);
      });
    }
  }
});
