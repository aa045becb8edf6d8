import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { before, describe, it } from 'node:test';
import { ensureProductImages, podsMode, runInImage, type BuiltImage, type Program } from '../testbed/images.js';
import { imageUser } from '../testbed/node-agent.js';
import { repoRoot } from '../testbed/cache.js';

/** Every file a compiled module reaches through relative imports, itself included (paths inside `root`). */
function localImports(root: string, entry: string, seen = new Set<string>()): Set<string> {
  if (seen.has(entry)) return seen;
  seen.add(entry);
  const text = readFileSync(join(root, entry), 'utf8');
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) localImports(root, posix.join(posix.dirname(entry), m[1]!), seen);
  return seen;
}

/** Every file under `dir`, relative to it (symlinks listed, not followed). */
function files(dir: string, base = dir, out: string[] = []): string[] {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (lstatSync(p).isDirectory()) files(p, base, out);
    else out.push(relative(base, p));
  }
  return out;
}

const SHELLS = ['sh', 'bash', 'dash', 'ash', 'zsh', 'busybox'];
const PATH_DIRS = ['usr/local/sbin', 'usr/local/bin', 'usr/sbin', 'usr/bin', 'sbin', 'bin'];
const lock = JSON.parse(readFileSync(join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean }> };

// The job image also carries `serve`, whose server_initialize needs the job's runtimes (node, npx).
const programs: Record<Program, { dirs: string[]; entry: string; mains: string[] }> = {
  job: {
    dirs: ['dist/job', 'dist/serve', 'dist/src/job', 'dist/src/serve', 'dist/src/shared'],
    entry: 'dist/job/main.bundle.mjs',
    mains: ['dist/job/main.js', 'dist/serve/main.js'],
  },
  controller: { dirs: ['dist/controller', 'dist/src/controller', 'dist/src/shared'], entry: 'dist/controller/main.js', mains: ['dist/controller/main.js'] },
};

