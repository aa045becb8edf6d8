import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '../testbed/cache.js';

/** Every .ts file under `dir`, with the repo-relative paths of the local modules it imports. */
function sources(dir: string): { file: string; imports: string[] }[] {
  const out: { file: string; imports: string[] }[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (e.name.endsWith('.ts')) {
      const text = readFileSync(p, 'utf8');
      const imports = [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => relative(repoRoot, resolve(dirname(p), m[1]!)));
      out.push({ file: relative(repoRoot, p), imports });
    }
  }
  return out;
}

const ENTRYPOINTS = ['controller', 'job', 'serve'] as const;

describe('the layout: two programs, the front door, and the contract they share', () => {
  const all = sources(join(repoRoot, 'src'));
  const entrypoints = ENTRYPOINTS.flatMap((p) => sources(join(repoRoot, p)));

  it('has src/controller, src/job, src/serve and src/shared and nothing else at the top of src', () => {
    const top = readdirSync(join(repoRoot, 'src')).sort();
    assert.deepEqual(top, ['controller', 'job', 'serve', 'shared']);
  });

  it("groups the controller's library in rooms: intake and commits, the Kubernetes client and watch, building Jobs, reporting, and the CLI commands", () => {
    const entries = readdirSync(join(repoRoot, 'src', 'controller')).sort();
    assert.deepEqual(entries, ['commands', 'config.ts', 'intake', 'jobs', 'kube', 'reporting', 'run.ts']);
  });

  it("keeps each program's entrypoint at the top (controller/, job/, serve/), importing only its own library and the shared contract", () => {
    for (const p of ENTRYPOINTS) {
      const files = entrypoints.filter((s) => s.file.startsWith(`${p}/`));
      assert.ok(
        files.some((s) => s.file === `${p}/main.ts`),
        `${p}/main.ts exists`,
      );
      const allowed = p === 'serve' ? ['src/serve/', 'src/shared/', 'src/job/'] : [`src/${p}/`, 'src/shared/'];
      for (const s of files)
        for (const i of s.imports)
          assert.ok(
            allowed.some((a) => i.startsWith(a)),
            `${s.file} imports ${i}`,
          );
    }
  });

  it('never lets the library import an entrypoint', () => {
    for (const s of all) for (const i of s.imports) assert.ok(!ENTRYPOINTS.some((p) => i.startsWith(`${p}/`)), `${s.file} imports ${i}`);
  });

  it('keeps the shared contract free of either program', () => {
    for (const s of all.filter((x) => x.file.startsWith('src/shared/'))) {
      for (const i of s.imports) assert.ok(i.startsWith('src/shared/'), `${s.file} imports ${i}`);
    }
  });

  it('keeps the job free of the controller, and the controller free of the job', () => {
    for (const s of all.filter((x) => x.file.startsWith('src/job/'))) {
      for (const i of s.imports) assert.ok(!i.startsWith('src/controller/') && !i.startsWith('src/serve/'), `${s.file} imports ${i}`);
    }
    for (const s of all.filter((x) => x.file.startsWith('src/controller/'))) {
      for (const i of s.imports) assert.ok(!i.startsWith('src/job/') && !i.startsWith('src/serve/'), `${s.file} imports ${i}`);
    }
  });

  it("lets serve use the shared contract and the job's library modules, never the controller or the job's entrypoint", () => {
    const serve = all.filter((x) => x.file.startsWith('src/serve/'));
    // The front door's entrypoint calls the job's initializeServer; its library takes the result shape.
    assert.ok(
      [...serve, ...entrypoints.filter((x) => x.file.startsWith('serve/'))].some((s) => s.imports.includes('src/job/mcp/initialize.js')),
      "serve runs the job's server_initialize flow",
    );
    for (const s of serve) {
      for (const i of s.imports) {
        assert.ok(i.startsWith('src/shared/') || i.startsWith('src/serve/') || i.startsWith('src/job/'), `${s.file} imports ${i}`);
      }
    }
  });

  it('finds imports to check (the scan itself works)', () => {
    assert.ok(all.length > 20);
    assert.ok(all.some((s) => s.imports.includes('src/shared/errors.js')));
  });
});
