import { ExitCode } from '../shared/exit-codes.js';
import { TERMINATION_MESSAGE_LIMIT, type JobSummary } from '../shared/summary.js';
import type { ServerResult } from './mcp-init.js';

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
