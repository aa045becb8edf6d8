import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { brokers, freshNamespace, freshTopic, kubeConfig, uniqueName, useKafka, waitFor } from '../helpers.js';
import { applyControllerRbac, ControllerProcess, FIXTURE, serviceAccountKubeconfig } from '../support.js';
import { repoRoot } from '../testbed/cache.js';
import { ensureInspector } from '../testbed/inspector.js';

const SERVE = join(repoRoot, 'dist', 'serve', 'main.js');
const run = promisify(execFile);
const SUBMIT_BURST = 3;

/** Creates the ServiceAccount, Role and RoleBinding of k8s/components/serve in `namespace`. */
async function applyServeRbac(kc: k8s.KubeConfig, namespace: string): Promise<void> {
  const client = k8s.KubernetesObjectApi.makeApiClient(kc);
  for (const file of ['serviceaccount.yaml', 'role.yaml', 'rolebinding.yaml']) {
    for (const obj of k8s.loadAllYaml(readFileSync(join(repoRoot, 'k8s', 'components', 'serve', file), 'utf8')) as k8s.KubernetesObject[]) {
      obj.metadata = { ...obj.metadata, namespace };
      const rb = obj as k8s.V1RoleBinding;
      if (obj.kind === 'RoleBinding') rb.subjects = rb.subjects?.map((s) => ({ ...s, namespace }));
      await client.create(obj);
    }
  }
}

/** `serve` as a local process; resolves its URL once it listens. */
async function startServe(env: Record<string, string>): Promise<{ url: string; child: ChildProcess; logs: string[] }> {
  const child = spawn(process.execPath, [SERVE], {
    env: { PATH: process.env.PATH, HOME: tmpdir(), LOG_LEVEL: 'info', SERVE_PORT: '0', SERVE_HOST: '127.0.0.1', ...env },
  });
  const logs: string[] = [];
  const onData = (c: Buffer) => logs.push(...c.toString().split('\n').filter(Boolean));
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const url = await waitFor(() => logs.map((l) => /"msg":"serving MCP"/.test(l) && (JSON.parse(l) as { url: string }).url).find(Boolean), {
    timeoutMs: 30_000,
    description: `serve to listen; logs: ${logs.slice(-5).join('\n')}`,
  });
  return { url: url as string, child, logs };
}

