import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../testbed/cache.js';
import { ensureConformance } from '../testbed/conformance.js';

/** One baseline per revision: a scenario may fail at one and pass at the other (a stale entry fails the run). */
export const baseline = (revision: string): string => join(repoRoot, 'test', 'conformance', `baseline-${revision}.yaml`);

export interface SuiteRun {
  code: number | null;
  output: string;
  /** Checks passed, run and failed, summed over the scenarios run (a client run prints `Passed: p/t, f failed`, a server run a line per scenario). */
  passed: number;
  total: number;
  failed: number;
}

/** Runs the conformance CLI (`client …` or `server …`) on its Node, with the baseline, and sums its counts. */
export function runConformance(revision: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<SuiteRun> {
  const { node, cli } = ensureConformance();
  const out = mkdtempSync(join(tmpdir(), 'conformance-'));
  return new Promise((resolve, reject) => {
    const p = spawn(node, [cli, ...args, '--spec-version', revision, '--expected-failures', baseline(revision), '--output-dir', out], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...env },
    });
    let output = '';
    p.stdout.on('data', (c: Buffer) => (output += c.toString()));
    p.stderr.on('data', (c: Buffer) => (output += c.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      // eslint-disable-next-line no-control-regex
      const plain = output.replace(/\x1b\[[0-9;]*m/g, '');
      const total = /Total: (\d+) passed, (\d+) failed/.exec(plain);
      if (total) {
        const [passed, failed] = [Number(total[1]), Number(total[2])];
        resolve({ code, output: plain, passed, total: passed + failed, failed });
        return;
      }
      const client = [...plain.matchAll(/Passed: (\d+)\/(\d+), (\d+) failed/g)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3])] as const);
      const server = [...plain.matchAll(/^\s*[✓✗] [^:\n]+: (\d+) passed, (\d+) failed/gm)].map(
        (m) => [Number(m[1]), Number(m[1]) + Number(m[2]), Number(m[2])] as const,
      );
      const counts = client.length ? client : server;
      const sum = (i: 0 | 1 | 2) => counts.reduce((n, c) => n + c[i], 0);
      resolve({ code, output: plain, passed: sum(0), total: sum(1), failed: sum(2) });
    });
  });
}
