import { ExitCode } from '../shared/contract/exit-codes.js';
import { TERMINATION_MESSAGE_LIMIT, type JobSummary, type ServerSummary } from '../shared/contract/summary.js';
import type { ServerResult } from './mcp/result.js';

type Base = Omit<JobSummary, 'servers' | 'status' | 'shortened'>;

const bytes = (text: string): number => Buffer.byteLength(text, 'utf8');

/** Cuts on code points, never inside a surrogate pair, and marks the cut. */
function cut(text: string, max: number): string {
  const cps = Array.from(text);
  return cps.length <= max ? text : `${cps.slice(0, max).join('')}…`;
}

/** The first `keep` names, then `…+N` for the N left out. */
function shortList(list: string[] | undefined, keep: number): string[] | undefined {
  if (!list || list.length <= keep) return list;
  return [...list.slice(0, keep), `…+${list.length - keep}`];
}

function serverLine(r: ServerResult, keep: number, errorChars: number): ServerSummary {
  const caps = r.capabilities ? Object.keys(r.capabilities) : undefined;
  return {
    status: r.status,
    ...(r.reason ? { reason: r.reason } : {}),
    ...(r.error && errorChars > 0 ? { error: cut(r.error, errorChars) } : {}),
    ...(r.serverInfo ? { server: `${r.serverInfo.name}@${r.serverInfo.version}` } : {}),
    ...(r.protocolVersion ? { protocol: r.protocolVersion } : {}),
    ...(r.tools ? { tools: shortList(r.tools, keep) } : {}),
    ...(r.prompts ? { prompts: shortList(r.prompts, keep) } : {}),
    ...(r.resources ? { resources: r.resources.length } : {}),
    ms: r.durationMs,
    ...(r.generation ? { generation: r.generation } : {}),
    ...(r.status === 'initialized' ? { transport: r.transport, instructions: Boolean(r.instructions) } : {}),
    ...(caps ? { caps } : {}),
    ...(r.phases ? { phases: r.phases } : {}),
    ...(r.capped?.length ? { capped: r.capped } : {}),
    ...(r.cut && Object.keys(r.cut).length ? { cut: r.cut } : {}),
    ...(r.package ? { package: r.package } : {}),
  };
}

/**
 * The candidate summaries from whole to bare, in a fixed order: the first that fits is the one
 * written, so the same results always give the same text. Lists shrink first (names are the
 * least needed: the counts stay in `…+N`), then error texts, then per-server details, then
 * reasons; every server's status is in every candidate.
 */
function* candidates(base: Base, results: ServerResult[]): Generator<JobSummary> {
  const status = base.exitCode === ExitCode.OK ? 'initialized' : 'failed';
  const withServers = (line: (r: ServerResult) => ServerSummary) =>
    results.length ? { servers: Object.fromEntries(results.map((r) => [r.name, line(r)])) } : {};
  const top = (errorChars: number) => ({ ...base, ...(base.error ? (errorChars > 0 ? { error: cut(base.error, errorChars) } : { error: undefined }) : {}) });
  yield { ...top(1000), status, ...withServers((r) => serverLine(r, Infinity, 300)) };
  for (const keep of [32, 16, 8, 4, 2, 1, 0]) yield { ...top(1000), status, ...withServers((r) => serverLine(r, keep, 300)), shortened: 'lists' };
  for (const chars of [120, 40, 0]) yield { ...top(chars * 2), status, ...withServers((r) => serverLine(r, 0, chars)), shortened: 'errors' };
  const bare = (r: ServerResult): ServerSummary => ({ status: r.status, ...(r.reason ? { reason: r.reason } : {}), ms: r.durationMs });
  yield { ...top(0), status, ...withServers(bare), shortened: 'details' };
  yield { ...top(0), status, ...withServers((r) => ({ status: r.status, ms: r.durationMs })), shortened: 'reasons' };
  // Only reachable with extreme names (a 253-character jobID, a 249-character topic and 32
  // 64-character server names): the jobID is also on the Job's annotations.
  yield { ...top(0), jobID: undefined, status, ...withServers((r) => ({ status: r.status, ms: r.durationMs })), shortened: 'reasons' };
}

/**
 * The compact JSON the job writes to its termination message: what users see in
 * `kubectl get pod -o jsonpath='{..terminated.message}'` and what the controller reports.
 * Always valid JSON of at most 4096 bytes of UTF-8 (the kubelet's limit), shortened the same
 * way every time (see `candidates`).
 */
export function buildSummary(base: Base, results: ServerResult[]): string {
  for (const c of candidates(base, results)) {
    const text = JSON.stringify(c);
    if (bytes(text) <= TERMINATION_MESSAGE_LIMIT) return text;
  }
  // Unreachable within the message contract's limits (topic names are at most 249 ASCII
  // characters); still whole JSON rather than a cut string.
  const status = base.exitCode === ExitCode.OK ? 'initialized' : 'failed';
  return JSON.stringify({
    topic: base.topic,
    partition: base.partition,
    offset: base.offset,
    exitCode: base.exitCode,
    status,
    shortened: 'reasons',
  } satisfies JobSummary);
}
