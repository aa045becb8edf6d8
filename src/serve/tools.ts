import type * as k8s from '@kubernetes/client-node';
import { McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { TerminalError } from '../shared/errors.js';
import { Annotation, Label, MANAGED_BY, type Coordinates } from '../shared/contract/identity.js';
import type { Logger } from '../shared/logger.js';
import { INIT_CONCURRENCY } from '../shared/contract/budget.js';
import { parseMessage, type ValidationPolicy } from '../shared/contract/message.js';
import type { ServerConfig } from '../shared/contract/servers.js';
import { jobName, labelValue } from '../shared/contract/naming.js';
import { ServerResultSchema, type ServerResult } from '../job/mcp/result.js';
import type { ServeConfig } from './config.js';
import { DeadLetterSchema, type DeadLetter } from './dead-letters.js';
import { conditionsOf, ConditionSchema, JobBriefSchema, jobBrief, jobStatus, JobStatusSchema, newestPod, podView, PodViewSchema } from './jobs.js';
import type { TokenBucket } from './rate-limit.js';

export const SERVE_INFO = { name: 'mcp-job-controller-serve', version: '0.1.0' };

/** What the tools reach: each is a narrow function, so tests and the wiring decide what is real. */
export interface ServeDeps {
  cfg: Pick<ServeConfig, 'KAFKA_TOPIC' | 'JOB_NAMESPACE' | 'JOB_NAME_PREFIX' | 'DLQ_SCAN_RECORDS'>;
  policy: ValidationPolicy;
  log: Logger;
  /** Produces one record to KAFKA_TOPIC; resolves where it landed. */
  produce: (value: Buffer, key: string | null) => Promise<{ partition: number; offset: string }>;
  getJob: (name: string) => Promise<k8s.V1Job | undefined>;
  /** One page of at most `limit` Jobs matching `labelSelector`; `more` when the API holds further ones. */
  listJobs: (labelSelector: string, limit: number) => Promise<{ items: k8s.V1Job[]; more: boolean }>;
  listPods: (jobName: string) => Promise<k8s.V1Pod[]>;
  findDeadLetter: (at: Coordinates) => Promise<{ found?: DeadLetter; scanned: number }>;
  initialize: (name: string, cfg: ServerConfig) => Promise<ServerResult>;
  submitLimit: TokenBucket;
  /** get_job's dead-letter scans: each reads up to DLQ_SCAN_RECORDS records per partition. */
  scanLimit: TokenBucket;
  /** server_initialize's starts and connections: each spawns a process or opens connections from this pod. */
  initLimit: TokenBucket;
}

const toolError = (text: string) => ({ content: [{ type: 'text' as const, text }], isError: true });
const rateLimited = (retryAfterMs: number) => toolError(`rate limited: try again in ${Math.ceil(retryAfterMs / 1000)} s`);
const ok = <T extends Record<string, unknown>>(data: T) => ({ content: [{ type: 'text' as const, text: JSON.stringify(data) }], structuredContent: data });

const serverName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'server names are 1-64 letters, digits, _ . -');

const SubmitOutput = z.object({
  topic: z.string(),
  partition: z.number(),
  offset: z.string(),
  /** The Job the controller creates for it (named from topic, partition and offset). */
  jobName: z.string(),
  namespace: z.string(),
  checksum: z.string(),
});

const GetJobOutput = z.object({
  name: z.string(),
  namespace: z.string(),
  status: z.union([JobStatusSchema, z.enum(['dead-lettered', 'not-found'])]),
  jobID: z.string().optional(),
  partition: z.number().optional(),
  offset: z.string().optional(),
  conditions: z.array(ConditionSchema).optional(),
  pod: PodViewSchema.optional(),
  deadLetter: DeadLetterSchema.optional(),
  /** Dead-letter records read to look for this message's (bounded by DLQ_SCAN_RECORDS per partition). */
  deadLettersScanned: z.number().optional(),
});

/**
 * Jobs list_jobs reads at most per call (one API page): a topic's Jobs live until their TTL, so
 * an unbounded list grows with the backlog. Past it the answer says `truncated`.
 */
export const LIST_JOBS_SCAN = 500;

/** Takes a slot of a small pool, or says it is full: server_initialize spawns processes in this pod. */
function pool(size: number): { enter: () => boolean; leave: () => void } {
  let busy = 0;
  return {
    enter: () => (busy < size ? (busy++, true) : false),
    leave: () => void busy--,
  };
}

/**
 * The MCP server of `serve`: a fresh one per request (the SDK's per-request handler asks a
 * factory), sharing `deps`. Every tool has input and output schemas.
 */
