import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { ControllerConfigSchema } from '../../../src/controller/config.js';
import { parseConfig } from '../../../src/shared/settings.js';
import { buildJob, traceContextOf } from '../../../src/controller/jobs/job-builder.js';
import { isSameMessage } from '../../../src/shared/contract/identity.js';
import { parseMessage } from '../../../src/shared/contract/message.js';

const cfg = parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: 'kafka:9092', KAFKA_TOPIC: 'mcp-jobs', JOB_NAMESPACE: 'work' });
const value = Buffer.from(
  JSON.stringify({ jobID: 'job 123/α', jobType: 'server-init', payload: { mcpServers: { a: { command: 'npx', args: ['-y', 'x'] } } } }),
);
const msg = parseMessage(value, { allowedCommands: cfg.ALLOWED_COMMANDS, secretsDir: cfg.SECRETS_DIR, maxMessageBytes: cfg.MAX_MESSAGE_BYTES });
const at = { topic: 'mcp-jobs', partition: 2, offset: '17' };

describe('buildJob', () => {
  it('builds the whole Job for a message from its coordinates and the settings', () => {
    const labels = {
      'app.kubernetes.io/name': 'mcp-job',
      'app.kubernetes.io/component': 'server-init',
      'app.kubernetes.io/managed-by': 'mcp-job-controller',
      'app.kubernetes.io/part-of': 'mcp-job-controller',
      'mcp-job-controller.io/consumer-group': 'mcp-job-controller',
      'mcp-job-controller.io/topic': 'mcp-jobs',
      'mcp-job-controller.io/partition': '2',
      'mcp-job-controller.io/job-id': 'job-123',
    };
    const annotations = {
      'mcp-job-controller.io/topic': 'mcp-jobs',
      'mcp-job-controller.io/partition': '2',
      'mcp-job-controller.io/offset': '17',
      'mcp-job-controller.io/job-id': 'job 123/α',
      'mcp-job-controller.io/job-type': 'server-init',
      'mcp-job-controller.io/checksum': msg.checksum,
      'mcp-job-controller.io/consumer-group': 'mcp-job-controller',
    };
    const expected: k8s.V1Job = {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'mcp-mcp-jobs-2-17', namespace: 'work', labels, annotations },
      spec: {
        completions: 1,
        parallelism: 1,
        backoffLimit: 2,
        activeDeadlineSeconds: 600,
        podFailurePolicy: {
          rules: [
            { action: 'FailJob', onExitCodes: { containerName: 'job', operator: 'In', values: [65] } },
            { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
          ],
        },
        template: {
          metadata: { labels, annotations },
          spec: {
            restartPolicy: 'Never',
            automountServiceAccountToken: false,
            enableServiceLinks: false,
            securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
            volumes: [{ name: 'tmp', emptyDir: { sizeLimit: '256Mi' } }],
            containers: [
              {
                name: 'job',
                image: 'mcp-job-controller/job:dev',
                env: [
                  { name: 'KAFKA_BROKERS', value: 'kafka:9092' },
                  { name: 'KAFKA_TOPIC', value: 'mcp-jobs' },
                  { name: 'KAFKA_PARTITION', value: '2' },
                  { name: 'KAFKA_OFFSET', value: '17' },
                  { name: 'MCP_MESSAGE_SHA256', value: msg.checksum },
                  { name: 'MCP_JOB_ID', value: 'job 123/α' },
                  { name: 'ALLOWED_COMMANDS', value: 'node,npx,uv,uvx,python,python3' },
                  { name: 'SECRETS_DIR', value: '/var/run/mcp-secrets' },
                  { name: 'MAX_MESSAGE_BYTES', value: '1048576' },
                  { name: 'MCP_INIT_TIMEOUT_MS', value: '30000' },
                  { name: 'MCP_PROTOCOL', value: 'auto' },
                  { name: 'TERMINATION_MESSAGE_PATH', value: '/dev/termination-log' },
                  { name: 'HOME', value: '/tmp' },
                  { name: 'LOG_LEVEL', value: 'info' },
                ],
                volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
                resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
                securityContext: {
                  allowPrivilegeEscalation: false,
                  capabilities: { drop: ['ALL'] },
                  readOnlyRootFilesystem: true,
                  runAsNonRoot: true,
                  seccompProfile: { type: 'RuntimeDefault' },
                },
                terminationMessagePath: '/dev/termination-log',
                terminationMessagePolicy: 'FallbackToLogsOnError',
              },
            ],
          },
        },
      },
    };
    assert.deepEqual(buildJob(at, msg, cfg), expected);
  });

  it('is pure: the same message gives an equal Job every time', () => {
    assert.deepEqual(buildJob(at, msg, cfg), buildJob(at, msg, cfg));
  });

  it('keeps what the template sets, but always owns identity, env coordinates and restartPolicy', () => {
    const template: k8s.V1Job = {
      metadata: { labels: { team: 'ai' }, annotations: { note: 'x' } },
      spec: {
        backoffLimit: 5,
        template: {
          spec: {
            restartPolicy: 'OnFailure',
            serviceAccountName: 'mcp-runner',
            tolerations: [{ key: 'gpu', operator: 'Exists' }],
            containers: [
              {
                name: 'job',
                image: 'reg/job:1',
                env: [
                  { name: 'KAFKA_OFFSET', value: '999' },
                  { name: 'EXTRA', value: '1' },
                ],
                resources: { limits: { memory: '1Gi' } },
              },
            ],
          },
        },
      },
    };
    const job = buildJob(at, msg, { ...cfg, JOB_SECRET_NAME: 'mcp-secrets' }, template);
    const pod = job.spec!.template.spec!;
    const c = pod.containers[0]!;
    assert.equal(job.metadata!.labels!.team, 'ai');
    assert.equal(job.metadata!.annotations!.note, 'x');
    assert.equal(job.spec!.backoffLimit, 5);
    assert.equal(pod.restartPolicy, 'Never');
    assert.equal(pod.serviceAccountName, 'mcp-runner');
    assert.deepEqual(pod.tolerations, [{ key: 'gpu', operator: 'Exists' }]);
    assert.equal(c.image, 'reg/job:1');
    assert.deepEqual(c.resources, { limits: { memory: '1Gi' } });
    assert.equal(c.env!.filter((e) => e.name === 'KAFKA_OFFSET').length, 1);
    assert.equal(c.env!.find((e) => e.name === 'KAFKA_OFFSET')!.value, '17');
    assert.equal(c.env!.find((e) => e.name === 'EXTRA')!.value, '1');
    assert.deepEqual(
      c.volumeMounts!.find((m) => m.name === 'mcp-secrets'),
      { name: 'mcp-secrets', mountPath: '/var/run/mcp-secrets', readOnly: true },
    );
    assert.deepEqual(
      pod.volumes!.find((v) => v.name === 'mcp-secrets'),
      { name: 'mcp-secrets', secret: { secretName: 'mcp-secrets', defaultMode: 0o440 } },
    );
  });
});

