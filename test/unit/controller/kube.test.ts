import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { apiStatus, classifyApiError, isConflict, statusMessage } from '../../../src/shared/errors.js';
import { buildJob } from '../../../src/controller/jobs/job-builder.js';
import { makeJobClient, makeJobCreator, type JobClient } from '../../../src/controller/kube/kube.js';
import { ProtoError } from '../../../src/controller/kube/job-proto.js';
import { waitFor } from '../../../src/shared/wait.js';
import { parseConfig } from '../../../src/shared/settings.js';
import { ControllerConfigSchema } from '../../../src/controller/config.js';
import { parseMessage } from '../../../src/shared/contract/message.js';
import { validationPolicy } from '../../../src/shared/contract/policy.js';

/** Every model type a V1Job reaches, with the fields whose TypeScript name is not the wire name. */
function renamedFields(type: string, seen = new Set<string>()): string[] {
  const t = type.replace(/^Array<(.*)>$/, '$1').replace(/^\{ \[key: string\]: (.*); \}$/, '$1');
  const model = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => { name: string; baseName: string; type: string }[] }>)[t];
  if (seen.has(t) || !model?.getAttributeTypeMap) return [];
  seen.add(t);
  return model.getAttributeTypeMap().flatMap((a) => [...(a.name !== a.baseName ? [`${t}.${a.name}`] : []), ...renamedFields(a.type, seen)]);
}

/** A local stand-in for the Jobs endpoint: records each request, answers what `answer` says. */
class JobsEndpoint {
  requests: { method: string; url: string; contentType: string; accept: string; authorization?: string; body: string }[] = [];
  answer: { status: number; body: string } = { status: 201, body: '{}' };
  /** Answers queued ahead of `answer`, one request each; a function writes its answer itself (a streamed watch body). */
  next: ({ status: number; body: string } | ((res: ServerResponse) => void))[] = [];
  private server?: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        this.requests.push({
          method: req.method!,
          url: req.url!,
          contentType: String(req.headers['content-type']),
          accept: String(req.headers.accept),
          authorization: req.headers.authorization,
          body,
        });
        const a = this.next.shift() ?? this.answer;
        if (typeof a === 'function') a(res);
        else res.writeHead(a.status, { 'content-type': 'application/json' }).end(a.body);
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}`;
  }

  config(): k8s.Configuration {
    return k8s.createConfiguration({ baseServer: new k8s.ServerConfiguration(this.url, {}), authMethods: {} });
  }

  /** A KubeConfig for this endpoint whose bearer token is whatever `token()` says when read. */
  kubeConfig(token: () => string = () => 't0'): k8s.KubeConfig {
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'u' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    kc.addAuthenticator({
      isAuthProvider: () => true,
      applyAuthentication: async (_u: unknown, opts: { headers?: Record<string, string> }) => {
        opts.headers = { ...opts.headers, Authorization: `Bearer ${token()}` };
      },
    } as never);
    return kc;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => this.server?.close(() => r()));
  }
}

describe('makeJobCreator', () => {
  const endpoint = new JobsEndpoint();
  before(() => endpoint.start());
  after(() => endpoint.stop());

  const cfg = parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: 'kafka:9092', KAFKA_TOPIC: 'orders', JOB_NAMESPACE: 'jobs' });
  // A template that reaches deep into the model: probes, int-or-string ports, tolerations, volumes.
  const template = k8s.loadYaml<k8s.V1Job>(`
apiVersion: batch/v1
kind: Job
metadata: { labels: { team: a } }
spec:
  ttlSecondsAfterFinished: 60
  template:
    spec:
      tolerations: [{ key: k, operator: Exists, effect: NoExecute, tolerationSeconds: 30 }]
      volumes: [{ name: cfg, configMap: { name: c, defaultMode: 420, items: [{ key: a, path: b, mode: 256 }] } }]
      containers:
        - name: job
          image: example/job:1
          ports: [{ containerPort: 8080, name: http }]
          readinessProbe: { httpGet: { path: /, port: http }, periodSeconds: 5 }
          resources: { limits: { memory: 64Mi } }
