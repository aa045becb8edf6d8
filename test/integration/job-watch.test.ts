import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { slimJob } from '../../src/controller/kube/job-informer.js';
import { makeJobClient, type JobClient } from '../../src/controller/kube/kube.js';
import { freshNamespace, jobOutcome, kubeConfig, waitFor } from '../helpers.js';

type Seen = { type: string; object: k8s.V1Job };

/**
 * What the controller keeps of a JSON Job: slimJob, less the status fields it never reads
 * (which the protobuf decoder skips), and with a null time dropped as the decoder drops it.
 */
function keptOfJson(job: k8s.V1Job): k8s.V1Job {
  const slim = structuredClone(slimJob(job));
  const s = (slim.status ?? {}) as Record<string, unknown>;
  for (const k of ['uncountedTerminatedPods', 'completedIndexes', 'failedIndexes']) delete s[k];
  for (const c of (s.conditions ?? []) as Record<string, unknown>[]) for (const [k, v] of Object.entries(c)) if (v === null) delete c[k];
  if (slim.metadata?.deletionTimestamp === undefined) delete slim.metadata?.deletionTimestamp;
  for (const k of Object.keys(slim.metadata ?? {}))
    if ((slim.metadata as Record<string, unknown>)[k] === undefined) delete (slim.metadata as Record<string, unknown>)[k];
  return slim;
}

describe('the Job watch in protobuf', () => {
  const kc = kubeConfig();
  let ns: { name: string; remove: () => Promise<void> };
  let client: JobClient;
  before(async () => {
    ns = await freshNamespace(kc, {}, 'watch');
    client = makeJobClient(kc);
  });
  after(async () => {
    await client.close();
    await ns.remove();
  });

  it('hands out, event for event, what the JSON watch of the same Jobs does: created, suspended, completed, failed, deleted', async () => {
    const batch = kc.makeApiClient(k8s.BatchV1Api);
    const selector = 'mcp.test/watched=yes';
    const rv = (await client.list(ns.name, selector)).metadata.resourceVersion;
    const path = `/apis/batch/v1/namespaces/${ns.name}/jobs`;
    const query = { resourceVersion: rv, labelSelector: selector, allowWatchBookmarks: false };
    const proto: Seen[] = [];
    const json: Seen[] = [];
    const ended: unknown[] = [];
    const protoWatch = await client.watch!(
      path,
      query,
      (type, object: k8s.V1Job) => proto.push({ type, object }),
      (err) => ended.push(err),
    );
    const jsonWatch = await new k8s.Watch(kc).watch(
      path,
      query,
      (type, object: k8s.V1Job) => json.push({ type, object }),
      (err) => ended.push(err),
    );
    try {
      const job = (name: string, spec: Partial<k8s.V1JobSpec>, command: string[]): k8s.V1Job => ({
        metadata: { name, labels: { 'mcp.test/watched': 'yes', 'mcp.test/empty': '' }, annotations: { 'mcp.test/offset': '42', 'mcp.test/note': 'ünïcode ✓' } },
        spec: { backoffLimit: 0, ...spec, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'job', image: 'busybox', command }] } } },
      });
      await batch.createNamespacedJob({ namespace: ns.name, body: job('held', { suspend: true }, ['true']) });
      await batch.createNamespacedJob({ namespace: ns.name, body: job('done', {}, ['true']) });
      await batch.createNamespacedJob({ namespace: ns.name, body: job('late', { activeDeadlineSeconds: 1 }, ['sleep', '30']) });
      const last = (name: string) => json.filter((e) => e.object.metadata?.name === name).at(-1)?.object;
      await waitFor(() => jobOutcome(last('done') ?? {}) === 'Complete' && jobOutcome(last('late') ?? {}) === 'Failed', {
        timeoutMs: 60_000,
        description: 'one Job complete and one failed, seen by the JSON watch',
      });
      for (const name of ['held', 'done', 'late']) await batch.deleteNamespacedJob({ name, namespace: ns.name, propagationPolicy: 'Background' });
      await waitFor(() => proto.filter((e) => e.type === 'DELETED').length === 3 && json.filter((e) => e.type === 'DELETED').length === 3, {
        timeoutMs: 60_000,
        description: 'the three deletions on both watches',
      });
      // Neither watch ended on its own while the Jobs changed.
      assert.deepEqual(ended, []);
    } finally {
      protoWatch.abort();
      jsonWatch.abort();
    }
    assert.deepEqual(
      proto.map((e) => `${e.type} ${e.object.metadata?.name}`),
      json.map((e) => `${e.type} ${e.object.metadata?.name}`),
    );
    for (const [i, e] of proto.entries()) assert.deepEqual(e.object, keptOfJson(json[i]!.object), `event ${i}: ${e.type} ${e.object.metadata?.name}`);
    // The cases the comparison must have covered, so it cannot pass on a stream of bare ADDEDs.
    const statuses = proto.map((e) => e.object.status ?? {});
    assert.ok(statuses.some((s) => s.completionTime && s.succeeded === 1));
    assert.ok(statuses.some((s) => s.conditions?.some((c) => c.type === 'Failed' && c.reason === 'DeadlineExceeded')));
    assert.ok(proto.some((e) => e.object.spec?.suspend === true));
    assert.equal(proto[0]?.object.metadata?.annotations?.['mcp.test/note'], 'ünïcode ✓');
  });
});
