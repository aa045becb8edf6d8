import { Client, InMemoryTransport, SdkError, SdkErrorCode } from '@modelcontextprotocol/client';
import { McpServer } from '@modelcontextprotocol/server';
import { z } from 'zod';
import { describeError } from '../../shared/errors.js';
import { SERVER_MARGIN_MS } from '../../shared/contract/budget.js';
import { ServerConfigSchema, type ServerConfig } from '../../shared/contract/servers.js';
import { initializeServer } from './initialize.js';
import { CLIENT_INFO, ServerResultSchema, type InitOptions, type ServerResult } from './result.js';
import { transportKind } from './transports/index.js';

/**
 * The embedded MCP logic: an in-process MCP server (the SDK's v2 server package) offering
 * `server_initialize`, reached by an in-process client. The job calls it through the MCP protocol
 * itself, so the same tool can later be served over HTTP without change. `initialize` never
 * throws for one server's failure: a failed or lost tool call becomes that server's result, so
 * the other servers' results are never lost.
 */
export async function createInitService(
  opts: InitOptions,
): Promise<{ initialize: (name: string, cfg: ServerConfig) => Promise<ServerResult>; close: () => Promise<void> }> {
  const server = new McpServer({ name: 'mcp-job', version: CLIENT_INFO.version });
  server.registerTool(
    'server_initialize',
    {
      description: 'Start or connect to one MCP server, negotiate the protocol generation, and list its tools, prompts and resources.',
      inputSchema: z.object({ serverName: z.string(), config: ServerConfigSchema }),
      outputSchema: ServerResultSchema,
    },
    async ({ serverName, config }) => {
      const result = await initializeServer(serverName, config, opts);
      return { content: [{ type: 'text', text: JSON.stringify(result) }], structuredContent: result, isError: result.status !== 'initialized' };
    },
  );
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await server.connect(serverSide);
  const client = new Client({ name: 'mcp-job', version: CLIENT_INFO.version });
  await client.connect(clientSide);
  // initializeServer is bounded by its own deadline; the margin covers reaping a stubborn child
  // (SIGTERM, 2 s, SIGKILL) and the in-process round trip.
  const callTimeout = (cfg: ServerConfig) => (cfg.timeoutMs ?? opts.timeoutMs) + SERVER_MARGIN_MS;
  return {
    initialize: async (name, cfg) => {
      const started = performance.now();
      const lost = (reason: string, error: string): ServerResult => ({
        name,
        status: 'failed-retriable',
        reason,
        error: error.slice(0, 1000),
        transport: transportKind(cfg),
        durationMs: Math.round(performance.now() - started),
      });
      let r: Awaited<ReturnType<typeof client.callTool>>;
      try {
        r = await client.callTool({ name: 'server_initialize', arguments: { serverName: name, config: cfg } }, { timeout: callTimeout(cfg) });
      } catch (err) {
        const timedOut = err instanceof SdkError && err.code === SdkErrorCode.RequestTimeout;
        return lost(timedOut ? 'timeout' : 'internal-error', `server_initialize: ${describeError(err)}`);
      }
      const parsed = ServerResultSchema.safeParse(r.structuredContent);
      return parsed.success
        ? parsed.data
        : lost('internal-error', `server_initialize returned an unexpected result: ${JSON.stringify(r.content).slice(0, 300)}`);
    },
    close: async () => {
      await client.close();
      await server.close();
    },
  };
}