export function serveServerFactory(deps: ServeDeps): () => McpServer {
  const inits = pool(INIT_CONCURRENCY);
  const { cfg, log } = deps;
  const nameOf = (partition: number, offset: string) => jobName(cfg.JOB_NAME_PREFIX, cfg.KAFKA_TOPIC, partition, offset);
  /** The coordinates behind a Job name of this topic, when it is one (names are `<prefix>-<topic>-<partition>-<offset>`). */
  const coordinatesOf = (name: string): Coordinates | undefined => {
    const m = /-(\d+)-(\d+)$/.exec(name);
    if (!m || nameOf(Number(m[1]), m[2]!) !== name) return undefined;
    return { topic: cfg.KAFKA_TOPIC, partition: Number(m[1]), offset: m[2]! };
  };

  /** Whether a Job is one the controller made for this topic: get_job shows no other Job of the namespace. */
  const isOurs = (job: k8s.V1Job): boolean =>
    job.metadata?.labels?.[Label.managedBy] === MANAGED_BY &&
    job.metadata.labels[Label.topic] === labelValue(cfg.KAFKA_TOPIC) &&
    job.metadata.annotations?.[Annotation.topic] === cfg.KAFKA_TOPIC;

  return () => {
    const server = new McpServer(SERVE_INFO);

    server.registerTool(
      'server_initialize',
      {
        description:
          'Start (stdio) or connect to (http, sse) one MCP server here, negotiate the protocol, and list its tools, prompts and resources — what a Job does for each server, under the same policies. Stdio servers only when ALLOWED_COMMAND_PATTERNS is set; container (docker) servers run only in Jobs: use submit.',
        inputSchema: z.object({
          serverName,
          config: z.record(z.string(), z.unknown()).describe('One server entry, in any dialect a message accepts (Claude, VS Code, the URL provider)'),
        }),
        outputSchema: ServerResultSchema,
      },
      async ({ serverName: name, config }) => {
        let server: ServerConfig;
        try {
          // The very validation a message gets, on a message holding this one server.
          const value = Buffer.from(JSON.stringify({ jobID: 'server_initialize', jobType: 'server-init', payload: { mcpServers: { [name]: config } } }));
          server = parseMessage(value, { ...deps.policy, deadline: undefined }).config.mcpServers[name]!;
        } catch (err) {
          if (err instanceof TerminalError) return toolError(`refused (${err.reason}): ${err.message}`);
          throw err;
        }
        if (server.type === 'docker') return toolError('refused: a container (docker) server runs only as a sidecar of a Job; submit a message instead');
        // A stdio server runs in this long-lived pod, beside the bearer token, the Kafka
        // credentials and a ServiceAccount token: only command lines the operator named may.
        if ((server.type === undefined || server.type === 'stdio') && !deps.policy.commandPatterns?.length) {
          return toolError(
            'refused (command-args-not-allowed): serve starts stdio servers only when ALLOWED_COMMAND_PATTERNS names the command lines that may run in its pod; set it, or submit a message (a Job is the stronger sandbox)',
          );
        }
        const slot = deps.initLimit.take();
        if (!slot.ok) return rateLimited(slot.retryAfterMs);
        if (!inits.enter()) return toolError(`busy: ${INIT_CONCURRENCY} servers are being initialized; try again shortly`);
        try {
          const result = await deps.initialize(name, server);
          log.info({ tool: 'server_initialize', server: name, status: result.status, reason: result.reason, ms: result.durationMs }, 'server initialized');
          return { ...ok(result), isError: result.status !== 'initialized' };
        } finally {
          inits.leave();
        }
      },
    );

    server.registerTool(
      'submit',
      {
        description:
          'Validate a message and produce it to the topic the controller consumes; returns its partition, offset and the name of the Job it becomes. An invalid message is refused here and produces nothing.',
        inputSchema: z.object({
          jobID: z.string().min(1).max(253).describe("The producer's id for this unit of work"),
          jobType: z.string().default('server-init').describe('server-init'),
          payload: z
            .union([z.string(), z.record(z.string(), z.unknown())])
            .describe('An MCPServersConfig ({"mcpServers": {...}}), as an object or a JSON string'),
          key: z.string().max(1024).optional().describe('Record key (decides the partition)'),
        }),
        outputSchema: SubmitOutput,
      },
      async ({ jobID, jobType, payload, key }) => {
        const value = Buffer.from(JSON.stringify({ jobID, jobType, payload }));
        let checksum: string;
        try {
          checksum = parseMessage(value, deps.policy).checksum;
        } catch (err) {
          if (err instanceof TerminalError) return toolError(`invalid message (${err.reason}): ${err.message}`);
          throw err;
        }
        const slot = deps.submitLimit.take();
        if (!slot.ok) return rateLimited(slot.retryAfterMs);
        const at = await deps.produce(value, key ?? null);
        const name = nameOf(at.partition, at.offset);
        log.info({ tool: 'submit', jobID, partition: at.partition, offset: at.offset, job: name }, 'message submitted');
        return ok({ topic: cfg.KAFKA_TOPIC, partition: at.partition, offset: at.offset, jobName: name, namespace: cfg.JOB_NAMESPACE, checksum });
      },
    );

    server.registerTool(
      'get_job',
      {
        description:
          "A Job's status, conditions and its pod's summary (what each server offered), or the dead-letter record when its message was refused. Give the name submit returned, or the message's partition and offset.",
        inputSchema: z.object({
          name: z.string().max(63).optional(),
          partition: z.number().int().min(0).optional(),
          offset: z.string().regex(/^\d+$/).optional(),
        }),
        outputSchema: GetJobOutput,
      },
      async ({ name: given, partition, offset }) => {
        if (partition !== undefined && offset === undefined) return toolError('give offset with partition');
        const at = partition !== undefined && offset !== undefined ? { topic: cfg.KAFKA_TOPIC, partition, offset } : given ? coordinatesOf(given) : undefined;
        const name = given ?? (at ? nameOf(at.partition, at.offset) : undefined);
        if (!name) return toolError('give the Job name, or the partition and offset of its message');
        const base = { name, namespace: cfg.JOB_NAMESPACE, ...(at ? { partition: at.partition, offset: at.offset } : {}) };
        const found = await deps.getJob(name);
        const job = found && isOurs(found) ? found : undefined;
        // A failed Job's message may also be dead-lettered (`job-failed`); a missing Job's may have been refused.
        const scan = at && (!job || jobStatus(job) === 'failed');
        if (scan) {
          // A scan reads up to DLQ_SCAN_RECORDS per dead-letter partition: throttled like submit.
          const slot = deps.scanLimit.take();
          if (!slot.ok) return rateLimited(slot.retryAfterMs);
        }
        const dlq = scan ? await deps.findDeadLetter(at) : undefined;
        const dead = dlq ? { deadLettersScanned: dlq.scanned, ...(dlq.found ? { deadLetter: dlq.found } : {}) } : {};
        if (!job) return ok({ ...base, status: dlq?.found ? ('dead-lettered' as const) : ('not-found' as const), ...dead });
        const pod = newestPod(await deps.listPods(name));
        const brief = jobBrief(job);
        return ok({
          ...base,
          status: jobStatus(job, pod),
          ...(brief.jobID !== undefined ? { jobID: brief.jobID } : {}),
          conditions: conditionsOf(job),
          ...(pod ? { pod: podView(pod) } : {}),
          ...dead,
        });
      },
    );

    server.registerTool(
      'list_jobs',
      {
        description: `Recent Jobs of this topic, newest first, filtered by the producer's jobID and status; at most ${LIST_JOBS_SCAN} Jobs are read per call (truncated says when there were more).`,
        inputSchema: z.object({
          jobID: z.string().optional(),
          status: z.enum(['active', 'succeeded', 'failed']).optional().describe('active: pending or running'),
          limit: z.number().int().min(1).max(100).default(20),
        }),
        outputSchema: z.object({
          jobs: z.array(JobBriefSchema),
          /** More than LIST_JOBS_SCAN Jobs matched: these are the newest of the first LIST_JOBS_SCAN the API returned. */
          truncated: z.boolean().optional(),
        }),
      },
      async ({ jobID, status, limit }) => {
        const selector = [`${Label.managedBy}=${MANAGED_BY}`, `${Label.topic}=${labelValue(cfg.KAFKA_TOPIC)}`];
        if (jobID !== undefined) selector.push(`${Label.jobID}=${labelValue(jobID)}`);
        const page = await deps.listJobs(selector.join(','), LIST_JOBS_SCAN);
        const jobs = page.items
          .map(jobBrief)
          // The label is the sanitised jobID; the annotation holds it exactly.
          .filter((j) => jobID === undefined || j.jobID === jobID)
          .filter((j) => status === undefined || (status === 'active' ? j.status === 'pending' || j.status === 'running' : j.status === status))
          .sort((a, b) => (b.created ?? '').localeCompare(a.created ?? '') || b.name.localeCompare(a.name))
          .slice(0, limit);
        return ok({ jobs, ...(page.more ? { truncated: true } : {}) });
      },
    );

    return server;
  };
}
