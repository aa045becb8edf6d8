import { accessSync, constants, mkdirSync, statfsSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ServerConfig } from '../../shared/contract/servers.js';
import type { PackageSource } from '../../shared/contract/summary.js';

/**
 * The shared package cache as the job found it at start: usable, or why not. A cache that is
 * missing, read-only or nearly full is not an error: the servers are then fetched into the
 * pod's own /tmp from the registry, as without the setting, and the summary says why.
 */
export type PackageCache = { dir: string } | { unavailable: string };

/**
 * Below this much free space the cache counts as full: npm and uv write a fetch's tarballs and
 * unpacked files before they run anything, and a write failing half-way fails the server, so
 * the job rather starts from the registry into /tmp (its emptyDir has its own limit).
 */
export const MIN_FREE_BYTES = 256 * 1024 * 1024;

export function openPackageCache(dir: string, minFreeBytes = MIN_FREE_BYTES): PackageCache {
  try {
    accessSync(dir, constants.W_OK);
    mkdirSync(join(dir, 'npm'), { recursive: true });
    mkdirSync(join(dir, 'uv'), { recursive: true });
    const fs = statfsSync(dir);
    const free = fs.bavail * fs.bsize;
    if (free < minFreeBytes) return { unavailable: `full: ${Math.floor(free / 1048576)} MiB free at ${dir}` };
    return { dir };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'missing' : code === 'EROFS' || code === 'EACCES' || code === 'EPERM' ? 'not writable' : 'unusable';
    return { unavailable: `${why}: ${code ?? (err as Error).message} at ${dir}` };
  }
}

export type PackageTool = 'npm' | 'uv';

/** npx / `npm exec` and uvx / `uv tool run` / `uv run` fetch packages; any other command runs what is on disk. */
export function packageTool(cfg: Extract<ServerConfig, { command: string }>): PackageTool | undefined {
  const cmd = basename(cfg.command);
  const sub = cfg.args?.[0];
  if (cmd === 'npx' || (cmd === 'npm' && (sub === 'exec' || sub === 'x'))) return 'npm';
  if (cmd === 'uvx' || (cmd === 'uv' && (sub === 'tool' || sub === 'run'))) return 'uv';
  return undefined;
}

/**
 * The environment npx or uvx gets. The MCP SDK passes a child only HOME, PATH and a few more, so
 * the cache settings must be given here; a message cannot override them (NPM_CONFIG_* and UV_*
 * are refused env keys).
 * - npm: the cache, and `prefer-offline` — cached packuments and tarballs are used without
 *   revalidation, the registry is asked only for what the cache lacks. `loglevel=http` makes npm
 *   print one line per request on stderr, which FetchLog reads. The requests that fetch no
 *   package are turned off: the update notifier's, and the audit npx's install posts.
 * - uv: the cache only. uv has no prefer-offline: it honours the index's HTTP cache headers
 *   (PyPI's simple pages: 10 minutes), then revalidates (a conditional request, 304 when
 *   unchanged); wheels and built environments come from the cache. UV_OFFLINE would fail every
 *   server whose version the cache lacks.
 */
export function packageEnv(tool: PackageTool | undefined, cache: PackageCache | undefined): Record<string, string> {
  const dir = cache && 'dir' in cache ? cache.dir : undefined;
  if (tool === 'npm') {
    return {
      npm_config_loglevel: 'http',
      npm_config_update_notifier: 'false',
      npm_config_audit: 'false',
      npm_config_fund: 'false',
      ...(dir ? { npm_config_cache: join(dir, 'npm'), npm_config_prefer_offline: 'true' } : {}),
    };
  }
  if (tool === 'uv') return dir ? { UV_CACHE_DIR: join(dir, 'uv') } : {};
  return {};
}

const NPM_FETCH = /^npm http fetch [A-Z]+ \d{3} (\S+) \d+ms(?: \(attempt #\d+\))?(?: \(cache (\w+)\))?/;
const NPM_CACHE = /^npm http cache \S+ \d+ms/;
const TARBALL = /\/-\/[^/]+\.tgz$/;
const UV_PREPARED = /^Prepared (\d+) packages? in /;
const UV_DONE = /^(Resolved|Installed|Audited|Prepared) \d+ packages? in /;

/**
 * Where a server's code came from, read from the package manager's own account on stderr rather
 * than guessed from the cache's contents before the spawn: only the package manager knows what
 * it resolved a spec to and whether it asked the registry, and a look-up of our own would
 * disagree with it whenever npm's rules change.
 * - npm (`loglevel=http`, see packageEnv): `npm http fetch GET 200 <url> 12ms (cache miss)` is a
 *   request that reached the registry (also `updated`, `revalidated`, or no cache status);
 *   `(cache hit)` / `(cache stale)` on a fetch line, and every `npm http cache` line, were served
 *   from the cache without one (prefer-offline serves stale entries as they are). A URL under
 *   `/-/…tgz` is a package tarball; the rest are packuments.
 * - uv: `Prepared N packages in …` counts the distributions it had to download or build; the
 *   `Resolved/Installed/Audited` lines alone mean the cache held them. uv's index
 *   revalidations are not printed at its default verbosity, so `requests` counts packages only.
 */
export class FetchLog {
  private t0?: number;
  private last?: number;
  private requests = 0;
  private tarballs = 0;
  private lines = 0;

  constructor(readonly tool: PackageTool) {}

  started(now: number): void {
    this.t0 ??= now;
  }

  /** Feeds one stderr line; true when it was the package manager's. */
  line(text: string, now: number): boolean {
    const t = text.trim();
    if (this.tool === 'npm') {
      const m = NPM_FETCH.exec(t);
      if (m) {
        if (m[2] !== 'hit' && m[2] !== 'stale') {
          this.requests++;
          if (TARBALL.test(m[1]!)) this.tarballs++;
        }
      } else if (!NPM_CACHE.test(t)) return false;
    } else {
      if (!UV_DONE.test(t)) return false;
      const n = UV_PREPARED.exec(t);
      if (n) {
        this.requests += Number(n[1]);
        this.tarballs += Number(n[1]);
      }
    }
    this.lines++;
    this.last = now;
    return true;
  }

  source(): PackageSource {
    if (this.lines === 0) return { from: 'unknown' };
    return {
      from: this.requests > 0 ? 'registry' : 'cache',
      ...(this.t0 !== undefined && this.last !== undefined ? { ms: Math.round(this.last - this.t0) } : {}),
      requests: this.requests,
      tarballs: this.tarballs,
    };
  }
}

/** A command that fetches nothing: the code it runs is on disk already (its script, or the command itself). */
export function installedSource(cfg: Extract<ServerConfig, { command: string }>): PackageSource {
  const runtime = /^(node|python3?|deno|bun)$/.test(basename(cfg.command));
  const script = runtime ? cfg.args?.find((a) => !a.startsWith('-')) : undefined;
  const path = script ?? cfg.command;
  return { from: 'installed', path: path.length > 120 ? `…${path.slice(-119)}` : path };
}
