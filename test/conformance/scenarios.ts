/**
 * Which conformance scenarios run against what, and at which protocol revisions. Other features
 * add their scenarios here (OAuth client credentials: `auth/client-credentials-basic`, `-jwt`).
 */

/** The two revisions the product speaks: the 2025 `initialize` handshake and the 2026-07-28 stateless one. */
export const REVISIONS = ['2025-11-25', '2026-07-28'] as const;
export type Revision = (typeof REVISIONS)[number];

export interface ClientScenario {
  scenario: string;
  /** The revisions it is run at (the suite skips a scenario outside its applicability). */
  revisions: readonly Revision[];
  /** Flags for `mcp-job check` beyond `--url <server-url>`, which the suite appends. */
  checkArgs?: readonly string[];
}

/**
 * What an initializing client must pass, run against the job's MCP client through
 * `mcp-job check --url`: the handshake of each generation, the request `_meta`, the standard
 * HTTP headers of 2026-07-28, and keeping JSON Schema 2020-12 as served.
 */
export const CLIENT_SCENARIOS: ClientScenario[] = [
  { scenario: 'initialize', revisions: ['2025-11-25'] },
  { scenario: 'request-metadata', revisions: ['2026-07-28'] },
  { scenario: 'http-standard-headers', revisions: ['2026-07-28'] },
  { scenario: 'json-schema-2020-12-preservation', revisions: ['2025-11-25', '2026-07-28'] },
];
