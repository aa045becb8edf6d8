import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { describeError, TerminalError } from '../shared/errors.js';
import { INIT_CONCURRENCY } from '../shared/contract/budget.js';
import { ExitCode, exitCodeFor, type ExitCodeValue } from '../shared/contract/exit-codes.js';
import { parseMessage } from '../shared/contract/message.js';
import { validationPolicy } from '../shared/contract/policy.js';
import { parseConfig, SECRET_REFS_DIR_SETTING, SHARED_SETTINGS, settingsInput, type SettingsShape } from '../shared/settings.js';
import { initOptionsFrom, type ServerResult } from './mcp/result.js';
import { createInitService } from './mcp/service.js';
import { mapPool } from './run.js';
import { buildSummary } from './summary.js';

/**
 * `mcp-job check`'s settings: the job's policy and MCP settings, with the job's defaults, from the
 * same environment variables and flags — what a Job would refuse, `check` refuses. No Kafka.
 */
export const CHECK_SETTINGS = {
  ALLOWED_COMMANDS: SHARED_SETTINGS.ALLOWED_COMMANDS,
  ALLOWED_COMMAND_PATTERNS: SHARED_SETTINGS.ALLOWED_COMMAND_PATTERNS,
  ALLOWED_ENV_KEYS: SHARED_SETTINGS.ALLOWED_ENV_KEYS,
  ALLOWED_REMOTE_HOSTS: SHARED_SETTINGS.ALLOWED_REMOTE_HOSTS,
  CLUSTER_SERVICE_CIDR: SHARED_SETTINGS.CLUSTER_SERVICE_CIDR,
  CLUSTER_POD_CIDR: SHARED_SETTINGS.CLUSTER_POD_CIDR,
  JOB_ALLOWED_SECRETS: SHARED_SETTINGS.JOB_ALLOWED_SECRETS,
  SECRETS_DIR: SHARED_SETTINGS.SECRETS_DIR,
  SECRET_REFS_DIR: SECRET_REFS_DIR_SETTING,
  MAX_MESSAGE_BYTES: SHARED_SETTINGS.MAX_MESSAGE_BYTES,
  MCP_INIT_TIMEOUT_MS: SHARED_SETTINGS.MCP_INIT_TIMEOUT_MS,
  MCP_PROTOCOL: SHARED_SETTINGS.MCP_PROTOCOL,
} satisfies SettingsShape;

const CheckConfigSchema = z.object(CHECK_SETTINGS);
export type CheckConfig = z.output<typeof CheckConfigSchema>;

export function checkConfig(argv: Record<string, unknown>, env: NodeJS.ProcessEnv): CheckConfig {
  return parseConfig(CheckConfigSchema, settingsInput(CHECK_SETTINGS, argv, env));
}

/** What to check: a client config file, one remote server, or a message as a producer writes it. */
export type CheckInput = { config: string } | { url: string } | { message: string };

/** Top-level keys of a client config that hold servers; everything else in such a file (Claude Code's ~/.claude.json holds much more) is not ours. */
const SERVER_KEYS = ['mcpServers', 'servers'] as const;

/** The name a `--url` server gets in the table: its host, within the message contract's name rule. */
export function serverNameOf(url: string): string {
  let host = 'server';
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    /* an invalid URL is refused by the message's own validation, by name */
  }
  return host.replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 64) || 'server';
}

/**
 * The message value a Job would read for this input: a file's servers (or the url) wrapped in the
 * envelope, so the job's own parser, dialects and policy checks decide — nothing is re-implemented.
 */
