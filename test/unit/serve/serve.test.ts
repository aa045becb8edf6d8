import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BlockList, isIPv4 } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { repoRoot } from '../../testbed/cache.js';
import { DlqHeader } from '../../../src/controller/reporting/dead-letter.js';
import { bearerMatches, parseTokenFile } from '../../../src/serve/auth.js';
import { serveConfig, serveInitOptions, servePolicy } from '../../../src/serve/config.js';
import { findDeadLetter } from '../../../src/serve/dead-letters.js';
import { jobBrief, jobStatus, podView } from '../../../src/serve/jobs.js';
import { TokenBucket } from '../../../src/serve/rate-limit.js';
import type { FetchedRecord } from '../../../src/shared/kafka/read-message.js';
import type { TerminalError } from '../../../src/shared/errors.js';
import { parseMessage } from '../../../src/shared/contract/message.js';

describe('serve: bearer tokens', () => {
  const token = 'a'.repeat(20) + 'XYZ';
  it('accepts exactly the token, in the Bearer scheme, and nothing else', () => {
    assert.equal(bearerMatches(`Bearer ${token}`, token), true);
    assert.equal(bearerMatches(`bearer ${token}`, token), true, 'the scheme is case-insensitive');
    assert.equal(bearerMatches(undefined, token), false);
    assert.equal(bearerMatches('', token), false);
    assert.equal(bearerMatches(token, token), false, 'no scheme');
    assert.equal(bearerMatches(`Basic ${token}`, token), false);
    assert.equal(bearerMatches(`Bearer ${token}x`, token), false);
    assert.equal(bearerMatches(`Bearer ${token.slice(1)}`, token), false);
    assert.equal(bearerMatches('Bearer ', ''), false, 'an empty token never matches');
  });
  it('reads a token file, refusing one too short or with whitespace inside', () => {
    assert.equal(parseTokenFile(`  ${token}\n`), token);
    assert.throws(() => parseTokenFile('short\n'), /fewer than 16/);
    assert.throws(() => parseTokenFile('a'.repeat(10) + ' ' + 'b'.repeat(10)), /whitespace/);
  });
});

describe('serve: the rate limit of submit', () => {
  it('allows a burst, then the rate, and says when the next call may pass', () => {
    let now = 0;
    const b = new TokenBucket(2, 3, () => now);
    assert.deepEqual([b.take().ok, b.take().ok, b.take().ok], [true, true, true]);
    const refused = b.take();
    assert.deepEqual(refused, { ok: false, retryAfterMs: 500 });
    now = 500;
    assert.equal(b.take().ok, true);
    assert.equal(b.take().ok, false);
    now = 10_000;
    assert.deepEqual([b.take().ok, b.take().ok, b.take().ok, b.take().ok], [true, true, true, false], 'refills up to the burst, no more');
  });
});

