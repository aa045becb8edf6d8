import { sleep } from '../../shared/wait.js';

/** True while a process with this pid exists (signal 0 checks without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The SDK's Client closes a failed connection without awaiting it, and its transport's own
 * SIGTERM/SIGKILL timers do not hold the process open; so a server that ignores stdin closing
 * would outlive the job. Make sure the child is gone: SIGTERM, then SIGKILL.
 */
export async function reap(pid: number): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  for (let i = 0; i < 20 && alive(pid); i++) await sleep(100);
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}
