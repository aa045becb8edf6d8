/**
 * The product's two images, built from its Dockerfiles with buildah (no daemon: chroot
 * isolation, no pull) on stand-in base images the bed assembles from Debian's packages and
 * npm's Node build. Everything lives under the cache root, outside the repo: buildah's own
 * storage, the stand-ins (keyed by their versions), each built image (keyed by a hash of the
 * files its Dockerfile copies) and its root filesystem exported once for the node agent.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { sleep } from '../../src/shared/wait.js';
import { cacheRoot, repoRoot, scriptsDir, versions } from './cache.js';

export type Program = 'job' | 'controller';

/** The real names the Dockerfiles' FROM lines use; here they are tags of local stand-ins. */
export const BASE_NAMES = {
  node: 'docker.io/library/node:20-bookworm-slim',
  distroless: 'gcr.io/distroless/nodejs20-debian12:nonroot',
} as const;
const STANDIN = 'localhost/mcp-job-controller-standin';

/** What the node agent needs from an image's config to start it like a container runtime does. */
export interface ImageConfig {
  entrypoint: string[];
  cmd: string[];
  env: string[];
  user: string;
  workingDir: string;
}

export interface BuiltImage {
  program: Program;
  ref: string;
  id: string;
  /** The image's root filesystem, exported once; pods get an overlay of it. */
  rootfs: string;
  config: ImageConfig;
  /** Bytes of the unpacked root filesystem. */
  sizeBytes: number;
  /** False when a cached image with the same inputs was reused. */
  built: boolean;
  seconds: number;
}

const imagesDir = join(cacheRoot, 'images');
const storage = ['--root', join(imagesDir, 'storage'), '--runroot', join(imagesDir, 'run'), '--storage-driver', 'overlay'];

/**
 * How the node agent runs pods: `image` (each container inside its image's filesystem, the
 * default for root on Linux) or `process` (the image's program as a host process: machines
 * without root or buildah). TESTBED_PODS overrides.
 */
export function podsMode(): 'image' | 'process' {
  const given = process.env.TESTBED_PODS;
  if (given === 'image' || given === 'process') return given;
  if (given) throw new Error(`TESTBED_PODS must be image or process, not ${given}`);
  const canBuild = process.platform === 'linux' && process.getuid?.() === 0;
  // In CI the images must be built and run: a runner that cannot must say so, not pass without them.
  if (!canBuild && process.env.CI === 'true')
    throw new Error('testbed: CI needs root on Linux to build and run the images (or TESTBED_PODS=process, said on purpose)');
  return canBuild ? 'image' : 'process';
}

