#!/usr/bin/env node
/** The job's entrypoint: settings from env (set by the controller), run once, exit with the code. */
import { writeFileSync } from 'node:fs';
import { ConfigError, describeError } from '../src/shared/errors.js';
import { ExitCode } from '../src/shared/contract/exit-codes.js';
import { kafkaConnection } from '../src/shared/kafka/kafka.js';
import { createLogger } from '../src/shared/logger.js';
import { readOneMessage } from '../src/shared/kafka/read-message.js';
import { yargsOptions } from '../src/shared/settings.js';
import { jobConfig, JOB_SETTINGS } from '../src/job/config.js';
import { runJob } from '../src/job/run.js';

/** Flags and --help. yargs is loaded only when there are any: a Job's pod passes none (its settings are env). */
async function parseFlags(): Promise<Record<string, unknown>> {
  const [{ default: yargs }, { hideBin }] = await Promise.all([import('yargs'), import('yargs/helpers')]);
  return yargs(hideBin(process.argv))
    .scriptName('mcp-job')
    .usage(
      '$0 [options]\n\nReads one Kafka message and initializes the MCP servers it configures. Set by the controller through the environment variables in brackets.\nExit codes: 0 all servers initialized, 75 a retry may help, 65 permanent failure.',
    )
    .options(yargsOptions(JOB_SETTINGS))
    .strict()
    .help()
    .version(false)
    .parseAsync();
}

const argv = process.argv.length > 2 ? await parseFlags() : {};

let code: number;
try {
  const config = jobConfig(argv, process.env);
  const log = createLogger({ level: config.LOG_LEVEL, name: 'mcp-job', sync: true });
  code = await runJob({
    config,
    log,
    // Built on first use, inside runJob: an unreadable credentials file is reported like a failed
    // connection (exit 75, with the reason in the summary) — fixing the Secret makes a retry work.
    read: (at) => readOneMessage(kafkaConnection({ brokers: config.KAFKA_BROKERS, clientId: 'mcp-job', log, level: config.LOG_LEVEL, security: config }), at),
    writeTerminationMessage: (text) => {
      try {
        writeFileSync(config.TERMINATION_MESSAGE_PATH, text);
      } catch (err) {
        log.warn({ path: config.TERMINATION_MESSAGE_PATH, err: describeError(err) }, 'could not write the termination message');
      }
    },
  });
} catch (err) {
  process.stderr.write(`${err instanceof ConfigError ? err.message : describeError(err)}\n`);
  code = err instanceof ConfigError ? ExitCode.PERMANENT : ExitCode.RETRIABLE;
}
process.exit(code);
