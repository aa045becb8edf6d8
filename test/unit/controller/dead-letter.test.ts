import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createHash, randomBytes } from 'node:crypto';
import {
  buildDeadLetter,
  buildLossRecord,
  DlqHeader,
  fitRecord,
  LossHeader,
  recordBatchBytes,
  TruncatedHeader,
} from '../../../src/controller/reporting/dead-letter.js';
import { KAFKA_DEFAULT_MAX_MESSAGE_BYTES } from '../../../src/controller/intake/group-admin.js';

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

describe('fitRecord', () => {
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const at = { topic: 't', partition: 0, offset: '1' };

  it('leaves a record that fits its topic untouched', () => {
    const rec = buildDeadLetter({ key: Buffer.from('k'), value: Buffer.from('{}') }, at, 'invalid-envelope', 'x', new Date(0));
    assert.equal(fitRecord(rec, KAFKA_DEFAULT_MAX_MESSAGE_BYTES), rec);
  });

  it('cuts the value so the record fits the limit, and says so with the original size and sha256', () => {
    const value = Buffer.alloc(10_000, 7);
    const rec = buildDeadLetter({ key: Buffer.from('k'), value }, at, 'invalid-json', 'x', new Date(0));
    const t = fitRecord(rec, 4096);
    const v = t.value as Buffer;
    assert.ok(recordBatchBytes(t) <= 4096, `${recordBatchBytes(t)} bytes fit 4096`);
    assert.ok(v.length > 0);
    assert.deepEqual(v, value.subarray(0, v.length), 'a prefix of the original');
    assert.equal(t.headers![TruncatedHeader.truncated], 'true');
    assert.equal(t.headers![TruncatedHeader.originalSize], '10000');
    assert.equal(t.headers![TruncatedHeader.originalSha256], sha(value));
    assert.equal(t.headers![DlqHeader.reason], 'invalid-json', 'the reason and source headers stay');
  });

  it("cuts a ~1 MB incompressible header of a `{}` message so its dead-letter copy fits a topic at the default max.message.bytes, with the headers' original size and sha256", () => {
    const big = randomBytes(KAFKA_DEFAULT_MAX_MESSAGE_BYTES - 200);
    const rec = buildDeadLetter({ key: null, value: Buffer.from('{}'), headers: { trace: 'abc', blob: big } }, at, 'invalid-envelope', 'x', new Date(0));
    assert.ok(recordBatchBytes(rec) > KAFKA_DEFAULT_MAX_MESSAGE_BYTES, 'the copy itself is over the limit');
    const t = fitRecord(rec, KAFKA_DEFAULT_MAX_MESSAGE_BYTES);
    assert.ok(recordBatchBytes(t) <= KAFKA_DEFAULT_MAX_MESSAGE_BYTES);
    assert.deepEqual(t.value, Buffer.from('{}'), 'the small value stays whole');
    assert.deepEqual(t.headers!.trace, Buffer.from('abc'), 'a small header stays whole');
    const kept = t.headers!.blob as Buffer;
    assert.ok(kept.length > 0 && kept.length < big.length);
    assert.deepEqual(kept, big.subarray(0, kept.length));
    assert.equal(t.headers![TruncatedHeader.headersKept], '2/2');
    const len = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
    const expected = sha(Buffer.concat([len(5), Buffer.from('trace'), len(3), Buffer.from('abc'), len(4), Buffer.from('blob'), len(big.length), big]));
    assert.equal(t.headers![TruncatedHeader.headersSha256], expected);
    assert.equal(t.headers![TruncatedHeader.headersSize], String(5 + 3 + 4 + big.length));
  });

  it('cuts a large key like the value, with its original size and sha256', () => {
    const key = Buffer.alloc(50_000, 1);
    const rec = buildDeadLetter({ key, value: Buffer.from('{}') }, at, 'invalid-envelope', 'x', new Date(0));
    const t = fitRecord(rec, 8192);
    assert.ok(recordBatchBytes(t) <= 8192);
    assert.ok((t.key as Buffer).length > 0 && (t.key as Buffer).length < key.length);
    assert.equal(t.headers![TruncatedHeader.keySize], '50000');
    assert.equal(t.headers![TruncatedHeader.keySha256], sha(key));
  });

  it('writes a minimal record (coordinates, reason, digests) when even the controller headers do not fit', () => {
    const own = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`mcp.dlq.x${i}`, 'y'.repeat(50)]));
    const rec = buildDeadLetter(
      { key: null, value: Buffer.alloc(3000), headers: own },
      { topic: 't', partition: 4, offset: '99' },
      'job-failed',
      'e'.repeat(2000),
      new Date(0),
    );
    const t = fitRecord(rec, 2048);
    assert.ok(recordBatchBytes(t) <= 2048, `${recordBatchBytes(t)} bytes fit 2048`);
    assert.equal(t.value, null);
    assert.equal(t.headers![TruncatedHeader.truncated], 'minimal');
    assert.equal(String(t.headers![DlqHeader.reason]), 'job-failed');
    assert.equal(String(t.headers![DlqHeader.partition]), '4');
    assert.equal(String(t.headers![DlqHeader.offset]), '99');
    assert.equal(t.headers![TruncatedHeader.originalSize], '3000');
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
