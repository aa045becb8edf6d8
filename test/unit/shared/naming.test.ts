import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDns1123Label, jobName, labelValue, legacyJobName, sanitize } from '../../../src/shared/contract/naming.js';

describe('jobName', () => {
  it('names a Job <prefix>-<topic>-<hash of prefix and topic>-<partition>-<offset>', () => {
    assert.match(jobName('mcp', 'jobs', 3, '42'), /^mcp-jobs-[0-9a-f]{8}-3-42$/);
  });

  it('never gives two prefix and topic pairs that read alike the same name (mcp + prod-jobs, mcp-prod + jobs)', () => {
    assert.notEqual(jobName('mcp', 'prod-jobs', 0, '5'), jobName('mcp-prod', 'jobs', 0, '5'));
    assert.notEqual(jobName('a-b', 'c-d', 0, '5'), jobName('a', 'b-c-d', 0, '5'));
  });

  it('still computes the name releases before this one gave (for Jobs made before an upgrade)', () => {
    assert.equal(legacyJobName('mcp', 'jobs', 3, '42'), 'mcp-jobs-3-42');
    assert.equal(legacyJobName('mcp', 'prod-jobs', 0, '5'), legacyJobName('mcp-prod', 'jobs', 0, '5'), 'the old scheme was not injective');
    assert.notEqual(legacyJobName('mcp', 'jobs', 3, '42'), jobName('mcp', 'jobs', 3, '42'));
  });

  it('gives a redelivered message the same name every time', () => {
    assert.equal(jobName('mcp', 'Orders.EU_west', 1, '9007199254740993'), jobName('mcp', 'Orders.EU_west', 1, '9007199254740993'));
  });

  it('keeps names valid DNS-1123 labels of at most 63 characters for any topic and offset', () => {
    const topics = ['a', 'A_B.c', 'x'.repeat(249), '...', '__consumer', 'ünïcödé-topic', 'UPPER', 'a--b', '-lead', 'trail-'];
    for (const t of topics)
      for (const off of ['0', '12345', '9223372036854775807']) {
        const n = jobName('mcp', t, 2147483647, off);
        assert.ok(isDns1123Label(n), `${JSON.stringify(t)} → ${n}`);
        assert.ok(n.endsWith(`-2147483647-${off}`), `${n} keeps partition and offset readable`);
      }
  });

  it('never gives two topics that sanitise alike the same name', () => {
    const a = jobName('mcp', 'jobs.a', 0, '1');
    const b = jobName('mcp', 'jobs_a', 0, '1');
    const c = jobName('mcp', 'jobs-a', 0, '1');
    assert.equal(new Set([a, b, c]).size, 3);
  });

  it('never gives two long topics with a common 50-character prefix the same name', () => {
    const base = 'p'.repeat(60);
    assert.notEqual(jobName('mcp', `${base}-one`, 0, '1'), jobName('mcp', `${base}-two`, 0, '1'));
  });

  it('differs between partitions and offsets of one topic', () => {
    assert.notEqual(jobName('mcp', 'jobs', 1, '12'), jobName('mcp', 'jobs', 11, '2'));
  });
});

describe('sanitize and labelValue', () => {
  it('lower-cases and folds runs of other characters into one dash', () => {
    assert.equal(sanitize('My__Topic..v2'), 'my-topic-v2');
  });

  it('turns free text into a valid label value of at most 63 characters', () => {
    const v = labelValue(`-job/${'x'.repeat(100)}-`);
    assert.ok(v.length <= 63);
    assert.match(v, /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/);
    assert.equal(labelValue('job-123'), 'job-123');
  });
});
