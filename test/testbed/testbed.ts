import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { cacheRoot, imageEntrypoint, repoRoot, versions } from './cache.js';
import { ensureKafka, KafkaBroker } from './kafka.js';
import { ControlPlane, ensureKubeBinaries } from './kube.js';
import { NodeAgent, type ImageTable } from './node-agent.js';

/** What the suites need to reach the bed. */
export interface TestbedEnv {
  KUBECONFIG: string;
  KAFKA_BROKERS: string;
  /** Folder holding kubectl (and the other control-plane binaries). */
  KUBEBUILDER_ASSETS?: string;
}

export interface TestbedOptions {
  /** Kafka's `group.initial.rebalance.delay.ms`; 0 for the suites, 3000 (Kafka's default) for benchmarks. */
  initialRebalanceDelayMs?: number;
  /** Start the broker in secure mode (SASL_SSL, ACLs; see KafkaBrokerOptions.secure). */
  secureKafka?: boolean;
  log?: (line: string) => void;
}

/** The images the node knows how to run, and the local programs they stand for. */
export function defaultImageTable(): ImageTable {
  return {
    'mcp-job-controller/job': imageEntrypoint('job'),
    'mcp-job-controller/controller': ['node', join(repoRoot, 'dist', 'controller', 'main.js')],
    // A container server's image (a native sidecar of a Job's pod): MCP over Streamable HTTP on $PORT.
    'mcp-job-controller/test-mcp-http': ['node', join(repoRoot, 'dist', 'test', 'fixtures', 'http-sidecar.js')],
    busybox: [],
  };
}

/**
 * A real Kafka broker, a real Kubernetes control plane and a node that runs pods as local
 * processes, all on loopback. One bed serves a whole test run; tests isolate themselves with
 * fresh namespaces and topics.
 */
export class Testbed {
  private constructor(
    readonly dir: string,
    readonly kafka: KafkaBroker,
    readonly control: ControlPlane,
    readonly node: NodeAgent,
    readonly kubeBin: string,
  ) {}

  get env(): TestbedEnv {
    return { KUBECONFIG: this.control.kubeconfig, KAFKA_BROKERS: this.kafka.brokers, KUBEBUILDER_ASSETS: this.kubeBin };
  }

  static async start(opts: TestbedOptions = {}): Promise<Testbed> {
    const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
    const kafkaHome = ensureKafka(versions.kafka);
    const kubeBin = ensureKubeBinaries(versions.kubernetes, versions.etcd);
    pruneOldRuns(join(cacheRoot, 'run'));
    const dir = join(cacheRoot, 'run', `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    const kafka = await KafkaBroker.create(kafkaHome, join(dir, 'kafka'), {
      initialRebalanceDelayMs: opts.initialRebalanceDelayMs ?? 0,
      secure: opts.secureKafka ?? false,
    });
    const control = await ControlPlane.create(kubeBin, join(dir, 'kube'));
    const t0 = Date.now();
    log(`testbed: starting Kafka ${versions.kafka} and Kubernetes ${versions.kubernetes} (state in ${dir})`);
    try {
      await Promise.all([kafka.start(), control.start()]);
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(control.kubeconfig);
      const node = new NodeAgent(kc, control.pki, join(dir, 'node'), defaultImageTable());
      await node.start();
      const bed = new Testbed(dir, kafka, control, node, kubeBin);
      await bed.waitNodeReady(kc);
      writeFileSync(
        join(dir, 'env'),
        Object.entries(bed.env)
          .map(([k, v]) => `export ${k}=${v}`)
          .join('\n') + '\n',
      );
      log(`testbed: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
      return bed;
    } catch (err) {
      kafka.kill();
      control.kill();
      throw err;
    }
  }

  /** The scheduler only binds to a node it sees Ready and untainted. */
  private async waitNodeReady(kc: k8s.KubeConfig): Promise<void> {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const { waitFor } = await import('../../src/shared/wait.js');
    await waitFor(
      async () => {
        const node = await core.readNode({ name: this.node.nodeName });
        const ready = node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
        return ready && !(node.spec?.taints ?? []).some((t) => t.effect === 'NoSchedule' || t.effect === 'NoExecute');
      },
      { timeoutMs: 60_000, description: 'node Ready without taints' },
    );
  }

  async stop({ keepState = process.env.TESTBED_KEEP === '1' } = {}): Promise<void> {
    await this.node.stop();
    await Promise.all([this.kafka.stop(), this.control.stop()]);
    if (!keepState) rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A failed start keeps its folder (the logs say why); a day later it is only clutter. */
function pruneOldRuns(runRoot: string): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(runRoot);
  } catch {
    return;
  }
  const dayAgo = Date.now() - 24 * 3600 * 1000;
  for (const e of entries) {
    const p = join(runRoot, e);
    try {
      if (statSync(p).isDirectory() && statSync(p).mtimeMs < dayAgo) rmSync(p, { recursive: true, force: true });
    } catch {
      /* raced with another run */
    }
  }
}