`);
  const msg = parseMessage(
    Buffer.from(JSON.stringify({ jobID: 'j-1', jobType: 'server-init', payload: { mcpServers: { s: { command: 'node', args: ['x.js'] } } } })),
    validationPolicy(cfg),
  );
  const job = buildJob({ topic: 'orders', partition: 3, offset: '42' }, msg, cfg, template);

  it('relies on no V1Job model field being renamed on the wire', () => {
    assert.deepEqual(renamedFields('V1Job'), []);
  });

  it('sends the same body as client-node generated createNamespacedJob, to the same path', async () => {
    endpoint.requests = [];
    endpoint.answer = { status: 201, body: JSON.stringify(job) };
    await new k8s.BatchV1Api(endpoint.config()).createNamespacedJob({ namespace: 'jobs', body: job });
    const create = makeJobCreator(endpoint.kubeConfig());
    await create({ namespace: 'jobs', body: job });
    await create.close();
    const [generated, ours] = endpoint.requests;
    assert.equal(ours!.method, 'POST');
    assert.equal(ours!.url, generated!.url);
    assert.equal(ours!.url, '/apis/batch/v1/namespaces/jobs/jobs');
    assert.match(ours!.contentType, /^application\/json/);
    assert.deepEqual(JSON.parse(ours!.body), JSON.parse(generated!.body));
  });

  it('fails with an ApiException carrying the status and the raw body, so a 409 reads as a conflict', async () => {
    endpoint.answer = { status: 409, body: JSON.stringify({ kind: 'Status', reason: 'AlreadyExists', message: 'jobs.batch "x" already exists' }) };
    const create = makeJobCreator(endpoint.kubeConfig());
    const err = await create({ namespace: 'jobs', body: job }).then(
      () => assert.fail('a 409 must reject'),
      (e: unknown) => e,
    );
    await create.close();
    assert.ok(err instanceof k8s.ApiException);
    assert.ok(isConflict(err));
    assert.equal(statusMessage(err), 'jobs.batch "x" already exists');
  });

  it('reads the credentials again after a 401 and sends the create once more with the new token', async () => {
    endpoint.requests = [];
    let token = 'old';
    endpoint.answer = { status: 201, body: '{"metadata":{"uid":"u-1","ownerReferences":[{"uid":"u-2"}]}}' };
    const create = makeJobCreator(endpoint.kubeConfig(() => token));
    await create({ namespace: 'jobs', body: job });
    token = 'new';
    endpoint.next = [{ status: 401, body: '{"kind":"Status","code":401}' }];
    const made = await create({ namespace: 'jobs', body: job });
    await create.close();
    assert.equal(made.metadata?.uid, 'u-1');
    assert.deepEqual(
      endpoint.requests.map((r) => r.authorization),
      ['Bearer old', 'Bearer old', 'Bearer new'],
    );
  });

  it("lists every page of Jobs at the first page's resourceVersion, as plain JSON", async () => {
    endpoint.requests = [];
    const page = (names: string[], rv: string, cont?: string) => ({
      status: 200,
      body: JSON.stringify({
        kind: 'JobList',
        metadata: { resourceVersion: rv, ...(cont ? { continue: cont } : {}) },
        items: names.map((name) => ({ metadata: { name, creationTimestamp: '2026-11-24T00:00:00Z' } })),
      }),
    });
    endpoint.next = [page(['a', 'b'], '7', 'tok'), page(['c'], '8')];
    const c = makeJobClient(endpoint.kubeConfig());
    const l = await c.list('jobs', 'x=y');
    await c.close();
    assert.deepEqual(
      l.items.map((j) => j.metadata?.name),
      ['a', 'b', 'c'],
    );
    assert.equal(l.metadata.resourceVersion, '7');
    assert.equal(l.items[0]!.metadata?.creationTimestamp, '2026-11-24T00:00:00Z');
    assert.deepEqual(
      endpoint.requests.map((r) => r.url),
      ['/apis/batch/v1/namespaces/jobs/jobs?labelSelector=x%3Dy&limit=500', '/apis/batch/v1/namespaces/jobs/jobs?labelSelector=x%3Dy&limit=500&continue=tok'],
    );
  });

  it('reports a create that timed out as unreachable, never as an HTTP status', async () => {
    const hung = createServer(() => undefined);
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: `http://127.0.0.1:${(hung.address() as AddressInfo).port}` }],
      users: [{ name: 'u', token: 't' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    const create = makeJobCreator(kc, { timeoutMs: 200 });
    const err = await create({ namespace: 'jobs', body: job }).then(
      () => assert.fail('a hung create must reject'),
      (e: unknown) => e,
    );
    hung.closeAllConnections();
    await new Promise((r) => hung.close(r));
    await create.close().catch(() => undefined);
    assert.equal(apiStatus(err), undefined);
    assert.match(classifyApiError(err, 'create Job x').message, /API server unreachable/);
    assert.equal(apiStatus(new DOMException('timed out', 'TimeoutError')), undefined);
  });
});

