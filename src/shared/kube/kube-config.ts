import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { ConfigError } from '../errors.js';

/**
 * Loads cluster credentials: in-cluster when run in a pod, else KUBECONFIG or ~/.kube/config.
 * client-node's loadFromDefault() quietly falls back to http://localhost:8080; we fail instead.
 * Both the controller and `serve` load theirs here.
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