describe('serve: settings and policy', () => {
  it("rebuilds the controller's policy, image allow-list and deadline included", () => {
    const cfg = serveConfig(
      {},
      { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 't', SERVE_TOKEN_FILE: '/x', ALLOWED_IMAGES: 'reg/mcp/*', JOB_ACTIVE_DEADLINE_SECONDS: '120' },
    );
    assert.equal(cfg.DLQ_TOPIC, 't.dlq');
    const p = servePolicy(cfg);
    assert.deepEqual(p.allowedImages, ['reg/mcp/*']);
    assert.deepEqual(p.deadline, { jobMs: 120_000, serverTimeoutMs: 30_000 });
  });
  it("gives server_initialize the whole policy: the API server, the configured remote hosts and cluster ranges, the Secret references' folder", () => {
    const cfg = serveConfig(
      {},
      {
        KAFKA_BROKERS: 'k:9092',
        KAFKA_TOPIC: 't',
        SERVE_TOKEN_FILE: '/x',
        KUBERNETES_SERVICE_HOST: '10.96.0.1',
        ALLOWED_REMOTE_HOSTS: 'mcp.internal',
        CLUSTER_SERVICE_CIDR: '10.96.0.0/12',
        ALLOWED_COMMAND_PATTERNS: 'node /srv/a.js',
        SECRET_REFS_DIR: '/refs',
      },
    );
    const policy = servePolicy(cfg);
    assert.deepEqual(policy.remote, { allow: ['mcp.internal'], serviceCidrs: ['10.96.0.0/12'], podCidrs: [], apiServerHosts: ['10.96.0.1'] });
    const opts = serveInitOptions(cfg, policy);
    assert.equal(opts.policy, policy);
    assert.equal(opts.secretRefsDir, '/refs');
    assert.deepEqual(opts.policy?.commandPatterns, ['node /srv/a.js']);
  });
  it("refuses what the controller refuses: the Secrets the deployment gives Jobs, and servers that cannot finish within the template's deadline", () => {
    const env = { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 't', SERVE_TOKEN_FILE: '/x', JOB_ALLOWED_SECRETS: 'mcp-*', JOB_KAFKA_SECRET_NAME: 'mcp-job-kafka' };
    const cfg = serveConfig({}, env);
    const template: k8s.V1Job = {
      spec: { activeDeadlineSeconds: 40, template: { spec: { containers: [], volumes: [{ name: 'v', secret: { secretName: 'mcp-tls' } }] } } },
    };
    const p = servePolicy(cfg, template);
    assert.deepEqual(p.reservedSecrets, ['mcp-job-kafka', 'mcp-tls']);
    assert.deepEqual(p.deadline, { jobMs: 40_000, serverTimeoutMs: 30_000 });
    const message = (payload: unknown) => Buffer.from(JSON.stringify({ jobID: 'j', jobType: 'server-init', payload }));
    const secretRef = { mcpServers: { a: { command: 'node', args: ['a.js'], env: { T: 'secret_ref:mcp-job-kafka:password' } } } };
    assert.throws(
      () => parseMessage(message(secretRef), p),
      (e: TerminalError) => e.reason === 'secret-not-allowed',
    );
    assert.throws(
      () => parseMessage(message({ mcpServers: { a: { command: 'node', args: ['a.js'] } } }), p),
      (e: TerminalError) => e.reason === 'deadline-too-short',
    );
  });
  it('requires a token file', () => {
    assert.throws(() => serveConfig({}, { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 't' }), /SERVE_TOKEN_FILE/);
  });
});

describe('serve: views of Jobs and pods', () => {
  const job = (conditions: k8s.V1JobCondition[], extra: Partial<k8s.V1JobStatus> = {}): k8s.V1Job => ({
    metadata: {
      name: 'mcp-t-0-5',
      creationTimestamp: new Date('2026-11-23T10:00:00Z'),
      annotations: { 'mcp-job-controller.io/job-id': 'j1', 'mcp-job-controller.io/partition': '0', 'mcp-job-controller.io/offset': '5' },
    },
    status: { conditions, ...extra },
  });
  it('reads succeeded and failed from the conditions, and running from the pod', () => {
    assert.equal(jobStatus(job([{ type: 'Complete', status: 'True' }])), 'succeeded');
    assert.equal(jobStatus(job([{ type: 'Failed', status: 'True' }])), 'failed');
    assert.equal(jobStatus(job([])), 'pending');
    assert.equal(jobStatus(job([]), { status: { phase: 'Running' } }), 'running');
    assert.deepEqual(jobBrief(job([{ type: 'Complete', status: 'True' }], { completionTime: new Date('2026-11-23T10:00:05Z') })), {
      name: 'mcp-t-0-5',
      jobID: 'j1',
      status: 'succeeded',
      partition: 0,
      offset: '5',
      created: '2026-11-23T10:00:00.000Z',
      finished: '2026-11-23T10:00:05.000Z',
    });
  });
  it("summarises the pod: the job container's exit and summary, and each sidecar's state", () => {
    const pod: k8s.V1Pod = {
      metadata: { name: 'p' },
      spec: { containers: [], initContainers: [{ name: 'mcp-server-0-fs', restartPolicy: 'Always' }, { name: 'setup' }] },
      status: {
        phase: 'Succeeded',
        containerStatuses: [
          { name: 'job', ready: false, restartCount: 0, image: '', imageID: '', state: { terminated: { exitCode: 0, message: '{"status":"initialized"}' } } },
        ],
        initContainerStatuses: [
          { name: 'mcp-server-0-fs', ready: false, restartCount: 0, image: '', imageID: '', state: { terminated: { exitCode: 0 } } },
          { name: 'setup', ready: false, restartCount: 0, image: '', imageID: '', state: { terminated: { exitCode: 0 } } },
        ],
      },
    };
    assert.deepEqual(podView(pod), {
      name: 'p',
      phase: 'Succeeded',
      exitCode: 0,
      summary: { status: 'initialized' },
      sidecars: [{ name: 'mcp-server-0-fs', ready: false, exitCode: 0 }],
    });
    const crashed = {
      ...pod,
      status: { containerStatuses: [{ ...pod.status!.containerStatuses![0]!, state: { terminated: { exitCode: 1, message: 'Error: boom' } } }] },
    };
    assert.deepEqual(podView(crashed), { name: 'p', exitCode: 1, message: 'Error: boom' });
  });
});

