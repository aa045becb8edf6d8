import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jobConfig } from '../../../src/job/config.js';
import { ConfigError } from '../../../src/shared/errors.js';

const env = { KAFKA_BROKERS: 'b:9092', KAFKA_TOPIC: 't', KAFKA_PARTITION: '0', KAFKA_OFFSET: '7' };

describe('jobConfig', () => {
  it('negotiates the MCP protocol generation by default, and takes a pinned one', () => {
    assert.equal(jobConfig({}, env).MCP_PROTOCOL, 'auto');
    assert.equal(jobConfig({}, { ...env, MCP_PROTOCOL: '2026-07-28' }).MCP_PROTOCOL, '2026-07-28');
    assert.throws(
      () => jobConfig({}, { ...env, MCP_PROTOCOL: '2024-11-05' }),
      (e: Error) => e instanceof ConfigError && /MCP_PROTOCOL/.test(e.message),
    );
  });

  it('reads the trace context from the OpenTelemetry environment carrier', () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const c = jobConfig({}, { ...env, TRACEPARENT: traceparent, TRACESTATE: 'vendor=x' });
    assert.equal(c.TRACEPARENT, traceparent);
    assert.equal(c.TRACESTATE, 'vendor=x');
    assert.equal(jobConfig({}, env).TRACEPARENT, undefined);
  });

  it('drops a malformed traceparent rather than failing the work, as W3C trace context says', () => {
    assert.equal(jobConfig({}, { ...env, TRACEPARENT: 'not-a-trace' }).TRACEPARENT, undefined);
  });
});
