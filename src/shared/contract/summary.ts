import { z } from 'zod';
import { ToolsChangeSchema } from './fingerprint.js';

/** The kubelet keeps at most 4096 bytes of a termination message. */
export const TERMINATION_MESSAGE_LIMIT = 4096;

export const ServerStatusSchema = z.enum(['initialized', 'failed-retriable', 'failed-permanent']);

/** How far a summary had to be shortened to fit; each step keeps everything the next one would. */
export const SHORTENING_STEPS = ['lists', 'errors', 'details', 'reasons'] as const;

/**
 * Where a stdio server's code came from, by the package manager's own account (see
 * src/job/mcp/package-source.ts): `cache` — npx/uvx found everything in the cache (no package
 * request reached the registry); `registry` — it fetched `requests` from the registry,
 * `tarballs` of them packages; `installed` — the command runs code already on disk (`path`);
 * `prebuilt` — the command was `npx -y name@x.y.z` and the job ran that package's bin from the
 * cache's complete install of it (`path`, made by warm-cache) without npx (src/job/mcp/prebuilt.ts);
 * `unknown` — npx/uvx printed nothing to go by. `ms`: from the spawn to the package manager's
 * last fetch or cache line (the fetch, not the server's own start).
 */
export const PackageSourceSchema = z.object({
  from: z.enum(['cache', 'registry', 'installed', 'prebuilt', 'unknown']),
  ms: z.number().optional(),
  requests: z.number().optional(),
  tarballs: z.number().optional(),
  path: z.string().optional(),
});
export type PackageSource = z.infer<typeof PackageSourceSchema>;

/**
 * One server's line in the summary: what the job found, shortened to fit. Fields after `ms` came
 * with the MCP 2026-07-28 support and are optional, so a summary from an older job still parses.
 */
export const ServerSummarySchema = z.object({
  status: ServerStatusSchema,
  reason: z.string().optional(),
  error: z.string().optional(),
  /** `name@version` from the server's serverInfo. */
  server: z.string().optional(),
  /** The negotiated protocol version, e.g. `2025-11-25` or `2026-07-28`. */
  protocol: z.string().optional(),
  /** Tool names; a shortened list ends with `…+N` (N names left out). */
  tools: z.array(z.string()).optional(),
  prompts: z.array(z.string()).optional(),
  /** Number of resources (URIs are long and rarely useful in a 4 KiB summary). */
  resources: z.number().optional(),
  ms: z.number(),
  /** Which protocol generation answered: the 2025 `initialize` handshake or 2026-07-28 `server/discover`. */
  generation: z.enum(['2025', '2026-07-28']).optional(),
  /** How the server was reached: stdio, Streamable HTTP, or SSE. */
  transport: z.enum(['stdio', 'http', 'sse']).optional(),
  /** Whether the server sent instructions (the text itself stays in the job's log). */
  instructions: z.boolean().optional(),
  /** The names of the capabilities the server declared (tools, prompts, resources, logging…). */
  caps: z.array(z.string()).optional(),
  /** Milliseconds per phase: spawn (stdio) or connect (http/sse), handshake, lists. */
  phases: z.object({ spawn: z.number().optional(), connect: z.number().optional(), handshake: z.number().optional(), lists: z.number().optional() }).optional(),
  /** Lists the job stopped reading before their end (more items exist than reported). */
  capped: z.array(z.string()).optional(),
  /**
   * Why each list in `capped` stopped: `pages` (the page cap), `names` or `bytes` (the cap on
   * names kept per list), `response-bytes` (a reply over the response cap was dropped).
   */
  cut: z.record(z.string(), z.string()).optional(),
  /** Where the server's code came from and how long fetching it took (stdio servers). */
  package: PackageSourceSchema.optional(),
  /** sha256 of the whole tool list: the value to pin as the server entry's `toolsDigest`. */
  toolsDigest: z.string().optional(),
  /** sha256 of each tool by name; cut to 16 hex characters (or left out) in a summary shortened for `lists`. */
  toolDigests: z.record(z.string(), z.string()).optional(),
  /** With reason `tools-changed`: the tools added, removed or changed since the pin (lists shortened like `tools`). */
  toolsChanged: ToolsChangeSchema.optional(),
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
  /**
   * With a shared package cache configured: `shared` when the job used it, else
   * `unavailable: <why>` (missing, not writable, full) — the servers were then fetched into the
   * pod's own /tmp from the registry.
   */
  packageCache: z.string().optional(),
  /** Set when the summary was shortened to fit 4096 bytes: the last step applied. */
  shortened: z.enum(SHORTENING_STEPS).optional(),
});

export type JobSummary = z.infer<typeof JobSummarySchema>;
export type ServerSummary = z.infer<typeof ServerSummarySchema>;
