import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ControllerConfigSchema } from '../../../src/controller/config.js';
import { buildJob, RESTRICTED_CONTAINER_SECURITY } from '../../../src/controller/jobs/job-builder.js';
import { buildSidecars, cpuQuantity, memoryQuantity, sidecarName } from '../../../src/controller/jobs/sidecars.js';
import { parseMessage, type ValidationPolicy } from '../../../src/shared/contract/message.js';
import { parseConfig } from '../../../src/shared/settings.js';

const cfg = parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: 'kafka:9092', KAFKA_TOPIC: 'mcp-jobs', JOB_NAMESPACE: 'work', ALLOWED_IMAGES: 'mcp/*' });
const policy = {
  allowedCommands: cfg.ALLOWED_COMMANDS,
  secretsDir: cfg.SECRETS_DIR,
  maxMessageBytes: cfg.MAX_MESSAGE_BYTES,
  allowedImages: cfg.ALLOWED_IMAGES,
};
const seed = {
  type: 'docker',
  image: 'mcp/filesystem:latest',
  port: 8001,
  environment: { ALLOWED_DIRECTORIES: '/tmp' },
  command: ['python', '-m', 'mcp_filesystem'],
  resources: { memory_limit: '256m', cpu_limit: '0.5' },
  health_check: { path: '/health', interval: 30, timeout: 10 },
};
const messageOf = (mcpServers: Record<string, unknown>) =>
  parseMessage(Buffer.from(JSON.stringify({ jobID: 'j', jobType: 'server-init', payload: { mcpServers } })), policy);

