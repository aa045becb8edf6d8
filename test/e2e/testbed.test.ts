import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { freshNamespace, jobOutcome, kubeConfig, kubectl, waitFor } from '../helpers.js';

function shellJob(name: string, script: string, extra: Partial<k8s.V1JobSpec> = {}): k8s.V1Job {
  return {
    metadata: { name },
    spec: {
      backoffLimit: 3,
      ...extra,
      template: {
        spec: {
          restartPolicy: 'Never',
          containers: [
            {
              name: 'main',
              image: 'busybox:1.36',
              command: ['sh', '-c', script],
              env: [{ name: 'TERM_LOG', value: '/dev/termination-log' }],
            },
          ],
        },
      },
    },
  };
}

describe('the test bed cluster', () => {
  const kc = kubeConfig();
  const batch = kc.makeApiClient(k8s.BatchV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  let ns: Awaited<ReturnType<typeof freshNamespace>>;
  before(async () => {
    ns = await freshNamespace(kc);
  });
  after(async () => {
    await ns.remove();
  });

  it('runs a Job to Complete through the Job controller, scheduler and node, and serves its logs', async () => {
    await batch.createNamespacedJob({ namespace: ns.name, body: shellJob('hello', 'echo hello from the test bed; echo all good > "$TERM_LOG"') });
    const job = await waitFor(
      async () => {
        const j = await batch.readNamespacedJob({ name: 'hello', namespace: ns.name });
        return jobOutcome(j) ? j : undefined;
      },
      { timeoutMs: 60_000, description: 'Job hello to finish' },
    );
    assert.equal(jobOutcome(job), 'Complete');
    const pods = await core.listNamespacedPod({ namespace: ns.name, labelSelector: 'job-name=hello' });
    const term = pods.items[0]?.status?.containerStatuses?.[0]?.state?.terminated;
    assert.equal(term?.exitCode, 0);
    assert.equal(term?.message, 'all good\n');
    assert.match(kubectl(['logs', `job/hello`, '-n', ns.name]), /hello from the test bed/);
  });

  it('fails a Job at once when its process exits with a code a podFailurePolicy rule names', async () => {
    await batch.createNamespacedJob({
      namespace: ns.name,
      body: shellJob('exit3', 'echo broken for good > "$TERM_LOG"; exit 3', {
        backoffLimit: 5,
        podFailurePolicy: { rules: [{ action: 'FailJob', onExitCodes: { containerName: 'main', operator: 'In', values: [3] } }] },
      }),
    });
    const job = await waitFor(
      async () => {
        const j = await batch.readNamespacedJob({ name: 'exit3', namespace: ns.name });
        return jobOutcome(j) ? j : undefined;
      },
      { timeoutMs: 60_000, description: 'Job exit3 to finish' },
    );
    assert.equal(jobOutcome(job), 'Failed');
    const failed = job.status?.conditions?.find((c) => c.type === 'Failed');
    assert.equal(failed?.reason, 'PodFailurePolicy');
    assert.equal(job.status?.failed, 1, 'no retry after a FailJob rule matched');
    const pods = await core.listNamespacedPod({ namespace: ns.name, labelSelector: 'job-name=exit3' });
    assert.equal(pods.items[0]?.status?.containerStatuses?.[0]?.state?.terminated?.message, 'broken for good\n');
  });

  it('stops the process and removes the pod when a running Job is deleted', async () => {
    await batch.createNamespacedJob({ namespace: ns.name, body: shellJob('sleeper', 'sleep 300') });
    await waitFor(
      async () => {
        const pods = await core.listNamespacedPod({ namespace: ns.name, labelSelector: 'job-name=sleeper' });
        return pods.items[0]?.status?.phase === 'Running';
      },
      { timeoutMs: 60_000, description: 'sleeper pod Running' },
    );
    await batch.deleteNamespacedJob({ name: 'sleeper', namespace: ns.name, propagationPolicy: 'Foreground' });
    await waitFor(
      async () => {
        const pods = await core.listNamespacedPod({ namespace: ns.name, labelSelector: 'job-name=sleeper' });
        return pods.items.length === 0;
      },
      { timeoutMs: 60_000, description: 'sleeper pod gone' },
    );
  });

  it('rejects a privileged pod in a namespace that enforces the restricted PodSecurity profile', async () => {
    const restricted = await freshNamespace(kc, { 'pod-security.kubernetes.io/enforce': 'restricted' }, 'restricted');
    try {
      await assert.rejects(
        core.createNamespacedPod({
          namespace: restricted.name,
          body: {
            metadata: { name: 'privileged' },
            spec: { containers: [{ name: 'c', image: 'busybox:1.36', command: ['true'], securityContext: { privileged: true } }] },
          },
        }),
        (err: k8s.ApiException<string>) => {
          assert.equal(err.code, 403);
          assert.match(JSON.parse(String(err.body)).message, /violates PodSecurity "restricted:latest": privileged/);
          return true;
        },
      );
    } finally {
      await restricted.remove();
    }
  });

  it('denies a ServiceAccount token a request its RBAC does not grant', async () => {
    await core.createNamespacedServiceAccount({ namespace: ns.name, body: { metadata: { name: 'nobody' } } });
    const tr = await core.createNamespacedServiceAccountToken({
      name: 'nobody',
      namespace: ns.name,
      body: { spec: { audiences: [], expirationSeconds: 600 } },
    });
    const token = tr.status?.token;
    assert.ok(token, 'the TokenRequest API issued a token');
    const sa = new k8s.KubeConfig();
    const cluster = kc.getCurrentCluster()!;
    sa.loadFromOptions({
      clusters: [cluster],
      users: [{ name: 'nobody', token }],
      contexts: [{ name: 'sa', cluster: cluster.name, user: 'nobody' }],
      currentContext: 'sa',
    });
    const asSa = sa.makeApiClient(k8s.BatchV1Api);
    await assert.rejects(asSa.listNamespacedJob({ namespace: ns.name }), (err: k8s.ApiException<string>) => {
      assert.equal(err.code, 403);
      assert.match(JSON.parse(String(err.body)).message, new RegExp(`"system:serviceaccount:${ns.name}:nobody" cannot list resource "jobs"`));
      return true;
    });
  });
});
