import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, createWriteStream, type WriteStream } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { EventEmitter } from 'node:events';
import * as k8s from '@kubernetes/client-node';
import { sleep } from '../../src/shared/wait.js';
import { repoRoot, scriptsDir } from './cache.js';
import type { ImageConfig } from './images.js';
import type { Pki } from './pki.js';

/**
 * Image → how to run it. A built image (`rootfs` + its config): the container runs inside the
 * image's filesystem (see containerLaunch). An argv prefix (the image's ENTRYPOINT as a host
 * program): the container runs as a host process — for images that are test fixtures rather
 * than product images, and for `TESTBED_PODS=process`. An empty prefix means the pod must give
 * `command`, which then runs as a local program (busybox-style images in tests).
 * Images match by their name without registry, tag or digest, or by a `/`-suffix of it.
 */
export type ImageTable = Record<string, string[] | BuiltImageRoot>;

export interface BuiltImageRoot {
  /** The image's id: reported as the container's imageID, so a test can tell which image a pod ran. */
  id: string;
  rootfs: string;
  config: ImageConfig;
}

/** What the agent adds to every container started in an image: host folders bound at their own path (the test fixtures messages name). */
export interface NodeAgentOptions {
  hostPaths?: string[];
  /** The API server's port on loopback: KUBERNETES_SERVICE_PORT for in-cluster clients. */
  apiServerPort?: number;
}

const MERGE = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const NODE_IP = '127.0.0.1';

interface ContainerRun {
  name: string;
  image: string;
  child?: ChildProcess;
  startedAt?: string;
  finishedAt?: string;
  exitCode?: number;
  reason?: string;
  message?: string;
  logFile: string;
  termFile: string;
  log?: WriteStream;
  lines: EventEmitter;
  /** Init containers only: `restartPolicy: Always` makes one a native sidecar. */
  sidecar?: boolean;
  /** A sidecar's startup and readiness probes have passed (a kubelet's `started`/`ready`). */
  ready?: boolean;
  /** The node is stopping this sidecar: its exit is not restarted. */
  stopping?: boolean;
  restartCount: number;
  /** Set when the container runs inside a built image. */
  imageID?: string;
}

/** How to start one container: what to spawn, where, with which environment. */
interface Launch {
  argv: string[];
  cwd: string;
  env: Record<string, string>;
}

interface PodRun {
  uid: string;
  namespace: string;
  name: string;
  dir: string;
  /** The pod's init containers, in order: plain ones run to completion, sidecars keep running. */
  inits: ContainerRun[];
  containers: ContainerRun[];
  deleting: boolean;
  done: boolean;
}

/** Strips registry host, tag and digest: `reg:5000/a/b:1.2@sha256:…` → `a/b`. */
export function imageName(image: string): string {
  let name = image.split('@')[0] ?? image;
  const lastSlash = name.lastIndexOf('/');
  const colon = name.lastIndexOf(':');
  if (colon > lastSlash) name = name.slice(0, colon);
  const parts = name.split('/');
  if (parts.length > 1 && /[.:]|^localhost$/.test(parts[0] ?? '')) parts.shift();
  return parts.join('/');
}

function lookupImage(table: ImageTable, image: string): string[] | BuiltImageRoot | undefined {
  const name = imageName(image);
  for (const [key, argv] of Object.entries(table)) {
    if (name === key || name.endsWith(`/${key}`)) return argv;
  }
  return undefined;
}

/**
 * A Node whose pods run as local processes, the way virtual-kubelet providers work: it
 * registers a Ready Node and renews its Lease, runs each pod bound to it, reports Running
 * and then Succeeded/Failed with the exit code and termination message (what the Job
 * controller's podFailurePolicy reads), kills the process when the pod is deleted, and
 * serves the kubelet log endpoint so `kubectl logs` works through the API server.
 */
