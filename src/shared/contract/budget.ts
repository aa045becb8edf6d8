/** Servers a job initializes at once. */
export const INIT_CONCURRENCY = 4;

/** What one server may take past its deadline: the in-process call's margin, closing, reaping. */
export const SERVER_MARGIN_MS = 5_000;

/** Time a Job needs besides its servers (pod start, reading its message), kept out of its budget. */
export const JOB_START_ALLOWANCE_MS = 30_000;

/**
 * What one container server adds to a Job's start: native sidecars start one after another and
 * the job container waits until each is ready by its probe (an image pull not included).
 */
export const SIDECAR_START_ALLOWANCE_MS = 15_000;

/**
 * The longest a job can spend on its servers: each server's deadline, run
 * {@link INIT_CONCURRENCY} at a time in message order, as the job runs them. Pure.
 */
export function serversWorstCaseMs(timeouts: readonly number[]): number {
  const lanes = new Array<number>(INIT_CONCURRENCY).fill(0);
  for (const t of timeouts) {
    const i = lanes.indexOf(Math.min(...lanes));
    lanes[i]! += t;
  }
  return Math.max(...lanes);
}
