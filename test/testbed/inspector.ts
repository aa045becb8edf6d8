import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from './cache.js';

/**
 * The MCP Inspector, an MCP client no one here wrote, for the e2e suite of `serve`. Installed
 * with npm into the cache, outside the repository, at a pinned version: it brings its own SDK
 * copies and a web UI, which as a devDependency would put a second zod and a bundler in
 * everyone's tree (and lock file) for one suite.
 */
export const INSPECTOR_VERSION = process.env.TESTBED_INSPECTOR_VERSION ?? '2.12.0';

/** The path of the Inspector's launcher (`mcp-inspector`), installing it first if needed. */
export function ensureInspector(): string {
  const dir = join(cacheRoot, `inspector-${INSPECTOR_VERSION}`);
  const bin = join(dir, 'node_modules', '@modelcontextprotocol', 'inspector', 'clients', 'launcher', 'build', 'index.js');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  execFileSync('npm', ['install', '--no-audit', '--no-fund', '--prefix', dir, `@modelcontextprotocol/inspector@${INSPECTOR_VERSION}`], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return bin;
}
