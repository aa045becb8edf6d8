import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../testbed/cache.js';

/**
 * The Dockerfile facts a build cannot show, parsed from the file: the order that keeps
 * `npm ci` cached, the stages' roles, the names of the base images. What ends up in the
 * images (user, files, no shell, entrypoints) is checked on the built images themselves in
 * test/integration/images.test.ts; the reading checks of it stay here for machines that
 * cannot build (TESTBED_PODS=process).
 */
interface Stage {
  name?: string;
  from: string;
  copies: { from?: string; src: string[]; dest: string }[];
  runs: string[];
  user?: string;
  entrypoint?: string[];
  workdir?: string;
}

/** Every file a compiled module reaches through relative imports, itself included. */
function localImports(entry: string, seen = new Set<string>()): Set<string> {
  if (seen.has(entry)) return seen;
  seen.add(entry);
  for (const m of readFileSync(entry, 'utf8').matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) localImports(resolve(dirname(entry), m[1]!), seen);
  return seen;
}

function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  for (const line of lines) {
    const [instr, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    const cur = stages.at(-1);
    switch (instr!.toUpperCase()) {
      case 'FROM': {
        const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args)!;
        stages.push({ from: m[1]!, name: m[2], copies: [], runs: [] });
        break;
      }
      case 'COPY': {
        const parts = rest.filter((p) => !p.startsWith('--chown'));
        const from = parts[0]?.startsWith('--from=') ? parts.shift()!.slice(7) : undefined;
        cur!.copies.push({ from, src: parts.slice(0, -1), dest: parts.at(-1)! });
        break;
      }
      case 'RUN':
        cur!.runs.push(args);
        break;
      case 'USER':
        cur!.user = args;
        break;
      case 'WORKDIR':
        cur!.workdir = args;
        break;
      case 'ENTRYPOINT':
        cur!.entrypoint = JSON.parse(args);
        break;
      default:
        break;
    }
  }
  return stages;
}

// The job image also carries `serve`, whose server_initialize needs the job's runtimes (node, npx).
for (const [file, program, extra] of [
  ['Dockerfile.controller', 'controller', []],
  ['Dockerfile.job', 'job', ['serve']],
] as const) {
  describe(file, () => {
    const stages = parseDockerfile(readFileSync(join(repoRoot, file), 'utf8'));
    const final = stages.at(-1)!;

    it('copies only paths that exist in the repository from the build context', () => {
      for (const s of stages)
        for (const c of s.copies) if (!c.from) for (const src of c.src) assert.ok(existsSync(join(repoRoot, src)), `${file}: COPY ${src} does not exist`);
    });

    it('installs dependencies before copying sources, and only production dependencies for the image', () => {
      const build = stages.find((s) => s.name === 'build')!;
      const lockCopy = build.copies.findIndex((c) => c.src.includes('package-lock.json'));
      const srcCopy = build.copies.findIndex((c) => c.src.includes('src'));
      assert.ok(lockCopy >= 0 && srcCopy > lockCopy, 'package files are copied before the sources');
      const deps = stages.find((s) => s.name === 'deps')!;
      assert.ok(
        deps.runs.some((r) => /npm ci\b.*--omit=dev/.test(r)),
        'npm ci --omit=dev in the deps stage',
      );
      assert.ok(
        final.copies.some((c) => c.from === 'deps' && c.src.includes('/app/node_modules')),
        'final stage takes node_modules from deps',
      );
      assert.ok(!final.copies.some((c) => c.from === 'build' && c.src.some((s) => s.includes('node_modules'))), 'no dev dependencies in the image');
    });

    it('declares a non-root USER', () => {
      assert.ok(final.user, 'USER is set');
      assert.doesNotMatch(final.user!, /^(root|0)(:|$)/);
    });

    // The job starts from its bundle (built by `npm run bundle:job` from dist/job/main.js).
    const entry = program === 'job' ? 'main.bundle.mjs' : 'main.js';
    const programs = [program, ...extra];
    const wanted = [...programs.flatMap((p) => [`dist/${p}`, `dist/src/${p}`]), 'dist/src/shared'];
    it(`starts dist/${program}/${entry} and copies only what its programs import: ${wanted.join(', ')}`, () => {
      const script = final.entrypoint!.find((a) => /\.m?js$/.test(a))!;
      assert.equal(script, `dist/${program}/${entry}`);
      assert.ok(existsSync(join(repoRoot, script)), `${script} exists after npm run build`);
      const fromBuild = final.copies.filter((c) => c.from === 'build').flatMap((c) => c.src.map((s) => s.replace('/app/', '')));
      assert.deepEqual(fromBuild.sort(), [...wanted].sort());
      for (const main of [script, `dist/${program}/main.js`, ...extra.map((e) => `dist/${e}/main.js`)]) {
        for (const file of localImports(join(repoRoot, main))) {
          const rel = relative(repoRoot, file);
          assert.ok(
            fromBuild.some((dir) => rel.startsWith(`${dir}/`)),
            `${main} imports ${rel}, which the image does not copy`,
          );
        }
      }
      const build = stages.find((s) => s.name === 'build')!;
      const tsconfig = JSON.parse(readFileSync(join(repoRoot, 'tsconfig.build.json'), 'utf8')) as { include: string[] };
      assert.ok(build.runs.some((r) => r.includes('tsconfig.build.json')));
      if (program === 'job')
        assert.ok(
          build.runs.some((r) => r.includes('npm run bundle:job')),
          'the build stage bundles the job',
        );
      for (const dir of ['src', ...programs]) {
        assert.ok(
          tsconfig.include.some((i) => i.startsWith(`${dir}/`)),
          `tsconfig.build.json builds ${dir}/`,
        );
        assert.ok(
          build.copies.some((c) => c.src.includes(dir)),
          `the build stage copies ${dir}/`,
        );
      }
    });
  });
}

describe('Dockerfile.job', () => {
  it('can start Node MCP servers with npx and gives them a writable HOME under /tmp', () => {
    const text = readFileSync(join(repoRoot, 'Dockerfile.job'), 'utf8');
    const final = parseDockerfile(text).at(-1)!;
    assert.match(final.from, /^node:20/);
    assert.match(text, /ENV .*HOME=\/tmp/);
    assert.match(text, /NPM_CONFIG_CACHE=\/tmp\/\.npm/);
  });
});