export class NodeAgent {
  private readonly core: k8s.CoreV1Api;
  private readonly coordination: k8s.CoordinationV1Api;
  private readonly pods = new Map<string, PodRun>();
  private informer?: k8s.ListWatch<k8s.V1Pod>;
  private server?: Server;
  private port = 0;
  private stopped = false;
  private timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly pki: Pki,
    private readonly dir: string,
    private readonly images: ImageTable,
    readonly nodeName = 'testbed-node',
    private readonly opts: NodeAgentOptions = {},
  ) {
    this.core = kc.makeApiClient(k8s.CoreV1Api);
    this.coordination = kc.makeApiClient(k8s.CoordinationV1Api);
  }

  async start(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    await this.serveLogs();
    await this.register();
    await this.renewLease();
    this.timers.push(setInterval(() => void this.renewLease().catch(() => undefined), 10_000));
    this.timers.push(setInterval(() => void this.reportNodeStatus().catch(() => undefined), 30_000));
    await this.watchPods();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await this.informer?.stop();
    for (const run of this.pods.values()) for (const c of [...run.inits, ...run.containers]) c.child?.kill('SIGKILL');
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Live local processes, for tests that check nothing is left behind. */
  get runningPids(): number[] {
    const pids: number[] = [];
    for (const run of this.pods.values()) {
      for (const c of [...run.inits, ...run.containers]) if (c.child?.pid && c.exitCode === undefined) pids.push(c.child.pid);
    }
    return pids;
  }

  // ---- Node and Lease ----

  /** Plain JSON (a merge-patch body), so times are ISO strings. */
  private nodeStatus(): Record<string, unknown> {
    const now = new Date().toISOString();
    const cond = (type: string, status: string, reason: string) => ({
      type,
      status,
      reason,
      message: reason,
      lastHeartbeatTime: now,
      lastTransitionTime: now,
    });
    const resources = { cpu: '256', memory: '1Ti', pods: '5000', 'ephemeral-storage': '1Ti' };
    return {
      capacity: resources,
      allocatable: resources,
      conditions: [
        cond('Ready', 'True', 'KubeletReady'),
        cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory'),
        cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure'),
        cond('PIDPressure', 'False', 'KubeletHasSufficientPID'),
      ],
      addresses: [
        { type: 'InternalIP', address: NODE_IP },
        { type: 'Hostname', address: this.nodeName },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: this.port } },
      nodeInfo: {
        architecture: process.arch === 'x64' ? 'amd64' : process.arch,
        bootID: '',
        containerRuntimeVersion: 'testbed://local-process',
        kernelVersion: '',
        kubeProxyVersion: '',
        kubeletVersion: 'testbed',
        machineID: '',
        operatingSystem: 'linux',
        osImage: 'testbed',
        systemUUID: '',
      },
    };
  }

  private async register(): Promise<void> {
    const body: k8s.V1Node = {
      metadata: {
        name: this.nodeName,
        labels: {
          'kubernetes.io/hostname': this.nodeName,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          'node.kubernetes.io/instance-type': 'testbed',
        },
      },
      spec: {},
    };
    try {
      await this.core.createNode({ body });
    } catch (err) {
      if ((err as k8s.ApiException<unknown>).code !== 409) throw err;
    }
    await this.reportNodeStatus();
  }

  private async reportNodeStatus(): Promise<void> {
    await this.core.patchNodeStatus({ name: this.nodeName, body: { status: this.nodeStatus() } }, MERGE);
  }

  private async renewLease(): Promise<void> {
    const renewTime = new Date().toISOString().replace('Z', '000Z');
    const spec = { holderIdentity: this.nodeName, leaseDurationSeconds: 40, renewTime };
    try {
      await this.coordination.patchNamespacedLease({ name: this.nodeName, namespace: 'kube-node-lease', body: { spec } }, MERGE);
    } catch (err) {
      if ((err as k8s.ApiException<unknown>).code !== 404) throw err;
      // client-node writes Dates with milliseconds, but a Lease wants MicroTime: create, then patch.
      await this.coordination.createNamespacedLease({
        namespace: 'kube-node-lease',
        body: { metadata: { name: this.nodeName }, spec: { holderIdentity: this.nodeName, leaseDurationSeconds: 40 } },
      });
      await this.coordination.patchNamespacedLease({ name: this.nodeName, namespace: 'kube-node-lease', body: { spec } }, MERGE);
    }
  }

  // ---- Pods ----

  private async watchPods(): Promise<void> {
    const fieldSelector = `spec.nodeName=${this.nodeName}`;
    const informer = new k8s.ListWatch<k8s.V1Pod>(
      '/api/v1/pods',
      new k8s.Watch(this.kc),
      () => this.core.listPodForAllNamespaces({ fieldSelector }),
      false,
      undefined,
      fieldSelector,
    );
    const onPod = (pod: k8s.V1Pod) =>
      void this.reconcile(pod).catch((err) => process.stderr.write(`testbed node: ${pod.metadata?.namespace}/${pod.metadata?.name}: ${String(err)}\n`));
    informer.on('add', onPod);
    informer.on('update', onPod);
    informer.on('delete', (pod) => this.forget(pod.metadata?.uid ?? ''));
    // The informer does not restart itself after errors other than 410 Gone.
    informer.on('error', () => {
      if (!this.stopped) setTimeout(() => void informer.start().catch(() => undefined), 1000);
    });
    this.informer = informer;
    await informer.start();
  }

  private async reconcile(pod: k8s.V1Pod): Promise<void> {
    const uid = pod.metadata?.uid ?? '';
    let run = this.pods.get(uid);
    if (pod.metadata?.deletionTimestamp) {
      if (run?.deleting) return;
      if (run) run.deleting = true;
      await this.terminate(pod, run);
      return;
    }
    if (run) return;
    const phase = pod.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    run = this.prepare(pod);
    this.pods.set(uid, run);
    await this.launch(pod, run);
  }

  private forget(uid: string): void {
    const run = this.pods.get(uid);
    if (!run) return;
    for (const c of [...run.inits, ...run.containers]) c.child?.kill('SIGKILL');
    this.pods.delete(uid);
    // Keep the folder briefly so a late `kubectl logs` still finds the output.
    setTimeout(() => rmSync(run.dir, { recursive: true, force: true }), 60_000).unref();
  }

  private prepare(pod: k8s.V1Pod): PodRun {
    const ns = pod.metadata?.namespace ?? 'default';
    const name = pod.metadata?.name ?? '';
    const dir = join(this.dir, `${ns}_${name}_${pod.metadata?.uid}`);
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    mkdirSync(join(dir, 'home'), { recursive: true });
    const containerRun = (c: k8s.V1Container, init: boolean): ContainerRun => ({
      name: c.name,
      image: c.image ?? '',
      logFile: join(dir, `${c.name}.log`),
      termFile: join(dir, `${c.name}.termination-log`),
      lines: new EventEmitter(),
      restartCount: 0,
      ...(init && c.restartPolicy === 'Always' ? { sidecar: true, ready: false } : {}),
    });
    return {
      uid: pod.metadata?.uid ?? '',
      namespace: ns,
      name,
      dir,
      deleting: false,
      done: false,
      inits: (pod.spec?.initContainers ?? []).map((c) => containerRun(c, true)),
      containers: (pod.spec?.containers ?? []).map((c) => containerRun(c, false)),
    };
  }

  /** Secret, projected Secret, ConfigMap and emptyDir volumes become folders of the pod; hostPath and claims, folders of the node (persistentDir); returns mountPath → folder. */
  private async mountVolumes(pod: k8s.V1Pod, run: PodRun, container: k8s.V1Container): Promise<[string, string][]> {
    const ns = run.namespace;
    const mounts: [string, string][] = [];
    for (const vm of container.volumeMounts ?? []) {
      const vol = pod.spec?.volumes?.find((v) => v.name === vm.name);
      const local = (await this.persistentDir(ns, vol)) ?? join(run.dir, 'volumes', vm.name);
      mkdirSync(local, { recursive: true });
      // Like a kubelet: an emptyDir is writable by any user; a Secret's or ConfigMap's files have
      // the volume's defaultMode (0644 unless set), so a non-root container can read them.
      if (vol?.emptyDir) chmodSync(local, 0o777);
      const defaultMode = vol?.secret?.defaultMode ?? vol?.configMap?.defaultMode ?? vol?.projected?.defaultMode ?? 0o644;
      const write = (data: Record<string, Buffer>, items?: k8s.V1KeyToPath[]) => {
        for (const [key, value] of Object.entries(data)) {
          const item = items?.find((i) => i.key === key);
          if (items && !item) continue;
          const target = join(local, item?.path ?? key);
          mkdirSync(join(target, '..'), { recursive: true });
          writeFileSync(target, value, { mode: item?.mode ?? defaultMode });
          chmodSync(target, item?.mode ?? defaultMode);
        }
      };
      if (vol?.secret?.secretName) {
        const s = await this.core.readNamespacedSecret({ name: vol.secret.secretName, namespace: ns });
        write(Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])), vol.secret.items);
      } else if (vol?.projected) {
        // Like the kubelet: each source's listed keys at their paths; an optional Secret or key
        // that is missing is skipped, a required one fails the pod.
        for (const src of vol.projected.sources ?? []) {
          if (src.serviceAccountToken || src.configMap || src.downwardAPI) {
            write(await this.projectedSource(pod, src));
            continue;
          }
          if (!src.secret?.name) continue;
          const s = await this.core.readNamespacedSecret({ name: src.secret.name, namespace: ns }).catch((err: unknown) => {
            if (src.secret?.optional && (err as { code?: number }).code === 404) return undefined;
            throw err;
          });
          const data = Object.fromEntries(Object.entries(s?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')]));
          const missing = (src.secret.items ?? []).filter((i) => !(i.key in data));
          if (missing.length && !src.secret.optional) throw new Error(`secret ${src.secret.name} has no key ${missing[0]!.key}`);
          write(data, src.secret.items);
        }
      } else if (vol?.configMap?.name) {
        const cm = await this.core.readNamespacedConfigMap({ name: vol.configMap.name, namespace: ns });
        write(Object.fromEntries(Object.entries(cm.data ?? {}).map(([k, v]) => [k, Buffer.from(v)])), vol.configMap.items);
      }
      mounts.push([vm.mountPath, vm.subPath ? join(local, vm.subPath) : local]);
    }
    return mounts.sort((a, b) => b[0].length - a[0].length);
  }

  /**
   * Volumes that outlive a pod, as one folder of this node every pod shares: a hostPath is that
   * path under the node's folder (the node's own filesystem, as on a kind node), and a claim is
   * its bound PersistentVolume's hostPath/local path, or a folder per claim when the volume has
   * neither. An unbound or missing claim fails the start (a kubelet would keep the pod waiting).
   */
  private async persistentDir(ns: string, vol: k8s.V1Volume | undefined): Promise<string | undefined> {
    const onNode = (path: string) => join(this.dir, 'host', path);
    if (vol?.hostPath) return onNode(vol.hostPath.path);
    const claim = vol?.persistentVolumeClaim?.claimName;
    if (!claim) return undefined;
    const pvc = await this.core.readNamespacedPersistentVolumeClaim({ name: claim, namespace: ns });
    const pvName = pvc.spec?.volumeName;
    if (!pvName || pvc.status?.phase !== 'Bound') throw new Error(`persistentvolumeclaim ${claim} is not bound`);
    const pv = await this.core.readPersistentVolume({ name: pvName });
    const path = pv.spec?.hostPath?.path ?? pv.spec?.local?.path;
    return path ? onNode(path) : join(this.dir, 'claims', ns, claim);
  }

  /**
   * The kube-api-access volume the ServiceAccount admission plugin adds: a TokenRequest token
   * bound to the pod, the cluster's CA (the kube-root-ca.crt ConfigMap), the namespace.
   */
  private async projectedSource(pod: k8s.V1Pod, src: k8s.V1VolumeProjection): Promise<Record<string, Buffer>> {
    const ns = pod.metadata?.namespace ?? 'default';
    if (src.serviceAccountToken) {
      const tr = await this.core.createNamespacedServiceAccountToken({
        name: pod.spec?.serviceAccountName ?? 'default',
        namespace: ns,
        body: {
          spec: {
            audiences: src.serviceAccountToken.audience ? [src.serviceAccountToken.audience] : [],
            expirationSeconds: src.serviceAccountToken.expirationSeconds ?? 3607,
            boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod.metadata?.name, uid: pod.metadata?.uid },
          },
        },
      });
      return { [src.serviceAccountToken.path]: Buffer.from(tr.status?.token ?? '') };
    }
    if (src.configMap?.name) {
      const cm = await this.core.readNamespacedConfigMap({ name: src.configMap.name, namespace: ns });
      const out: Record<string, Buffer> = {};
      for (const [k, v] of Object.entries(cm.data ?? {})) {
        const item = src.configMap.items?.find((i) => i.key === k);
        if (src.configMap.items && !item) continue;
        out[item?.path ?? k] = Buffer.from(v);
      }
      return out;
    }
    return Object.fromEntries(
      (src.downwardAPI?.items ?? []).filter((i) => i.fieldRef).map((i) => [i.path, Buffer.from(fieldValue(pod, i.fieldRef!.fieldPath))]),
    );
  }

  private async resolveEnv(pod: k8s.V1Pod, ns: string, container: k8s.V1Container): Promise<Record<string, string>> {
    const env: Record<string, string> = {};
    for (const from of container.envFrom ?? []) {
      const prefix = from.prefix ?? '';
      if (from.secretRef?.name) {
        const s = await this.core.readNamespacedSecret({ name: from.secretRef.name, namespace: ns });
        for (const [k, v] of Object.entries(s.data ?? {})) env[prefix + k] = Buffer.from(v, 'base64').toString('utf8');
      }
      if (from.configMapRef?.name) {
        const cm = await this.core.readNamespacedConfigMap({ name: from.configMapRef.name, namespace: ns });
        for (const [k, v] of Object.entries(cm.data ?? {})) env[prefix + k] = v;
      }
    }
    for (const e of container.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => env[n] ?? m);
      else if (e.valueFrom?.fieldRef) env[e.name] = fieldValue(pod, e.valueFrom.fieldRef.fieldPath);
      else if (e.valueFrom?.secretKeyRef) {
        const ref = e.valueFrom.secretKeyRef;
        // Like the kubelet: an optional reference to a missing Secret or key leaves the variable unset.
        const s = await this.core.readNamespacedSecret({ name: ref.name ?? '', namespace: ns }).catch((err: unknown) => {
          if (ref.optional && (err as { code?: number }).code === 404) return undefined;
          throw err;
        });
        const v = s?.data?.[ref.key];
        if (v !== undefined) env[e.name] = Buffer.from(v, 'base64').toString('utf8');
      } else if (e.valueFrom?.configMapKeyRef) {
        const cm = await this.core.readNamespacedConfigMap({ name: e.valueFrom.configMapKeyRef.name ?? '', namespace: ns });
        const v = cm.data?.[e.valueFrom.configMapKeyRef.key];
        if (v !== undefined) env[e.name] = v;
      }
    }
    return env;
  }

  /**
   * Like a kubelet: init containers first, in order — a plain one must exit 0, a native sidecar
   * (`restartPolicy: Always`) must pass its startup and readiness probes — then the containers.
   */
  private async launch(pod: k8s.V1Pod, run: PodRun): Promise<void> {
    const startError = (c: ContainerRun, err: unknown) => {
      c.exitCode = 128;
      c.reason = 'StartError';
      c.message = err instanceof Error ? err.message : String(err);
      c.finishedAt = new Date().toISOString();
    };
    const initSpecs = pod.spec?.initContainers ?? [];
    if (run.inits.length) await this.patchStatus(run, 'Pending');
    for (const [i, c] of run.inits.entries()) {
      const spec = initSpecs[i]!;
      try {
        await this.startContainer(pod, run, c, spec);
        if (c.sidecar) await this.waitSidecarReady(run, c, spec);
        else await new Promise<void>((resolve) => (c.exitCode !== undefined ? resolve() : c.lines.once('end', () => resolve())));
      } catch (err) {
        startError(c, err);
      }
      if (run.deleting || run.done) return;
      if (!c.sidecar && c.exitCode !== 0) {
        // restartPolicy Never: a failed init container fails the pod, and its sidecars stop.
        await this.stopSidecars(pod, run);
        await this.finish(run, 'Failed');
        return;
      }
      await this.patchStatus(run, 'Pending');
    }
    const specs = pod.spec?.containers ?? [];
    const starts: Promise<void>[] = [];
    for (const [i, c] of run.containers.entries()) {
      starts.push(this.startContainer(pod, run, c, specs[i]!).catch((err) => startError(c, err)));
    }
    await Promise.all(starts);
    if (run.containers.every((c) => c.exitCode !== undefined)) {
      await this.mainExited(pod, run);
      return;
    }
    await this.patchStatus(run, 'Running');
  }

  /** Polls a sidecar's startup probe, then its readiness probe, until both pass or the pod ends. */
  private async waitSidecarReady(run: PodRun, c: ContainerRun, spec: k8s.V1Container): Promise<void> {
    for (const probe of [spec.startupProbe, spec.readinessProbe]) {
      if (!probe) continue;
      const periodMs = (probe.periodSeconds ?? 10) * 1000;
      // A kubelet probes at the period; the first probe runs at once (no initialDelaySeconds here).
      // Past a startup probe's failureThreshold a kubelet restarts the sidecar; here the Job's
      // deadline ends a pod whose sidecar never gets ready.
      for (;;) {
        if (run.deleting || run.done) return;
        if (c.exitCode === undefined && (await probeOnce(probe, spec))) break;
        await sleep(Math.min(periodMs, 1000));
      }
    }
    c.ready = true;
  }

  /** The main containers have all exited: sidecars get SIGTERM (in reverse order), and the pod's phase follows the main containers. */
  private async mainExited(pod: k8s.V1Pod, run: PodRun): Promise<void> {
    if (run.done) return;
    await this.stopSidecars(pod, run);
    await this.finish(run);
  }

  private async stopSidecars(pod: k8s.V1Pod, run: PodRun): Promise<void> {
    const grace = Math.max(0, Math.min(pod.spec?.terminationGracePeriodSeconds ?? 30, 30));
    for (const c of [...run.inits].reverse()) {
      if (!c.sidecar) continue;
      c.stopping = true;
      await stopProcess(c, grace);
    }
  }

  private async startContainer(pod: k8s.V1Pod, run: PodRun, c: ContainerRun, spec: k8s.V1Container): Promise<void> {
    const entry = lookupImage(this.images, c.image);
    if (entry === undefined) throw new Error(`image ${c.image} is not in the test bed's image table`);
    const mounts = await this.mountVolumes(pod, run, spec);
    const termPath = spec.terminationMessagePath ?? '/dev/termination-log';
    // A kubelet creates the file before the start, writable by the container's user.
    writeFileSync(c.termFile, '', { flag: 'a' });
    chmodSync(c.termFile, 0o666);
    mounts.push([termPath, c.termFile]);
    const env = await this.resolveEnv(pod, run.namespace, spec);
    const launch = Array.isArray(entry) ? this.hostLaunch(run, spec, entry, mounts, env) : this.containerLaunch(pod, run, c, spec, entry, mounts, env);
    if (!Array.isArray(entry)) c.imageID = `buildah://sha256:${entry.id}`;
    const log = createWriteStream(c.logFile, { flags: 'a' });
    c.log = log;
    c.startedAt = new Date().toISOString();
    // The image's entrypoint is a host path already; only what the pod spec says is rewritten.
    const child = spawn(launch.argv[0]!, launch.argv.slice(1), { cwd: launch.cwd, env: launch.env, stdio: ['ignore', 'pipe', 'pipe'] });
    c.child = child;
    const pump = (stream: NodeJS.ReadableStream | null, tag: string) => {
      if (!stream) return Promise.resolve();
      const rl = createInterface({ input: stream });
      rl.on('line', (line) => {
        const entryLine = `${new Date().toISOString()} ${tag} ${line}\n`;
        log.write(entryLine);
        c.lines.emit('line', entryLine);
      });
      return new Promise<void>((resolve) => rl.once('close', resolve));
    };
    const drained = Promise.all([pump(child.stdout, 'stdout'), pump(child.stderr, 'stderr')]);
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    child.once('exit', (code, signal) => {
      void drained.then(() => {
        c.exitCode = code ?? (signal ? 128 + (signal === 'SIGKILL' ? 9 : 15) : 1);
        c.reason = c.exitCode === 0 ? 'Completed' : 'Error';
        c.finishedAt = new Date().toISOString();
        c.message = readTerminationMessage(c, spec);
        c.ready = c.sidecar ? false : undefined;
        log.end();
        c.lines.emit('end');
        if (c.sidecar) {
          // restartPolicy Always: a sidecar that exits on its own is started again, as a kubelet does.
          if (!c.stopping && !run.done && !run.deleting && !this.stopped) void this.restartSidecar(pod, run, c, spec);
          return;
        }
        if (run.containers.includes(c) && run.containers.every((x) => x.exitCode !== undefined)) {
          void this.mainExited(pod, run).catch(() => undefined);
        }
      });
    });
  }

  /**
   * A container as a host process: container paths in its env, command and args are rewritten
   * to the pod's folders (paths into this checkout stay), and an image's entrypoint is a host
   * program already.
   */
  private hostLaunch(run: PodRun, spec: k8s.V1Container, entry: string[], mounts: [string, string][], env: Record<string, string>): Launch {
    if ((spec.command ?? entry).length === 0) throw new Error(`a container of ${run.name} needs a command`);
    const rewrite = (s: string) => {
      // A path into this checkout is the host's (process mode runs its code), even where a
      // mount point covers it: a clone under /tmp would otherwise land in the pod's /tmp volume.
      if (s === repoRoot || s.startsWith(`${repoRoot}/`)) return s;
      for (const [from, to] of [...mounts].sort((a, b) => b[0].length - a[0].length))
        if (s === from || s.startsWith(`${from}/`)) return to + s.slice(from.length);
      return s;
    };
    const procEnv: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: join(run.dir, 'home'),
      TMPDIR: join(run.dir, 'tmp'),
      HOSTNAME: run.name,
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
    };
    for (const [k, v] of Object.entries(env)) procEnv[k] = rewrite(v);
    return {
      argv: [...(spec.command?.map(rewrite) ?? entry), ...(spec.args ?? []).map(rewrite)],
      cwd: spec.workingDir ? rewrite(spec.workingDir) : join(run.dir, 'tmp'),
      env: procEnv,
    };
  }

  /**
   * A container inside its image's filesystem (scripts/enter-rootfs.sh): an overlay of the
   * image's exported root filesystem with the container's writes in the pod's folder, the pod's
   * volumes and termination-message file bind-mounted at their paths, the image's config (env,
   * entrypoint, cmd, working dir, user) under the pod's securityContext, and the host's network
   * namespace (Kafka and the API server on loopback are reachable, as with hostNetwork).
   * Another volume type is one more entry in `mounts`; nothing else here needs to change.
   */
  private containerLaunch(
    pod: k8s.V1Pod,
    run: PodRun,
    c: ContainerRun,
    spec: k8s.V1Container,
    image: BuiltImageRoot,
    mounts: [string, string][],
    env: Record<string, string>,
  ): Launch {
    const cfg = image.config;
    const argv = [...(spec.command ?? cfg.entrypoint), ...(spec.args ?? (spec.command ? [] : cfg.cmd))];
    if (argv.length === 0) throw new Error(`image ${c.image} has no entrypoint and the container no command`);
    const sc = { ...pod.spec?.securityContext, ...spec.securityContext };
    const { uid, gid } = imageUser(image, sc.runAsUser, sc.runAsGroup);
    if (sc.runAsNonRoot && uid === 0) throw new Error(`container ${c.name} must run as non-root, but its image's user is root`);
    const dir = join(run.dir, 'containers', `${c.name}-${c.restartCount}`);
    mkdirSync(dir, { recursive: true });
    // mounts are container path → host path; the plan lists host path, then container path.
    const plan: [string, string][] = [
      ...mounts.map(([to, from]): [string, string] => [from, to]),
      ...(this.opts.hostPaths ?? []).map((p): [string, string] => [p, p]),
    ];
    // A kubelet writes the pod's /etc/hosts and /etc/resolv.conf; the host's serve with the host's network.
    for (const f of ['/etc/hosts', '/etc/resolv.conf']) if (existsSync(f)) plan.push([f, f]);
    plan.sort((a, b) => a[1].length - b[1].length);
    writeFileSync(join(dir, 'mounts'), plan.map(([from, to]) => `${from}\t${to}\n`).join(''));
    const procEnv: Record<string, string> = { HOSTNAME: run.name, KUBERNETES_SERVICE_HOST: '127.0.0.1' };
    if (this.opts.apiServerPort) procEnv.KUBERNETES_SERVICE_PORT = String(this.opts.apiServerPort);
    for (const kv of cfg.env) {
      const i = kv.indexOf('=');
      if (i > 0) procEnv[kv.slice(0, i)] = kv.slice(i + 1);
    }
    Object.assign(procEnv, env);
    const readOnly = spec.securityContext?.readOnlyRootFilesystem ? '1' : '0';
    const wd = spec.workingDir ?? cfg.workingDir;
    return {
      argv: [
        'unshare',
        '--mount',
        '--propagation',
        'private',
        '/bin/sh',
        join(scriptsDir, 'enter-rootfs.sh'),
        image.rootfs,
        dir,
        readOnly,
        String(uid),
        String(gid),
        wd,
        join(dir, 'mounts'),
        '--',
        ...argv,
      ],
      cwd: '/',
      env: procEnv,
    };
  }

  private async restartSidecar(pod: k8s.V1Pod, run: PodRun, c: ContainerRun, spec: k8s.V1Container): Promise<void> {
    await sleep(1000);
    if (run.done || run.deleting || this.stopped) return;
    c.restartCount++;
    for (const k of ['exitCode', 'reason', 'message', 'finishedAt'] as const) delete c[k];
    try {
      await this.startContainer(pod, run, c, spec);
      await this.waitSidecarReady(run, c, spec);
    } catch {
      /* the next exit, if any, restarts it again */
    }
  }

  private async finish(run: PodRun, forced?: 'Failed'): Promise<void> {
    if (run.done) return;
    run.done = true;
    if (run.deleting) return;
    const phase = forced ?? (run.containers.every((c) => c.exitCode === 0) ? 'Succeeded' : 'Failed');
    await this.patchStatus(run, phase);
  }

  private async patchStatus(run: PodRun, phase: 'Pending' | 'Running' | 'Succeeded' | 'Failed'): Promise<void> {
    const now = new Date().toISOString();
    const running = phase === 'Running';
    const initialized = phase !== 'Pending';
    const cond = (type: string, ok: boolean) => ({ type, status: ok ? 'True' : 'False', lastTransitionTime: now, ...(ok ? {} : { reason: 'PodCompleted' }) });
    const state = (c: ContainerRun) =>
      c.exitCode === undefined
        ? c.startedAt
          ? { running: { startedAt: c.startedAt } }
          : { waiting: { reason: 'PodInitializing' } }
        : {
            terminated: {
              exitCode: c.exitCode,
              reason: c.reason,
              message: c.message || undefined,
              startedAt: c.startedAt ?? now,
              finishedAt: c.finishedAt ?? now,
              containerID: `testbed://${run.uid}/${c.name}`,
            },
          };
    const base = (c: ContainerRun) => ({
      name: c.name,
      image: c.image,
      imageID: c.imageID ?? `testbed://${imageName(c.image)}`,
      containerID: `testbed://${run.uid}/${c.name}`,
      restartCount: c.restartCount,
      state: state(c),
    });
    const status = {
      phase,
      hostIP: NODE_IP,
      hostIPs: [{ ip: NODE_IP }],
      podIP: NODE_IP,
      podIPs: [{ ip: NODE_IP }],
      startTime: run.inits[0]?.startedAt ?? run.containers[0]?.startedAt ?? now,
      conditions: [cond('PodScheduled', true), cond('Initialized', initialized), cond('ContainersReady', running), cond('Ready', running)],
      ...(run.inits.length
        ? {
            initContainerStatuses: run.inits.map((c) => ({
              ...base(c),
              ready: c.sidecar ? c.ready === true && c.exitCode === undefined : c.exitCode === 0,
              started: c.sidecar ? c.ready === true && c.exitCode === undefined : c.exitCode === undefined && c.startedAt !== undefined,
            })),
          }
        : {}),
      containerStatuses: run.containers.map((c) => ({
        ...base(c),
        ready: c.exitCode === undefined && running,
        started: c.exitCode === undefined && c.startedAt !== undefined,
      })),
    };
    for (let attempt = 0; ; attempt++) {
      try {
        await this.core.patchNamespacedPodStatus({ name: run.name, namespace: run.namespace, body: { status } }, MERGE);
        return;
      } catch (err) {
        const code = (err as k8s.ApiException<unknown>).code;
        if (code === 404 || this.stopped || attempt >= 20) return;
        await sleep(Math.min(200 * 2 ** attempt, 5000));
      }
    }
  }

  private async terminate(pod: k8s.V1Pod, run: PodRun | undefined): Promise<void> {
    const grace = Math.max(0, Math.min(pod.metadata?.deletionGracePeriodSeconds ?? 30, 30));
    if (run) {
      await Promise.all(run.containers.map((c) => stopProcess(c, grace)));
      for (const c of [...run.inits].reverse()) {
        c.stopping = true;
        await stopProcess(c, grace);
      }
    }
    try {
      await this.core.deleteNamespacedPod({
        name: pod.metadata?.name ?? '',
        namespace: pod.metadata?.namespace ?? '',
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata?.uid } },
      });
    } catch (err) {
      if (![404, 409].includes((err as k8s.ApiException<unknown>).code)) throw err;
    }
  }

  // ---- kubelet log endpoint ----

  private async serveLogs(): Promise<void> {
    this.server = createServer(
      {
        cert: readFileSync(this.pki.kubeletCert),
        key: readFileSync(this.pki.kubeletKey),
        ca: readFileSync(this.pki.caCert),
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        const url = new URL(req.url ?? '/', 'https://node');
        const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
        if (!m) {
          res.writeHead(404).end('not found\n');
          return;
        }
        const [, ns, pod, container] = m.map((s) => decodeURIComponent(s ?? ''));
        const run = [...this.pods.values()].find((r) => r.namespace === ns && r.name === pod);
        const c = [...(run?.inits ?? []), ...(run?.containers ?? [])].find((x) => x.name === container);
        if (!c || !existsSync(c.logFile)) {
          res.writeHead(404).end(`container ${container} of pod ${ns}/${pod} has no logs on this node\n`);
          return;
        }
        const timestamps = url.searchParams.get('timestamps') === 'true';
        const follow = url.searchParams.get('follow') === 'true';
        const tail = url.searchParams.has('tailLines') ? Number(url.searchParams.get('tailLines')) : undefined;
        const format = (line: string) => {
          const [ts, , ...rest] = line.split(' ');
          return timestamps ? `${ts} ${rest.join(' ')}` : rest.join(' ');
        };
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        const lines = readFileSync(c.logFile, 'utf8').split('\n').filter(Boolean);
        for (const line of tail === undefined ? lines : lines.slice(-tail)) res.write(`${format(line)}\n`);
        if (!follow || c.exitCode !== undefined) {
          res.end();
          return;
        }
        const onLine = (line: string) => res.write(format(line.trimEnd()) + '\n');
        const onEnd = () => res.end();
        c.lines.on('line', onLine);
        c.lines.once('end', onEnd);
        res.on('close', () => {
          c.lines.off('line', onLine);
          c.lines.off('end', onEnd);
        });
      },
    );
    await new Promise<void>((resolve) => this.server!.listen(0, NODE_IP, resolve));
    const addr = this.server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
  }
}

