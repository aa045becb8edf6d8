import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The product's version, read from its package.json — the one place it is declared. Found by
 * walking up from this module, so it holds for the compiled tree (dist/src/shared/), the job's
 * esbuild bundle (dist/job/) and both images, which copy package.json next to dist/.
 */
function readVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)), i = 0; i < 6; dir = dirname(dir), i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'mcp-job-controller' && pkg.version) return pkg.version;
    } catch {
      // No package.json at this level: look one further up.
    }
  }
  // A version is what clients are told, not something the work depends on: never fail over it.
  return '0.0.0-unknown';
}

export const VERSION = readVersion();
