#!/usr/bin/env node
/**
 * What protocol negotiation costs: the job's `initializeServer` (connect, handshake, lists,
 * close) in each MCP_PROTOCOL mode, against the same servers, over stdio and Streamable HTTP;
 * the median of RUNS runs each. `npm run build && node dist/test/bench-mcp.js [runs]`.
 */
import { join } from 'node:path';
import { repoRoot } from './testbed/cache.js';
import { initializeServer } from '../src/job/mcp/initialize.js';
import type { InitOptions } from '../src/job/mcp/result.js';
import type { ServerConfig } from '../src/shared/contract/servers.js';
import type { McpProtocol } from '../src/shared/settings.js';
import { startHttpFixture } from './fixtures/server-2026.js';

const RUNS = Number(process.argv[2] ?? 10);
const FIXTURE_2025 = join(repoRoot, 'dist', 'test', 'fixtures', 'mcp-server.js');
const FIXTURE_2026 = join(repoRoot, 'dist', 'test', 'fixtures', 'mcp-server-2026.js');

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function measure(label: string, cfg: ServerConfig, protocol: McpProtocol): Promise<void> {
  // The HTTP fixture listens on loopback, which the remote-URL policy refuses unless allowed.
  const opts: InitOptions = {
    timeoutMs: 30_000,
    secretsDir: '/nonexistent',
    allowedCommands: ['node'],
    protocol,
    policy: { remote: { allow: ['127.0.0.1'], serviceCidrs: [], podCidrs: [], apiServerHosts: [] } },
  };
  const total: number[] = [];
  const handshake: number[] = [];
  let generation: string | undefined;
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    const r = await initializeServer('bench', cfg, opts);
    total.push(performance.now() - t0);
    if (r.status !== 'initialized') throw new Error(`${label} ${protocol}: ${r.error}`);
    handshake.push(r.phases?.handshake ?? NaN);
    generation = r.generation;
  }
  const row = [
    label.padEnd(36),
    protocol.padEnd(11),
    String(generation).padEnd(11),
    `${Math.round(median(total))} ms`.padStart(8),
    `${Math.round(median(handshake))} ms`.padStart(8),
  ];
  process.stdout.write(`${row.join('  ')}\n`);
}

process.stdout.write(`median of ${RUNS} runs each; total = spawn/connect + handshake + lists + close\n`);
process.stdout.write(`${['server'.padEnd(36), 'mode'.padEnd(11), 'generation'.padEnd(11), 'total'.padStart(8), 'handshake'.padStart(8)].join('  ')}\n`);
const stdio2026: ServerConfig = { command: 'node', args: [FIXTURE_2026, '--legacy', 'serve'] };
const stdio2025: ServerConfig = { command: 'node', args: [FIXTURE_2025] };
for (const p of ['2025', 'auto', '2026-07-28'] as const) await measure('stdio, 2026-07-28 server (+legacy)', stdio2026, p);
for (const p of ['2025', 'auto'] as const) await measure('stdio, 2025-only server', stdio2025, p);
// The case the SDK's sibling probe exists for: the job starts it again with the 2025 handshake.
await measure('stdio, 2025 server exiting on probe', { command: 'node', args: [FIXTURE_2025, '--exit-on-discover'] }, 'auto');
const http = await startHttpFixture('stateless');
try {
  for (const p of ['2025', 'auto', '2026-07-28'] as const) await measure('http, 2026-07-28 server (+legacy)', { type: 'http', url: http.url }, p);
} finally {
  await http.close();
}
