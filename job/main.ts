#!/usr/bin/env node
/**
 * The job's entrypoint: settings from env (set by the controller), run once, exit with the code.
 * `mcp-job check` runs the same validation, policy and initialization on a user's machine.
 */
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

/** `mcp-job check`: parse its flags, run it, exit with the job's codes. */
async function check(): Promise<never> {
  const [{ default: yargs }, { hideBin }, { CHECK_SETTINGS, checkConfig, runCheck }] = await Promise.all([
    import('yargs'),
    import('yargs/helpers'),
    import('../src/job/check.js'),
  ]);
  const argv = await yargs(hideBin(process.argv).slice(1))
    .scriptName('mcp-job check')
    .usage(
      '$0 (--config <file> | --url <url> | --message <file>) [options]\n\nRuns what a Job would: the message validation and policy, then the MCP handshake and lists of every server, here. Prints each server and its tool digests (to pin as toolsDigest / toolDigests).\nExit codes: 0 all servers initialized, 75 a retry may help, 65 permanent failure.',
    )
    .option('config', { type: 'string', describe: 'A client config file: Claude / Cursor "mcpServers" or VS Code "servers"' })
    .option('url', { type: 'string', describe: 'One remote MCP server (Streamable HTTP, SSE on a 4xx)' })
    .option('message', { type: 'string', describe: 'A message value as a producer writes it to Kafka' })
    .option('output', { choices: ['table', 'json'] as const, default: 'table' as const, describe: "table, or json (the job's summary)" })
    .options(yargsOptions(CHECK_SETTINGS))
    .conflicts({ config: ['url', 'message'], url: 'message' })
    .check((a) => (a.config || a.url || a.message ? true : 'give one of --config, --url or --message'))
    .strict()
    .help()
    .version(false)
    .parseAsync();
  let code: number;
  try {
    const a = argv as unknown as { config?: string; url?: string; message?: string; output: 'table' | 'json' };
    const input = a.config ? { config: a.config } : a.url ? { url: a.url } : { message: a.message ?? '' };
    code = await runCheck({
      config: checkConfig(argv, process.env),
      input,
      output: a.output,
      write: (t) => process.stdout.write(t),
      writeError: (t) => process.stderr.write(t),
    });
  } catch (err) {
    process.stderr.write(`${err instanceof ConfigError ? err.message : describeError(err)}\n`);
    code = err instanceof ConfigError ? ExitCode.PERMANENT : ExitCode.RETRIABLE;
  }
  // Let stdout drain to a pipe before exiting.
  await new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  process.exit(code);
}

if (process.argv[2] === 'check') await check();

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
