import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Versions the test bed builds or downloads; each is one setting with an env override. */
export const versions = {
  kubernetes: process.env.TESTBED_K8S_VERSION ?? 'v1.37.2',
  etcd: process.env.TESTBED_ETCD_VERSION ?? 'v3.6.16',
  kafka: process.env.TESTBED_KAFKA_VERSION ?? '4.4.0',
};

/** Caches live outside the repo so every clone on the machine reuses them. */
export const cacheRoot = resolve(process.env.MCP_JOB_CONTROLLER_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'mcp-job-controller'));

/** The repository root, found from this file's place in dist/test/testbed. */
export const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('testbed: cannot find the repository root');
    dir = up;
  }
  return dir;
})();

export const scriptsDir = join(repoRoot, 'test', 'testbed', 'scripts');
