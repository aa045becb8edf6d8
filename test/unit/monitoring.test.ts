import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMetrics } from '../../src/controller/reporting/metrics.js';
import { labelNames, metricNames, parseExposition, problems, queries, ruleTestSeries } from '../monitoring/check.js';

/** What the code declares (the e2e suite checks the same queries against a real scrape). */
async function declared() {
  const m = createMetrics();
  const text = await m.registry.metrics();
  const labels = new Map<string, Set<string>>();
  for (const x of await m.registry.getMetricsAsJSON()) {
    const names = new Set<string>();
    for (const v of x.values) for (const l of Object.keys(v.labels)) names.add(l);
    labels.set(x.name, names);
  }
  // prom-client keeps the declared label names on each metric object.
  for (const v of Object.values(m)) {
    const o = v as { name?: string; labelNames?: string[] };
    if (o?.name && o.labelNames) labels.set(o.name, new Set(o.labelNames));
  }
  return { expo: parseExposition(text), labels };
}

describe('the monitoring component', () => {
  it('reads metric and label names out of PromQL', () => {
    const e = 'sum by (topic, partition) (rate(mcp_job_controller_retries_total{op="create-job", le!="x"}[5m])) / on (topic) mcp_job_controller_consumer_lag';
    assert.deepEqual(metricNames(e), ['mcp_job_controller_retries_total', 'mcp_job_controller_consumer_lag']);
    assert.deepEqual(labelNames(e).sort(), ['op', 'partition', 'topic']);
  });

  it('ships alert rules and dashboard panels that name only metrics and labels the controller declares', async () => {
    const { expo, labels } = await declared();
    assert.ok(queries().length >= 15);
    assert.deepEqual(problems(expo, labels), []);
  });

  it('finds an unknown metric or label in a query', async () => {
    const { expo, labels } = await declared();
    const only = new Map(labels);
    only.delete('mcp_job_controller_retries_total');
    const withoutRetries = { names: new Set([...expo.names].filter((n) => n !== 'mcp_job_controller_retries_total')), labels: expo.labels };
    assert.ok(problems(withoutRetries, only).some((p) => p.includes('mcp_job_controller_retries_total is not in')));
  });

  it('feeds the promtool unit tests only series the controller declares, with their labels', async () => {
    const { expo, labels } = await declared();
    for (const s of ruleTestSeries()) {
      assert.ok(expo.names.has(s.name), `${s.name} is a metric of the controller`);
      for (const l of s.labels) assert.ok(labels.get(s.name)?.has(l), `${s.name} has label ${l}`);
    }
  });
});
