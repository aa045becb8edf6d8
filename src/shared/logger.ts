import pino, { type Logger } from 'pino';
import type { logCreator, logLevel as LogLevel } from 'kafkajs';
import kafkaLoggers from 'kafkajs/src/loggers/index.js';

// kafkajs' level table from its own module, not its index: the job never loads the rest of kafkajs.
const logLevel = kafkaLoggers.LEVELS;

export type { Logger };

/**
 * The one root logger of a process. Short-lived processes (the job) log synchronously so their
 * last lines reach `kubectl logs` before exit.
 */
export function createLogger(opts: { level: string; name: string; sync?: boolean; destination?: pino.DestinationStream }): Logger {
  const dest = opts.destination ?? pino.destination({ dest: 1, sync: opts.sync ?? false });
  return pino({ name: opts.name, level: opts.level, base: { name: opts.name }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

/** Routes kafkajs' own logs through pino, so a process has one log stream and one format. */
export function kafkaLogCreator(log: Logger): logCreator {
  const child = log.child({ component: 'kafkajs' });
  return () =>
    ({ level, log: entry }) => {
      const { message, ...fields } = entry;
      delete (fields as Record<string, unknown>).timestamp;
      delete (fields as Record<string, unknown>).logger;
      if (level === logLevel.ERROR) child.error(fields, message);
      else if (level === logLevel.WARN) child.warn(fields, message);
      else if (level === logLevel.INFO) child.info(fields, message);
      else child.debug(fields, message);
    };
}

/** kafkajs' own level for a pino level: it is chatty at info, so one step quieter. */
export function kafkaLevel(level: string): LogLevel {
  if (level === 'debug' || level === 'trace') return logLevel.INFO;
  if (level === 'silent' || level === 'fatal') return logLevel.NOTHING;
  if (level === 'error') return logLevel.ERROR;
  return logLevel.WARN;
}
