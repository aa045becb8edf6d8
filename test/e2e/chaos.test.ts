import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../testbed/cache.js';

/** Fixed, so a failure in CI replays locally with `npm run chaos -- --random --seed 20261206 --minutes 1`. */
const SEED = '20261206';

describe('chaos, a short seeded random run', () => {
  it('loses nothing, doubles nothing and leaves no partition behind its end across random records and faults', { timeout: 40 * 60_000 }, async () => {
    // Its own test bed: the faults stop and start the broker and the API server, which the suite's bed must keep.
    const env = { ...process.env };
    delete env.KUBECONFIG;
    delete env.KAFKA_BROKERS;
    const child = spawn(process.execPath, [join(repoRoot, 'dist', 'test', 'chaos.js'), '--random', '--seed', SEED, '--minutes', '1'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const why = `chaos output:\n${out}\n${err.split('\n').slice(-30).join('\n')}`;
    assert.equal(code, 0, why);
    assert.match(out, new RegExp(`^chaos --random --seed ${SEED}: lost=0 duplicates=0 stuck=0$`, 'm'), why);
    assert.match(out, /^faults: controller-sigkill=\d+ /m, why);
  });
});