describe('serve: the MCP front door over Streamable HTTP', () => {
  const kc = kubeConfig();
  const { admin, producer } = useKafka();
  const token = randomBytes(24).toString('hex');
  let ns: Awaited<ReturnType<typeof freshNamespace>>;
  let topic: string;
  let controller: ControllerProcess;
  let serve: Awaited<ReturnType<typeof startServe>>;
  let client: Client;

  const connect = async (auth = token, mode: 'legacy' | 'auto' | { pin: '2026-07-28' } = 'auto') => {
    const c = new Client({ name: 'serve-e2e', version: '1.0.0' }, { versionNegotiation: { mode } });
    await c.connect(new StreamableHTTPClientTransport(new URL(serve.url), { requestInit: { headers: { Authorization: `Bearer ${auth}` } } }));
    return c;
  };
  const call = async (name: string, args: Record<string, unknown>, c = client) => c.callTool({ name, arguments: args });
  const topicEnd = async () => (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + BigInt(p.high), 0n);

  before(async () => {
    ns = await freshNamespace(kc, { 'pod-security.kubernetes.io/enforce': 'restricted' }, 'serve');
    topic = await freshTopic(admin, 2, 'serve');
    await applyControllerRbac(kc, ns.name);
    await applyServeRbac(kc, ns.name);
    controller = new ControllerProcess({
      KUBECONFIG: await serviceAccountKubeconfig(kc, ns.name, 'mcp-job-controller'),
      KAFKA_BROKERS: brokers().join(','),
      KAFKA_TOPIC: topic,
      KAFKA_CONSUMER_GROUP: uniqueName('serve'),
      JOB_NAMESPACE: ns.name,
      METRICS_PORT: '0',
    }).start();
    const dir = mkdtempSync(join(tmpdir(), 'serve-token-'));
    writeFileSync(join(dir, 'token'), `${token}\n`);
    serve = await startServe({
      KUBECONFIG: await serviceAccountKubeconfig(kc, ns.name, 'mcp-job-serve'),
      KAFKA_BROKERS: brokers().join(','),
      KAFKA_TOPIC: topic,
      JOB_NAMESPACE: ns.name,
      SERVE_TOKEN_FILE: join(dir, 'token'),
      SUBMIT_RATE_PER_SECOND: '0.001',
      SUBMIT_BURST: String(SUBMIT_BURST),
      // server_initialize runs stdio servers in serve's pod only when the command line is named.
      ALLOWED_COMMAND_PATTERNS: `node ${FIXTURE}`,
    });
    await controller.ready();
    client = await connect();
  });
  after(async () => {
    await client?.close().catch(() => undefined);
    serve?.child.kill('SIGTERM');
    await controller?.kill();
    await ns.remove();
  });

  it('offers four tools, each with an input and an output schema, to 2025 and 2026-07-28 clients alike', async () => {
    for (const mode of ['legacy', { pin: '2026-07-28' }] as const) {
      const c = await connect(token, mode);
      try {
        const { tools } = await c.listTools();
        assert.deepEqual(tools.map((t) => t.name).sort(), ['get_job', 'list_jobs', 'server_initialize', 'submit']);
        for (const t of tools) assert.ok(t.inputSchema && t.outputSchema, `${t.name} has both schemas`);
        assert.equal(c.getNegotiatedProtocolVersion()?.startsWith('2026') ?? false, typeof mode === 'object', JSON.stringify(mode));
      } finally {
        await c.close();
      }
    }
  });

  it("limits the serve pod's egress with a NetworkPolicy the API server accepts, aimed at the serve Deployment's pods", async () => {
    const dir = join(repoRoot, 'k8s', 'components', 'serve');
    const [np] = k8s.loadAllYaml(readFileSync(join(dir, 'networkpolicy.yaml'), 'utf8')) as k8s.V1NetworkPolicy[];
    const [dep] = k8s.loadAllYaml(readFileSync(join(dir, 'deployment.yaml'), 'utf8')) as k8s.V1Deployment[];
    const created = await kc.makeApiClient(k8s.NetworkingV1Api).createNamespacedNetworkPolicy({ namespace: ns.name, body: np! });
    assert.deepEqual(created.spec?.policyTypes, ['Egress']);
    const podLabels = dep!.spec!.template.metadata!.labels!;
    for (const [k, v] of Object.entries(created.spec!.podSelector!.matchLabels!)) assert.equal(podLabels[k], v, `serve pods carry ${k}=${v}`);
    const ports = created.spec!.egress!.flatMap((r) => (r.ports ?? []).map((p) => p.port));
    assert.deepEqual(
      [...ports].sort((a, b) => Number(a) - Number(b)),
      [53, 53, 443, 6443, 9092, 9093],
      'DNS, the brokers and the API server only',
    );
    for (const rule of created.spec!.egress!) assert.ok(rule.to?.length, `the rule for ${JSON.stringify(rule.ports)} names its peers`);
  });

  it('refuses a missing or wrong token with 401, and answers /healthz without one', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} });
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
    assert.equal((await fetch(serve.url, { method: 'POST', headers, body })).status, 401);
    const wrong = await fetch(serve.url, { method: 'POST', headers: { ...headers, Authorization: `Bearer ${token.slice(0, -1)}x` }, body });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers.get('www-authenticate') ?? '', /^Bearer/);
    await assert.rejects(connect('not-the-token'), /401|Unauthorized/);
    assert.equal((await fetch(serve.url.replace('/mcp', '/healthz'))).status, 200);
  });

  it('runs server_initialize on a real stdio server and returns its tools', async () => {
    const r = await call('server_initialize', { serverName: 'fixture', config: { command: 'node', args: [FIXTURE] } });
    assert.notEqual(r.isError, true, JSON.stringify(r.content));
    const result = r.structuredContent as { status: string; tools: string[]; transport: string };
    assert.equal(result.status, 'initialized');
    assert.deepEqual(result.tools, ['echo', 'add']);
    assert.equal(result.transport, 'stdio');
  });

  it('applies the message policies to server_initialize: a command outside the allow-list is refused before anything runs', async () => {
    const r = await call('server_initialize', { serverName: 'evil', config: { command: 'bash', args: ['-c', 'touch /tmp/pwned'] } });
    assert.equal(r.isError, true);
    assert.match(JSON.stringify(r.content), /command-not-allowed/);
    const other = await call('server_initialize', { serverName: 'evil', config: { command: 'node', args: ['-e', 'process.exit(0)'] } });
    assert.equal(other.isError, true);
    assert.match(JSON.stringify(other.content), /command-args-not-allowed/);
  });

  it('refuses an invalid message with a clear tool error, producing nothing', async () => {
    const before = await topicEnd();
    for (const payload of [
      { mcpServers: { a: { command: 'bash' } } },
      { mcpServers: {} },
      'not json',
      { mcpServers: { d: { type: 'docker', image: 'evil/miner', port: 1 } } },
    ]) {
      const r = await call('submit', { jobID: 'bad', payload });
      assert.equal(r.isError, true, JSON.stringify(payload));
      assert.match(JSON.stringify(r.content), /invalid message \((command-not-allowed|invalid-payload|image-not-allowed)\)/);
    }
    assert.equal(await topicEnd(), before, 'the topic did not move');
  });

  it('submits a message whose named Job Completes, then get_job returns its summary and list_jobs finds it', async () => {
    const r = await call('submit', { jobID: 'via-serve', payload: { mcpServers: { fixture: { command: 'node', args: [FIXTURE] } } } });
    assert.notEqual(r.isError, true, JSON.stringify(r.content));
    const sub = r.structuredContent as { jobName: string; partition: number; offset: string; namespace: string };
    assert.equal(sub.namespace, ns.name);
    const job = await waitFor(
      async () => {
        const g = (await call('get_job', { name: sub.jobName })).structuredContent as { status: string };
        return g.status === 'succeeded' || g.status === 'failed' ? g : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500, description: `Job ${sub.jobName} to finish; controller: ${controller.tail(3)}` },
    );
    const g = job as {
      status: string;
      partition: number;
      offset: string;
      jobID: string;
      conditions: { type: string }[];
      pod: { summary: any; exitCode: number };
    };
    assert.equal(g.status, 'succeeded');
    assert.equal(g.jobID, 'via-serve');
    assert.deepEqual([g.partition, g.offset], [sub.partition, sub.offset]);
    assert.ok(g.conditions.some((c) => c.type === 'Complete'));
    assert.equal(g.pod.exitCode, 0);
    assert.deepEqual(g.pod.summary.servers.fixture.tools, ['echo', 'add']);

    const list = (await call('list_jobs', { jobID: 'via-serve' })).structuredContent as { jobs: { name: string; status: string }[] };
    assert.deepEqual(list.jobs, [{ ...list.jobs[0], name: sub.jobName, status: 'succeeded' }]);
    const active = (await call('list_jobs', { status: 'active' })).structuredContent as { jobs: unknown[] };
    assert.deepEqual(active.jobs, []);
  });

  it("reads a refused message's dead-letter record through get_job", async () => {
    const [rec] = await producer.send({
      topic,
      messages: [{ partition: 1, value: JSON.stringify({ jobID: 'direct', jobType: 'server-init', payload: { mcpServers: { a: { command: 'curl' } } } }) }],
    });
    const g = await waitFor(
      async () => {
        const r = (await call('get_job', { partition: 1, offset: rec!.baseOffset })).structuredContent as { status: string };
        return r.status === 'dead-lettered' ? r : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, description: 'the message to be dead-lettered' },
    );
    const d = g as unknown as { deadLetter: { reason: string; error: string }; deadLettersScanned: number };
    assert.equal(d.deadLetter.reason, 'command-not-allowed');
    assert.match(d.deadLetter.error, /curl/);
    assert.ok(d.deadLettersScanned >= 1);
  });

  it('refuses a submit past SUBMIT_BURST with a rate-limit error, producing nothing', async () => {
    // Self-contained: whatever earlier tests spent, SUBMIT_BURST + 1 calls exhaust the bucket
    // (the rate refills one token in 1000 s).
    const payload = { mcpServers: { fixture: { command: 'node', args: [FIXTURE] } } };
    let refused: { content: unknown; before: bigint } | undefined;
    for (let i = 0; i <= SUBMIT_BURST && !refused; i++) {
      const before = await topicEnd();
      const r = await call('submit', { jobID: `burst-${i}`, payload });
      if (r.isError) refused = { content: r.content, before };
    }
    assert.ok(refused, `one of ${SUBMIT_BURST + 1} calls is refused`);
    assert.match(JSON.stringify(refused.content), /rate limited: try again in \d+ s/);
    assert.equal(await topicEnd(), refused.before, 'the refused call produced nothing');
  });

  it("is usable by the MCP Inspector's CLI: it lists the tools and runs server_initialize, and is refused without the token", async () => {
    const inspector = ensureInspector();
    const cli = (args: string[]) =>
      run(process.execPath, [inspector, '--cli', serve.url, '--transport', 'http', ...args], {
        timeout: 60_000,
        env: { ...process.env, HOME: mkdtempSync(join(tmpdir(), 'inspector-home-')) },
      });
    const auth = ['--header', `Authorization: Bearer ${token}`];
    const listed = JSON.parse((await cli([...auth, '--method', 'tools/list'])).stdout) as { tools: { name: string }[] };
    assert.deepEqual(listed.tools.map((t) => t.name).sort(), ['get_job', 'list_jobs', 'server_initialize', 'submit']);
    const init = await cli([
      ...auth,
      '--method',
      'tools/call',
      '--tool-name',
      'server_initialize',
      '--tool-arg',
      'serverName=fixture',
      `config=${JSON.stringify({ command: 'node', args: [FIXTURE] })}`,
    ]);
    const out = JSON.parse(init.stdout) as { structuredContent: { status: string; tools: string[] } };
    assert.equal(out.structuredContent.status, 'initialized');
    assert.deepEqual(out.structuredContent.tools, ['echo', 'add']);
    // A 401 sends the Inspector to OAuth, which a run without a TTY reports as auth_required.
    await assert.rejects(cli(['--header', 'Authorization: Bearer wrong', '--method', 'tools/list']), (err: { stderr?: string; stdout?: string }) =>
      /401|Unauthorized|auth_required/i.test(`${err.stderr}${err.stdout}`),
    );
  });
});
