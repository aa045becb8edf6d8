import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { imageEntrypoint, repoRoot } from './testbed/cache.js';
import { waitFor } from './helpers.js';

export const CONTROLLER = join(repoRoot, 'dist', 'controller', 'main.js');
export const FIXTURE = join(repoRoot, 'dist', 'test', 'fixtures', 'mcp-server.js');
/** The job as its image starts it: the bundle. */
/** node's arguments for the job as its image starts it (V8 flags, then the bundle). */
export const JOB_ARGS = imageEntrypoint('job').slice(1);

/**
 * Creates the ServiceAccount, Role and RoleBinding of k8s/ in `namespace`, as kustomize would;
 * with `replay`, also the opt-in Role of k8s/components/replay.
 */
export async function applyControllerRbac(kc: k8s.KubeConfig, namespace: string, opts: { replay?: boolean } = {}): Promise<void> {
  const client = k8s.KubernetesObjectApi.makeApiClient(kc);
  const files = ['base/serviceaccount.yaml', 'base/role.yaml', 'base/rolebinding.yaml'];
  if (opts.replay) files.push('components/replay/role.yaml', 'components/replay/rolebinding.yaml');
  for (const file of files) {
    for (const obj of k8s.loadAllYaml(readFileSync(join(repoRoot, 'k8s', file), 'utf8')) as k8s.KubernetesObject[]) {
      obj.metadata = { ...obj.metadata, namespace };
      const rb = obj as k8s.V1RoleBinding;
      if (obj.kind === 'RoleBinding') rb.subjects = rb.subjects?.map((s) => ({ ...s, namespace }));
      await client.create(obj);
    }
  }
}

/** A kubeconfig that authenticates as a ServiceAccount with a TokenRequest token, never as admin. */
export async function serviceAccountKubeconfig(kc: k8s.KubeConfig, namespace: string, name: string): Promise<string> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const tr = await core.createNamespacedServiceAccountToken({ name, namespace, body: { spec: { audiences: [], expirationSeconds: 3600 } } });
  const cluster = kc.getCurrentCluster()!;
  const ca = cluster.caFile ? readFileSync(cluster.caFile).toString('base64') : cluster.caData;
  const file = join(mkdtempSync(join(tmpdir(), 'sa-kubeconfig-')), 'config');
  writeFileSync(
    file,
    k8s.dumpYaml({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'sa',
      clusters: [{ name: 'c', cluster: { server: cluster.server, 'certificate-authority-data': ca } }],
      users: [{ name: name, user: { token: tr.status!.token } }],
      contexts: [{ name: 'sa', context: { cluster: 'c', user: name, namespace } }],
    }),
  );
  return file;
}

/** The controller binary as a local process, its JSON logs collected for assertions. */
export class ControllerProcess {
  child?: ChildProcess;
  logs: Record<string, any>[] = [];
  private exited_?: Promise<number | null>;

  /** Lines that contained `count` (not parsed, not kept), and when the first and the last arrived. */
  counted = 0;
  firstCountedAt = 0;
  lastCountedAt = 0;

  constructor(
    readonly env: Record<string, string>,
    /** Flags for node itself (`--cpu-prof`, say), before the controller's script. */
    readonly nodeArgs: string[] = [],
    /**
     * `count`: lines containing it are only counted — a benchmark's cheap progress signal.
     * `onCounted`: called with each counted line as it arrives (the bench's latency stamps).
     * `cgroup`: a cgroup directory to start in (a memory limit node sizes its heap from).
     */
    readonly opts: { count?: string; onCounted?: (line: string, at: number) => void; cgroup?: string } = {},
  ) {}

  start(): this {
    const argv = [process.execPath, ...this.nodeArgs, CONTROLLER];
    // The shell joins the cgroup (if it may), then becomes node (same pid), so node starts inside it.
    const [cmd, ...args] = this.opts.cgroup ? ['/bin/sh', '-c', 'echo $$ > "$0/cgroup.procs"; exec "$@"', this.opts.cgroup, ...argv] : argv;
    const child = spawn(cmd!, args, {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'info', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (this.opts.count && line.includes(this.opts.count)) {
          this.lastCountedAt = performance.now();
          if (this.counted++ === 0) this.firstCountedAt = this.lastCountedAt;
          this.opts.onCounted?.(line, this.lastCountedAt);
          continue;
        }
        try {
          this.logs.push(JSON.parse(line));
        } catch {
          this.logs.push({ msg: line, raw: true });
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    this.exited_ = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
    this.child = child;
    return this;
  }

  async ready(timeoutMs = 60_000): Promise<void> {
    await waitFor(() => this.logs.some((l) => l.msg === 'joined consumer group'), {
      timeoutMs,
      description: `controller to join its group; logs: ${this.tail()}`,
    });
  }

  tail(n = 10): string {
    return this.logs
      .slice(-n)
      .map((l) => JSON.stringify(l))
      .join('\n');
  }

  /** Resolves the exit code once the process has exited by itself. */
  exited(): Promise<number | null> {
    return this.exited_!;
  }

  /** SIGTERM and wait; resolves the exit code. */
  async stop(): Promise<number | null> {
    this.child?.kill('SIGTERM');
    return this.exited_!;
  }

  async kill(): Promise<void> {
    this.child?.kill('SIGKILL');
    await this.exited_;
  }
}

/** What one run of the job binary as a local process did. */
export interface JobRun {
  code: number | null;
  summary: Record<string, any>;
  logs: Record<string, any>[];
  ms: number;
}

/** The job binary as a local process, the way a Job's pod runs it; env is what the controller would set. */
export function runJob(env: Record<string, string>): Promise<JobRun> {
  const dir = mkdtempSync(join(tmpdir(), 'job-test-'));
  const term = join(dir, 'termination-log');
  const t0 = Date.now();
  const child = spawn(process.execPath, JOB_ARGS, {
    env: { PATH: process.env.PATH, HOME: dir, KAFKA_BROKERS: process.env.KAFKA_BROKERS ?? '', TERMINATION_MESSAGE_PATH: term, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c) => (out += c));
  child.stderr.on('data', (c) => (out += c));
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      let summary: Record<string, any> = {};
      try {
        summary = JSON.parse(readFileSync(term, 'utf8'));
      } catch {
        /* asserted by the caller */
      }
      const logs = out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l));
      resolve({ code, summary, logs, ms: Date.now() - t0 });
    }),
  );
}