describe('container servers as native sidecars', () => {
  it("makes the seed's example one init container that always restarts, probed, limited and restricted", () => {
    const { containers, volumes } = buildSidecars(messageOf({ MCP_FS: seed }).config.mcpServers, RESTRICTED_CONTAINER_SECURITY);
    assert.deepEqual(containers, [
      {
        name: 'mcp-server-0-mcp-fs',
        image: 'mcp/filesystem:latest',
        args: ['python', '-m', 'mcp_filesystem'],
        restartPolicy: 'Always',
        ports: [{ containerPort: 8001, protocol: 'TCP' }],
        env: [
          { name: 'ALLOWED_DIRECTORIES', value: '/tmp' },
          { name: 'PORT', value: '8001' },
        ],
        resources: { requests: { cpu: '500m', memory: '256Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
        startupProbe: { httpGet: { path: '/health', port: 8001 }, periodSeconds: 1, timeoutSeconds: 10, failureThreshold: 60 },
        readinessProbe: { httpGet: { path: '/health', port: 8001 }, periodSeconds: 30, timeoutSeconds: 10, failureThreshold: 3 },
        securityContext: RESTRICTED_CONTAINER_SECURITY,
        volumeMounts: [{ name: 'mcp-server-0-mcp-fs-tmp', mountPath: '/tmp' }],
      },
    ]);
    assert.deepEqual(volumes, [{ name: 'mcp-server-0-mcp-fs-tmp', emptyDir: { sizeLimit: '64Mi' } }]);
  });

  it('probes the port over TCP without a health check, and gives default resources without limits', () => {
    const { containers } = buildSidecars(messageOf({ a: { type: 'docker', image: 'mcp/a', port: 9000 } }).config.mcpServers, RESTRICTED_CONTAINER_SECURITY);
    const [c] = containers;
    assert.deepEqual(c!.startupProbe, { tcpSocket: { port: 9000 }, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 60 });
    assert.deepEqual(c!.readinessProbe, { tcpSocket: { port: 9000 }, periodSeconds: 10, timeoutSeconds: 1, failureThreshold: 3 });
    assert.deepEqual(c!.resources, { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } });
    assert.equal(c!.args, undefined, "no command keeps the image's own");
  });

  it('maps Docker sizes and CPU counts to Kubernetes quantities', () => {
    assert.equal(memoryQuantity('256m'), '256Mi');
    assert.equal(memoryQuantity('1g'), '1Gi');
    assert.equal(memoryQuantity('512K'), '512Ki');
    assert.equal(memoryQuantity('1.5g'), String(1.5 * 1024 ** 3));
    assert.equal(memoryQuantity('8000000'), '8000000');
    assert.equal(cpuQuantity('0.5'), '500m');
    assert.equal(cpuQuantity(2), '2000m');
    assert.equal(cpuQuantity('0.0001'), '1m');
  });

  it('names sidecars as DNS labels, unique by index whatever the server names are', () => {
    assert.equal(sidecarName(0, 'MariaDB_Server'), 'mcp-server-0-mariadb-server');
    assert.equal(sidecarName(3, '...'), 'mcp-server-3');
    assert.equal(sidecarName(1, 'x'.repeat(64)).length, 63);
    assert.match(sidecarName(1, 'x'.repeat(64)), /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  });

  it('puts the sidecars in the Job after the template’s own init containers, leaving stdio-only Jobs without any', () => {
    const at = { topic: 'mcp-jobs', partition: 0, offset: '5' };
    const msg = messageOf({ fs: seed, local: { command: 'node' }, b: { type: 'docker', image: 'mcp/b', port: 8002 } });
    const template = { spec: { template: { spec: { containers: [], initContainers: [{ name: 'setup', image: 'busybox' }] } } } };
    const pod = buildJob(at, msg, cfg, template).spec!.template.spec!;
    assert.deepEqual(
      pod.initContainers!.map((c) => [c.name, c.restartPolicy]),
      [
        ['setup', undefined],
        ['mcp-server-0-fs', 'Always'],
        ['mcp-server-1-b', 'Always'],
      ],
    );
    assert.ok(pod.volumes!.some((v) => v.name === 'mcp-server-1-b-tmp'));
    assert.equal(pod.automountServiceAccountToken, false, 'no sidecar gets a ServiceAccount token');
    const plain = buildJob(at, messageOf({ local: { command: 'node' } }), cfg).spec!.template.spec!;
    assert.equal(plain.initContainers, undefined);
  });

  it('gives a sidecar its secret references as optional secretKeyRef env, mounts the same keys for the job, and refuses a Secret the operator did not allow', () => {
    const withRefs: ValidationPolicy = { ...policy, allowedSecrets: ['mcp-ref-*'] };
    const server = { ...seed, environment: { API_KEY: 'secret_ref:mcp-ref-fs:API_KEY', MODE: 'ro' } };
    const msg = parseMessage(Buffer.from(JSON.stringify({ jobID: 'j', jobType: 'server-init', payload: { mcpServers: { fs: server } } })), withRefs);
    assert.deepEqual(msg.secretRefs, [{ secret: 'mcp-ref-fs', key: 'API_KEY' }]);
    const [sidecar] = buildSidecars(msg.config.mcpServers, RESTRICTED_CONTAINER_SECURITY).containers;
    assert.deepEqual(sidecar!.env, [
      { name: 'API_KEY', valueFrom: { secretKeyRef: { name: 'mcp-ref-fs', key: 'API_KEY', optional: true } } },
      { name: 'MODE', value: 'ro' },
      { name: 'PORT', value: '8001' },
    ]);
    const job = buildJob({ topic: 'mcp-jobs', partition: 0, offset: '7' }, msg, cfg);
    assert.ok(!JSON.stringify(job).includes('"value":"secret_ref:'), 'no reference travels as a literal value');
    const projected = job.spec!.template.spec!.volumes!.find((v) => v.projected)?.projected?.sources?.[0]?.secret;
    assert.deepEqual(projected?.items, [{ key: 'API_KEY', path: 'mcp-ref-fs/API_KEY' }]);
    assert.throws(
      () =>
        parseMessage(
          Buffer.from(
            JSON.stringify({ jobID: 'j', jobType: 'server-init', payload: { mcpServers: { fs: { ...seed, environment: { K: 'secret_ref:other:K' } } } } }),
          ),
          withRefs,
        ),
      (e: Error & { reason?: string }) => e.reason === 'secret-not-allowed' && /environment\.K/.test(e.message),
    );
    assert.throws(
      () =>
        parseMessage(
          Buffer.from(
            JSON.stringify({ jobID: 'j', jobType: 'server-init', payload: { mcpServers: { fs: { ...seed, environment: { NODE_OPTIONS: '--import=x' } } } } }),
          ),
          withRefs,
        ),
      (e: Error & { reason?: string }) => e.reason === 'env-key-not-allowed',
    );
  });
});
