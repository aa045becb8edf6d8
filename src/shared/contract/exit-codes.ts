/**
 * The job's exit codes. The Job's podFailurePolicy fails the Job at once on PERMANENT, so
 * Kubernetes never retries what cannot succeed; RETRIABLE (and any crash) counts against
 * backoffLimit.
 */
export const ExitCode = {
  /** Every configured MCP server initialized. */
  OK: 0,
  /** Something transient failed (timeout, broker unreachable, server crashed): a retry may help. */
  RETRIABLE: 75,
  /** The message or a server is wrong in a way no retry fixes (invalid, gone, refused). */
  PERMANENT: 65,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** Per-server outcome as the job reports it. */
export type ServerOutcome = 'initialized' | 'failed-retriable' | 'failed-permanent';

/** Any permanent failure makes the whole message permanent: a retry would fail on that server again. */
export function exitCodeFor(outcomes: readonly ServerOutcome[]): ExitCodeValue {
  if (outcomes.includes('failed-permanent')) return ExitCode.PERMANENT;
  if (outcomes.includes('failed-retriable')) return ExitCode.RETRIABLE;
  return ExitCode.OK;
}
