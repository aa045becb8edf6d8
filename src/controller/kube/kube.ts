import { Agent } from 'node:https';
import * as k8s from '@kubernetes/client-node';
import { createSecureContext, type ConnectionOptions } from 'node:tls';
import { Pool } from 'undici';
import { ConfigError } from '../../shared/errors.js';
import { PROTOBUF_WATCH, ProtoError, watchBodyReader } from './job-proto.js';

/** Cluster credentials, loaded the same way by the controller and `serve`. */
export { loadKubeConfig } from '../../shared/kube/kube-config.js';

/** Reads JOB_TEMPLATE (declared in src/shared/contract/job-policy.ts, which `serve` reads too). */
export { loadJobTemplate } from '../../shared/contract/job-policy.js';

/**
 * `kc.makeApiClient`, but with one kept-alive HTTPS agent per client. client-node 1.x builds a
 * new https.Agent for every request, so every call pays a new TLS context and handshake (a
 * quarter of the controller's CPU in a profile, and as much again on the API server). Headers
 * still come from the KubeConfig on each request, so rotated ServiceAccount tokens are used.
 */
export function makeKeepAliveClient<T>(kc: k8s.KubeConfig, apiClientType: new (config: k8s.Configuration) => T, options: KeepAliveOptions = {}): T {
  return new apiClientType(keepAliveConfiguration(kc, options));
}

export interface KeepAliveOptions {
  maxSockets?: number;
  timeoutMs?: number;
}

/** The client configuration behind `makeKeepAliveClient`: one kept-alive agent, a timeout per call. */
export function keepAliveConfiguration(kc: k8s.KubeConfig, { maxSockets = 128, timeoutMs = 30_000 }: KeepAliveOptions = {}): k8s.Configuration {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError('the kubeconfig has no current cluster');
  let agent: Agent | undefined;
  const auth = {
    getName: () => 'keep-alive',
    async applySecurityAuthentication(context: k8s.RequestContext): Promise<void> {
      await kc.applySecurityAuthentication(context);
      const fresh = context.getAgent() as Agent | undefined;
      if (fresh && !agent) agent = new Agent({ ...fresh.options, keepAlive: true, maxSockets });
      if (agent) context.setAgent(agent);
      // client-node sets no timeout: a half-open kept-alive socket would hang a call (and the
      // partition waiting on it) for ever. An aborted call is a network error, retried.
      context.setSignal(AbortSignal.timeout(timeoutMs));
    },
  };
  return k8s.createConfiguration({
    baseServer: new k8s.ServerConfiguration(cluster.server, {}),
    authMethods: { default: auth },
  });
}

/** What a create answers with that the controller reads. */
export interface CreatedJob {
  metadata?: { uid?: string };
}

export type JobCreator = ((p: { namespace: string; body: k8s.V1Job | string }) => Promise<CreatedJob>) & {
  /** Closes the kept-alive connections. */
  close(): Promise<void>;
};

/** A list of Jobs as the API server sends it: plain JSON, no client-node models. */
export interface JobList {
  items: k8s.V1Job[];
  metadata: { resourceVersion?: string };
}

/** client-node's Watch.watch, which JobWatch is written against. */
export type WatchFn = k8s.Watch['watch'];

/** The Job calls on the controller's hot path: create, the informer's list and its watch. */
export interface JobClient {
  create(p: { namespace: string; body: k8s.V1Job | string }): Promise<CreatedJob>;
  /** Every page read; `each` maps each Job as its page arrives, so a long list is never held whole. */
  list(namespace: string, labelSelector: string, each?: (j: k8s.V1Job) => k8s.V1Job): Promise<JobList>;
  /** A protobuf watch handing out slim Jobs (see job-proto.ts); undefined where client-node's JSON watch is used. */
  watch?: WatchFn;
  close(): Promise<void>;
}

/** How often the credentials are read again from the KubeConfig: client-node caches a token file for a minute. */
const AUTH_REFRESH_MS = 30_000;
/** Items per page of a Job list, so a list of many Jobs is not one huge answer. */
const LIST_PAGE = 500;
/** The API server ends each watch after this long (client-go picks 5–10 min); it is resumed from its last resourceVersion. */
const WATCH_TIMEOUT_S = 300;
/**
 * A watch silent this long is ended and resumed: the API server sends a bookmark about once a
 * minute, so silence past two of them is a connection gone half-open, not a quiet namespace.
 */
const WATCH_IDLE_MS = 150_000;

/** `makeJobClient(…).create`, closable: what the controller and the bench's create loop use. */
export function makeJobCreator(kc: k8s.KubeConfig, options: KeepAliveOptions = {}): JobCreator {
  const c = makeJobClient(kc, options);
  return Object.assign((p: { namespace: string; body: k8s.V1Job | string }) => c.create(p), { close: () => c.close() });
}

