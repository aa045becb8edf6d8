import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CONTROLLER_SETTINGS } from '../../src/controller/config.js';
import { createMetrics } from '../../src/controller/reporting/metrics.js';
import { repoRoot } from '../testbed/cache.js';

const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');

function section(title: string): string {
  const start = readme.indexOf(`## ${title}\n`);
  assert.ok(start >= 0, `README has a "${title}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

describe('the README, kept honest', () => {
  it('documents every setting the controller declares in its configuration table, and no other', () => {
    const table = section('Configuration');
    const documented = new Set(
      [...table.matchAll(/^\| (`[A-Z0-9_]+`(?:, `[A-Z0-9_]+`)*) \|/gm)].flatMap((m) => m[1]!.split(', ').map((v) => v.replace(/`/g, ''))),
    );
    const declared = new Set(Object.keys(CONTROLLER_SETTINGS));
    assert.deepEqual(
      [...declared].filter((k) => !documented.has(k)),
      [],
      'declared but not documented',
    );
    assert.deepEqual(
      [...documented].filter((k) => !declared.has(k)),
      [],
      'documented but not declared',
    );
  });

  it('lists every metric the controller emits, and no other', async () => {
    const table = section('Metrics');
    const documented = new Set([...table.matchAll(/^\| `(mcp_job_controller_[a-z_]+)/gm)].map((m) => m[1]!));
    const metrics = createMetrics(undefined, false);
    const emitted = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
    assert.deepEqual(
      [...emitted].filter((k) => !documented.has(k)),
      [],
      'emitted but not documented',
    );
    assert.deepEqual(
      [...documented].filter((k) => !emitted.has(k)),
      [],
      'documented but not emitted',
    );
  });
});

describe('the README, production Kafka', () => {
  it('gives exactly the ACL lines the secured e2e suite creates', async () => {
    const { productAcls, kafkaAclsCommands } = await import('../testbed/acls.js');
    const lines = kafkaAclsCommands(
      productAcls({ topic: 'mcp-jobs', group: 'mcp-job-controller', deadLetterTopic: 'mcp-jobs.dlq', resultsTopic: 'mcp-results' }),
    );
    const documented = readme.split('\n').filter((l) => l.startsWith('kafka-acls.sh '));
    assert.deepEqual(documented, lines);
  });
});
