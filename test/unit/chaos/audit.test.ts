import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Ledger, type Sent } from '../../chaos/audit.js';
import { Draw, generator, parseRandomArgs } from '../../chaos/random.js';

const job = (coords: string, jobID: string): Sent => ({ coords, due: { kind: 'job', jobID }, shape: 'valid' });
const rec = (coords: string, reason: string, truncated?: boolean): Sent => ({ coords, due: { kind: 'record', reason, truncated }, shape: 'bad' });

describe('the chaos audit', () => {
  it('counts a second Job for a message as a duplicate although the first one is gone from the cluster', () => {
    // The watch saw both ADDED; the TTL deleted the first before any results record was written.
    const l = new Ledger(
      [
        { uid: 'a', coords: '0/1', jobID: 'j1' },
        { uid: 'b', coords: '0/1', jobID: 'j1' },
      ],
      [],
    );
    assert.equal(l.figures([job('0/1', 'j1')]).duplicates, 1);
  });

  it('counts a Job made for the same jobID from another offset as a duplicate', () => {
    const l = new Ledger(
      [
        { uid: 'a', coords: '0/1', jobID: 'j1' },
        { uid: 'b', coords: '0/9', jobID: 'j1' },
      ],
      [],
    );
    assert.equal(l.figures([job('0/1', 'j1')]).duplicates, 1);
  });

  it('counts a message due a record that has none as lost, a second record as a duplicate, and a Job for it as another', () => {
    const l = new Ledger(
      [{ uid: 'a', coords: '0/2', jobID: 'x' }],
      [
        { coords: '0/2', reason: 'invalid-json', truncated: false },
        { coords: '0/2', reason: 'invalid-json', truncated: false },
      ],
    );
    const f = l.figures([rec('0/2', 'invalid-json'), rec('0/3', 'invalid-json')]);
    assert.equal(f.lost, 1);
    assert.equal(f.duplicates, 2);
  });

  it('counts a record with another reason than the one due, and an over-limit record left whole', () => {
    const l = new Ledger(
      [],
      [
        { coords: '1/0', reason: 'invalid-json', truncated: false },
        { coords: '1/1', reason: 'message-too-large', truncated: false },
      ],
    );
    const f = l.figures([rec('1/0', 'job-rejected'), rec('1/1', 'message-too-large', true)]);
    assert.equal(f.wrongReason, 1);
    assert.equal(f.untruncated, 1);
  });

  it('counts any outcome for a record of an aborted transaction as a duplicate', () => {
    const l = new Ledger([{ uid: 'a', coords: '2/5', jobID: 'j' }], []);
    assert.equal(l.figures([{ coords: '2/5', due: { kind: 'nothing' }, shape: 'aborted' }]).duplicates, 1);
  });

  it('accepts a message retention deleted when a gap record covers it, and counts it lost when nothing does', () => {
    const l = new Ledger([], [{ coords: '0/10', reason: 'retention-gap', truncated: false, lastOffset: '19' }]);
    const gone = (coords: string): Sent => ({ coords, due: { kind: 'gap-or-outcome' }, shape: 'valid' });
    const f = l.figures([gone('0/15'), gone('0/20')]);
    assert.equal(f.gap, 1);
    assert.equal(f.lost, 1);
  });
});

describe('the random mode', () => {
  it('draws the same sequence for the same seed and another for another seed', () => {
    const draw = (seed: number) => {
      const d = new Draw(generator(seed));
      return Array.from({ length: 20 }, () => d.int(0, 1000));
    };
    assert.deepEqual(draw(7), draw(7));
    assert.notDeepEqual(draw(7), draw(8));
  });

  it('reads --random --seed --minutes and refuses a seed that is not a number', () => {
    assert.deepEqual(parseRandomArgs(['--random', '--seed', '42', '--minutes', '0.5']), { random: true, seed: 42, minutes: 0.5 });
    assert.throws(() => parseRandomArgs(['--random', '--seed', 'x']), /--seed/);
  });
});
