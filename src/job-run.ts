import type { JobConfig } from './config.js';
import { describeError, TerminalError } from './errors.js';
import { ExitCode, exitCodeFor, type ExitCodeValue } from './exit-codes.js';
import type { Logger } from './logger.js';
import { createInitService, type InitOptions, type ServerResult } from './mcp-init.js';
import { checksumOf, parseMessage } from './message.js';
import type { OneMessage, ReadOptions } from './read-message.js';

/** The kubelet keeps at most 4096 bytes of a termination message. */
export const TERMINATION_MESSAGE_LIMIT = 4096;

export interface JobSummary {
  jobID?: string;
  topic: string;
  partition: number;
  offset: string;
  exitCode: ExitCodeValue;
  status: 'initialized' | 'failed';
  reason?: string;
  error?: string;
  servers?: Record<string, {
    status: ServerResult['status'];
    reason?: string;
    error?: string;
    server?: string;
    protocol?: string;
    tools?: string[];
    prompts?: string[];
    resources?: number;
    ms: number;
  }>;
}

/**
 * The compact JSON the job writes to its termination message: what users see in
 * `kubectl get pod -o jsonpath='{..terminated.message}'` and what the controller can report.
 * Lists are shortened (never the counts or statuses) until it fits the kubelet's 4 KiB.
 */
export function buildSummary(base: Omit<JobSummary, 'servers' | 'status'>, results: ServerResult[]): string {
  const servers: NonNullable<JobSummary['servers']> = {};
  for (const r of results) {
    servers[r.name] = {
      status: r.status,
      ...(r.reason ? { reason: r.reason } : {}),
      ...(r.error ? { error: r.error.slice(0, 300) } : {}),
      ...(r.serverInfo ? { server: `${r.serverInfo.name}@${r.serverInfo.version}` } : {}),
      ...(r.protocolVersion ? { protocol: r.protocolVersion } : {}),
      ...(r.tools ? { tools: r.tools } : {}),
      ...(r.prompts ? { prompts: r.prompts } : {}),
      ...(r.resources ? { resources: r.resources.length } : {}),
      ms: r.durationMs,
    };
  }
  const summary: JobSummary = { ...base, status: base.exitCode === ExitCode.OK ? 'initialized' : 'failed', ...(results.length ? { servers } : {}) };
  let text = JSON.stringify(summary);
  for (let keep = 64; text.length > TERMINATION_MESSAGE_LIMIT && keep >= 0; keep = keep === 0 ? -1 : Math.floor(keep / 2)) {
    for (const s of Object.values(servers)) {
      for (const k of ['tools', 'prompts'] as const) {
        const full = results.find((r) => servers[r.name] === s)?.[k];
        if (full && full.length > keep) s[k] = [...full.slice(0, keep), `…+${full.length - keep}`];
      }
      if (s.error && keep < 8) s.error = s.error.slice(0, 80);
    }
    text = JSON.stringify(summary);
  }
  return text.slice(0, TERMINATION_MESSAGE_LIMIT);
}

export interface JobDeps {
  config: JobConfig;
  log: Logger;
  read: (o: ReadOptions) => Promise<OneMessage>;
  writeTerminationMessage: (text: string) => void;
}

/** Runs with bounded concurrency, keeping input order in the output. */
async function mapPool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  }));
  return out;
}

/**
 * The job: read exactly the message at the coordinates in its env, check it is the message the
 * controller saw, initialize every MCP server it configures, report, and return the exit code.
 */
export async function runJob(deps: JobDeps): Promise<ExitCodeValue> {
  const { config: cfg, log } = deps;
  const at = { topic: cfg.KAFKA_TOPIC, partition: cfg.KAFKA_PARTITION, offset: cfg.KAFKA_OFFSET };
  const fail = (exitCode: ExitCodeValue, err: unknown): ExitCodeValue => {
    const reason = err instanceof TerminalError ? err.reason : 'retriable';
    log.error({ ...at, reason, err: describeError(err), exitCode }, exitCode === ExitCode.PERMANENT ? 'job failed for good' : 'job failed; a retry may help');
    deps.writeTerminationMessage(buildSummary({ ...at, exitCode, reason, error: describeError(err).slice(0, 1000) }, []));
    return exitCode;
  };

  let msg: ReturnType<typeof parseMessage>;
  try {
    const rec = await deps.read({ brokers: cfg.KAFKA_BROKERS, ...at });
    if (cfg.MCP_MESSAGE_SHA256 && rec.value && checksumOf(rec.value) !== cfg.MCP_MESSAGE_SHA256) {
      throw new TerminalError('checksum-mismatch', `the message at ${at.topic}/${at.partition}@${at.offset} is not the one this Job was made for (sha256 differs)`);
    }
    msg = parseMessage(rec.value, { allowedCommands: cfg.ALLOWED_COMMANDS, secretsDir: cfg.SECRETS_DIR, maxMessageBytes: cfg.MAX_MESSAGE_BYTES });
  } catch (err) {
    if (err instanceof TerminalError) return fail(ExitCode.PERMANENT, err);
    if (err instanceof TypeError || err instanceof RangeError) throw err;
    return fail(ExitCode.RETRIABLE, err);
  }

  const names = Object.keys(msg.config.mcpServers);
  log.info({ ...at, jobID: msg.jobID, jobType: msg.jobType, servers: names }, 'message read');
  const opts: InitOptions = {
    timeoutMs: cfg.MCP_INIT_TIMEOUT_MS,
    secretsDir: cfg.SECRETS_DIR,
    allowedCommands: cfg.ALLOWED_COMMANDS,
    onStderr: (server, line) => log.debug({ server, line }, 'server stderr'),
  };
  const service = await createInitService(opts);
  let results: ServerResult[];
  try {
    results = await mapPool(names, 4, async (name) => {
      const r = await service.initialize(name, msg.config.mcpServers[name]!);
      if (r.status === 'initialized') {
        log.info({ server: name, serverInfo: r.serverInfo, protocol: r.protocolVersion, tools: r.tools?.length ?? 0, prompts: r.prompts?.length ?? 0, resources: r.resources?.length ?? 0, ms: r.durationMs },
          `server ${name} initialized: ${r.serverInfo?.name ?? '?'} ${r.serverInfo?.version ?? ''}, ${r.tools?.length ?? 0} tools, ${r.prompts?.length ?? 0} prompts, ${r.resources?.length ?? 0} resources in ${r.durationMs} ms`);
      } else {
        log.error({ server: name, status: r.status, reason: r.reason, error: r.error, ms: r.durationMs }, `server ${name} failed: ${r.reason}`);
      }
      return r;
    });
  } finally {
    await service.close();
  }
  const exitCode = exitCodeFor(results.map((r) => r.status));
  deps.writeTerminationMessage(buildSummary({ jobID: msg.jobID, ...at, exitCode }, results));
  const ok = results.filter((r) => r.status === 'initialized').length;
  log.info({ ...at, jobID: msg.jobID, initialized: ok, failed: results.length - ok, exitCode }, `job done: ${ok}/${results.length} servers initialized`);
  return exitCode;
}
