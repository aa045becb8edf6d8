import { z } from 'zod';
import {
  int,
  KUBERNETES_SERVICE_HOST_SETTING,
  PACKAGE_CACHE_DIR_SETTING,
  parseConfig,
  SECRET_REFS_DIR_SETTING,
  SHARED_SETTINGS,
  settingsInput,
  type SettingsShape,
} from '../shared/settings.js';
import { TERMINATION_MESSAGE_PATH } from '../shared/contract/identity.js';

/** The job's settings: the coordinates the controller put in its env, and the shared limits. */
export const JOB_SETTINGS = {
  ...SHARED_SETTINGS,
  KAFKA_PARTITION: int(0).describe('Partition of the message'),
  KAFKA_OFFSET: z.string().regex(/^\d+$/, 'a non-negative integer').describe('Offset of the message'),
  MCP_MESSAGE_SHA256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'a sha256 hex digest')
    .optional()
    .describe('sha256 of the message value the controller saw'),
  // The OpenTelemetry environment-carrier names: the controller copies the Kafka record's
  // `traceparent`/`tracestate` headers here; the job passes them on in each MCP request's `_meta`.
  // A malformed value is dropped, not fatal: W3C trace context says to ignore it, and a
  // producer's bad header must not fail the work.
  TRACEPARENT: z
    .string()
    .regex(/^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/)
    .optional()
    .catch(undefined)
    .describe("W3C trace context of the message, sent in each MCP request's _meta on 2026-07-28"),
  TRACESTATE: z.string().max(512).optional().catch(undefined).describe('W3C tracestate accompanying TRACEPARENT'),
  TERMINATION_MESSAGE_PATH: z.string().default(TERMINATION_MESSAGE_PATH).describe('Where the summary goes'),
  SECRET_REFS_DIR: SECRET_REFS_DIR_SETTING,
  KUBERNETES_SERVICE_HOST: KUBERNETES_SERVICE_HOST_SETTING,
  PACKAGE_CACHE_DIR: PACKAGE_CACHE_DIR_SETTING,
} satisfies SettingsShape;

export const JobConfigSchema = z.object(JOB_SETTINGS);
export type JobConfig = z.output<typeof JobConfigSchema>;

/** Parses the job's config from flags and environment; throws a ConfigError naming bad settings. */
export function jobConfig(argv: Record<string, unknown>, env: NodeJS.ProcessEnv): JobConfig {
  return parseConfig(JobConfigSchema, settingsInput(JOB_SETTINGS, argv, env));
}
