import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { csv, parseConfig, semicolonList, settingsInput, type SettingsShape } from '../shared/settings.js';
import type { PackageSource } from '../shared/contract/summary.js';
import { FetchLog, openPackageCache, packageEnv, type PackageCache, type PackageTool } from './mcp/package-source.js';
import { findPrebuilt, INSTALL_MARKER, installDir, installsRoot, NPM_PINNED, parsePinned, prebuiltIn, type PinnedPackage } from './mcp/prebuilt.js';

/** `warm-cache`'s settings: the cache, the packages, and the command patterns whose pinned packages it adds. */
export const WARM_SETTINGS = {
  PACKAGE_CACHE_DIR: z.string().startsWith('/', 'an absolute path').describe('The shared package cache to fill (npm/ and uv/ inside)'),
  WARM_PACKAGES: csv
    .default([])
    .describe('Pinned packages to fetch, comma-separated: npm specs (name@1.2.3), or uv:<requirement> (uv:mcp-server-fetch==2025.4.7)'),
  ALLOWED_COMMAND_PATTERNS: semicolonList
    .default([])
    .describe("The controller's command patterns: each npx/uvx pattern naming an exact version is fetched too"),
} satisfies SettingsShape;
export const WarmConfigSchema = z.object(WARM_SETTINGS);
export type WarmConfig = z.output<typeof WarmConfigSchema>;

export function warmConfig(argv: Record<string, unknown>, env: NodeJS.ProcessEnv): WarmConfig {
  return parseConfig(WarmConfigSchema, settingsInput(WARM_SETTINGS, argv, env));
}

export interface WarmPackage {
  tool: PackageTool;
  spec: string;
}

/** A uv requirement with one exact version: `name==1.2.3` or uvx's `name@1.2.3`. */
const UV_PINNED = /^[a-z0-9][\w.-]*(\[[\w,.-]+\])?(==|@)\d[\w.!+-]*$/i;

/**
 * The packages `warm-cache` fetches: WARM_PACKAGES, plus the exact versions the command patterns
 * pin (`npx -y @scope/server@1.2.3`, `npx --package=x@1.0.0 -- …`, `uvx server==1.2.3`,
 * `uvx --from server==1.2.3 cmd`). A pattern word with `*` pins nothing and is skipped.
 */
export function warmList(cfg: Pick<WarmConfig, 'WARM_PACKAGES' | 'ALLOWED_COMMAND_PATTERNS'>): WarmPackage[] {
  const out = new Map<string, WarmPackage>();
  const add = (tool: PackageTool, spec: string) => out.set(`${tool}:${spec}`, { tool, spec });
  for (const p of cfg.WARM_PACKAGES) {
    if (p.startsWith('uv:')) add('uv', p.slice(3));
    else add('npm', p.replace(/^npm:/, ''));
  }
  for (const pattern of cfg.ALLOWED_COMMAND_PATTERNS) {
    const [cmd, ...words] = pattern.split(' ');
    const tool: PackageTool | undefined = cmd === 'npx' ? 'npm' : cmd === 'uvx' ? 'uv' : undefined;
    if (!tool) continue;
    const pinned = tool === 'npm' ? NPM_PINNED : UV_PINNED;
    for (let i = 0; i < words.length; i++) {
      const w = words[i]!;
      if (w === '--') break;
      const value = /^--(package|from)=/.test(w) ? w.replace(/^--(package|from)=/, '') : /^(-p|--package|--from)$/.test(w) ? words[++i] : w;
      if (value === undefined || value.includes('*')) continue;
      if (!value.startsWith('-') && pinned.test(value)) add(tool, tool === 'uv' ? value.replace('@', '==') : value);
      // The first word that is not an option is the command: npx/uvx take nothing after it.
      if (!w.startsWith('-') && value === w) break;
    }
  }
  return [...out.values()];
}

/**
 * The command that puts one package where a server's own npx/uvx finds it: npx installs into
 * `_npx/<hash of the package specs>`, the same folder `npx -y <spec>` uses, then runs a no-op
 * instead of the server; uvx builds the same cached environment `uvx <spec>` would.
 */
export function warmCommand(p: WarmPackage): [string, string[]] {
  return p.tool === 'npm' ? ['npx', ['-y', `--package=${p.spec}`, '--', 'node', '-e', '']] : ['uvx', ['--from', p.spec, 'python', '-c', '']];
}

export interface WarmResult extends WarmPackage {
  ok: boolean;
  source: PackageSource;
  /** For a pinned npm package: its complete install on the cache (prebuilt.ts), made now or found there. */
  install?: 'created' | 'present' | 'skipped';
  error?: string;
}

interface Ran {
  code: number | string;
  source: PackageSource;
  tail: string[];
}