describe('serve: finding a message’s dead-letter record', () => {
  it('reads at most `limit` records per partition, newest first, and finds the record of the message', async () => {
    const rec = (offset: number, src: string, reason = 'invalid-json'): FetchedRecord => ({
      offset: String(offset),
      key: null,
      value: null,
      timestamp: '0',
      headers: {
        [DlqHeader.topic]: 't',
        [DlqHeader.partition]: src.split('/')[0]!,
        [DlqHeader.offset]: src.split('/')[1]!,
        [DlqHeader.reason]: reason,
        [DlqHeader.at]: `2026-11-23T10:00:0${offset % 10}Z`,
      },
    });
    const logs: Record<number, FetchedRecord[]> = { 0: [rec(0, '0/1'), rec(1, '0/2'), rec(2, '1/7', 'command-not-allowed')], 1: [rec(0, '1/9')] };
    const read: string[] = [];
    const src = {
      offsets: async () => [
        { partition: 0, low: '0', high: '3' },
        { partition: 1, low: '0', high: '1' },
      ],
      range: async function* (_t: string, p: number, from: bigint, to: bigint) {
        read.push(`${p}:${from}-${to}`);
        for (const r of logs[p]!) if (BigInt(r.offset) >= from && BigInt(r.offset) < to) yield r;
      },
    };
    const hit = await findDeadLetter(src, 't.dlq', { topic: 't', partition: 1, offset: '7' }, 2);
    assert.deepEqual(read, ['0:1-3', '1:0-1']);
    assert.equal(hit.scanned, 3);
    assert.deepEqual(hit.found, { reason: 'command-not-allowed', at: '2026-11-23T10:00:02Z', record: { topic: 't.dlq', partition: 0, offset: '2' } });
    const miss = await findDeadLetter(src, 't.dlq', { topic: 't', partition: 0, offset: '1' }, 2);
    assert.equal(miss.found, undefined, 'older than the window: not found');
  });
});

describe("serve: the pod's egress policy", () => {
  const [np] = k8s.loadAllYaml(readFileSync(join(repoRoot, 'k8s', 'components', 'serve', 'networkpolicy.yaml'), 'utf8')) as k8s.V1NetworkPolicy[];
  /** Whether a rule lets the pod open TCP to `ip`:`port`. */
  const allows = (ip: string, port: number): boolean =>
    np!.spec!.egress!.some((rule) => {
      if (!(rule.ports ?? []).some((p) => p.protocol === 'TCP' && p.port === port)) return false;
      if (!rule.to) return true;
      return rule.to.some((peer) => {
        if (!peer.ipBlock) return false;
        const family = isIPv4(ip) ? 'ipv4' : 'ipv6';
        const [net, bits] = peer.ipBlock.cidr.split('/');
        const inside = new BlockList();
        inside.addSubnet(net!, Number(bits), isIPv4(net!) ? 'ipv4' : 'ipv6');
        const out = new BlockList();
        for (const e of peer.ipBlock.except ?? []) {
          const [n, b] = e.split('/');
          out.addSubnet(n!, Number(b), isIPv4(n!) ? 'ipv4' : 'ipv6');
        }
        return inside.check(ip, family) && !out.check(ip, family);
      });
    });

  it('opens no rule to every address: each names its peers, as the README says (DNS, the brokers, the API server)', () => {
    for (const rule of np!.spec!.egress!) assert.ok(rule.to?.length, `rule for ports ${JSON.stringify(rule.ports)} names its peers`);
  });

  it("lets the pod reach an API server endpoint on a private address, and no public address or metadata service on the API server's ports", () => {
    for (const ip of ['10.0.0.1', '172.18.0.2', '192.168.1.10', '100.64.0.1', 'fd00::1']) assert.ok(allows(ip, 443) || allows(ip, 6443), ip);
    for (const ip of ['1.1.1.1', '8.8.8.8', '2606:4700::1111', '169.254.169.254', '100.100.100.200']) {
      assert.ok(!allows(ip, 443) && !allows(ip, 6443), ip);
    }
  });
});