/** SIGTERM, then SIGKILL after the grace period; resolves once the process has exited. */
async function stopProcess(c: ContainerRun, graceSeconds: number): Promise<void> {
  const child = c.child;
  if (!child || c.exitCode !== undefined || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceSeconds * 1000);
  await exited;
  clearTimeout(t);
}

/** One probe, the way a kubelet runs it against the pod's address (loopback here): HTTP 200-399, or a TCP connect. */
async function probeOnce(probe: k8s.V1Probe, spec: k8s.V1Container): Promise<boolean> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  const portOf = (p: number | string) => (typeof p === 'number' ? p : Number(spec.ports?.find((x) => x.name === p)?.containerPort ?? p));
  if (probe.httpGet) {
    const port = portOf(probe.httpGet.port);
    try {
      const res = await fetch(`http://${NODE_IP}:${port}${probe.httpGet.path ?? '/'}`, { signal: AbortSignal.timeout(timeoutMs) });
      await res.body?.cancel();
      return res.status >= 200 && res.status < 400;
    } catch {
      return false;
    }
  }
  if (probe.tcpSocket) {
    const port = portOf(probe.tcpSocket.port);
    return new Promise((resolve) => {
      const sock = tcpConnect({ host: NODE_IP, port, timeout: timeoutMs });
      const done = (ok: boolean) => {
        sock.destroy();
        resolve(ok);
      };
      sock.once('connect', () => done(true));
      sock.once('error', () => done(false));
      sock.once('timeout', () => done(false));
    });
  }
  return true;
}

