import { describeError, isBug, TerminalError } from '../shared/errors.js';
import { ExitCode, exitCodeFor, type ExitCodeValue } from '../shared/contract/exit-codes.js';
import type { Coordinates } from '../shared/contract/identity.js';
import type { Logger } from '../shared/logger.js';
import { INIT_CONCURRENCY } from '../shared/contract/budget.js';
import { checksumOf, parseMessage, validationPolicy } from '../shared/contract/message.js';
import type { OneMessage } from '../shared/kafka/read-message.js';
import type { JobConfig } from './config.js';
import { initOptionsFrom, type InitOptions, type ServerResult } from './mcp/result.js';
import { createInitService } from './mcp/service.js';
import { openPackageCache } from './mcp/package-source.js';
import { buildSummary } from './summary.js';

export interface JobDeps {
  config: JobConfig;
  log: Logger;
  read: (at: Coordinates) => Promise<OneMessage>;
  writeTerminationMessage: (text: string) => void;
}

/** Runs with bounded concurrency, keeping input order in the output. */
async function mapPool<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
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

  const policy = validationPolicy(cfg, cfg.KUBERNETES_SERVICE_HOST ? [cfg.KUBERNETES_SERVICE_HOST] : []);
  let msg: ReturnType<typeof parseMessage>;
  try {
    const rec = await deps.read(at);
    if (cfg.MCP_MESSAGE_SHA256 && rec.value && checksumOf(rec.value) !== cfg.MCP_MESSAGE_SHA256) {
      throw new TerminalError(
        'checksum-mismatch',
        `the message at ${at.topic}/${at.partition}@${at.offset} is not the one this Job was made for (sha256 differs)`,
      );
    }
    msg = parseMessage(rec.value, policy);
  } catch (err) {
    if (err instanceof TerminalError) return fail(ExitCode.PERMANENT, err);
    if (isBug(err)) throw err;
    return fail(ExitCode.RETRIABLE, err);
  }

  const names = Object.keys(msg.config.mcpServers);
  log.info({ ...at, jobID: msg.jobID, jobType: msg.jobType, servers: names }, 'message read');
  const packageCache = cfg.PACKAGE_CACHE_DIR ? openPackageCache(cfg.PACKAGE_CACHE_DIR) : undefined;
  if (packageCache && 'unavailable' in packageCache) {
    log.warn({ dir: cfg.PACKAGE_CACHE_DIR, why: packageCache.unavailable }, 'package cache unavailable; servers are fetched from the registry into /tmp');
  }
  const opts: InitOptions = {
    ...initOptionsFrom(cfg, policy),
    ...(packageCache ? { packageCache } : {}),
    ...(cfg.TRACEPARENT ? { trace: { traceparent: cfg.TRACEPARENT, ...(cfg.TRACESTATE ? { tracestate: cfg.TRACESTATE } : {}) } } : {}),
    onStderr: (server, line) => log.debug({ server, line }, 'server stderr'),
  };
  const service = await createInitService(opts);
  let results: ServerResult[];
  try {
    results = await mapPool(names, INIT_CONCURRENCY, async (name) => {
      const r = await service.initialize(name, msg.config.mcpServers[name]!);
      if (r.status === 'initialized') {
        log.info(
          {
            server: name,
            serverInfo: r.serverInfo,
            protocol: r.protocolVersion,
            generation: r.generation,
            phases: r.phases,
            package: r.package,
            instructions: r.instructions !== undefined,
            tools: r.tools?.length ?? 0,
            prompts: r.prompts?.length ?? 0,
            resources: r.resources?.length ?? 0,
            ms: r.durationMs,
          },
          `server ${name} initialized: ${r.serverInfo?.name ?? '?'} ${r.serverInfo?.version ?? ''}, ${r.tools?.length ?? 0} tools, ${r.prompts?.length ?? 0} prompts, ${r.resources?.length ?? 0} resources in ${r.durationMs} ms`,
        );
      } else {
        log.error(
          { server: name, status: r.status, reason: r.reason, error: r.error, phases: r.phases, ms: r.durationMs },
          `server ${name} failed: ${r.reason}`,
        );
      }
      return r;
    });
  } finally {
    await service.close();
  }
  const exitCode = exitCodeFor(results.map((r) => r.status));
  const cacheState = packageCache ? { packageCache: 'dir' in packageCache ? 'shared' : `unavailable: ${packageCache.unavailable}` } : {};
  deps.writeTerminationMessage(buildSummary({ jobID: msg.jobID, ...at, exitCode, ...cacheState }, results));
  const ok = results.filter((r) => r.status === 'initialized').length;
  log.info({ ...at, jobID: msg.jobID, initialized: ok, failed: results.length - ok, exitCode }, `job done: ${ok}/${results.length} servers initialized`);
  return exitCode;
}
