#!/usr/bin/env node
/** The job's entrypoint: settings from env (set by the controller), run once, exit with the code. */
import { writeFileSync } from 'node:fs';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError, JobConfigSchema, parseConfig } from '../src/config.js';
import { describeError } from '../src/errors.js';
import { ExitCode } from '../src/exit-codes.js';
import { runJob } from '../src/job-run.js';
import { createLogger, kafkaLevel, kafkaLogCreator } from '../src/logger.js';
import { settingsInput, yargsOptions, type SettingDoc } from '../src/options.js';
import { readOneMessage } from '../src/read-message.js';

const SETTINGS: SettingDoc[] = [
  { env: 'KAFKA_BROKERS', desc: 'Kafka brokers, comma-separated' },
  { env: 'KAFKA_TOPIC', desc: 'Topic of the message' },
  { env: 'KAFKA_PARTITION', desc: 'Partition of the message' },
  { env: 'KAFKA_OFFSET', desc: 'Offset of the message' },
  { env: 'MCP_MESSAGE_SHA256', desc: 'sha256 of the message value the controller saw' },
  { env: 'ALLOWED_COMMANDS', desc: 'Commands a stdio server may run', default: 'node,npx,uv,uvx,python,python3' },
  { env: 'SECRETS_DIR', desc: 'Folder envFile paths must stay inside', default: '/var/run/mcp-secrets' },
  { env: 'MAX_MESSAGE_BYTES', desc: 'Largest message accepted', default: '1048576' },
  { env: 'MCP_INIT_TIMEOUT_MS', desc: 'Timeout of each server handshake and list call', default: '30000' },
  { env: 'TERMINATION_MESSAGE_PATH', desc: 'Where the summary goes', default: '/dev/termination-log' },
  { env: 'LOG_LEVEL', desc: 'Log level', default: 'info' },
];

const argv = await yargs(hideBin(process.argv))
  .scriptName('mcp-job')
  .usage('$0 [options]\n\nReads one Kafka message and initializes the MCP servers it configures. Set by the controller through the environment variables in brackets.\nExit codes: 0 all servers initialized, 75 a retry may help, 65 permanent failure.')
  .options(yargsOptions(SETTINGS))
  .strict()
  .help()
  .version(false)
  .parseAsync();

let code: number;
try {
  const config = parseConfig(JobConfigSchema, settingsInput(SETTINGS, argv, process.env));
  const log = createLogger({ level: config.LOG_LEVEL, name: 'mcp-job', sync: true });
  code = await runJob({
    config,
    log,
    read: (o) => readOneMessage({ ...o, logLevel: kafkaLevel(config.LOG_LEVEL), logCreator: kafkaLogCreator(log) }),
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