describe('buildJob with a shared package cache', () => {
  const env = (job: k8s.V1Job) => job.spec!.template.spec!.containers[0]!.env!;
  it('mounts PACKAGE_CACHE_CLAIM read-write at the cache folder and tells the job where it is', () => {
    const job = buildJob(at, msg, { ...cfg, PACKAGE_CACHE_CLAIM: 'mcp-package-cache' });
    const pod = job.spec!.template.spec!;
    assert.deepEqual(
      pod.volumes!.find((v) => v.name === 'mcp-package-cache'),
      { name: 'mcp-package-cache', persistentVolumeClaim: { claimName: 'mcp-package-cache' } },
    );
    assert.deepEqual(
      pod.containers[0]!.volumeMounts!.find((m) => m.name === 'mcp-package-cache'),
      { name: 'mcp-package-cache', mountPath: '/var/cache/mcp-packages' },
    );
    assert.equal(env(job).find((e) => e.name === 'PACKAGE_CACHE_DIR')!.value, '/var/cache/mcp-packages');
  });

  it("uses a volume the template mounts at the cache folder (a hostPath, say) instead of adding the claim's", () => {
    const template: k8s.V1Job = {
      spec: {
        template: {
          spec: {
            volumes: [{ name: 'node-cache', hostPath: { path: '/var/cache/mcp', type: 'DirectoryOrCreate' } }],
            containers: [{ name: 'job', volumeMounts: [{ name: 'node-cache', mountPath: '/var/cache/mcp-packages' }] }],
          },
        },
      },
    };
    const job = buildJob(at, msg, { ...cfg, PACKAGE_CACHE_CLAIM: 'mcp-package-cache' }, template);
    const pod = job.spec!.template.spec!;
    assert.deepEqual(
      pod.volumes!.map((v) => v.name),
      ['node-cache', 'tmp'],
    );
    assert.equal(env(job).find((e) => e.name === 'PACKAGE_CACHE_DIR')!.value, '/var/cache/mcp-packages');
  });

  it('changes nothing without the setting', () => {
    const job = buildJob(at, msg, cfg);
    assert.equal(
      job.spec!.template.spec!.volumes!.some((v) => v.persistentVolumeClaim),
      false,
    );
    assert.equal(
      env(job).some((e) => e.name === 'PACKAGE_CACHE_DIR'),
      false,
    );
  });
});