/** The container's uid and gid: the securityContext's, else the image's USER (a name is looked up in the image's /etc/passwd). */
export function imageUser(image: BuiltImageRoot, runAsUser?: number, runAsGroup?: number): { uid: number; gid: number } {
  const [user = '', group] = image.config.user.split(':');
  let passwd: string[][] = [];
  try {
    passwd = readFileSync(join(image.rootfs, 'etc', 'passwd'), 'utf8')
      .split('\n')
      .map((l) => l.split(':'));
  } catch {
    /* distroless-style images may have none */
  }
  const entry = passwd.find((p) => p[0] === user || (user !== '' && p[2] === user));
  const uid = runAsUser ?? (/^\d+$/.test(user) ? Number(user) : Number(entry?.[2] ?? 0));
  const byUid = passwd.find((p) => p[2] === String(uid));
  const gid = runAsGroup ?? (group !== undefined && /^\d+$/.test(group) ? Number(group) : Number((runAsUser === undefined ? entry : byUid)?.[3] ?? 0));
  return { uid, gid };
}

function fieldValue(pod: k8s.V1Pod, path: string): string {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (m) return (m[1] === 'labels' ? pod.metadata?.labels : pod.metadata?.annotations)?.[m[2]!] ?? '';
  const simple: Record<string, string | undefined> = {
    'metadata.name': pod.metadata?.name,
    'metadata.namespace': pod.metadata?.namespace,
    'metadata.uid': pod.metadata?.uid,
    'spec.nodeName': pod.spec?.nodeName,
    'spec.serviceAccountName': pod.spec?.serviceAccountName,
    'status.podIP': NODE_IP,
    'status.hostIP': NODE_IP,
  };
  return simple[path] ?? '';
}

/** The termination message file, or the log's tail under FallbackToLogsOnError, capped like the kubelet. */
function readTerminationMessage(c: ContainerRun, spec: k8s.V1Container): string {
  let msg = '';
  try {
    msg = readFileSync(c.termFile, 'utf8').slice(0, 4096);
  } catch {
    /* no message written */
  }
  if (!msg && c.exitCode !== 0 && spec.terminationMessagePolicy === 'FallbackToLogsOnError') {
    try {
      const lines = readFileSync(c.logFile, 'utf8').split('\n').filter(Boolean).slice(-80);
      msg = lines
        .map((l) => l.split(' ').slice(2).join(' '))
        .join('\n')
        .slice(-2048);
    } catch {
      /* no log */
    }
  }
  return msg;
}
