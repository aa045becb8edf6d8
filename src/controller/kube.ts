import { existsSync } from 'node:fs';
import { Agent } from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { ConfigError } from '../shared/errors.js';

/**
 * Loads cluster credentials: in-cluster when run in a pod, else KUBECONFIG or ~/.kube/config.
 * client-node's loadFromDefault() quietly falls back to http://localhost:8080; we fail instead.
 */
export function loadKubeConfig(env: NodeJS.ProcessEnv = process.env): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  const home = join(homedir(), '.kube', 'config');
  if (env.KUBECONFIG) kc.loadFromFile(env.KUBECONFIG.split(':')[0]!);
  else if (env.KUBERNETES_SERVICE_HOST && existsSync('/var/run/secrets/kubernetes.io/serviceaccount/token')) kc.loadFromCluster();
  else if (existsSync(home)) kc.loadFromFile(home);
  else throw new ConfigError('no Kubernetes credentials: not in a pod, KUBECONFIG unset and no ~/.kube/config');
  if (!kc.getCurrentCluster()) throw new ConfigError('the kubeconfig has no current cluster');
  return kc;
}

/** Reads JOB_TEMPLATE (declared in shared/job-policy.ts, which `serve` reads too). */
export { loadJobTemplate } from '../shared/job-policy.js';

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

/**
 * `BatchV1Api.createNamespacedJob` without client-node's model round trip. The generated call
 * walks the whole V1Job through ObjectSerializer before JSON.stringify, and parses and walks
 * the API server's answer back into models (together ~0.2 ms of CPU per Job here, which on a
 * shared machine is taken from the API server); the caller never reads that answer. A V1Job's
 * models name every field as the wire does (a unit test holds client-node to that), so
 * JSON.stringify sends the same bytes (a body already serialized is sent as it is). Failures are client-node's own ApiException (code, raw
 * body), so callers classify them as before.
 */
export function makeJobCreator(config: k8s.Configuration): (p: { namespace: string; body: k8s.V1Job | string }) => Promise<CreatedJob> {
  const auth = config.authMethods.default;
  return async ({ namespace, body }) => {
    const ctx = config.baseServer.makeRequestContext(`/apis/batch/v1/namespaces/${encodeURIComponent(namespace)}/jobs`, k8s.HttpMethod.POST);
    ctx.setHeaderParam('Accept', 'application/json');
    ctx.setHeaderParam('Content-Type', 'application/json');
    ctx.setBody(typeof body === 'string' ? body : JSON.stringify(body));
    await auth?.applySecurityAuthentication(ctx);
    const res = await config.httpApi.send(ctx).toPromise();
    // The body is read either way: an unread response keeps its kept-alive socket busy.
    const text = await res.body.text();
    // Only the uid is wanted (Events name it): the first `uid` of the answer is metadata.uid, as
    // ObjectMeta serializes uid before anything else that carries one (ownerReferences).
    if (res.httpStatusCode >= 200 && res.httpStatusCode <= 299) return { metadata: { uid: /"uid":"([^"]+)"/.exec(text)?.[1] } };
    throw new k8s.ApiException(res.httpStatusCode, res.httpStatusCode === 401 ? 'Unauthorized' : 'Unknown API Status Code!', text, res.headers);
  };
}
