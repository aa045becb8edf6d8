import { existsSync, readFileSync } from 'node:fs';
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

/** Reads a Job template YAML (the file users edit); a bad one fails at start, naming the file. */
export function loadJobTemplate(path: string | undefined): k8s.V1Job | undefined {
  if (!path) return undefined;
  let obj: unknown;
  try {
    obj = k8s.loadYaml(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`JOB_TEMPLATE ${path}: ${(err as Error).message}`);
  }
  const o = obj as { kind?: string; apiVersion?: string } | null;
  if (!o || typeof o !== 'object' || (o.kind && o.kind !== 'Job')) throw new ConfigError(`JOB_TEMPLATE ${path}: expected a batch/v1 Job`);
  return obj as k8s.V1Job;
}

/**
 * `kc.makeApiClient`, but with one kept-alive HTTPS agent per client. client-node 1.x builds a
 * new https.Agent for every request, so every call pays a new TLS context and handshake (a
 * quarter of the controller's CPU in a profile, and as much again on the API server). Headers
 * still come from the KubeConfig on each request, so rotated ServiceAccount tokens are used.
 */
export function makeKeepAliveClient<T>(
  kc: k8s.KubeConfig,
  apiClientType: new (config: k8s.Configuration) => T,
  { maxSockets = 128, timeoutMs = 30_000 }: { maxSockets?: number; timeoutMs?: number } = {},
): T {
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
  const config = k8s.createConfiguration({
    baseServer: new k8s.ServerConfiguration(cluster.server, {}),
    authMethods: { default: auth },
  });
  return new apiClientType(config);
}