/**
 * Creates and lists Jobs over an undici connection pool instead of client-node's generated
 * calls. The generated create walks the whole V1Job through ObjectSerializer, sends through
 * node-fetch on node:https, and parses the answer back into models; on the test bed that is
 * 1.1 ms of CPU per Job against 0.4 ms for the same POST through undici — CPU that, on a
 * shared node, the API server does not get (`npm run bench` prints both sides). The generated
 * list builds a model of every Job and a new TLS connection each time. A V1Job's models name
 * every field as the wire does (a unit test holds client-node to that), so JSON.stringify sends
 * the same bytes, and a listed Job reads like one from the watch (dates stay strings).
 *
 * Credentials still come from the KubeConfig: its auth (token, token file, exec plugin, client
 * certificate) is applied to a client-node request context, and the headers and TLS options it
 * yields are reused for AUTH_REFRESH_MS, or until a 401 — so rotated ServiceAccount tokens are
 * picked up. One TLS context serves every connection. A cluster behind a proxy (`proxy-url`)
 * keeps client-node's path. Failures are client-node's own ApiException (code, raw body), so
 * callers classify them as before.
 */
export function makeJobClient(kc: k8s.KubeConfig, { maxSockets = 128, timeoutMs = 30_000 }: KeepAliveOptions = {}): JobClient {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError('the kubeconfig has no current cluster');
  if (cluster.proxyUrl) return clientNodeJobClient(keepAliveConfiguration(kc, { maxSockets, timeoutMs }));
  const base = new URL(cluster.server);
  const prefix = base.pathname.replace(/\/$/, '');
  interface Auth {
    headers: Record<string, string>;
    tls: string;
    pool: Pool;
    at: number;
  }
  let current: Promise<Auth> | undefined;
  /** Watch in protobuf until a stream of it cannot be read (see watch). */
  let protobufWatch = true;
  const authenticate = async (previous?: Auth): Promise<Auth> => {
    const ctx = new k8s.RequestContext(cluster.server, k8s.HttpMethod.POST);
    await kc.applySecurityAuthentication(ctx);
    const o = ((ctx.getAgent() as Agent | undefined)?.options ?? {}) as ConnectionOptions;
    const material = { ca: o.ca, cert: o.cert, key: o.key, pfx: o.pfx, passphrase: o.passphrase };
    const tls = JSON.stringify([material, o.rejectUnauthorized, o.servername], (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('base64') : v));
    const headers = { ...ctx.getHeaders(), accept: 'application/json', 'content-type': 'application/json' };
    if (previous && previous.tls === tls) return { headers, tls, pool: previous.pool, at: Date.now() };
    // New client credentials (a rotated certificate): new connections; the old pool finishes what it has.
    void previous?.pool.close().catch(() => undefined);
    const connect = { secureContext: createSecureContext(material), rejectUnauthorized: o.rejectUnauthorized, servername: o.servername };
    const pool = new Pool(base.origin, { connections: maxSockets, connect, headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
    return { headers, tls, pool, at: Date.now() };
  };
  const auth = async (stale?: Auth): Promise<Auth> => {
    const seen = current;
    const a = seen && (await seen.catch(() => undefined));
    if (a && a !== stale && Date.now() - a.at <= AUTH_REFRESH_MS) return a;
    // One refresh at a time: a call that finds one under way (or done) since it looked uses it.
    if (current !== seen) return auth(stale);
    const next = authenticate(a);
    current = next;
    next.catch(() => {
      if (current === next) current = undefined;
    });
    return next;
  };
  const once = async (a: Auth, method: 'GET' | 'POST', path: string, body?: string) => {
    try {
      const res = await a.pool.request({ method, path, headers: a.headers, body, signal: AbortSignal.timeout(timeoutMs) });
      // Read either way: an unread answer keeps its kept-alive connection busy.
      return { status: res.statusCode, text: await res.body.text(), headers: res.headers as Record<string, string> };
    } catch (err) {
      // A network failure or a timeout: no HTTP status (a DOMException's numeric code is not one).
      throw new Error(`${method} ${path}: ${(err as Error).message}`, { cause: err });
    }
  };
  const send = async (method: 'GET' | 'POST', path: string, body?: string) => {
    let a = await auth();
    let res = await once(a, method, path, body);
    if (res.status === 401) {
      // A token rotated under us: read the credentials again, once.
      a = await auth(a);
      res = await once(a, method, path, body);
    }
    return res;
  };
  const jobs = (namespace: string) => `${prefix}${jobsPath(namespace)}`;
  return {
    async create({ namespace, body }) {
      const res = await send('POST', jobs(namespace), typeof body === 'string' ? body : JSON.stringify(body));
      return answer(res.status, res.text, res.headers);
    },
    async list(namespace, labelSelector, each = (j) => j) {
      const out: JobList = { items: [], metadata: {} };
      let cont: string | undefined;
      do {
        const q = new URLSearchParams({ labelSelector, limit: String(LIST_PAGE), ...(cont ? { continue: cont } : {}) });
        const res = await send('GET', `${jobs(namespace)}?${q}`);
        if (res.status < 200 || res.status > 299) throw new k8s.ApiException(res.status, 'Unknown API Status Code!', res.text, res.headers);
        const page = JSON.parse(res.text) as { items?: k8s.V1Job[]; metadata?: { resourceVersion?: string; continue?: string } };
        for (const j of page.items ?? []) out.items.push(each(j));
        // The first page's resourceVersion is the list's: every page is read at it.
        out.metadata.resourceVersion ??= page.metadata?.resourceVersion;
        cont = page.metadata?.continue || undefined;
      } while (cont);
      return out;
    },
    async watch(path, query, callback, done) {
      const controller = new AbortController();
      let ended = false;
      const end = (err: unknown) => {
        if (ended) return;
        ended = true;
        done(err);
      };
      const q = new URLSearchParams({ watch: '1', timeoutSeconds: String(WATCH_TIMEOUT_S) });
      for (const [k, v] of Object.entries(query as Record<string, unknown>)) if (v !== undefined && v !== '') q.set(k, String(v));
      try {
        const a = await auth();
        const res = await a.pool.request({
          method: 'GET',
          path: `${prefix}${path}?${q}`,
          headers: { ...a.headers, accept: protobufWatch ? `${PROTOBUF_WATCH}, application/json` : 'application/json' },
          signal: controller.signal,
          headersTimeout: timeoutMs,
          bodyTimeout: WATCH_IDLE_MS,
        });
        if (res.statusCode !== 200) {
          const text = await res.body.text().catch(() => '');
          // A rotated token: the restart that follows reads the credentials again.
          if (res.statusCode === 401) void auth(a).catch(() => undefined);
          end(Object.assign(new Error(`watch ${path}: HTTP ${res.statusCode}: ${text.slice(0, 300)}`), { statusCode: res.statusCode }));
          return controller;
        }
        void (async () => {
          const reader = watchBodyReader(String(res.headers['content-type'] ?? ''));
          for await (const chunk of res.body as AsyncIterable<Buffer>) for (const e of reader.push(chunk)) callback(e.type, e.object);
          reader.end();
          end(null);
        })().catch((err: unknown) => {
          // A stream we cannot read is a fact about this API server, not a passing fault: watch
          // in JSON from now on (the restart after this error re-lists once), instead of failing
          // the same way every second.
          if (err instanceof ProtoError) protobufWatch = false;
          // Our own abort, or a silence past WATCH_IDLE_MS: a normal end, resumed from the last resourceVersion.
          const code = (err as { code?: string }).code;
          res.body.destroy();
          end(controller.signal.aborted || code === 'UND_ERR_BODY_TIMEOUT' ? null : err);
        });
      } catch (err) {
        end(controller.signal.aborted ? null : err);
      }
      return controller;
    },
    async close() {
      const a = current && (await current.catch(() => undefined));
      await a?.pool.close();
    },
  };
}

/**
 * Only the uid is wanted (Events name it): the first `uid` of the answer is metadata.uid, as
 * ObjectMeta serializes uid before anything else that carries one (ownerReferences).
 */
function answer(status: number, text: string, headers: Record<string, string>): CreatedJob {
  if (status >= 200 && status <= 299) return { metadata: { uid: /"uid":"([^"]+)"/.exec(text)?.[1] } };
  throw new k8s.ApiException(status, status === 401 ? 'Unauthorized' : 'Unknown API Status Code!', text, headers);
}

/** The Jobs collection of a namespace, as both clients below address it. */
const jobsPath = (namespace: string) => `/apis/batch/v1/namespaces/${encodeURIComponent(namespace)}/jobs`;

/** The same calls through client-node's HTTP stack (for a cluster reached through a proxy). */
function clientNodeJobClient(config: k8s.Configuration): JobClient {
  const auth = config.authMethods.default;
  const batch = new k8s.BatchV1Api(config);
  return {
    async create({ namespace, body }) {
      const ctx = config.baseServer.makeRequestContext(jobsPath(namespace), k8s.HttpMethod.POST);
      ctx.setHeaderParam('Accept', 'application/json');
      ctx.setHeaderParam('Content-Type', 'application/json');
      ctx.setBody(typeof body === 'string' ? body : JSON.stringify(body));
      await auth?.applySecurityAuthentication(ctx);
      const res = await config.httpApi.send(ctx).toPromise();
      return answer(res.httpStatusCode, await res.body.text(), res.headers);
    },
    async list(namespace, labelSelector, each = (j) => j) {
      const l = await batch.listNamespacedJob({ namespace, labelSelector });
      return { items: l.items.map(each), metadata: { resourceVersion: l.metadata?.resourceVersion } };
    },
    close: async () => undefined,
  };
}
