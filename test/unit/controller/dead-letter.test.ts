import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildDeadLetter, DlqHeader } from '../../../src/controller/dead-letter.js';

describe('buildDeadLetter', () => {
  it('keeps the original key, value and headers and adds the reason and the source coordinates', () => {
    const rec = buildDeadLetter(
      { key: Buffer.from('k'), value: Buffer.from([0xff, 0x00]), headers: { trace: 'abc' } },
      { topic: 't', partition: 4, offset: '99' },
      'invalid-json',
      'not JSON',
      new Date('2026-01-02T03:04:05Z'),
    );
    assert.deepEqual(rec, {
      key: Buffer.from('k'),
      value: Buffer.from([0xff, 0x00]),
      headers: {
        trace: 'abc',
        [DlqHeader.reason]: 'invalid-json',
        [DlqHeader.error]: 'not JSON',
        [DlqHeader.topic]: 't',
        [DlqHeader.partition]: '4',
        [DlqHeader.offset]: '99',
        [DlqHeader.at]: '2026-01-02T03:04:05.000Z',
        [DlqHeader.stage]: 'controller',
      },
    });
  });
});
