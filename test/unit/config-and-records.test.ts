import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, ControllerConfigSchema, JobConfigSchema, parseConfig } from '../../src/config.js';
import { buildDeadLetter, DlqHeader } from '../../src/dead-letter.js';
import { buildSummary, TERMINATION_MESSAGE_LIMIT } from '../../src/job-run.js';
import type { ServerResult } from '../../src/mcp-init.js';

describe('controller config', () => {
  it('applies the documented defaults and derives the dead-letter topic', () => {
    const c = parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: 'a:9092, b:9092', KAFKA_TOPIC: 'work' });
    assert.deepEqual(c.KAFKA_BROKERS, ['a:9092', 'b:9092']);
    assert.equal(c.DLQ_TOPIC, 'work.dlq');
    assert.equal(c.KAFKA_CONSUMER_GROUP, 'mcp-job-controller');
    assert.equal(c.JOB_TTL_SECONDS_AFTER_FINISHED, 3600);
    assert.deepEqual(c.JOB_KAFKA_BROKERS, ['a:9092', 'b:9092']);
  });

  it('fails naming every bad setting', () => {
    assert.throws(() => parseConfig(ControllerConfigSchema, { KAFKA_TOPIC: 'x', MAX_ACTIVE_JOBS: '-1', JOB_NAMESPACE: 'Bad_NS' }), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /KAFKA_BROKERS/);
      assert.match(err.message, /MAX_ACTIVE_JOBS/);
      assert.match(err.message, /JOB_NAMESPACE: a namespace name/);
      return true;
    });
  });

  it('reads the job\'s coordinates and refuses a non-numeric offset', () => {
    const j = parseConfig(JobConfigSchema, { KAFKA_BROKERS: 'k:1', KAFKA_TOPIC: 't', KAFKA_PARTITION: '3', KAFKA_OFFSET: '18446744073709551615' });
    assert.equal(j.KAFKA_PARTITION, 3);
    assert.equal(j.KAFKA_OFFSET, '18446744073709551615');
    assert.throws(() => parseConfig(JobConfigSchema, { KAFKA_BROKERS: 'k:1', KAFKA_TOPIC: 't', KAFKA_PARTITION: '0', KAFKA_OFFSET: '-1' }), /KAFKA_OFFSET/);
  });
});

describe('buildDeadLetter', () => {
  it('keeps the original key, value and headers and adds the reason and the source coordinates', () => {
    const rec = buildDeadLetter({ key: Buffer.from('k'), value: Buffer.from([0xff, 0x00]), headers: { trace: 'abc' } }, { topic: 't', partition: 4, offset: '99' }, 'invalid-json', 'not JSON', new Date('2026-01-02T03:04:05Z'));
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

describe('buildSummary', () => {
  const ok = (name: string, tools: string[]): ServerResult => ({ name, status: 'initialized', transport: 'stdio', serverInfo: { name: 's', version: '1' }, protocolVersion: '2025-06-18', tools, durationMs: 12 });

  it('lists each server\'s status and tools', () => {
    const s = JSON.parse(buildSummary({ jobID: 'j', topic: 't', partition: 0, offset: '1', exitCode: 0 }, [ok('a', ['echo', 'add'])]));
    assert.deepEqual(s, { jobID: 'j', topic: 't', partition: 0, offset: '1', exitCode: 0, status: 'initialized', servers: { a: { status: 'initialized', server: 's@1', protocol: '2025-06-18', tools: ['echo', 'add'], ms: 12 } } });
  });

  it('stays valid JSON within the kubelet\'s 4 KiB, shortening tool lists but keeping every status', () => {
    const many = Array.from({ length: 500 }, (_, i) => `tool_number_${i}`);
    const results = Array.from({ length: 8 }, (_, i) => ok(`server${i}`, many));
    const text = buildSummary({ jobID: 'j', topic: 't', partition: 0, offset: '1', exitCode: 0 }, results);
    assert.ok(text.length <= TERMINATION_MESSAGE_LIMIT, `${text.length} bytes`);
    const s = JSON.parse(text);
    assert.equal(Object.keys(s.servers).length, 8);
    for (const v of Object.values(s.servers) as { status: string; tools: string[] }[]) {
      assert.equal(v.status, 'initialized');
      assert.match(v.tools.at(-1)!, /^…\+\d+$/);
    }
  });
});
