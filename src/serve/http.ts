import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMcpHandler, type McpServer } from '@modelcontextprotocol/server';
import type { Logger } from '../shared/logger.js';
import { bearerMatches } from './auth.js';
import { rebindingRefusal, type RebindingPolicy } from './origins.js';

/** Largest request body accepted: a message is at most MAX_MESSAGE_BYTES, plus the JSON-RPC around it. */
export const MAX_BODY_BYTES = 2 * 1024 * 1024;

export interface ServeHttp {
  server: Server;
  url: string;
  close: () => Promise<void>;
}

function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        resolve(undefined);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Hands a node request to the SDK's web-standard handler and streams its Response back. */
async function bridge(handler: ReturnType<typeof createMcpHandler>, req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (typeof v === 'string') headers.set(k, v);
    else if (Array.isArray(v)) for (const x of v) headers.append(k, x);
  }
  const abort = new AbortController();
  res.on('close', () => abort.abort());
  const method = req.method ?? 'GET';
  const r = await handler.fetch(
    new Request(`http://localhost${req.url ?? '/'}`, {
      method,
      headers,
      signal: abort.signal,
      ...(method !== 'GET' && method !== 'HEAD' && body.length ? { body: new Uint8Array(body) } : {}),
    }),
  );
  res.writeHead(r.status, Object.fromEntries(r.headers));
  if (r.body) for await (const chunk of r.body) res.write(chunk);
  res.end();
}

/**
 * `serve`'s HTTP side: `/mcp` (Streamable HTTP, both protocol generations — 2026-07-28 per
 * request, and 2025 clients served statelessly), behind a bearer token; `/healthz` without one.
 */
export async function startServeHttp(o: {
  port: number;
  host: string;
  token: string;
  factory: () => McpServer;
  log: Logger;
  /** DNS-rebinding protection (see origins.ts); none when absent. */
  rebinding?: RebindingPolicy;
}): Promise<ServeHttp> {
  const handler = createMcpHandler(o.factory, { legacy: 'stateless', onerror: (err) => o.log.debug({ err: err.message }, 'mcp request refused') });
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path !== '/mcp') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    // Before the token: a rebound browser page is refused whether or not it has one.
    const refused = o.rebinding ? rebindingRefusal(o.rebinding, req.headers.host, req.headers.origin) : undefined;
    if (refused) {
      o.log.warn(
        { remote: req.socket.remoteAddress, host: req.headers.host?.slice(0, 256), origin: req.headers.origin?.slice(0, 256) },
        'request from a foreign host or origin refused',
      );
      res
        .writeHead(403, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32000, message: `Forbidden: ${refused}` }, id: null }));
      return;
    }
    if (!bearerMatches(req.headers.authorization, o.token)) {
      o.log.warn({ remote: req.socket.remoteAddress, hadToken: req.headers.authorization !== undefined }, 'request without a valid token refused');
      res
        .writeHead(401, { 'Content-Type': 'application/json', 'WWW-Authenticate': 'Bearer realm="mcp-job-controller"' })
        .end(JSON.stringify({ jsonrpc: '2.0', error: { code: -32001, message: 'Unauthorized: a valid bearer token is required' }, id: null }));
      return;
    }
    void readBody(req, MAX_BODY_BYTES)
      .then(async (body) => {
        if (body === undefined) {
          res.writeHead(413, { 'Content-Type': 'text/plain' }).end('request body too large\n');
          return;
        }
        await bridge(handler, req, res, body);
      })
      .catch((err: unknown) => {
        o.log.error({ err: (err as Error).message }, 'mcp request failed');
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' }).end('internal error\n');
        else res.end();
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = o.host === '0.0.0.0' || o.host === '::' ? '127.0.0.1' : o.host;
  return {
    server,
    url: `http://${host}:${port}/mcp`,
    close: async () => {
      await handler.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
