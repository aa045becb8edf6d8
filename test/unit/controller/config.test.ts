import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ControllerConfigSchema } from '../../../src/controller/config.js';
import { JobConfigSchema } from '../../../src/job/config.js';
import { ConfigError } from '../../../src/shared/errors.js';
import { parseConfig } from '../../../src/shared/settings.js';

describe('controller config', () => {
  it('applies the documented defaults and derives the dead-letter topic', () => {
    const c = parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: 'a:9092, b:9092', KAFKA_TOPIC: 'work' });
    assert.deepEqual(c.KAFKA_BROKERS, ['a:9092', 'b:9092']);
    assert.equal(c.DLQ_TOPIC, 'work.dlq');
    assert.equal(c.KAFKA_CONSUMER_GROUP, 'mcp-job-controller');
    // Unset, so JOB_TEMPLATE's value (or the default) decides: see jobSpecLimits.
    assert.equal(c.JOB_TTL_SECONDS_AFTER_FINISHED, undefined);
    assert.deepEqual(c.JOB_KAFKA_BROKERS, ['a:9092', 'b:9092']);
  });

  it('fails naming every bad setting', () => {
    assert.throws(
      () => parseConfig(ControllerConfigSchema, { KAFKA_TOPIC: 'x', MAX_ACTIVE_JOBS: '-1', JOB_NAMESPACE: 'Bad_NS' }),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /KAFKA_BROKERS/);
        assert.match(err.message, /MAX_ACTIVE_JOBS/);
        assert.match(err.message, /JOB_NAMESPACE: a namespace name/);
        return true;
      },
    );
  });

  it("reads the job's coordinates and refuses a non-numeric offset", () => {
    const j = parseConfig(JobConfigSchema, { KAFKA_BROKERS: 'k:1', KAFKA_TOPIC: 't', KAFKA_PARTITION: '3', KAFKA_OFFSET: '18446744073709551615' });
    assert.equal(j.KAFKA_PARTITION, 3);
    assert.equal(j.KAFKA_OFFSET, '18446744073709551615');
    assert.throws(() => parseConfig(JobConfigSchema, { KAFKA_BROKERS: 'k:1', KAFKA_TOPIC: 't', KAFKA_PARTITION: '0', KAFKA_OFFSET: '-1' }), /KAFKA_OFFSET/);
  });
});
