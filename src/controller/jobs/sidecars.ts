import { secretRefIn } from '../../shared/contract/policy.js';
import type * as k8s from '@kubernetes/client-node';
import { dockerSizeBytes, type DockerServer, type ServerConfig } from '../../shared/contract/servers.js';

/**
 * Container servers (seed 003's `docker` provider) as native sidecars: init containers with
 * `restartPolicy: Always`, which Kubernetes starts in order before the job container, each
 * ready by its probe before the next starts, and stops once the job container has exited. The
 * job reaches them on 127.0.0.1, the pod's own network. Pure, like `buildJob`.
 */

/** A sidecar without `resources` gets these; a given limit is also its request (see sidecarResources). */
export const DEFAULT_SIDECAR_RESOURCES: k8s.V1ResourceRequirements = {
  requests: { cpu: '50m', memory: '64Mi' },
  limits: { cpu: '500m', memory: '256Mi' },
};

/**
 * How long a sidecar may take to answer its first probe, in seconds: the startup probe runs
 * every second so a job does not wait a whole `health_check.interval` (30 s in the seed) for a
 * server that is up in 200 ms. Past it the kubelet restarts the sidecar; the Job's deadline
 * bounds the whole.
 */
export const SIDECAR_STARTUP_SECONDS = 60;

/** Prefix of a sidecar's container name; the rest is its index and the server's name. */
export const SIDECAR_PREFIX = 'mcp-server';

/** A DNS-1123 label for the i-th container server, from its message name (names may hold `_` and `.`). */
export function sidecarName(index: number, serverName: string): string {
  const slug = serverName
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return `${SIDECAR_PREFIX}-${index}${slug ? `-${slug}` : ''}`.slice(0, 63).replace(/-+$/, '');
}

/** "256m" → "256Mi", "1g" → "1Gi", "1.5g" → bytes: Docker's binary units as a Kubernetes quantity. */
export function memoryQuantity(size: string): string {
  const m = /^(\d+)([kmg])$/i.exec(size.trim());
  if (m) return `${m[1]}${{ k: 'Ki', m: 'Mi', g: 'Gi' }[m[2]!.toLowerCase() as 'k' | 'm' | 'g']}`;
  return String(dockerSizeBytes(size));
}

/** "0.5" → "500m": Docker's `--cpus` as millicores (at least 1m). */
export function cpuQuantity(cpus: string | number): string {
  return `${Math.max(1, Math.round(Number(cpus) * 1000))}m`;
}

/**
 * The seed gives limits only (Docker's `--memory`, `--cpus`). A given limit is also the request:
 * Docker reserves nothing, but a request below the limit would let the scheduler pack pods whose
 * servers then meet the limit they were promised only on paper; quotas count the same figure.
 */
export function sidecarResources(server: DockerServer): k8s.V1ResourceRequirements {
  const r = server.resources;
  const memory = r?.memory_limit ? memoryQuantity(r.memory_limit) : undefined;
  const cpu = r?.cpu_limit !== undefined ? cpuQuantity(r.cpu_limit) : undefined;
  return {
    requests: { cpu: cpu ?? DEFAULT_SIDECAR_RESOURCES.requests!.cpu!, memory: memory ?? DEFAULT_SIDECAR_RESOURCES.requests!.memory! },
    limits: { cpu: cpu ?? DEFAULT_SIDECAR_RESOURCES.limits!.cpu!, memory: memory ?? DEFAULT_SIDECAR_RESOURCES.limits!.memory! },
  };
}

/** The probe's handler: an HTTP GET on `health_check.path`, or a TCP connect to the port when there is none. */
function probeHandler(server: DockerServer): Pick<k8s.V1Probe, 'httpGet' | 'tcpSocket'> {
  const path = server.health_check?.path;
  return path ? { httpGet: { path, port: server.port } } : { tcpSocket: { port: server.port } };
}

/** Readiness at the seed's `health_check.interval`/`timeout`, after a startup probe that checks every second. */
export function sidecarProbes(server: DockerServer): Pick<k8s.V1Container, 'startupProbe' | 'readinessProbe'> {
  const handler = probeHandler(server);
  const timeoutSeconds = server.health_check?.timeout ?? 1;
  return {
    startupProbe: { ...handler, periodSeconds: 1, timeoutSeconds, failureThreshold: SIDECAR_STARTUP_SECONDS },
    readinessProbe: { ...handler, periodSeconds: server.health_check?.interval ?? 10, timeoutSeconds, failureThreshold: 3 },
  };
}

/** The sidecars of a message's container servers, in message order, and the volumes they need. */
export function buildSidecars(
  servers: Record<string, ServerConfig>,
  securityContext: k8s.V1SecurityContext,
): { containers: k8s.V1Container[]; volumes: k8s.V1Volume[] } {
  const containers: k8s.V1Container[] = [];
  const volumes: k8s.V1Volume[] = [];
  let i = 0;
  for (const [name, server] of Object.entries(servers)) {
    if (server.type !== 'docker') continue;
    const container = sidecarName(i++, name);
    // The restricted profile leaves the root filesystem read-only; servers still need a /tmp.
    const tmp = `${container}-tmp`.slice(0, 63);
    volumes.push({ name: tmp, emptyDir: { sizeLimit: '64Mi' } });
    const env: k8s.V1EnvVar[] = Object.entries(server.environment ?? {}).map(([k, value]) => {
      const ref = secretRefIn(value);
      // optional: a missing key must not keep the pod from starting; the job, which mounts the
      // same keys, then fails the Job for good naming the Secret and key.
      return ref && typeof ref !== 'string' ? { name: k, valueFrom: { secretKeyRef: { name: ref.secret, key: ref.key, optional: true } } } : { name: k, value };
    });
    if (!env.some((e) => e.name === 'PORT')) env.push({ name: 'PORT', value: String(server.port) });
    containers.push({
      name: container,
      image: server.image,
      // Docker's `command` replaces the image's CMD and keeps its ENTRYPOINT: Kubernetes calls that `args`.
      ...(server.args ? { args: server.args } : {}),
      restartPolicy: 'Always',
      ports: [{ containerPort: server.port, protocol: 'TCP' }],
      env,
      resources: sidecarResources(server),
      ...sidecarProbes(server),
      securityContext,
      volumeMounts: [{ name: tmp, mountPath: '/tmp' }],
    });
  }
  return { containers, volumes };
}