function run(cmd: string, args: string[], opts: { quiet?: boolean; cwd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (!opts.quiet) process.stderr.write(d);
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.slice(0, 8).join(' ')} exited with ${code}: ${err.trim().split('\n').slice(-5).join('\n')}`)),
    );
  });
}

/** buildah on the bed's own storage. */
export function buildah(args: string[], opts: { quiet?: boolean; cwd?: string } = {}): Promise<string> {
  return run('buildah', [...storage, ...args], opts);
}

async function imageExists(ref: string): Promise<boolean> {
  return buildah(['inspect', '--type', 'image', '--format', '{{.FromImageID}}', ref], { quiet: true }).then(
    () => true,
    () => false,
  );
}

/** One builder at a time across processes (helpers and CI share the cache): a lock folder, stale after 30 min. */
async function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(imagesDir, `${name}.lock`);
  mkdirSync(imagesDir, { recursive: true });
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      try {
        if (Date.now() - statSync(lock).mtimeMs > 30 * 60_000) rmSync(lock, { recursive: true, force: true });
      } catch {
        /* released meanwhile */
      }
      await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

const sha = (parts: (string | Buffer)[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('hex');
};

/** buildah and mmdebstrap, installed from Debian's packages by the project's script when missing. */
export async function ensureImageTools(): Promise<void> {
  await run('bash', [join(scriptsDir, 'install-image-tools.sh')]);
}

/** The stand-in base images, keyed by Node, npm and Debian versions, their recipe and the host's CA bundle. */
export async function ensureBaseImages(): Promise<string> {
  const script = join(scriptsDir, 'build-base-images.sh');
  const ca = process.env.TESTBED_CA_BUNDLE ?? '/etc/ssl/certs/ca-certificates.crt';
  const key = `node${versions.node}-npm${versions.npm}-${versions.debian}-${sha([readFileSync(script), existsSync(ca) ? readFileSync(ca) : '']).slice(0, 12)}`;
  await withLock('base', async () => {
    const have = (await imageExists(`${STANDIN}/node-bookworm-slim:${key}`)) && (await imageExists(`${STANDIN}/distroless-nodejs20-debian12-nonroot:${key}`));
    if (!have) {
      const args = [join(imagesDir, 'storage'), join(imagesDir, 'run'), versions.node, versions.npm, versions.debian, key, join(imagesDir, 'work')];
      await run('bash', [script, ...args]);
    }
    // The Dockerfiles keep their real FROM lines: the real names are local tags of the stand-ins.
    await buildah(['tag', `${STANDIN}/node-bookworm-slim:${key}`, BASE_NAMES.node], { quiet: true });
    await buildah(['tag', `${STANDIN}/distroless-nodejs20-debian12-nonroot:${key}`, BASE_NAMES.distroless], { quiet: true });
  });
  return key;
}

/** Every file under the paths a Dockerfile COPYs from the build context (what can change the image). */
export function contextInputs(dockerfile: string): string[] {
  const text = readFileSync(join(repoRoot, dockerfile), 'utf8');
  const files: string[] = [];
  const walk = (p: string) => {
    if (!existsSync(p)) return;
    if (statSync(p).isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e));
    else files.push(relative(repoRoot, p));
  };
  for (const m of text.matchAll(/^COPY\s+(?!--from)(.+)$/gm)) {
    const parts = m[1]!.split(/\s+/).filter((p) => !p.startsWith('--'));
    for (const src of parts.slice(0, -1)) walk(join(repoRoot, src));
  }
  return [...new Set(files)].sort();
}

/** An image's key: its Dockerfile, the files it copies, the base images. */
export function inputsHash(program: Program, baseKey: string): string {
  const dockerfile = `Dockerfile.${program}`;
  const files = contextInputs(dockerfile);
  return sha([baseKey, readFileSync(join(repoRoot, dockerfile)), ...files.flatMap((f) => [f, readFileSync(join(repoRoot, f))])]).slice(0, 16);
}

async function imageConfig(ref: string): Promise<{ id: string; config: ImageConfig }> {
  const info = JSON.parse(await buildah(['inspect', '--type', 'image', ref], { quiet: true })) as {
    FromImageID: string;
    OCIv1: { config?: { Entrypoint?: string[]; Cmd?: string[]; Env?: string[]; User?: string; WorkingDir?: string } };
  };
  const c = info.OCIv1.config ?? {};
  return {
    id: info.FromImageID,
    config: { entrypoint: c.Entrypoint ?? [], cmd: c.Cmd ?? [], env: c.Env ?? [], user: c.User ?? '', workingDir: c.WorkingDir || '/' },
  };
}

function duBytes(dir: string): number {
  let total = 0;
  const walk = (p: string) => {
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
    else if (st.isFile()) total += st.size;
  };
  try {
    walk(dir);
  } catch {
    /* a dangling path: sizes are reported, not asserted */
  }
  return total;
}

/** The image's root filesystem as a plain folder (the lower layer of every pod's overlay), exported once per image id. */
async function exportRootfs(ref: string, id: string): Promise<string> {
  const dest = join(imagesDir, 'rootfs', id.slice(0, 16));
  if (existsSync(join(dest, '.complete'))) return dest;
  const tmp = `${dest}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  const ctr = (await buildah(['from', '--pull=never', '--quiet', ref], { quiet: true })).trim();
  try {
    const mnt = (await buildah(['mount', ctr], { quiet: true })).trim();
    await run('cp', ['-a', `${mnt}/.`, tmp]);
  } finally {
    await buildah(['rm', ctr], { quiet: true }).catch(() => undefined);
  }
  writeFileSync(join(tmp, '.complete'), String(duBytes(tmp)));
  rmSync(dest, { recursive: true, force: true });
  renameSync(tmp, dest);
  return dest;
}

