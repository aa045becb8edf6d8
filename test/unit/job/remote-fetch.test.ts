import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { responseGuard } from '../../../src/job/mcp/result.js';
import { guardedFetch, ResponseTooLargeError } from '../../../src/job/mcp/transports/remote-fetch.js';

/** A fetch answering every request with `body` in chunks of `chunk` bytes, as `type`. */
const answering =
  (body: string, type: string, chunk = 1000) =>
  async () => {
    const bytes = Buffer.from(body);
    const stream = new ReadableStream<Uint8Array>({
      start(ctl) {
        for (let i = 0; i < bytes.length; i += chunk) ctl.enqueue(new Uint8Array(bytes.subarray(i, i + chunk)));
        ctl.close();
      },
    });
    return new Response(stream, { status: 200, headers: { 'content-type': type } });
  };

describe("the response cap on a remote server's replies", () => {
  it('drops a JSON reply larger than the cap before it is parsed, and marks the guard', async () => {
    const guard = responseGuard(10_000);
    const fetch = guardedFetch(answering(JSON.stringify({ tools: 'x'.repeat(20_000) }), 'application/json'), guard);
    const res = await fetch('http://mcp.example/mcp');
    await assert.rejects(res.json(), (err: unknown) => err instanceof ResponseTooLargeError || (err as Error).cause instanceof ResponseTooLargeError);
    assert.equal(guard.tripped, true);
  });

  it('passes a reply within the cap unchanged, status and headers included', async () => {
    const guard = responseGuard(10_000);
    const fetch = guardedFetch(answering(JSON.stringify({ ok: 'y'.repeat(5000) }), 'application/json'), guard);
    const res = await fetch('http://mcp.example/mcp');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.equal(((await res.json()) as { ok: string }).ok.length, 5000);
    assert.equal(guard.tripped, false);
  });

  it('counts an event stream per event: many small events pass, one event over the cap is dropped', async () => {
    const event = (data: string) => `event: message\ndata: ${data}\n\n`;
    const small = responseGuard(10_000);
    const many = Array.from({ length: 50 }, (_, i) => event(`${i}${'z'.repeat(1000)}`)).join('');
    const text = await (await guardedFetch(answering(many, 'text/event-stream', 777), small)('http://mcp.example/mcp')).text();
    assert.equal(text, many);
    assert.equal(small.tripped, false);
    const big = responseGuard(10_000);
    const res = await guardedFetch(answering(event('q'.repeat(20_000)), 'text/event-stream', 777), big)('http://mcp.example/mcp');
    await assert.rejects(res.text());
    assert.equal(big.tripped, true);
  });
});