describe(
  'the built images (buildah, from the Dockerfiles, on the stand-in base images)',
  { skip: podsMode() === 'process' && 'TESTBED_PODS=process: images are not built here' },
  () => {
    let images: Record<Program, BuiltImage>;
    before(async () => {
      images = await ensureProductImages((l) => process.stderr.write(`${l}\n`));
    });

    it('prints both image sizes (the unpacked root filesystems)', () => {
      for (const img of Object.values(images)) {
        assert.ok(img.sizeBytes > 0);
        process.stdout.write(
          `# image ${img.ref}: ${(img.sizeBytes / 1e6).toFixed(1)} MB unpacked${img.built ? `, built in ${img.seconds.toFixed(1)} s` : ' (cached)'}\n`,
        );
      }
    });

    for (const program of ['job', 'controller'] as const) {
      const want = programs[program];

      it(`${program}: runs as a non-root user that the image's /etc/passwd names`, () => {
        const img = images[program];
        const { uid } = imageUser(img);
        assert.notEqual(uid, 0, `USER ${img.config.user}`);
        const passwd = readFileSync(join(img.rootfs, 'etc', 'passwd'), 'utf8');
        assert.match(passwd, new RegExp(`^[a-z]+:x:${uid}:`, 'm'), `uid ${uid} has a passwd entry`);
        if (program === 'controller') assert.equal(uid, 65532, "distroless's nonroot");
        else assert.equal(uid, 1000, "the node image's user, the Job's runAsUser");
      });

      it(`${program}: /app holds only package.json, production node_modules and ${want.dirs.join(', ')}`, () => {
        const app = join(images[program].rootfs, 'app');
        assert.deepEqual(readdirSync(app).sort(), ['dist', 'node_modules', 'package.json']);
        const dist = files(join(app, 'dist')).map((f) => `dist/${f}`);
        for (const f of dist)
          assert.ok(
            want.dirs.some((d) => f.startsWith(`${d}/`)),
            `${f} is not something ${program} needs`,
          );
        for (const d of want.dirs)
          assert.ok(
            dist.some((f) => f.startsWith(`${d}/`)),
            `${d} is in the image`,
          );
        assert.ok(!dist.some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')), 'no TypeScript sources');
        assert.ok(!existsSync(join(app, 'src')) && !existsSync(join(app, 'test')), 'no sources or tests');
        const modules = readdirSync(join(app, 'node_modules'));
        // The lock file marks what only development needs (`dev: true`): none of it, and all the rest, is in the image.
        for (const [path, entry] of Object.entries(lock.packages)) {
          if (!path.startsWith('node_modules/')) continue;
          if (entry.dev) assert.ok(!existsSync(join(app, path)), `${path} (development only) is not in the image`);
          else if (!entry.optional) assert.ok(existsSync(join(app, path, 'package.json')), `${path} is installed`);
        }
        for (const tool of ['typescript', 'esbuild', 'eslint', 'prettier'])
          assert.ok(lock.packages[`node_modules/${tool}`]?.dev, `the lock marks ${tool} as development only`);
        assert.ok(modules.length > 0);
      });

      it(`${program}: every module its programs import is in the image`, () => {
        const root = join(images[program].rootfs, 'app');
        for (const main of [want.entry, ...want.mains]) {
          assert.ok(existsSync(join(root, main)), `${main} is in the image`);
          for (const f of localImports(root, main)) assert.ok(existsSync(join(root, f)), `${main} imports ${f}, which the image lacks`);
        }
        assert.equal(
          images[program].config.entrypoint.find((a) => /\.m?js$/.test(a)),
          want.entry,
        );
      });

      it(`${program}: its entrypoint starts as the image's user and answers --help`, async () => {
        const img = images[program];
        const { uid, gid } = imageUser(img);
        const res = await runInImage(img, [...img.config.entrypoint, '--help'], { uid, gid });
        assert.equal(res.code, 0, res.stderr);
        assert.match(res.stdout, program === 'job' ? /^mcp-job \[options\]/m : /mcp-job-controller/);
        const node = img.config.entrypoint[0]!;
        const who = await runInImage(img, [node, '-e', 'process.stdout.write(`${process.getuid()}:${process.getgid()}`)'], { uid, gid });
        assert.equal(who.stdout, `${uid}:${gid}`);
      });
    }

    it('controller: has no shell at all', async () => {
      const img = images.controller;
      for (const dir of PATH_DIRS) for (const sh of SHELLS) assert.ok(!existsSync(join(img.rootfs, dir, sh)), `/${dir}/${sh} exists`);
      const res = await runInImage(img, ['/bin/sh', '-c', 'true'], { uid: 65532, gid: 65532 });
      assert.notEqual(res.code, 0, 'starting /bin/sh fails');
      assert.ok(existsSync(join(img.rootfs, 'etc', 'ssl', 'certs', 'ca-certificates.crt')), 'CA bundle');
      assert.ok(existsSync(join(img.rootfs, 'usr', 'share', 'zoneinfo', 'UTC')), 'tzdata');
      assert.equal(lstatSync(join(img.rootfs, 'tmp')).mode & 0o1777, 0o1777, '/tmp is 1777');
    });

    it('job: has node, npm and npx on PATH for MCP servers written for Node, and a shell for npx', async () => {
      const img = images.job;
      const res = await runInImage(img, ['/bin/sh', '-c', 'for c in node npm npx; do command -v $c; done && npx --version'], { uid: 1000, gid: 1000 });
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, /\/node\n.*\/npm\n.*\/npx\n\d+\.\d+\.\d+/s);
    });

    it('the Dockerfiles name the real base images, which here are local tags of the stand-ins', () => {
      for (const file of ['Dockerfile.job', 'Dockerfile.controller']) {
        const froms = [...readFileSync(resolve(repoRoot, file), 'utf8').matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
        assert.ok(
          froms.every((f) => f === 'node:20-bookworm-slim' || f === 'gcr.io/distroless/nodejs20-debian12:nonroot'),
          `${file}: ${froms.join(', ')}`,
        );
      }
      assert.ok(dirname(images.job.rootfs) === dirname(images.controller.rootfs));
    });
  },
);
