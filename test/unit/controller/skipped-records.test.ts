import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { SkippedRecords } from '../../../src/controller/intake/skipped-records.js';

const log = pino({ level: 'silent' });

function setup(known: Map<number, bigint> = new Map()) {
  const commits: string[] = [];
  const s = new SkippedRecords({
    topic: 'work',
    commit: async (p, next) => {
      commits.push(`${p}/${next}`);
      known.set(p, BigInt(next));
    },
    knownCommitted: (p) => known.get(p),
    log,
  });
  return { s, commits };
}

describe('SkippedRecords', () => {
  it('commits one past a batch made only of aborted records or transaction markers', async () => {
    const { s, commits } = setup(new Map([[0, 1n]]));
    s.batchEnded({ topic: 'work', partition: 0, batchSize: 0, firstOffset: '1', lastOffset: '5' });
    await s.settled();
    assert.deepEqual(commits, ['0/6']);
  });

  it('leaves batches with messages to the batch processor, and other topics alone', async () => {
    const { s, commits } = setup();
    s.batchEnded({ topic: 'work', partition: 0, batchSize: 3, firstOffset: '7', lastOffset: '9' });
    s.batchEnded({ topic: 'other', partition: 0, batchSize: 0, firstOffset: '7', lastOffset: '9' });
    await s.settled();
    assert.deepEqual(commits, []);
  });

  it('commits nothing for a batch with no record at or past its fetch offset', async () => {
    const { s, commits } = setup();
    s.batchEnded({ topic: 'work', partition: 2, batchSize: 0, firstOffset: null, lastOffset: '30' });
    await s.settled();
    assert.deepEqual(commits, []);
  });

  it('never moves the committed offset back below what was already committed', async () => {
    const { s, commits } = setup(new Map([[1, 20n]]));
    s.batchEnded({ topic: 'work', partition: 1, batchSize: 0, firstOffset: '11', lastOffset: '12' });
    s.batchEnded({ topic: 'work', partition: 1, batchSize: 0, firstOffset: '21', lastOffset: '25' });
    await s.settled();
    assert.deepEqual(commits, ['1/26']);
  });
});
