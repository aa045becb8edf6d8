import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { binOf, findPrebuilt, INSTALL_MARKER, installDir, parsePinned, pinnedNpx, prebuiltLaunch, runsWithNode } from '../../../src/job/mcp/prebuilt.js';

const npx = (...args: string[]) => ({ command: 'npx', args });

describe('prebuilt: a pinned npx server run from the cache install without npx', () => {
  it('takes `npx -y` or `--yes` and one exactly pinned spec, passing the words after it to the server', () => {
    assert.deepEqual(pinnedNpx(npx('-y', '@modelcontextprotocol/server-memory@2026.8.31')), {
      pkg: { name: '@modelcontextprotocol/server-memory', version: '2026.8.31' },
      args: [],
    });
    assert.deepEqual(pinnedNpx(npx('--yes', 'srv@1.2.3-rc.1', '--port', '-y', 'x@1.0.0')), {
      pkg: { name: 'srv', version: '1.2.3-rc.1' },
      args: ['--port', '-y', 'x@1.0.0'],
    });
    assert.deepEqual(pinnedNpx(npx('-y', '-y', 'a@0.0.1'))?.pkg, { name: 'a', version: '0.0.1' });
  });

  it("leaves an npx named by a path to itself: it may be an operator's wrapper that must run", () => {
    assert.equal(pinnedNpx({ command: '/opt/sandbox/npx', args: ['-y', 'a@0.0.1'] }), undefined);
    assert.equal(pinnedNpx({ command: '/usr/local/bin/npx', args: ['-y', 'a@0.0.1'] }), undefined);
  });

  it('leaves unpinned specs, other npx options, npm exec and other commands to npx', () => {
    for (const args of [
      ['-y', 'srv@latest'],
      ['-y', 'srv@^1.2.3'],
      ['-y', 'srv'],
      ['-y', 'srv@1.2'],
      ['srv@1.2.3'],
      ['-y', '--registry=https://example.test', 'srv@1.2.3'],
      ['-y', '--package=srv@1.2.3', '--', 'srv'],
      ['-y', '-p', 'srv@1.2.3', 'srv'],
      ['-y', '--', 'srv@1.2.3'],
      ['-y', 'github:owner/srv'],
      ['-y', '../srv@1.2.3'],
      ['-y'],
    ])
      assert.equal(pinnedNpx(npx(...args)), undefined, args.join(' '));
    assert.equal(pinnedNpx({ command: 'npm', args: ['exec', '-y', 'srv@1.2.3'] }), undefined);
    assert.equal(pinnedNpx({ command: 'node', args: ['-y', 'srv@1.2.3'] }), undefined);
    assert.equal(parsePinned('@scope/srv@1.2.3+build.5')?.name, '@scope/srv');
  });

  it("picks the bin npx picks: a string bin, the only bin, one file under several names, else the one named like the package's unscoped name", () => {
    assert.equal(binOf({ name: '@s/srv', bin: './dist/cli.js' }), 'dist/cli.js');
    assert.equal(binOf({ name: '@s/srv', bin: { 'mcp-server-x': 'dist/index.js' } }), 'dist/index.js');
    assert.equal(binOf({ name: 'srv', bin: { a: './x.js', b: 'x.js' } }), 'x.js');
    assert.equal(binOf({ name: '@s/srv', bin: { other: 'o.js', srv: 'bin/srv.js' } }), 'bin/srv.js');
    assert.equal(binOf({ name: 'srv', bin: { a: 'a.js', b: 'b.js' } }), undefined, 'npx cannot choose either');
    assert.equal(binOf({ name: 'srv' }), undefined);
    assert.equal(binOf({ name: 'srv', bin: {} }), undefined);
    assert.equal(binOf({ name: 'srv', bin: ['x.js'] }), undefined);
    assert.equal(binOf({ bin: 'x.js' }), undefined);
  });

  it("keeps a bin's path inside its package, as npm's bin linking does", () => {
    assert.equal(binOf({ name: 'srv', bin: '../../../etc/passwd' }), 'etc/passwd');
    assert.equal(binOf({ name: 'srv', bin: { 'a/../srv': '/abs/x.js' } }), 'abs/x.js');
    // npm drops bin names that normalise to nothing, so npx finds no bin: neither does this.
    assert.equal(binOf({ name: 'srv', bin: { '..': 'x.js' } }), undefined);
    assert.equal(binOf({ name: 'srv', bin: { '.': 'x.js', srv: 'y.js' } }), 'y.js');
  });

  it('runs with node only a file whose first line is a plain node shebang', () => {
    assert.ok(runsWithNode('#!/usr/bin/env node\nconsole.log(1)'));
    assert.ok(runsWithNode('#!/usr/local/bin/node\r\n'));
    assert.ok(!runsWithNode('#!/bin/sh\nexec node x'));
    assert.ok(!runsWithNode('#!/usr/bin/env -S node --experimental-foo\n'));
    assert.ok(!runsWithNode('#!/usr/bin/env nodejs\n'));
    assert.ok(!runsWithNode('console.log(1)\n'));
  });

  describe('an install on the cache', () => {
    const root = mkdtempSync(join(tmpdir(), 'prebuilt-'));
    after(() => rmSync(root, { recursive: true, force: true }));
    const pkg = { name: '@s/srv', version: '1.2.3' };

    function install(cache: string, o: { marker?: object | null; manifest?: object; bin?: string | null } = {}): string {
      const dir = installDir(cache, pkg);
      const pkgDir = join(dir, 'node_modules', '@s', 'srv');
      mkdirSync(join(pkgDir, 'dist'), { recursive: true });
      writeFileSync(join(pkgDir, 'package.json'), JSON.stringify(o.manifest ?? { ...pkg, bin: { 'mcp-srv': 'dist/index.js' } }));
      if (o.bin !== null) writeFileSync(join(pkgDir, 'dist', 'index.js'), o.bin ?? '#!/usr/bin/env node\n');
      if (o.marker !== null) writeFileSync(join(dir, INSTALL_MARKER), JSON.stringify(o.marker ?? pkg));
      return dir;
    }
    let n = 0;
    const fresh = () => join(root, String(n++));

    it("runs the pinned package's bin with this node, the server's own arguments after it, and the install's bins first on PATH", () => {
      const cache = fresh();
      const dir = install(cache);
      const launch = prebuiltLaunch(npx('-y', '@s/srv@1.2.3', '--flag'), cache, '/opt/node');
      assert.deepEqual(launch, {
        command: '/opt/node',
        args: [join(dir, 'node_modules', '@s', 'srv', 'dist', 'index.js'), '--flag'],
        binPath: join(dir, 'node_modules', '.bin'),
        source: { from: 'prebuilt', path: dir, requests: 0, tarballs: 0 },
      });
    });

    it('is not used for another version, an unpinned spec, or without a cache', () => {
      const cache = fresh();
      install(cache);
      assert.equal(prebuiltLaunch(npx('-y', '@s/srv@1.2.4'), cache), undefined);
      assert.equal(prebuiltLaunch(npx('-y', '@s/srv@latest'), cache), undefined);
      assert.equal(prebuiltLaunch(npx('-y', '@s/srv@1.2.3'), undefined), undefined);
    });

    it('is not used when unfinished or broken: no marker, a marker or package.json naming something else, no bin, a bin node does not run', () => {
      const broken: [string, Parameters<typeof install>[1]][] = [
        ['no marker', { marker: null }],
        ['marker of another package', { marker: { name: '@s/other', version: '1.2.3' } }],
        ['package.json of another version', { manifest: { name: '@s/srv', version: '1.2.2', bin: 'dist/index.js' } }],
        ['no bin entry', { manifest: { ...pkg } }],
        ['two bins, none named srv', { manifest: { ...pkg, bin: { a: 'dist/index.js', b: 'dist/b.js' } } }],
        ['bin file missing', { bin: null }],
        ['a shell script', { bin: '#!/bin/sh\necho hi\n' }],
      ];
      for (const [why, o] of broken) {
        const cache = fresh();
        install(cache, o);
        assert.equal(findPrebuilt(cache, pkg), undefined, why);
        assert.equal(prebuiltLaunch(npx('-y', '@s/srv@1.2.3'), cache), undefined, why);
      }
    });

    it('is not used when the bin is a symlink that leads out of the package', () => {
      const cache = fresh();
      const dir = install(cache);
      const outside = join(cache, 'planted.js');
      writeFileSync(outside, '#!/usr/bin/env node\n');
      const bin = join(dir, 'node_modules', '@s', 'srv', 'dist', 'index.js');
      unlinkSync(bin);
      symlinkSync(outside, bin);
      assert.equal(findPrebuilt(cache, pkg), undefined);
    });
  });
});
