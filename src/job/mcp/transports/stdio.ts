import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { getDefaultEnvironment, StdioClientTransport, type StdioServerParameters } from '@modelcontextprotocol/client/stdio';
import { checkEnvFileKeys, resolveEnvFile } from '../../../shared/contract/policy.js';
import type { ServerConfig } from '../../../shared/contract/servers.js';
import type { Transport } from '@modelcontextprotocol/client';
import type { PackageSource } from '../../../shared/contract/summary.js';
import { InitFailure } from '../failures.js';
import { FetchLog, installedSource, packageEnv, packageTool } from '../package-source.js';
import { prebuiltLaunch } from '../prebuilt.js';
import { policyOf, type InitOptions, type ResponseGuard } from '../result.js';
import { resolveSecretRefs } from '../secrets.js';

/**
 * The SDK's own stdio transport probes `server/discover` on a disposable sibling process (one
 * extra spawn per connect), because some servers exit on an unknown pre-`initialize` request. A
 * subclass probes in place (the SDK recognises only its exact class for the sibling). Measured
 * here (test/bench-mcp.ts and the commit that chose this), the sibling roughly doubles a stdio
 * connect (≈ +400 ms) while the v1 fixture, server-everything and a serveStdio server all answer
 * the probe in place and keep serving. So the job probes in place and, only if the server closes
 * the connection during the probe, starts it again with the 2025 handshake.
 */
class InPlaceStdioClientTransport extends StdioClientTransport {
  constructor(
    params: StdioServerParameters,
    /** npx/uvx's account of what it fetched, read from the child's stderr. */
    readonly fetches?: FetchLog,
    guard?: ResponseGuard,
    /** Set when the job runs a pinned npx server's bin from the cache's install (prebuilt.ts). */
    readonly prebuilt?: PackageSource,
  ) {
    super({ ...params, ...(guard ? { maxBufferSize: guard.maxBytes } : {}) });
    if (!guard) return;
    // The SDK's read buffer throws past maxBufferSize and closes the connection; the guard is how
    // the list reader learns that a reply was too large rather than that the server went away.
    const buffer = (this as unknown as { _readBuffer: { append: (chunk: Buffer) => void } })._readBuffer;
    const append = buffer.append.bind(buffer);
    buffer.append = (chunk) => {
      try {
        append(chunk);
      } catch (err) {
        guard.tripped = true;
        throw err;
      }
    };
  }

  override async start(): Promise<void> {
    this.fetches?.started(performance.now());
    return super.start();
  }
}

/** Where a stdio server's code came from: npx/uvx's own account, or the path of what it runs. */
export function packageSourceOf(t: Transport | undefined, cfg: ServerConfig): PackageSource | undefined {
  if (!('command' in cfg)) return undefined;
  if (t instanceof InPlaceStdioClientTransport && t.prebuilt) return t.prebuilt;
  if (t instanceof InPlaceStdioClientTransport && t.fetches) return t.fetches.source();
  return installedSource(cfg);
}

export function stdioTransport(
  name: string,
  cfg: Extract<ServerConfig, { command: string }>,
  opts: InitOptions,
  secrets: string[],
  guard?: ResponseGuard,
): StdioClientTransport {
  let fileEnv: Record<string, string> = {};
  if (cfg.envFile) {
    let path: string;
    try {
      path = resolveEnvFile(cfg.envFile, opts.secretsDir);
    } catch (err) {
      throw new InitFailure('failed-permanent', 'env-file-outside-secrets', (err as Error).message);
    }
    try {
      fileEnv = parseEnv(readFileSync(path, 'utf8')) as Record<string, string>;
    } catch (err) {
      throw new InitFailure(
        'failed-permanent',
        'env-file-unreadable',
        `envFile ${cfg.envFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
    // The file is read here, at run time: its keys meet the same policy as the message's `env`.
    checkEnvFileKeys(cfg.envFile, Object.keys(fileEnv), policyOf(opts));
  }
  const tool = packageTool(cfg);
  // Policy saw the message's own command (npx …) before this: the launch runs only the bin npx
  // would have run for the exact version it names, or is undefined and npx runs as it would.
  const prebuilt = tool === 'npm' && opts.packageCache && 'dir' in opts.packageCache ? prebuiltLaunch(cfg, opts.packageCache.dir) : undefined;
  const env: Record<string, string> = {
    ...getDefaultEnvironment(),
    ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
    // The image's (or operator's) extra CA bundle: behind a TLS-inspecting proxy npx cannot
    // reach the registry without it, and the SDK's default environment leaves it out.
    ...(process.env.NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS } : {}),
    ...packageEnv(tool, opts.packageCache),
    ...fileEnv,
    ...resolveSecretRefs(cfg.env, false, opts, secrets),
  };
  if (prebuilt) env.PATH = env.PATH ? `${prebuilt.binPath}:${env.PATH}` : prebuilt.binPath;
  const params: StdioServerParameters = {
    command: prebuilt?.command ?? cfg.command,
    args: prebuilt?.args ?? cfg.args,
    env,
    ...(cfg.cwd ? { cwd: cfg.cwd } : {}),
    stderr: 'pipe',
  };
  const fetches = tool && !prebuilt ? new FetchLog(tool) : undefined;
  const t = new InPlaceStdioClientTransport(params, fetches, guard, prebuilt?.source);
  // Always read stderr, whoever calls: a pipe nobody reads fills (64 KiB on Linux) and a server
  // that logs that much while starting then blocks before it answers. Lines go to the fetch log
  // and onStderr when there are any, and are dropped otherwise; a line is kept to 8 KiB.
  const stderr = t.stderr;
  if (stderr) {
    let buf = '';
    stderr.on('data', (chunk: Buffer) => {
      if (!opts.onStderr && !fetches) return;
      buf += chunk.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        fetches?.line(line, performance.now());
        opts.onStderr?.(name, line);
        buf = buf.slice(i + 1);
      }
      if (buf.length > 8192) buf = buf.slice(-8192);
    });
  }
  return t;
}
