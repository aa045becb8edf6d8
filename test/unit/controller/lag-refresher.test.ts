import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { LagRefresher } from '../../../src/controller/intake/lag-refresher.js';

const log = pino({ level: 'silent' });

function fixture(ends: () => Promise<{ partition: number; high: string; low: string }[]>, committed: Record<number, bigint>) {
  const lag = new Map<string, number>();
  const removed: string[] = [];
  let errors = 0;
  const r = new LagRefresher({
    topic: 'work',
    endOffsets: ends,
    committed: (p) => committed[p],
    lag: {
      set: ((labels: { partition: string }, v: number) => void lag.set(labels.partition, v)) as never,
      remove: ((labels: { partition: string }) => {
        lag.delete(labels.partition);
        removed.push(`lag/${labels.partition}`);
      }) as never,
    },
    committedOffset: { remove: ((labels: { partition: string }) => void removed.push(`committed/${labels.partition}`)) as never },
    onError: () => void errors++,
    log,
  });
  return { r, lag, removed, errors: () => errors };
}

describe('LagRefresher', () => {
  it('sets the lag of each held partition from the end offset and the committed offset, while nothing is consumed', async () => {
    let high = 10;
    const f = fixture(
      async () => [
        { partition: 0, high: String(high), low: '0' },
        { partition: 1, high: '7', low: '2' },
        { partition: 2, high: '9', low: '0' },
      ],
      { 0: 4n },
    );
    f.r.assigned([0, 1]);
    await f.r.refresh();
    assert.deepEqual([...f.lag.entries()].sort(), [
      ['0', 6],
      ['1', 5],
    ]);
    high = 25;
    await f.r.refresh();
    assert.equal(f.lag.get('0'), 21);
  });

  it('removes the lag and committed-offset series of a revoked partition, and does not set them again', async () => {
    const f = fixture(
      async () => [
        { partition: 0, high: '10', low: '0' },
        { partition: 1, high: '10', low: '0' },
      ],
      {},
    );
    f.r.assigned([0, 1]);
    await f.r.refresh();
    f.r.assigned([1]);
    assert.deepEqual(f.removed, ['lag/0', 'committed/0']);
    await f.r.refresh();
    assert.deepEqual([...f.lag.keys()], ['1']);
  });

  it('counts and logs a failed read of the end offsets instead of throwing, and keeps the last lag', async () => {
    let fail = false;
    const f = fixture(
      async () => {
        if (fail) throw new Error('broker down');
        return [{ partition: 0, high: '10', low: '0' }];
      },
      { 0: 3n },
    );
    f.r.assigned([0]);
    await f.r.refresh();
    fail = true;
    await f.r.refresh();
    assert.equal(f.errors(), 1);
    assert.equal(f.lag.get('0'), 7);
  });

  it('joins a refresh already running instead of starting a second read', async () => {
    let calls = 0;
    const f = fixture(async () => {
      calls++;
      await new Promise((r) => setImmediate(r));
      return [];
    }, {});
    f.r.assigned([0]);
    await Promise.all([f.r.refresh(), f.r.refresh()]);
    assert.equal(calls, 1);
  });
});
