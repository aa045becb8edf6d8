import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { CONTROLLER_SETTINGS } from '../../src/controller/config.js';
import { createMetrics } from '../../src/controller/reporting/metrics.js';
import { repoRoot } from '../testbed/cache.js';

const read = (path: string) => readFileSync(join(repoRoot, path), 'utf8');
const readme = read('README.md');
const DOCS = readdirSync(join(repoRoot, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .map((f) => `docs/${f}`);
const PAGES = ['README.md', ...DOCS];

/** A `## title` section of a page, up to the next `## ` heading. */
function section(page: string, title: string): string {
  const text = read(page);
  const start = text.indexOf(`## ${title}\n`);
  assert.ok(start >= 0, `${page} has a "${title}" section`);
  const end = text.indexOf('\n## ', start + 1);
  return text.slice(start, end < 0 ? undefined : end);
}

/** The page without its fenced code blocks (their `#` lines are comments, their backticks code). */
function prose(text: string): string {
  return text.replace(/^```[^\n]*\n[\s\S]*?^```$/gm, '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

function anchorsOf(text: string): Set<string> {
  return new Set([...prose(text).matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchor(m[1]!)));
}

describe('the docs, kept honest', () => {
  it('documents every setting the controller declares in the configuration table, and no other', () => {
    const table = read('docs/configuration.md');
    const documented = new Set(
      [...table.matchAll(/^\| (`[A-Z0-9_]+`(?:, `[A-Z0-9_]+`)*) \|/gm)].flatMap((m) => m[1]!.split(', ').map((v) => v.replace(/`/g, ''))),
    );
    const declared = new Set(Object.keys(CONTROLLER_SETTINGS));
    assert.deepEqual(
      [...declared].filter((k) => !documented.has(k)),
      [],
      'declared but not documented',
    );
    assert.deepEqual(
      [...documented].filter((k) => !declared.has(k)),
      [],
      'documented but not declared',
    );
  });

  it('lists every metric the controller emits in the operations metrics table, and no other', async () => {
    const table = section('docs/operations.md', 'Metrics');
    const documented = new Set([...table.matchAll(/^\| `(mcp_job_controller_[a-z_]+)/gm)].map((m) => m[1]!));
    const metrics = createMetrics(undefined, false);
    const emitted = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
    assert.deepEqual(
      [...emitted].filter((k) => !documented.has(k)),
      [],
      'emitted but not documented',
    );
    assert.deepEqual(
      [...documented].filter((k) => !emitted.has(k)),
      [],
      'documented but not emitted',
    );
  });

  it('gives exactly the ACL lines the secured e2e suite creates in the production Kafka page', async () => {
    const { productAcls, kafkaAclsCommands } = await import('../testbed/acls.js');
    const lines = kafkaAclsCommands(
      productAcls({ topic: 'mcp-jobs', group: 'mcp-job-controller', deadLetterTopic: 'mcp-jobs.dlq', resultsTopic: 'mcp-results' }),
    );
    const documented = read('docs/kafka.md')
      .split('\n')
      .filter((l) => l.startsWith('kafka-acls.sh '));
    assert.deepEqual(documented, lines);
  });

  it('keeps the README a front door of at most 250 lines', () => {
    const lines = readme.split('\n').length - (readme.endsWith('\n') ? 1 : 0);
    assert.ok(lines <= 250, `README.md has ${lines} lines`);
  });

  it('has CI run exactly the test command the README gives', () => {
    const block = /## Test it\n[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme);
    assert.ok(block, 'README has a "Test it" section with a sh block');
    const commands = block[1]!.split('\n').filter((l) => l.trim() !== '');
    const ci = read('.ci/run')
      .split('\n')
      .filter((l) => l.trim() !== '' && !l.startsWith('#') && !l.startsWith('set ') && !l.startsWith('cd '));
    assert.deepEqual(ci, commands);
  });

  it('links only to files and headings that exist, from the README and every docs page', () => {
    const broken: string[] = [];
    for (const page of PAGES) {
      const text = read(page);
      for (const m of prose(text).matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (/^[a-z]+:/i.test(target)) continue;
        const [path, hash] = target.split('#') as [string, string | undefined];
        const file = path === '' ? join(repoRoot, page) : resolve(dirname(join(repoRoot, page)), path);
        if (!existsSync(file)) broken.push(`${page}: ${target} (no such file)`);
        else if (hash !== undefined && file.endsWith('.md') && !anchorsOf(readFileSync(file, 'utf8')).has(hash))
          broken.push(`${page}: ${target} (no such heading in ${relative(repoRoot, file)})`);
      }
    }
    assert.deepEqual(broken, []);
  });

  it('names only repository paths that exist, in the README and every docs page', () => {
    const missing: string[] = [];
    for (const page of PAGES) {
      for (const m of prose(read(page)).matchAll(/`((?:src|test|k8s|controller|job|serve)\/[A-Za-z0-9_./-]*)`/g)) {
        if (!existsSync(join(repoRoot, m[1]!))) missing.push(`${page}: ${m[1]}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  it("names only files that exist in the README's diagram of a message's path", () => {
    const diagram = section('README.md', "A message's path");
    const paths = [...diagram.matchAll(/(?:^|\s)((?:src|controller|job|serve)\/[A-Za-z0-9_./-]+)/gm)].map((m) => m[1]!);
    assert.ok(paths.length >= 10, `the diagram names ${paths.length} files`);
    assert.deepEqual(
      paths.filter((p) => !existsSync(join(repoRoot, p))),
      [],
    );
  });

  it('finds links and paths to check (the scans themselves work)', () => {
    assert.ok(DOCS.length >= 10, `docs/ has ${DOCS.length} pages`);
    assert.ok([...prose(readme).matchAll(/\]\(docs\/[a-z-]+\.md/g)].length >= 10);
    assert.ok([...prose(read('docs/development.md')).matchAll(/`(?:src|test|k8s)\//g)].length >= 10);
  });
});
