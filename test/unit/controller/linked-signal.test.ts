import assert from 'node:assert/strict';
import { getEventListeners } from 'node:events';
import { describe, it } from 'node:test';
import { linkSignals } from '../../../src/controller/intake/linked-signal.js';

describe('linkSignals', () => {
  it('aborts when the long-lived signal aborts, with its reason', () => {
    const long = new AbortController();
    const linked = linkSignals(long.signal, new AbortController().signal);
    long.abort(new Error('stopping'));
    assert.equal(linked.signal.aborted, true);
    assert.equal((linked.signal.reason as Error).message, 'stopping');
  });

  it('aborts when the short-lived signal aborts, and the long-lived one stays untouched', () => {
    const long = new AbortController();
    const short = new AbortController();
    const linked = linkSignals(long.signal, short.signal);
    short.abort(new Error('rebalance'));
    assert.equal((linked.signal.reason as Error).message, 'rebalance');
    assert.equal(long.signal.aborted, false);
    assert.equal(getEventListeners(long.signal, 'abort').length, 0);
  });

  it('leaves no listener on either source once released, however many links were made', () => {
    const long = new AbortController();
    for (let i = 0; i < 1000; i++) linkSignals(long.signal, new AbortController().signal).release();
    assert.equal(getEventListeners(long.signal, 'abort').length, 0);
    const linked = linkSignals(long.signal, new AbortController().signal);
    linked.release();
    long.abort();
    assert.equal(linked.signal.aborted, false, 'a released link no longer follows its sources');
  });

  it('links many messages in flight to one long-lived signal without a MaxListenersExceeded warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    const long = new AbortController();
    const links = Array.from({ length: 128 }, () => linkSignals(long.signal, new AbortController().signal));
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
    for (const l of links) l.release();
    assert.deepEqual(
      warnings.filter((w) => w.name === 'MaxListenersExceededWarning'),
      [],
    );
  });

  it('is the long-lived signal itself when there is no second one, and an already aborted source when one is', () => {
    const long = new AbortController();
    assert.equal(linkSignals(long.signal).signal, long.signal);
    const short = new AbortController();
    short.abort();
    assert.equal(linkSignals(long.signal, short.signal).signal, short.signal);
  });
});
