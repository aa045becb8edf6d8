import { mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { cacheRoot, imageEntrypoint, repoRoot, versions } from './cache.js';
import { ensureProductImages, podsMode, type BuiltImage, type Program } from './images.js';
import { ensureKafka, KafkaBroker } from './kafka.js';
import { ControlPlane, ensureKubeBinaries } from './kube.js';
import { NodeAgent, type ImageTable } from './node-agent.js';

/** What the suites need to reach the bed. */
export interface TestbedEnv {
  KUBECONFIG: string;
  KAFKA_BROKERS: string;
  /** Folder holding kubectl (and the other control-plane binaries). */
  KUBEBUILDER_ASSETS?: string;
  /** How the bed's node runs pods: the suites read it to know whether a pod ran in an image. */
  TESTBED_PODS?: 'image' | 'process';
}

export interface TestbedOptions {
  /** Kafka's `group.initial.rebalance.delay.ms`; 0 for the suites, 3000 (Kafka's default) for benchmarks. */
  initialRebalanceDelayMs?: number;
  /** How pods run (see podsMode); TESTBED_PODS by default. */
  pods?: 'image' | 'process';
  /** Start the broker in secure mode (SASL_SSL, ACLs; see KafkaBrokerOptions.secure). */
  secureKafka?: boolean;
  log?: (line: string) => void;
}

/**
 * The images the node knows how to run. The product's two images run from their built
 * filesystems when `built` has them (TESTBED_PODS=image, the default as root on Linux), else as
 * the local programs they stand for. The fixtures' images stay host processes: they are test
 * programs, not images users run.
 */
export function defaultImageTable(built?: Record<Program, BuiltImage>): ImageTable {
  return {
    'mcp-job-controller/job': built ? built.job : imageEntrypoint('job'),
    'mcp-job-controller/controller': built ? built.controller : ['node', join(repoRoot, 'dist', 'controller', 'main.js')],
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
    /** The images pods run from; undefined when pods run as host processes. */
    readonly images?: Record<Program, BuiltImage>,
  ) {}

  get env(): TestbedEnv {
    return {
      KUBECONFIG: this.control.kubeconfig,
      KAFKA_BROKERS: this.kafka.brokers,
      KUBEBUILDER_ASSETS: this.kubeBin,
      TESTBED_PODS: this.images ? 'image' : 'process',
    };
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
    const pods = opts.pods ?? podsMode();
    log(`testbed: pods run ${pods === 'image' ? "inside the product's images (buildah, chroot)" : 'as host processes (TESTBED_PODS=process)'}`);
    try {
      const [images] = await Promise.all([pods === 'image' ? ensureProductImages(log) : Promise.resolve(undefined), kafka.start(), control.start()]);
      const kc = new k8s.KubeConfig();
      kc.loadFromFile(control.kubeconfig);
      // Messages name the test fixtures' MCP servers by their host path: the repository is bound
      // at its own path into containers started from an image.
      const node = new NodeAgent(kc, control.pki, join(dir, 'node'), defaultImageTable(images), 'testbed-node', {
        hostPaths: images ? [repoRoot] : [],
        apiServerPort: Number(new URL(control.server).port),
      });
      await node.start();
      const bed = new Testbed(dir, kafka, control, node, kubeBin, images);
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
