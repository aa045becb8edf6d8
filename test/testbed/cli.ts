import { readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot } from './cache.js';
import { Testbed } from './testbed.js';

const pidFile = join(cacheRoot, 'run', 'testbed-up.pid');

async function up(): Promise<void> {
  const bed = await Testbed.start();
  mkdirSync(join(cacheRoot, 'run'), { recursive: true });
  writeFileSync(pidFile, String(process.pid));
  const env = bed.env;
  process.stdout.write(
    [
      '# the test bed is up; in another shell:',
      `export KUBECONFIG=${env.KUBECONFIG}`,
      `export KAFKA_BROKERS=${env.KAFKA_BROKERS}`,
      `export PATH=${env.KUBEBUILDER_ASSETS}:$PATH   # kubectl`,
      '# stop it with Ctrl-C here, or `npm run testbed -- down`',
      '',
    ].join('\n'),
  );
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    process.stderr.write('testbed: stopping\n');
    await bed.stop();
    rmSync(pidFile, { force: true });
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
}

function down(): void {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8'));
  } catch {
    process.stderr.write('testbed: no running test bed found\n');
    return;
  }
  try {
    process.kill(pid, 'SIGTERM');
    process.stderr.write(`testbed: asked process ${pid} to stop\n`);
  } catch {
    rmSync(pidFile, { force: true });
    process.stderr.write('testbed: the recorded test bed was already gone\n');
  }
}

const cmd = process.argv[2];
if (cmd === 'up') {
  up().catch((err: unknown) => {
    process.stderr.write(`testbed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
} else if (cmd === 'down') {
  down();
} else if (cmd === 'secure-check') {
  // A secure broker alone (no Kubernetes): the product's principals and ACLs exercised, and
  // what each refusal looks like from kafkajs, as JSON on standard output.
  import('./secure-check.js')
    .then(({ runSecureCheck }) => runSecureCheck({ keep: process.env.TESTBED_KEEP === '1' }))
    .then(
      (report) => {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      },
      (err: unknown) => {
        process.stderr.write(`testbed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
        process.exit(1);
      },
    );
} else if (cmd === 'images') {
  // Both images from the Dockerfiles with buildah (chroot isolation, no pull) on the stand-in
  // base images, as the suites build them; cached by their inputs.
  import('./images.js')
    .then(({ ensureProductImages }) => ensureProductImages((l) => process.stderr.write(`${l}\n`)))
    .then(
      (images) => {
        for (const img of Object.values(images)) process.stdout.write(`${img.ref}\t${(img.sizeBytes / 1e6).toFixed(0)} MB\t${img.rootfs}\n`);
      },
      (err: unknown) => {
        process.stderr.write(`testbed: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
} else {
  process.stderr.write('usage: npm run testbed -- up|down|secure-check|images\n');
  process.exit(2);
}
