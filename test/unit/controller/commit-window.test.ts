import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommitWindow } from '../../../src/controller/intake/commit-window.js';

function windowOf(offsets: string[], every = 100, intervalMs = 1_000_000) {
  let t = 0;
  const w = new CommitWindow(offsets, { every, intervalMs, now: () => t });
  return { w, advance: (ms: number) => (t += ms) };
}

describe('CommitWindow', () => {
  it('commits one past the last message of the finished run', () => {
    const { w } = windowOf(['10', '11', '12']);
    w.finish(0);
    w.finish(1);
    assert.deepEqual(w.take(true), { last: '11', next: '12' });
  });

  it('never commits past a message that has not finished when later ones finish first (out-of-order completion)', () => {
    const { w } = windowOf(['5', '6', '7', '8']);
    w.finish(3);
    w.finish(2);
    assert.equal(w.take(true), undefined);
    w.finish(0);
    assert.deepEqual(w.take(true), { last: '5', next: '6' });
    w.finish(1);
    assert.deepEqual(w.take(true), { last: '8', next: '9' });
  });

  it('holds the offset at a message that failed in the middle, so it and everything after it are redelivered', () => {
    const { w } = windowOf(['0', '1', '2', '3']);
    w.finish(0);
    w.finish(2);
    w.finish(3);
    // message 1 failed: it never finishes
    assert.deepEqual(w.take(true), { last: '0', next: '1' });
    assert.equal(w.take(true), undefined);
    assert.equal(w.finishedCount, 1);
  });

  it('batches commits until enough messages finished or enough time passed, and a forced flush commits at once', () => {
    const { w, advance } = windowOf(['0', '1', '2', '3', '4'], 3, 250);
    w.finish(0);
    assert.equal(w.take(), undefined, 'one finished message is not worth a commit yet');
    w.finish(1);
    w.finish(2);
    assert.deepEqual(w.take(), { last: '2', next: '3' }, 'three finished messages are');
    w.finish(3);
    assert.equal(w.take(), undefined);
    advance(300);
    assert.deepEqual(w.take(), { last: '3', next: '4' }, 'the interval passed');
    w.finish(4);
    assert.deepEqual(w.take(true), { last: '4', next: '5' }, 'forced');
    assert.equal(w.take(true), undefined, 'nothing new to commit');
  });

  it('keeps offsets past 2^53 exact', () => {
    const { w } = windowOf(['9007199254740993']);
    w.finish(0);
    assert.deepEqual(w.take(true), { last: '9007199254740993', next: '9007199254740994' });
  });

  it('refuses an index outside the batch (a bug, not a message)', () => {
    const { w } = windowOf(['0']);
    assert.throws(() => w.finish(1), RangeError);
  });
});