describe('isSameMessage', () => {
  it('recognises the Job made for the same coordinates and bytes, and only that one', () => {
    const job = buildJob(at, msg, cfg);
    const group = cfg.KAFKA_CONSUMER_GROUP;
    assert.equal(isSameMessage(job, at, msg.checksum, group), true);
    assert.equal(isSameMessage(job, { ...at, offset: '18' }, msg.checksum, group), false);
    assert.equal(isSameMessage(job, at, '0'.repeat(64), group), false);
    assert.equal(isSameMessage(job, at, msg.checksum, 'another-group'), false, 'a message is identified by its consumer group too');
  });
});

describe('buildJob for a replay', () => {
  it('keeps the name and provenance of the source message but points the job at the bytes to read', () => {
    const replayed = buildJob(at, msg, cfg, {}, { readFrom: { topic: 'mcp-jobs.dlq', partition: 0, offset: '3' }, count: 2 });
    const plain = buildJob(at, msg, cfg);
    assert.equal(replayed.metadata!.name, plain.metadata!.name);
    assert.equal(replayed.metadata!.annotations!['mcp-job-controller.io/offset'], '17');
    assert.equal(replayed.metadata!.annotations!['mcp-job-controller.io/replay-of'], 'mcp-jobs.dlq/0/3');
    assert.equal(replayed.metadata!.annotations!['mcp-job-controller.io/replay-count'], '2');
    const env = Object.fromEntries(replayed.spec!.template.spec!.containers[0]!.env!.map((e) => [e.name, e.value]));
    assert.deepEqual([env.KAFKA_TOPIC, env.KAFKA_PARTITION, env.KAFKA_OFFSET, env.MCP_MESSAGE_SHA256], ['mcp-jobs.dlq', '0', '3', msg.checksum]);
  });
});

describe('trace context', () => {
  it("passes a record's W3C traceparent and tracestate to the job as TRACEPARENT and TRACESTATE", () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const trace = traceContextOf({ traceparent: Buffer.from(tp), tracestate: 'congo=t61rcWkgMzE' });
    const env = buildJob(at, msg, cfg, {}, undefined, trace).spec!.template.spec!.containers[0]!.env!;
    assert.equal(env.find((e) => e.name === 'TRACEPARENT')?.value, tp);
    assert.equal(env.find((e) => e.name === 'TRACESTATE')?.value, 'congo=t61rcWkgMzE');
  });

  it('drops a malformed traceparent instead of failing the message', () => {
    assert.deepEqual(traceContextOf({ traceparent: 'not-a-trace', tracestate: 'x=1' }), {});
    assert.deepEqual(traceContextOf(undefined), {});
  });
});