/** Runs npx, npm or uvx against the cache, reading the package manager's account of what it fetched. */
function runLogged(tool: PackageTool, cmd: string, args: string[], cache: PackageCache): Promise<Ran> {
  const log = new FetchLog(tool);
  const tail: string[] = [];
  log.started(performance.now());
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...packageEnv(tool, cache) },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let buf = '';
    child.stderr.on('data', (c: Buffer) => {
      buf += c.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!log.line(line, performance.now())) tail.push(line);
        if (tail.length > 5) tail.shift();
      }
    });
    const done = (code: number | string) => resolve({ code, source: log.source(), tail });
    child.once('error', (err) => done((err as NodeJS.ErrnoException).code ?? err.message));
    child.once('close', (c) => done(c ?? 1));
  });
}

/** A temporary folder or a replaced install older than this was left by a warmer that died: removed. */
const STALE_MS = 60 * 60 * 1000;

function sweep(root: string): void {
  for (const e of readdirSync(root)) {
    if (!/^\.(tmp|old)-/.test(e)) continue;
    const p = join(root, e);
    try {
      if (Date.now() - statSync(p).mtimeMs > STALE_MS) rmSync(p, { recursive: true, force: true });
    } catch {
      // Another warmer removed it first.
    }
  }
}

/**
 * Puts a complete `npm install` of one pinned package at installDir, for Jobs to run without
 * npx. npm installs into a temporary folder beside it, the marker is written last, and a rename
 * puts the folder in place: a Job or another warmer sees the whole install or none, never one
 * npm is still writing. An install already there is kept (a published version never changes);
 * a broken one is moved aside and replaced; one without a bin node runs is never placed ('skipped').
 */
export async function placeInstall(
  cache: PackageCache & { dir: string },
  pkg: PinnedPackage,
): Promise<{ install: 'created' | 'present' | 'skipped'; source: PackageSource } | { error: string }> {
  if (findPrebuilt(cache.dir, pkg)) return { install: 'present', source: { from: 'cache', requests: 0, tarballs: 0 } };
  const root = installsRoot(cache.dir);
  mkdirSync(root, { recursive: true });
  sweep(root);
  const tmp = join(root, `.tmp-${randomBytes(6).toString('hex')}`);
  mkdirSync(tmp);
  try {
    const spec = `${pkg.name}@${pkg.version}`;
    const ran = await runLogged('npm', 'npm', ['install', '--prefix', tmp, '--no-audit', '--no-fund', '--no-update-notifier', spec], cache);
    if (ran.code !== 0) return { error: `npm install exit ${ran.code}: ${ran.tail.join(' | ').slice(0, 500)}` };
    writeFileSync(join(tmp, INSTALL_MARKER), `${JSON.stringify({ name: pkg.name, version: pkg.version, installedAt: new Date().toISOString() })}\n`);
    // No bin npx would pick and node runs (a library, several bins, a shell script): Jobs go
    // through npx from the cache, which the warming above filled. Not a failure of the warm run.
    if (!prebuiltIn(tmp, pkg)) return { install: 'skipped', source: ran.source };
    const final = installDir(cache.dir, pkg);
    mkdirSync(dirname(final), { recursive: true });
    const swap = () => renameSync(tmp, final);
    try {
      swap();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw err;
      // Another warmer was quicker, or a broken install is in the way.
      if (findPrebuilt(cache.dir, pkg)) return { install: 'present', source: ran.source };
      const old = join(root, `.old-${randomBytes(6).toString('hex')}`);
      renameSync(final, old);
      swap();
      rmSync(old, { recursive: true, force: true });
    }
    return { install: 'created', source: ran.source };
  } catch (err) {
    return { error: (err as Error).message };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Fetches each package into the cache, one after another (they share most dependencies); a
 * pinned npm package is also installed whole for Jobs to run without npx (placeInstall).
 */
export async function warm(dir: string, list: readonly WarmPackage[]): Promise<WarmResult[]> {
  const cache = openPackageCache(dir, 0);
  if ('unavailable' in cache) throw new Error(`package cache ${cache.unavailable}`);
  const results: WarmResult[] = [];
  for (const p of list) {
    const [cmd, args] = warmCommand(p);
    const ran = await runLogged(p.tool, cmd, args, cache);
    if (ran.code !== 0) {
      results.push({ ...p, ok: false, source: ran.source, error: `exit ${ran.code}: ${ran.tail.join(' | ').slice(0, 500)}` });
      continue;
    }
    const pinned = p.tool === 'npm' ? parsePinned(p.spec) : undefined;
    const placed = pinned ? await placeInstall(cache, pinned) : undefined;
    if (placed && 'error' in placed) results.push({ ...p, ok: false, source: ran.source, error: placed.error });
    else results.push({ ...p, ok: true, source: ran.source, ...(placed ? { install: placed.install } : {}) });
  }
  return results;
}