describe("the Job client's watch", () => {
  const endpoint = new JobsEndpoint();
  before(() => endpoint.start());
  after(() => endpoint.stop());
  const client = () => makeJobClient(endpoint.kubeConfig());

  /** Watches once; resolves with what the callback saw and what done said (it must say it once). */
  async function watchOnce(c: JobClient): Promise<{ events: string[]; ends: unknown[] }> {
    const events: string[] = [];
    const ends: unknown[] = [];
    await c.watch!(
      '/apis/batch/v1/namespaces/jobs/jobs',
      { resourceVersion: '5' },
      (t, o: k8s.V1Job) => events.push(`${t} ${o.metadata?.name}`),
      (e) => ends.push(e),
    );
    await waitFor(() => ends.length > 0, { timeoutMs: 5000, description: 'the watch to end' });
    return { events, ends };
  }

  it('watches in protobuf and, once a protobuf stream cannot be read, in JSON lines from then on', async () => {
    const c = client();
    try {
      endpoint.requests.length = 0;
      endpoint.next = [
        // A body the server calls protobuf that is not: a length of 2 GiB.
        (res) => res.writeHead(200, { 'content-type': 'application/vnd.kubernetes.protobuf;stream=watch' }).end(Buffer.from([0x7f, 0xff, 0xff, 0xff, 0])),
        (res) => {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"type":"ADDED","object":{"metadata":{"name":"a"}}}\n{"type":"MOD');
          res.end('IFIED","object":{"metadata":{"name":"a"}}}\n');
        },
      ];
      const first = await watchOnce(c);
      assert.deepEqual(first.events, []);
      assert.equal(first.ends.length, 1);
      assert.ok(first.ends[0] instanceof ProtoError, String(first.ends[0]));
      const second = await watchOnce(c);
      assert.deepEqual(second, { events: ['ADDED a', 'MODIFIED a'], ends: [null] });
      assert.match(endpoint.requests[0]!.accept, /^application\/vnd\.kubernetes\.protobuf;stream=watch/);
      assert.equal(endpoint.requests[1]!.accept, 'application/json');
    } finally {
      await c.close();
    }
  });

  it('ends a refused watch once, with its HTTP status, so a 410 re-lists', async () => {
    const c = client();
    try {
      endpoint.next = [(res) => res.writeHead(410, { 'content-type': 'application/json' }).end('{"kind":"Status","code":410}')];
      const { events, ends } = await watchOnce(c);
      assert.deepEqual(events, []);
      assert.equal(ends.length, 1);
      assert.equal((ends[0] as { statusCode?: number }).statusCode, 410);
    } finally {
      await c.close();
    }
  });
});
