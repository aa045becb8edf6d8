/**
 * Runs one tier of tests (unit | integration | e2e | all) with node's test runner. Tiers that
 * need servers get one shared test bed for the whole run — or the cluster and broker named by
 * KUBECONFIG and KAFKA_BROKERS when both are set (a kind cluster, say).
 */
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './testbed/cache.js';
import { podsMode } from './testbed/images.js';
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

const needsServers = chosen.some((t) => t !== 'unit');
const external = Boolean(process.env.KUBECONFIG && process.env.KAFKA_BROKERS);
if (needsServers && external) process.stderr.write(`tests: using the cluster in KUBECONFIG and the brokers ${process.env.KAFKA_BROKERS}\n`);

/**
 * The suites whose pods run inside the built images (the images themselves, the shipped install,
 * the controller's core suite) get a bed of their own in image mode; the rest run their pods as
 * host processes, which cost far less per pod on a 2-core machine. Where images cannot be built
 * (TESTBED_PODS=process, not root) every suite shares one process-mode bed.
 */
const IMAGE_SUITES = ['integration/images.test', 'e2e/shipping.test', 'e2e/controller.test'];
const imageMode = needsServers && !external && podsMode() === 'image';
const inImage = (f: string) => imageMode && IMAGE_SUITES.some((w) => f.includes(w));
const phases = [
  { pods: 'process' as const, files: files.filter((f) => !inImage(f)) },
  { pods: 'image' as const, files: files.filter(inImage) },
].filter((ph) => ph.files.length > 0);

const pattern = process.argv[3];
let child: ReturnType<typeof spawn> | undefined;
process.on('SIGINT', () => child?.kill('SIGINT'));
process.on('SIGTERM', () => child?.kill('SIGTERM'));
let code = 0;
for (const phase of phases) {
  const env = { ...process.env };
  let bed: Testbed | undefined;
  if (needsServers && !external) {
    bed = await Testbed.start({ pods: phase.pods });
    Object.assign(env, bed.env);
  }
  const args = ['--test', '--test-concurrency=1', ...(pattern ? ['--test-name-pattern', pattern] : []), ...phase.files];
  child = spawn(process.execPath, args, { stdio: 'inherit', env });
  const c: number = await new Promise((resolve) => child!.on('exit', (x, sig) => resolve(x ?? (sig ? 1 : 0))));
  code = code || c;
  try {
    await bed?.stop({ keepState: process.env.TESTBED_KEEP === '1' });
  } catch (err) {
    process.stderr.write(`testbed: stop failed: ${String(err)}\n`);
  }
}
process.exit(code);
