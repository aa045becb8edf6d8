import { spawn } from 'node:child_process';
import { z } from 'zod';
import { csv, parseConfig, semicolonList, settingsInput, type SettingsShape } from '../shared/settings.js';
import type { PackageSource } from '../shared/contract/summary.js';
import { FetchLog, openPackageCache, packageEnv, type PackageTool } from './mcp/package-source.js';

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

/** An npm spec naming one exact version (`name@1.2.3`, `@scope/name@1.2.3-rc.1`): a range or tag would go stale. */
const NPM_PINNED = /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*@\d+\.\d+\.\d+(-[\w.]+)?(\+[\w.]+)?$/i;
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
  error?: string;
}

/** Fetches each package into the cache, one after another (they share most dependencies). */
export async function warm(dir: string, list: readonly WarmPackage[]): Promise<WarmResult[]> {
  const cache = openPackageCache(dir, 0);
  if ('unavailable' in cache) throw new Error(`package cache ${cache.unavailable}`);
  const results: WarmResult[] = [];
  for (const p of list) {
    const [cmd, args] = warmCommand(p);
    const log = new FetchLog(p.tool);
    const tail: string[] = [];
    log.started(performance.now());
    const code = await new Promise<number | string>((resolve) => {
      const child = spawn(cmd, args, {
        env: { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...packageEnv(p.tool, cache) },
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
      child.once('error', (err) => resolve((err as NodeJS.ErrnoException).code ?? err.message));
      child.once('close', (c) => resolve(c ?? 1));
    });
    results.push({ ...p, ok: code === 0, source: log.source(), ...(code === 0 ? {} : { error: `exit ${code}: ${tail.join(' | ').slice(0, 500)}` }) });
  }
  return results;
}
