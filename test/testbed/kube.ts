import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { waitFor } from '../../src/shared/wait.js';
import { cacheRoot, scriptsDir } from './cache.js';
import { makePki, writeKubeconfig, type Pki } from './pki.js';
import { Daemon, freePort } from './proc.js';

const BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubectl'];

/**
 * The control-plane binaries: `KUBEBUILDER_ASSETS` when set (the envtest convention), else the
 * cache, built from the Go module proxy on first use.
 */
export function ensureKubeBinaries(k8sVersion: string, etcdVersion: string): string {
  const given = process.env.KUBEBUILDER_ASSETS;
  if (given) {
    const missing = BINARIES.filter((b) => !existsSync(join(given, b)));
    if (missing.length) throw new Error(`testbed: KUBEBUILDER_ASSETS=${given} lacks ${missing.join(', ')}`);
    return given;
  }
  const dir = join(cacheRoot, `k8s-${k8sVersion}-etcd-${etcdVersion}`, 'bin');
  if (BINARIES.some((b) => !existsSync(join(dir, b)))) {
    process.stderr.write(
      `testbed: building Kubernetes ${k8sVersion} and etcd ${etcdVersion} from the Go module proxy (first run only; tens of minutes on 2 cores)\n`,
    );
    execFileSync('bash', [join(scriptsDir, 'build-k8s.sh'), k8sVersion, etcdVersion, dir], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  return dir;
}

/** GET over mTLS with the admin certificate; resolves the status code and body. */
export function adminGet(url: string, pki: Pki): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        ca: readFileSync(pki.caCert),
        cert: readFileSync(pki.adminCert),
        key: readFileSync(pki.adminKey),
        timeout: 5000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/**
 * etcd, kube-apiserver (RBAC, default admission plugins, service-account tokens),
 * kube-controller-manager (all controllers) and kube-scheduler as local processes.
 * Components can be stopped and started one by one so fault tests can take the API away.
 */
export class ControlPlane {
  readonly pki: Pki;
  readonly kubeconfig: string;
  private etcd!: Daemon;
  private apiserver!: Daemon;
  private kcm!: Daemon;
  private scheduler!: Daemon;

  private constructor(
    readonly bin: string,
    readonly dir: string,
    private readonly ports: { etcd: number; etcdPeer: number; api: number; kcm: number; sched: number },
  ) {
    this.pki = makePki(join(dir, 'pki'));
    this.kubeconfig = join(dir, 'admin.kubeconfig');
    writeKubeconfig(this.kubeconfig, this.server, this.pki);
  }

  static async create(bin: string, dir: string): Promise<ControlPlane> {
    mkdirSync(dir, { recursive: true });
    const ports = { etcd: await freePort(), etcdPeer: await freePort(), api: await freePort(), kcm: await freePort(), sched: await freePort() };
    return new ControlPlane(bin, dir, ports);
  }

  get server(): string {
    return `https://127.0.0.1:${this.ports.api}`;
  }

  get pids(): number[] {
    return [this.etcd, this.apiserver, this.kcm, this.scheduler].map((d) => d?.pid).filter((p): p is number => p !== undefined);
  }

  private daemon(name: string, args: string[]): Daemon {
    return new Daemon(name, join(this.bin, name), args, join(this.dir, 'logs', `${name}.log`));
  }

  async start(): Promise<void> {
    await this.startEtcd();
    await this.startApiserver();
    await this.startControllers();
  }

  async startEtcd(): Promise<void> {
    const { etcd, etcdPeer } = this.ports;
    this.etcd = this.daemon('etcd', [
      `--data-dir=${join(this.dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcd}`,
      `--advertise-client-urls=http://127.0.0.1:${etcd}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeer}`,
      // A test bed loses nothing worth an fsync; skipping it keeps etcd off the disk's latency.
      '--unsafe-no-fsync',
      '--quota-backend-bytes=4294967296',
      '--log-level=warn',
    ]);
    this.etcd.start();
    await this.etcd.guard(waitFor(async () => (await fetch(`http://127.0.0.1:${etcd}/health`)).ok, { timeoutMs: 30_000, description: 'etcd' }));
  }

  async startApiserver(): Promise<void> {
    const p = this.pki;
    this.apiserver = this.daemon('kube-apiserver', [
      `--etcd-servers=http://127.0.0.1:${this.ports.etcd}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${this.ports.api}`,
      `--tls-cert-file=${p.apiserverCert}`,
      `--tls-private-key-file=${p.apiserverKey}`,
      `--client-ca-file=${p.caCert}`,
      '--authorization-mode=Node,RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${p.saPub}`,
      `--service-account-signing-key-file=${p.saKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      `--kubelet-client-certificate=${p.kubeletClientCert}`,
      `--kubelet-client-key=${p.kubeletClientKey}`,
      `--kubelet-certificate-authority=${p.caCert}`,
      '--kubelet-preferred-address-types=InternalIP',
      '--allow-privileged=true',
      // The endpoint reconciler refuses a loopback advertise address; nothing here needs the kubernetes Service endpoints.
      '--endpoint-reconciler-type=none',
      '--max-requests-inflight=800',
      '--max-mutating-requests-inflight=400',
      '--v=1',
    ]);
    this.apiserver.start();
    await this.apiserver.guard(
      waitFor(async () => (await adminGet(`${this.server}/readyz`, this.pki)).status === 200, {
        timeoutMs: 90_000,
        intervalMs: 250,
        description: 'kube-apiserver /readyz',
      }),
    );
  }

  async startControllers(): Promise<void> {
    const p = this.pki;
    this.kcm = this.daemon('kube-controller-manager', [
      `--kubeconfig=${this.kubeconfig}`,
      `--authentication-kubeconfig=${this.kubeconfig}`,
      `--authorization-kubeconfig=${this.kubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${this.ports.kcm}`,
      `--service-account-private-key-file=${p.saKey}`,
      `--root-ca-file=${p.caCert}`,
      '--controllers=*',
      '--use-service-account-credentials=false',
      // The defaults (20 qps) make the Job controller, not this product, the bottleneck of every figure.
      '--kube-api-qps=200',
      '--kube-api-burst=400',
      '--concurrent-job-syncs=10',
      '--v=1',
    ]);
    this.scheduler = this.daemon('kube-scheduler', [
      `--kubeconfig=${this.kubeconfig}`,
      `--authentication-kubeconfig=${this.kubeconfig}`,
      `--authorization-kubeconfig=${this.kubeconfig}`,
      '--leader-elect=false',
      '--bind-address=127.0.0.1',
      `--secure-port=${this.ports.sched}`,
      '--kube-api-qps=200',
      '--kube-api-burst=400',
      '--v=1',
    ]);
    this.kcm.start();
    this.scheduler.start();
    // The service-account controller creating `default` shows the controller manager is working.
    await this.kcm.guard(
      waitFor(async () => (await adminGet(`${this.server}/api/v1/namespaces/default/serviceaccounts/default`, this.pki)).status === 200, {
        timeoutMs: 90_000,
        intervalMs: 250,
        description: 'kube-controller-manager (default ServiceAccount)',
      }),
    );
  }

  async stopApiserver(): Promise<void> {
    await this.apiserver.stop();
  }

  /** Restarts any control-plane component that exited (a long API server outage can end them). */
  async ensureRunning(): Promise<string[]> {
    const restarted: string[] = [];
    if (!this.apiserver.running) {
      await this.startApiserver();
      restarted.push('kube-apiserver');
    }
    for (const d of [this.kcm, this.scheduler]) {
      if (!d.running) {
        d.start();
        restarted.push(d.name);
      }
    }
    return restarted;
  }

  async stop(): Promise<void> {
    for (const d of [this.scheduler, this.kcm, this.apiserver, this.etcd]) await d?.stop();
  }

  kill(): void {
    for (const d of [this.scheduler, this.kcm, this.apiserver, this.etcd]) d?.kill();
  }

  kubectl(args: string[], input?: string): string {
    return execFileSync(join(this.bin, 'kubectl'), [`--kubeconfig=${this.kubeconfig}`, ...args], { encoding: 'utf8', input });
  }
}
