import { readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import { getDefaultEnvironment, StdioClientTransport, type StdioServerParameters } from '@modelcontextprotocol/client/stdio';
import { isCommandAllowed, resolveEnvFile } from '../../../shared/contract/checks.js';
import type { ServerConfig } from '../../../shared/contract/servers.js';
import { envKeyRefusal, PolicyReason } from '../../../shared/contract/policy.js';
import type { Transport } from '@modelcontextprotocol/client';
import type { PackageSource } from '../../../shared/contract/summary.js';
import { InitFailure } from '../failures.js';
import { FetchLog, installedSource, packageEnv, packageTool } from '../package-source.js';
import type { InitOptions, ResponseGuard } from '../result.js';
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
  if (!isCommandAllowed(cfg.command, opts.allowedCommands)) {
    throw new InitFailure('failed-permanent', 'command-not-allowed', `command ${JSON.stringify(cfg.command)} is not in the allow-list`);
  }
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
    for (const key of Object.keys(fileEnv)) {
      const why = envKeyRefusal(`envFile ${cfg.envFile}:`, key, opts.policy?.allowedEnvKeys);
      if (why) throw new InitFailure('failed-permanent', PolicyReason.envKeyNotAllowed, why);
    }
  }
  const tool = packageTool(cfg);
  const params: StdioServerParameters = {
    command: cfg.command,
    args: cfg.args,
    env: {
      ...getDefaultEnvironment(),
      ...(process.env.TMPDIR ? { TMPDIR: process.env.TMPDIR } : {}),
      ...packageEnv(tool, opts.packageCache),
      ...fileEnv,
      ...resolveSecretRefs(cfg.env, false, opts, secrets),
    },
    ...(cfg.cwd ? { cwd: cfg.cwd } : {}),
    stderr: 'pipe',
  };
  const fetches = tool ? new FetchLog(tool) : undefined;
  const t = new InPlaceStdioClientTransport(params, fetches, guard);
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
