import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Client } from '@modelcontextprotocol/client';
import { Deadline } from '../../../src/job/mcp/deadline.js';
import { listAll } from '../../../src/job/mcp/lists.js';
import { LIST_LIMITS, responseGuard } from '../../../src/job/mcp/result.js';

type Page = { tools?: { name: string }[]; resources?: { uri: string }[]; nextCursor?: string };

/** A client whose `request` answers each page with `page(n)` (n from 0), counting the requests. */
function pagedClient(page: (n: number) => Page | Promise<Page>) {
  const state = { requests: 0 };
  const client = { request: async () => page(state.requests++) } as unknown as Client;
  return { client, state };
}

async function read(page: (n: number) => Page | Promise<Page>, kind: 'tools' | 'resources' = 'tools', guard = responseGuard()) {
  const { client, state } = pagedClient(page);
  const deadline = new Deadline(30_000, () => undefined);
  try {
    return { ...(await listAll(client, kind, {}, deadline, guard)), requests: state.requests };
  } finally {
    deadline.clear();
  }
}

const tools = (n: number, name = (i: number) => `t${i}`) => Array.from({ length: n }, (_, i) => ({ name: name(i) }));

describe('reading a list from a server that sends too much', () => {
  it('keeps the first names of a page far larger than a call can take as arguments, and says the list was cut by count', async () => {
    const r = await read(() => ({ tools: tools(200_000) }));
    assert.equal(r.names.length, LIST_LIMITS.names);
    assert.equal(r.names[0], 't0');
    assert.equal(r.cut, 'names');
  });

  it('counts names across pages and stops asking once the cap is reached', async () => {
    const perPage = 1000;
    const r = await read((n) => ({ tools: tools(perPage, (i) => `p${n}-${i}`), nextCursor: `c${n + 1}` }));
    assert.equal(r.names.length, LIST_LIMITS.names);
    assert.equal(r.cut, 'names');
    assert.equal(r.requests, LIST_LIMITS.names / perPage + 1);
  });

  it('keeps at most LIST_LIMITS.bytes of names and cuts each name to LIST_LIMITS.nameChars code points', async () => {
    const long = 'é'.repeat(5000);
    const r = await read((n) => ({ tools: tools(500, () => `${long}${n}`), nextCursor: `c${n + 1}` }));
    assert.equal(r.cut, 'bytes');
    const bytes = r.names.reduce((sum, x) => sum + Buffer.byteLength(x, 'utf8'), 0);
    assert.ok(bytes <= LIST_LIMITS.bytes, `${bytes} bytes kept`);
    assert.ok(r.names.length > 0);
    assert.equal(r.names[0], `${'é'.repeat(LIST_LIMITS.nameChars)}…`);
  });

  it('stops at the page cap when the cursor never ends, saying so', async () => {
    const r = await read((n) => ({ tools: tools(1, () => `t${n}`), nextCursor: `c${n + 1}` }));
    assert.equal(r.requests, LIST_LIMITS.pages);
    assert.equal(r.names.length, LIST_LIMITS.pages);
    assert.equal(r.cut, 'pages');
  });

  it('keeps what earlier pages gave when a reply was dropped as too large, and fails on any other error', async () => {
    const guard = responseGuard(1024);
    const r = await read(
      (n) => {
        if (n === 0) return { resources: [{ uri: 'file:///a' }], nextCursor: 'c1' };
        guard.tripped = true;
        return Promise.reject(new Error('connection closed'));
      },
      'resources',
      guard,
    );
    assert.deepEqual(r.names, ['file:///a']);
    assert.equal(r.cut, 'response-bytes');
    await assert.rejects(
      read((n) => (n === 0 ? { tools: tools(1), nextCursor: 'c1' } : Promise.reject(new Error('connection closed')))),
      /connection closed/,
    );
  });

  it('reads a list within every cap whole, without a cut', async () => {
    const r = await read((n) => (n === 0 ? { tools: tools(3), nextCursor: 'c1' } : { tools: tools(2, (i) => `u${i}`) }));
    assert.deepEqual(r.names, ['t0', 't1', 't2', 'u0', 'u1']);
    assert.equal(r.cut, undefined);
  });
});
