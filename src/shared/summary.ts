import { z } from 'zod';

/** The kubelet keeps at most 4096 bytes of a termination message. */
export const TERMINATION_MESSAGE_LIMIT = 4096;

export const ServerStatusSchema = z.enum(['initialized', 'failed-retriable', 'failed-permanent']);

/** One server's line in the summary: what the job found, shortened to fit. */
export const ServerSummarySchema = z.object({
  status: ServerStatusSchema,
  reason: z.string().optional(),
  error: z.string().optional(),
  server: z.string().optional(),
  protocol: z.string().optional(),
  tools: z.array(z.string()).optional(),
  prompts: z.array(z.string()).optional(),
  resources: z.number().optional(),
  ms: z.number(),
});

/**
 * The contract between the two programs: the JSON the job writes to its termination message
 * (what users see in `kubectl get pod -o jsonpath='{..terminated.message}'`) and what the
 * controller's outcome reporter reads back. The reporter validates it — a pod's output is not
 * trusted to have this shape.
 */
export const JobSummarySchema = z.object({
  jobID: z.string().optional(),
  topic: z.string(),
  partition: z.number(),
  offset: z.string(),
  exitCode: z.number(),
  status: z.enum(['initialized', 'failed']),
  reason: z.string().optional(),
  error: z.string().optional(),
  servers: z.record(z.string(), ServerSummarySchema).optional(),
});

export type JobSummary = z.infer<typeof JobSummarySchema>;
export type ServerSummary = z.infer<typeof ServerSummarySchema>;
