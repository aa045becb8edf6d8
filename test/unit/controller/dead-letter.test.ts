import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHash } from 'node:crypto';
import {
  buildDeadLetter,
  buildLossRecord,
  DEAD_LETTER_FRAMING_BYTES,
  DlqHeader,
  LossHeader,
  truncateDeadLetter,
} from '../../../src/controller/reporting/dead-letter.js';

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

describe('truncateDeadLetter', () => {
  it('cuts the value so the record fits the limit, and says so with the original size and sha256', () => {
    const value = Buffer.alloc(10_000, 7);
    const rec = buildDeadLetter({ key: Buffer.from('k'), value }, { topic: 't', partition: 0, offset: '1' }, 'invalid-json', 'x', new Date(0));
    const t = truncateDeadLetter(rec, 4096);
    const v = t.value as Buffer;
    const headerBytes = Object.entries(t.headers!).reduce((n, [k, h]) => n + k.length + String(h).length, 0);
    assert.ok(v.length > 0 && v.length + headerBytes + 1 + DEAD_LETTER_FRAMING_BYTES <= 4096, `value ${v.length} bytes fits`);
    assert.deepEqual(v, value.subarray(0, v.length), 'a prefix of the original');
    assert.equal(t.headers!['mcp.dlq.truncated'], 'true');
    assert.equal(t.headers!['mcp.dlq.original.size'], '10000');
    assert.equal(t.headers!['mcp.dlq.original.sha256'], createHash('sha256').update(value).digest('hex'));
    assert.equal(t.headers![DlqHeader.reason], 'invalid-json', 'the reason and source headers stay');
  });

  it('keeps an empty value when the headers alone fill the limit', () => {
    const rec = buildDeadLetter({ key: null, value: Buffer.alloc(100) }, { topic: 't', partition: 0, offset: '1' }, 'r', 'e'.repeat(2000), new Date(0));
    assert.equal((truncateDeadLetter(rec, 1500).value as Buffer).length, 0);
  });
});

describe('buildLossRecord', () => {
  it('records a range of offsets that cannot be read, with no value, the reason and both ends of the range', () => {
    const r = buildLossRecord({ topic: 't', partition: 3, offset: '10' }, 'retention-gap', 'deleted', new Date(0), '19');
    assert.equal(r.value, null);
    assert.equal(r.headers![DlqHeader.reason], 'retention-gap');
    assert.equal(r.headers![DlqHeader.partition], '3');
    assert.equal(r.headers![DlqHeader.offset], '10');
    assert.equal(r.headers![LossHeader.lastOffset], '19');
    assert.equal(r.headers![DlqHeader.stage], 'controller', 'found again by the dead-letter scan after a restart');
  });
});
