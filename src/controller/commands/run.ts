import { describeError } from '../../shared/errors.js';
import type { Logger } from '../../shared/logger.js';

/** Exit codes of the controller process. */
export const ControllerExit = {
  /** Stopped on a signal: in-flight messages finished and committed. */
  stopped: 0,
  /** Could not start, crashed, or a stop outlasted SHUTDOWN_TIMEOUT_MS: Kubernetes restarts it. */
  failed: 1,
} as const;

/** What `untilExit` drives: the Controller's lifecycle surface. */
export interface Runnable {
  start(): Promise<void>;
  stop(): Promise<void>;
  done: Promise<void>;
}

export interface ExitDeps {
  log: Logger;
  /** Longest a stop may take (SHUTDOWN_TIMEOUT_MS; 0: no limit). */
  shutdownTimeoutMs: number;
  /** Calls back once on the first stop signal (SIGTERM, SIGINT) with its name. */
  onSignal: (stop: (signal: string) => void) => void;
  /** Lets the last log lines and Events out before the process exits. */
  flush: () => Promise<void>;
  /** Logged, with the error, when start fails (how the brokers were reached, say). */
  startFields?: () => Record<string, unknown>;
}

/**
 * Runs the controller to its end and decides the process's exit code — the one place that does:
 * 0 after a signal's graceful stop; 1 when it cannot start, when it crashes (`done` rejects: the
 * Lifecycle has logged why) or when the stop outlasts its timeout.
 */
export async function untilExit(controller: Runnable, d: ExitDeps): Promise<number> {
  try {
    await controller.start();
  } catch (err) {
    // Most often the brokers refused us (a wrong password, a CA that does not match): say how we
    // connected and what the broker said, then exit so the pod is visibly not running.
    d.log.fatal({ ...d.startFields?.(), err: describeError(err) }, 'controller could not start');
    await d.flush();
    return ControllerExit.failed;
  }
  const signalled = new Promise<number>((resolve) =>
    d.onSignal((signal) => {
      d.log.info({ signal }, 'shutdown requested');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<number>((res) => {
        if (d.shutdownTimeoutMs <= 0) return;
        timer = setTimeout(() => {
          d.log.error({ timeoutMs: d.shutdownTimeoutMs }, 'shutdown timed out');
          res(ControllerExit.failed);
        }, d.shutdownTimeoutMs);
      });
      const stopped = controller.stop().then(
        () => ControllerExit.stopped,
        (err: unknown) => {
          d.log.error({ err: describeError(err) }, 'shutdown failed');
          return ControllerExit.failed;
        },
      );
      void Promise.race([stopped, timedOut]).then((code) => {
        clearTimeout(timer);
        resolve(code);
      });
    }),
  );
  const crashed = controller.done.then(
    () => new Promise<number>(() => undefined),
    () => ControllerExit.failed,
  );
  const code = await Promise.race([signalled, crashed]);
  await d.flush();
  return code;
}
