import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../../src/shared/wait.js';
import { cacheRoot, scriptsDir } from './cache.js';
import { Daemon, freePort } from './proc.js';

/** Versions of the Go programs only some suites need; each has an env override. */
export const goToolVersions = {
  // v0.19 is built against client-go 0.36, which Kubernetes 1.37 serves (one minor of skew).
  kueue: process.env.TESTBED_KUEUE_VERSION ?? 'v0.19.2',
  // The Prometheus module's tag for Prometheus 3.16 (its Go module versions are v0.3XX.Y).
  promtool: process.env.TESTBED_PROMTOOL_VERSION ?? 'v0.316.0',
};

/**
 * A program from the Go module proxy, built once into the cache keyed by module version
 * (`test/testbed/scripts/build-go-tool.sh`), so a fresh clone reuses it and a fresh machine
 * builds it on first use.
 */
function ensureGoTool(name: string, module: string, version: string, pkgDir: string): string {
  const bin = join(cacheRoot, `${name}-${version}`, 'bin', name);
  if (!existsSync(bin)) {
    process.stderr.write(`testbed: building ${name} ${version} from the Go module proxy (first run only; minutes on 2 cores)\n`);
    execFileSync('bash', [join(scriptsDir, 'build-go-tool.sh'), module, version, pkgDir, join(cacheRoot, `${name}-${version}`, 'bin')], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
  }
  return bin;
}

/** promtool (Prometheus' rule checker and unit tester). */
export function ensurePromtool(): string {
  return ensureGoTool('promtool', 'github.com/prometheus/prometheus', goToolVersions.promtool, 'cmd/promtool');
}

/** Kueue's manager binary, and its CRDs as the module ships them. */
export function ensureKueue(): { bin: string; crds: string[] } {
  const bin = ensureGoTool('kueue', 'sigs.k8s.io/kueue', goToolVersions.kueue, 'cmd/kueue');
  const json = execFileSync('go', ['mod', 'download', '-json', `sigs.k8s.io/kueue@${goToolVersions.kueue}`], {
    encoding: 'utf8',
    cwd: cacheRoot,
    env: { ...process.env, GOFLAGS: '-mod=mod' },
  });
  const dir = join((JSON.parse(json) as { Dir: string }).Dir, 'config', 'components', 'crd', 'bases');
  return { bin, crds: readdirSync(dir).map((f) => join(dir, f)) };
}

/**
 * Kueue's manager as a local process against the test bed's API server, managing batch/v1
 * Jobs. Its webhooks are NOT registered with the API server: the certificate Kueue makes for
 * them names its in-cluster Service (`kueue-webhook-service.kueue-system.svc`), which an API
 * server on 127.0.0.1 cannot reach or verify. What that changes: nothing defaults or validates
 * Kueue's own objects beyond their CRD schemas, and a Job is not suspended for Kueue by a
 * webhook — the controller creates it suspended with its queue label itself.
 */
export async function startKueue(o: { kubeconfig: string; kubectl: (args: string[], input?: string) => string; dir: string }): Promise<Daemon> {
  const { bin, crds } = ensureKueue();
  for (const f of crds) o.kubectl(['apply', '--server-side', '--force-conflicts', '-f', f]);
  for (const f of crds) o.kubectl(['wait', '--for=condition=Established', '--timeout=60s', '-f', f]);
  o.kubectl(['apply', '-f', '-'], 'apiVersion: v1\nkind: Namespace\nmetadata: { name: kueue-system }\n');
  // The certificate rotator fills an existing Secret (a Kueue install ships it empty).
  o.kubectl(['apply', '-f', '-'], 'apiVersion: v1\nkind: Secret\nmetadata: { name: kueue-webhook-server-cert, namespace: kueue-system }\n');
  mkdirSync(join(o.dir, 'certs'), { recursive: true });
  const health = await freePort();
  const webhookPort = await freePort();
  // Kueue's certificate rotator waits until it has put its CA into the conversion webhook of
  // each CRD it serves (a Kueue install patches them in); the bases ship without one. Every
  // object here is read and written at the storage version, so the API server never calls it.
  for (const crd of ['localqueues', 'clusterqueues', 'workloads', 'cohorts', 'multikueueclusters']) {
    const conversion = {
      strategy: 'Webhook',
      webhook: { conversionReviewVersions: ['v1'], clientConfig: { url: `https://127.0.0.1:${webhookPort}/convert` } },
    };
    o.kubectl(['patch', 'crd', `${crd}.kueue.x-k8s.io`, '--type=merge', '-p', JSON.stringify({ spec: { conversion } })]);
  }
  const config = join(o.dir, 'kueue-config.yaml');
  writeFileSync(
    config,
    [
      'apiVersion: config.kueue.x-k8s.io/v1beta2',
      'kind: Configuration',
      'namespace: kueue-system',
      `health: { healthProbeBindAddress: "127.0.0.1:${health}" }`,
      'metrics: { bindAddress: "0" }',
      `webhook: { port: ${webhookPort}, host: 127.0.0.1, certDir: ${join(o.dir, 'certs')} }`,
      'leaderElection: { leaderElect: false }',
      'manageJobsWithoutQueueName: false',
      'internalCertManagement: { enable: true, webhookServiceName: kueue-webhook-service, webhookSecretName: kueue-webhook-server-cert }',
      'integrations: { frameworks: ["batch/job"] }',
      '',
    ].join('\n'),
  );
  const kueue = new Daemon('kueue', bin, [`--config=${config}`, '--feature-gates=VisibilityOnDemand=false', '--zap-log-level=2'], join(o.dir, 'kueue.log'), {
    KUBECONFIG: o.kubeconfig,
  });
  kueue.start();
  const certDir = join(o.dir, 'certs');
  // A start-up that fails must not leave Kueue running: the caller never gets it to stop.
  await kueue
    .guard(
      waitFor(
        async () => {
          // What a kubelet does for Kueue's pod: mount the Secret its rotator fills at the cert dir.
          if (!existsSync(join(certDir, 'tls.crt'))) {
            const secret = JSON.parse(o.kubectl(['get', 'secret', '-n', 'kueue-system', 'kueue-webhook-server-cert', '-o', 'json'])) as {
              data?: Record<string, string>;
            };
            if (secret.data?.['tls.crt'])
              for (const [k, v] of Object.entries(secret.data).sort(([a], [b]) => (a === 'tls.crt' ? 1 : b === 'tls.crt' ? -1 : 0)))
                writeFileSync(join(certDir, k), Buffer.from(v, 'base64'));
          }
          const r = await fetch(`http://127.0.0.1:${health}/readyz`).catch(() => undefined);
          return r?.ok === true;
        },
        { timeoutMs: 120_000, intervalMs: 500, description: 'kueue /readyz' },
      ),
    )
    .catch((err: unknown) => {
      kueue.kill();
      throw err;
    });
  return kueue;
}
