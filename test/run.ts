/**
 * Runs one tier of tests (unit | integration | e2e | all) with node's test runner. Tiers that
 * need servers get one shared test bed for the whole run — or the cluster and broker named by
 * KUBECONFIG and KAFKA_BROKERS when both are set (a kind cluster, say).
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './testbed/cache.js';
import { Testbed } from './testbed/testbed.js';

const tiers = ['unit', 'integration', 'e2e'] as const;
const arg = process.argv[2] ?? 'all';
const chosen = arg === 'all' ? [...tiers] : tiers.filter((t) => t === arg);
if (chosen.length === 0) {
  process.stderr.write(`usage: node dist/test/run.js ${tiers.join('|')}|all [name pattern]\n`);
  process.exit(2);
}

function testFiles(dir: string): string[] {
  let out: string[] = [];
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const e of entries.sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(testFiles(p));
    else if (e.endsWith('.test.js')) out.push(p);
  }
  return out;
}

// TEST_FILES=a,b keeps only the test files whose path contains one of the words (a quicker loop while working).
const only = (process.env.TEST_FILES ?? '').split(',').filter(Boolean);
const files = chosen.flatMap((t) => testFiles(join(repoRoot, 'dist', 'test', t))).filter((f) => only.length === 0 || only.some((w) => f.includes(w)));
if (files.length === 0) {
  process.stderr.write(`no test files for ${arg}; run npm run build first\n`);
  process.exit(1);
}

let bed: Testbed | undefined;
const env = { ...process.env };
const needsServers = chosen.some((t) => t !== 'unit');
const external = Boolean(process.env.KUBECONFIG && process.env.KAFKA_BROKERS);
if (needsServers && !external) {
  bed = await Testbed.start();
  Object.assign(env, bed.env);
}
if (needsServers && external) process.stderr.write(`tests: using the cluster in KUBECONFIG and the brokers ${process.env.KAFKA_BROKERS}\n`);

const pattern = process.argv[3];
const args = ['--test', '--test-concurrency=1', ...(pattern ? ['--test-name-pattern', pattern] : []), ...files];
const child = spawn(process.execPath, args, { stdio: 'inherit', env });
const stopBed = async () => {
  try {
    await bed?.stop({ keepState: process.env.TESTBED_KEEP === '1' });
  } catch (err) {
    process.stderr.write(`testbed: stop failed: ${String(err)}\n`);
  }
};
process.on('SIGINT', () => child.kill('SIGINT'));
process.on('SIGTERM', () => child.kill('SIGTERM'));
const code: number = await new Promise((resolve) => child.on('exit', (c, s) => resolve(c ?? (s ? 1 : 0))));
await stopBed();
process.exit(code);
