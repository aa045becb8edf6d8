import { closeSync, openSync, readFileSync, readSync, realpathSync, statSync } from 'node:fs';
import { join, posix, sep } from 'node:path';
import type { ServerConfig } from '../../shared/contract/servers.js';
import type { PackageSource } from '../../shared/contract/summary.js';

/**
 * Pre-installed pinned npm packages on the shared cache: `<cache>/installs/<name>@<version>/`,
 * each a complete `npm install` of one package that warm-cache made in a temporary folder and
 * renamed into place (a rename within one filesystem is atomic: a Job sees the whole install or
 * none). A Job whose server is `npx -y name@1.2.3` then runs that package's bin with node
 * itself: npx would load the npm CLI, read the package's packument and the npx folder's whole
 * tree from the cache, take a lock and rewrite the folder's package.json before it starts the
 * same file — ≈600 ms per server, measured in test/bench-packages.ts. Anything this module does
 * not recognise is left to npx, which then behaves exactly as without it.
 */

/** An npm spec naming one exact version (`name@1.2.3`, `@scope/name@1.2.3-rc.1`): a range or tag would go stale. */
export const NPM_PINNED = /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*@\d+\.\d+\.\d+(-[\w.]+)?(\+[\w.]+)?$/i;

export interface PinnedPackage {
  name: string;
  version: string;
}

export function parsePinned(spec: string): PinnedPackage | undefined {
  if (!NPM_PINNED.test(spec)) return undefined;
  const at = spec.lastIndexOf('@');
  return { name: spec.slice(0, at), version: spec.slice(at + 1) };
}

/** The file warm-cache writes last into an install before its rename: what it installed, for a reader to match. */
export const INSTALL_MARKER = '.mcp-job-install.json';

export function installsRoot(cacheDir: string): string {
  return join(cacheDir, 'installs');
}

/** `<cache>/installs/@scope/name@1.2.3`: the package's name keeps its scope folder, as in node_modules. */
export function installDir(cacheDir: string, pkg: PinnedPackage): string {
  return join(installsRoot(cacheDir), `${pkg.name}@${pkg.version}`);
}

/**
 * The server a stdio command starts, when it is bare `npx` with `-y`/`--yes` and then one pinned
 * spec; the words after the spec are the server's own arguments, as npx passes them on. Any
 * other option (a registry, `--package`, `-c`, …) or an unpinned spec leaves the command to npx.
 */
export function pinnedNpx(cfg: Extract<ServerConfig, { command: string }>): { pkg: PinnedPackage; args: string[] } | undefined {
  // Bare `npx` only, the image's own: a path (`/opt/sandbox/npx`) may be an operator's wrapper that must run.
  if (cfg.command !== 'npx') return undefined;
  const args = cfg.args ?? [];
  let i = 0;
  while (args[i] === '-y' || args[i] === '--yes') i++;
  if (i === 0 || args[i] === undefined) return undefined;
  const pkg = parsePinned(args[i]!);
  return pkg ? { pkg, args: args.slice(i + 1) } : undefined;
}

/**
 * The bin npx runs for a package, by npx's own rule (libnpmexec's getBinFromManifest): the only
 * bin (or several names for one file), else the one named like the package without its scope.
 * A string `bin` is that one bin. Paths are made relative to the package as npm's bin linking
 * makes them (`../x` cannot leave it). Undefined: npx could not choose either.
 */
export function binOf(manifest: { name?: unknown; bin?: unknown }): string | undefined {
  if (typeof manifest.name !== 'string') return undefined;
  const unscoped = manifest.name.replace(/^@[^/]+\//, '');
  const raw = typeof manifest.bin === 'string' ? { [unscoped]: manifest.bin } : manifest.bin;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return undefined;
  const bins = new Map<string, string>();
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value !== 'string') continue;
    // As npm-normalize-package-bin: `.` and `..` become empty names, dropped.
    const name = posix.join('/', posix.basename(key.replace(/[\\:]/g, '/'))).slice(1);
    const path = posix.join('/', value.replace(/\\/g, '/')).slice(1);
    if (name && path) bins.set(name, path);
  }
  const files = new Set(bins.values());
  if (files.size === 1) return [...files][0];
  return bins.get(unscoped);
}