export function messageValueFor(input: CheckInput, read: (path: string) => Buffer = (p) => readFileSync(p)): Buffer {
  if ('message' in input) return read(input.message);
  let payload: Record<string, unknown>;
  if ('url' in input) payload = { mcpServers: { [serverNameOf(input.url)]: { url: input.url } } };
  else {
    let file: unknown;
    try {
      file = JSON.parse(read(input.config).toString('utf8'));
    } catch (err) {
      throw new TerminalError('invalid-json', `${input.config} is not JSON: ${(err as Error).message}`);
    }
    const obj = typeof file === 'object' && file !== null && !Array.isArray(file) ? (file as Record<string, unknown>) : {};
    const key = SERVER_KEYS.find((k) => k in obj);
    if (!key) throw new TerminalError('invalid-payload', `${input.config} has neither "mcpServers" nor "servers"`);
    payload = { [key]: obj[key] };
  }
  return Buffer.from(JSON.stringify({ jobID: 'mcp-job-check', jobType: 'server-init', payload }));
}

const pad = (rows: string[][]): string => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => Array.from(r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - Array.from(c).length))).join('  ')).join('\n');
};

/**
 * The human form of a check: one row per server, then each server's tool digests (what to pin in
 * the server's entry as `toolsDigest` / `toolDigests`), then the failures' texts.
 */
export function renderTable(results: readonly ServerResult[]): string {
  const head = ['SERVER', 'STATUS', 'GENERATION', 'VERSION', 'TRANSPORT', 'TOOLS', 'PROMPTS', 'RESOURCES', 'MS', 'REASON'];
  const count = (l: unknown[] | undefined) => (l ? String(l.length) : '-');
  const rows = results.map((r) => [
    r.name,
    r.status,
    r.generation ?? '-',
    r.protocolVersion ?? '-',
    r.transport,
    count(r.tools),
    count(r.prompts),
    count(r.resources),
    String(r.durationMs),
    r.reason ?? '',
  ]);
  const out = [pad([head, ...rows]).replace(/ +$/gm, '')];
  for (const r of results) {
    if (!r.toolsDigest) continue;
    out.push('', `${r.name} toolsDigest ${r.toolsDigest}`);
    const digests = Object.entries(r.toolDigests ?? {});
    if (digests.length) out.push(pad(digests.map(([tool, d]) => [`  ${tool}`, d])));
  }
  const failed = results.filter((r) => r.error);
  if (failed.length) out.push('', ...failed.map((r) => `${r.name}: ${r.error}`));
  return `${out.join('\n')}\n`;
}

export interface CheckDeps {
  config: CheckConfig;
  input: CheckInput;
  output: 'table' | 'json';
  write: (text: string) => void;
  /** For the reasons a check stops before any server is reached. */
  writeError: (text: string) => void;
}

/**
 * `mcp-job check`: what a Job would do with this input, here — the message's validation and
 * policy, then the handshake and lists of every server — with the job's exit codes (0 all
 * initialized, 65 a permanent failure, 75 a retry may help).
 */
export async function runCheck(deps: CheckDeps): Promise<ExitCodeValue> {
  const { config: cfg } = deps;
  const base = { jobID: 'mcp-job-check', topic: '-', partition: 0, offset: '0' };
  const policy = validationPolicy(cfg);
  let msg: ReturnType<typeof parseMessage>;
  try {
    msg = parseMessage(messageValueFor(deps.input), policy);
  } catch (err) {
    const reason = err instanceof TerminalError ? err.reason : 'unreadable-input';
    // An input that cannot be read (no such file) is the caller's to fix, like an invalid one.
    const exitCode = ExitCode.PERMANENT;
    if (deps.output === 'json') deps.write(`${buildSummary({ ...base, exitCode, reason, error: describeError(err).slice(0, 1000) }, [])}\n`);
    else deps.writeError(`refused (${reason}): ${describeError(err)}\n`);
    return exitCode;
  }
  const service = await createInitService(initOptionsFrom(cfg, policy));
  let results: ServerResult[];
  try {
    results = await mapPool(Object.keys(msg.config.mcpServers), INIT_CONCURRENCY, (name) => service.initialize(name, msg.config.mcpServers[name]!));
  } finally {
    await service.close();
  }
  const exitCode = exitCodeFor(results.map((r) => r.status));
  deps.write(deps.output === 'json' ? `${buildSummary({ ...base, exitCode }, results)}\n` : renderTable(results));
  return exitCode;
}