/** Keeps the newest few built images of a program (and their exported filesystems); older ones are only disk. */
async function pruneOld(program: Program, keep: string): Promise<void> {
  const repo = `localhost/mcp-job-controller/${program}`;
  const list = await buildah(['images', '--json', repo], { quiet: true }).catch(() => '[]');
  const imgs = (JSON.parse(list || '[]') as { id: string; names?: string[]; createdatraw?: string; created?: number }[])
    .filter((i) => (i.names ?? []).some((n) => n.startsWith(`${repo}:in-`)))
    .sort((a, b) => (b.created ?? 0) - (a.created ?? 0));
  for (const img of imgs.slice(3)) {
    if ((img.names ?? []).includes(keep)) continue;
    await buildah(['rmi', '--force', img.id], { quiet: true }).catch(() => undefined);
    rmSync(join(imagesDir, 'rootfs', img.id.slice(0, 16)), { recursive: true, force: true });
  }
}

/** One program's image, built from its Dockerfile unless an image with the same inputs is cached. */
export async function ensureProgramImage(program: Program, baseKey: string, log: (l: string) => void = () => undefined): Promise<BuiltImage> {
  const t0 = Date.now();
  const ref = `localhost/mcp-job-controller/${program}:in-${inputsHash(program, baseKey)}`;
  let built = false;
  const result = await withLock(program, async () => {
    if (!(await imageExists(ref))) {
      log(`testbed: building ${ref} from Dockerfile.${program} (buildah, chroot isolation, no pull)`);
      // --layers: a change to the sources reuses the cached `npm ci` steps.
      await buildah(['bud', '--isolation', 'chroot', '--pull=never', '--layers', '--quiet', '-f', `Dockerfile.${program}`, '-t', ref, '.'], { cwd: repoRoot });
      built = true;
    }
    const { id, config } = await imageConfig(ref);
    const rootfs = await exportRootfs(ref, id);
    if (built) await pruneOld(program, ref);
    return { id, config, rootfs };
  });
  const sizeBytes = Number(readFileSync(join(result.rootfs, '.complete'), 'utf8'));
  return { program, ref, ...result, sizeBytes, built, seconds: (Date.now() - t0) / 1000 };
}

/** Both images: tools, stand-in bases, then the two builds one after the other (2 cores). */
export async function ensureProductImages(log: (l: string) => void = () => undefined): Promise<Record<Program, BuiltImage>> {
  const t0 = Date.now();
  await ensureImageTools();
  const baseKey = await ensureBaseImages();
  const job = await ensureProgramImage('job', baseKey, log);
  const controller = await ensureProgramImage('controller', baseKey, log);
  const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;
  log(
    `testbed: images ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: job ${mb(job.sizeBytes)}${job.built ? ' (built)' : ' (cached)'}, controller ${mb(controller.sizeBytes)}${controller.built ? ' (built)' : ' (cached)'}`,
  );
  return { job, controller };
}

/**
 * Runs argv inside an image's filesystem as `uid:gid`, the way the node agent starts a
 * container (scripts/enter-rootfs.sh), with a throwaway writable layer; resolves its exit code and output.
 */
export async function runInImage(
  image: BuiltImage,
  argv: string[],
  opts: { uid: number; gid: number; env?: Record<string, string> },
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const dir = join(imagesDir, 'scratch', `${process.pid}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'mounts'), '');
  const env: Record<string, string> = {};
  for (const kv of image.config.env) env[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
  Object.assign(env, opts.env);
  const script = join(scriptsDir, 'enter-rootfs.sh');
  const args = [
    '--mount',
    '--propagation',
    'private',
    '/bin/sh',
    script,
    image.rootfs,
    dir,
    '1',
    String(opts.uid),
    String(opts.gid),
    image.config.workingDir,
    join(dir, 'mounts'),
    '--',
    ...argv,
  ];
  try {
    return await new Promise((resolve, reject) => {
      const child = spawn('unshare', args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('error', reject);
      child.once('exit', (code) => resolve({ code, stdout, stderr }));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