/** `#!/usr/bin/env node` or `#!/path/to/node`, nothing after: the file is what `node <file>` runs the same. */
const NODE_SHEBANG = /^#![ \t]*(?:\/usr\/bin\/env[ \t]+node|\/\S*\/node)[ \t]*\r?$/;

export function runsWithNode(head: string): boolean {
  return NODE_SHEBANG.test(head.split('\n', 1)[0]!);
}

export interface Prebuilt {
  /** The install folder (`installDir`). */
  dir: string;
  /** The bin's file inside the installed package. */
  bin: string;
}

function readJson(path: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(readFileSync(path, 'utf8'));
    return v && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The package's complete install on the cache, or undefined when it is missing or not what the
 * spec names: no marker (not warm-cache's, or not finished), a package.json of another name or
 * version, no bin npx would pick, a bin outside the package (symlinks followed) or that node does not run. A few
 * small reads, well under a millisecond.
 */
export function findPrebuilt(cacheDir: string, pkg: PinnedPackage): Prebuilt | undefined {
  return prebuiltIn(installDir(cacheDir, pkg), pkg);
}

/** {@link findPrebuilt} for an install at `dir`, wherever it is (warm-cache checks its own before placing it). */
export function prebuiltIn(dir: string, pkg: PinnedPackage): Prebuilt | undefined {
  const marker = readJson(join(dir, INSTALL_MARKER));
  if (marker?.name !== pkg.name || marker.version !== pkg.version) return undefined;
  const pkgDir = join(dir, 'node_modules', pkg.name);
  const manifest = readJson(join(pkgDir, 'package.json'));
  if (!manifest || manifest.name !== pkg.name || manifest.version !== pkg.version) return undefined;
  const rel = binOf(manifest);
  if (!rel) return undefined;
  const bin = join(pkgDir, rel);
  if (!bin.startsWith(pkgDir + sep)) return undefined;
  try {
    if (!statSync(bin).isFile()) return undefined;
    // A symlink inside the package must not lead out of it.
    if (!realpathSync(bin).startsWith(realpathSync(pkgDir) + sep)) return undefined;
    const fd = openSync(bin, 'r');
    try {
      const buf = Buffer.alloc(256);
      const n = readSync(fd, buf, 0, buf.length, 0);
      if (!runsWithNode(buf.subarray(0, n).toString('utf8'))) return undefined;
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  return { dir, bin };
}

export interface PrebuiltLaunch {
  command: string;
  args: string[];
  /** Put before PATH, as npx does: the install's own bins, for a server that starts one. */
  binPath: string;
  source: PackageSource;
}

/**
 * What to spawn instead of `npx -y name@1.2.3 …`, or undefined to spawn npx: node (this job's
 * own) with the pinned package's bin and the words after the spec. It runs the bin npx would
 * have run for that exact version, never anything the message did not name.
 */
export function prebuiltLaunch(
  cfg: Extract<ServerConfig, { command: string }>,
  cacheDir: string | undefined,
  node = process.execPath,
): PrebuiltLaunch | undefined {
  if (!cacheDir) return undefined;
  const npx = pinnedNpx(cfg);
  if (!npx) return undefined;
  const found = findPrebuilt(cacheDir, npx.pkg);
  if (!found) return undefined;
  return {
    command: node,
    args: [found.bin, ...npx.args],
    binPath: join(found.dir, 'node_modules', '.bin'),
    source: { from: 'prebuilt', path: found.dir.length > 120 ? `…${found.dir.slice(-119)}` : found.dir, requests: 0, tarballs: 0 },
  };
}
