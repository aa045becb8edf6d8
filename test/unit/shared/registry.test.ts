import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TerminalError } from '../../../src/shared/errors.js';
import { parseMessage, type ValidationPolicy } from '../../../src/shared/contract/message.js';
import { repoRoot } from '../../testbed/cache.js';

const fixture = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(repoRoot, 'test', 'fixtures', 'registry', `${name}.json`), 'utf8')) as Record<string, unknown>;
const policy: ValidationPolicy = {
  allowedCommands: ['npx', 'uvx'],
  secretsDir: '/s',
  maxMessageBytes: 65536,
  allowedSecrets: ['mcp-ref-*'],
  allowedImages: ['docker.io/*'],
};
const msg = (servers: unknown) => Buffer.from(JSON.stringify({ jobID: 'j', jobType: 'server-init', payload: { mcpServers: servers } }));
const parse = (entry: unknown, p: ValidationPolicy = policy) => parseMessage(msg({ a: entry }), p);
const refusal = (entry: unknown, p: ValidationPolicy = policy): [string, string] => {
  try {
    parse(entry, p);
  } catch (err) {
    assert.ok(err instanceof TerminalError, String(err));
    return [err.reason, err.message];
  }
  assert.fail('expected a refusal');
};

describe('the MCP Registry server.json dialect', () => {
  it('runs a reference npm server as npx -y <identifier>@<version>, the same command as the plain entry pinned', () => {
    assert.deepEqual(parse({ server: fixture('server-memory-2026.8.31') }).config.mcpServers.a, {
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-memory@2026.8.31'],
    });
    assert.deepEqual(parse({ server: fixture('server-everything-2026.8.31'), timeout: 30000 }).config.mcpServers.a, {
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-everything@2026.8.31'],
      timeoutMs: 30000,
    });
  });

  it('maps a repeated positional argument to one argv element per value, never through a shell', () => {
    const m = parse({ type: 'registry', server: fixture('server-filesystem-2026.8.31'), inputs: { allowed_directory: ['/data', '/tmp/a b; rm -rf /'] } });
    assert.deepEqual(m.config.mcpServers.a, {
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-filesystem@2026.8.31', '/data', '/tmp/a b; rm -rf /'],
    });
  });

  it('maps an optional environment variable when given and leaves it out when not', () => {
    assert.deepEqual(parse({ server: fixture('server-memory-2026.8.31'), inputs: { MEMORY_FILE_PATH: '/tmp/m.json' } }).config.mcpServers.a, {
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-memory@2026.8.31'],
      env: { MEMORY_FILE_PATH: '/tmp/m.json' },
    });
  });

  it('takes a secret input only as a secret_ref, and the Job mounts the referenced key', () => {
    const m = parse({ server: fixture('airtable-mcp-server-1.7.2'), inputs: { AIRTABLE_API_KEY: 'secret_ref:mcp-ref-airtable:token' } });
    assert.deepEqual(m.config.mcpServers.a, {
      command: 'npx',
      args: ['-y', 'airtable-mcp-server@1.7.2'],
      env: { AIRTABLE_API_KEY: 'secret_ref:mcp-ref-airtable:token' },
    });
    assert.deepEqual(m.secretRefs, [{ secret: 'mcp-ref-airtable', key: 'token' }]);
    const [reason, text] = refusal({ server: fixture('airtable-mcp-server-1.7.2'), inputs: { AIRTABLE_API_KEY: 'pat123.plain-value' } });
    assert.equal(reason, 'invalid-payload');
    assert.match(text, /registry-input-not-secret-ref: environmentVariables "AIRTABLE_API_KEY" is secret/);
    assert.doesNotMatch(text, /pat123/);
    assert.equal(refusal({ server: fixture('airtable-mcp-server-1.7.2'), inputs: { AIRTABLE_API_KEY: 'secret_ref:other:token' } })[0], 'secret-not-allowed');
  });

  it('runs a PyPI package as uvx <identifier>==<version>', () => {
    assert.deepEqual(parse({ server: fixture('time-mcp-pypi-1.0.6') }).config.mcpServers.a, { command: 'uvx', args: ['time-mcp-pypi==1.0.6'] });
  });

  it('maps a remote to Streamable HTTP and applies the URL policy to it', () => {
    assert.deepEqual(parse({ server: fixture('cyphrex-mcp-0.1.0') }).config.mcpServers.a, { type: 'http', url: 'https://mcp.cyphrex.io/mcp' });
    const local = { ...fixture('cyphrex-mcp-0.1.0'), remotes: [{ type: 'sse', url: 'http://127.0.0.1:{port}/sse', variables: { port: { default: '9' } } }] };
    const [reason, text] = refusal({ server: local });
    assert.equal(reason, 'url-not-allowed');
    assert.match(text, /loopback/);
  });

  it('fills remote headers and URL variables from inputs, a secret header as a secret_ref after its scheme', () => {
    const server = {
      name: 'io.example/remote',
      version: '1.0.0',
      remotes: [
        {
          type: 'sse',
          url: 'https://{tenant}.example.com/sse',
          variables: { tenant: { isRequired: true, choices: ['acme', 'globex'] } },
          headers: [
            { name: 'Authorization', value: 'Bearer {token}', variables: { token: { isRequired: true, isSecret: true } } },
            { name: 'X-Region', default: 'eu' },
          ],
        },
      ],
    };
    const m = parse({ server, inputs: { tenant: 'acme', token: 'secret_ref:mcp-ref-t:key' } });
    assert.deepEqual(m.config.mcpServers.a, {
      type: 'sse',
      url: 'https://acme.example.com/sse',
      headers: { Authorization: 'Bearer secret_ref:mcp-ref-t:key', 'X-Region': 'eu' },
    });
    assert.deepEqual(m.secretRefs, [{ secret: 'mcp-ref-t', key: 'key' }]);
    assert.match(
      refusal({ server, inputs: { tenant: 'initech', token: 'secret_ref:mcp-ref-t:key' } })[1],
      /registry-input-not-a-choice: remote url variable "tenant" must be one of acme, globex/,
    );
    assert.match(refusal({ server, inputs: { tenant: 'acme' } })[1], /registry-input-missing: remote header "Authorization" variable "token" is required/);
  });

  it('runs an OCI package that serves Streamable HTTP as the container-server sidecar, and refuses a stdio one', () => {
    const server = {
      name: 'io.example/oci',
      version: '2.0.0',
      packages: [
        {
          registryType: 'oci',
          identifier: 'docker.io/example/mcp:2.0.0',
          transport: { type: 'streamable-http', url: 'http://localhost:8080/mcp' },
          packageArguments: [{ type: 'named', name: '--mode', default: 'read-only' }],
          environmentVariables: [{ name: 'API_KEY', isSecret: true, isRequired: true }],
        },
      ],
    };
    const m = parse({ server, inputs: { API_KEY: 'secret_ref:mcp-ref-x:k' } });
    assert.deepEqual(m.config.mcpServers.a, {
      type: 'docker',
      image: 'docker.io/example/mcp:2.0.0',
      port: 8080,
      path: '/mcp',
      environment: { API_KEY: 'secret_ref:mcp-ref-x:k' },
      args: ['--mode', 'read-only'],
    });
    assert.equal(refusal({ server, inputs: { API_KEY: 'secret_ref:mcp-ref-x:k' } }, { ...policy, allowedImages: ['ghcr.io/*'] })[0], 'image-not-allowed');
    const stdio = refusal({ server: fixture('airtable-mcp-server-1.7.2'), package: 1, inputs: { AIRTABLE_API_KEY: 'secret_ref:mcp-ref-a:k' } });
    assert.match(stdio[1], /registry-transport-unsupported: oci package "docker.io\/domdomegg\/airtable-mcp-server:1.7.2" speaks "stdio"/);
  });

  it('refuses unpinned versions, unknown registry types and missing required inputs, each by name', () => {
    const memory = fixture('server-memory-2026.8.31');
    const pkg = (memory.packages as Record<string, unknown>[])[0]!;
    const cases: [unknown, RegExp][] = [
      [
        { server: { ...memory, packages: [{ ...pkg, version: '^2026.8.31' }] } },
        /registry-version-unpinned: npm package "@modelcontextprotocol\/server-memory" has version "\^2026.8.31"/,
      ],
      [{ server: { ...memory, packages: [{ ...pkg, version: 'latest' }] } }, /registry-version-unpinned/],
      [{ server: { ...memory, packages: [{ ...pkg, version: undefined }] } }, /registry-version-unpinned: .* has version null/],
      [{ server: { ...memory, packages: [{ ...pkg, version: '1.x' }] } }, /registry-version-unpinned/],
      [
        {
          server: {
            ...memory,
            packages: [{ registryType: 'oci', identifier: 'docker.io/x/y', transport: { type: 'streamable-http', url: 'http://localhost:1/mcp' } }],
          },
        },
        /registry-version-unpinned: oci package "docker.io\/x\/y"/,
      ],
      [{ server: fixture('time-mcp-nuget-1.0.8') }, /registry-type-unsupported: registry type "nuget" cannot be run/],
      [{ server: fixture('airtable-mcp-server-1.7.2'), package: 2 }, /registry-type-unsupported: registry type "mcpb"/],
      [{ server: fixture('airtable-mcp-server-1.7.2') }, /registry-input-missing: environmentVariables "AIRTABLE_API_KEY" is required/],
      [{ server: fixture('server-filesystem-2026.8.31') }, /registry-input-missing: packageArguments\[0\] positional "allowed_directory" is required/],
      [{ server: fixture('server-memory-2026.8.31'), remote: 0 }, /registry-no-package: server.json has 0 remote\(s\)/],
      [
        { server: { ...memory, packages: [{ ...pkg, transport: { type: 'streamable-http', url: 'http://localhost:3000/mcp' } }] } },
        /registry-transport-unsupported/,
      ],
      [{ server: memory, extra: 1 }, /Unrecognized key/],
    ];
    for (const [entry, text] of cases) {
      const [reason, message] = refusal(entry);
      assert.equal(reason, 'invalid-payload', JSON.stringify(entry));
      assert.match(message, text);
    }
  });

  it('gives the command patterns the mapped command line, with its pinned version', () => {
    const patterns = { ...policy, commandPatterns: ['npx -y @modelcontextprotocol/*@*'] };
    assert.ok(parse({ server: fixture('server-memory-2026.8.31') }, patterns));
    assert.equal(
      refusal({ server: fixture('server-memory-2026.8.31') }, { ...policy, commandPatterns: ['npx -y @modelcontextprotocol/*'] })[0],
      'command-args-not-allowed',
    );
    assert.equal(
      refusal({ server: fixture('airtable-mcp-server-1.7.2'), inputs: { AIRTABLE_API_KEY: 'secret_ref:mcp-ref-a:k' } }, patterns)[0],
      'command-args-not-allowed',
    );
    assert.equal(refusal({ server: fixture('time-mcp-pypi-1.0.6') }, { ...policy, allowedCommands: ['npx'] })[0], 'command-not-allowed');
  });
});

describe('the reference servers’ own published server.json (modelcontextprotocol/servers, schema 2025-12-11)', () => {
  it('maps server-memory 0.6.3 to npx -y @modelcontextprotocol/server-memory@0.6.3', () => {
    assert.deepEqual(parse({ server: fixture('published-server-memory-0.6.3') }).config.mcpServers.a, {
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-memory@0.6.3'],
    });
  });

  it('maps server-everything 2.0.0 to its stdio package with the positional transport argument, one argv word', () => {
    assert.deepEqual(parse({ server: fixture('published-server-everything-2.0.0') }).config.mcpServers.a, {
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-everything@2.0.0', 'stdio'],
    });
  });

  it('maps server-filesystem 0.6.3 with its repeated directory input, and refuses it without one', () => {
    assert.deepEqual(parse({ server: fixture('published-server-filesystem-0.6.3'), inputs: { allowed_directory: ['/data', '/srv'] } }).config.mcpServers.a, {
      command: 'npx',
      args: ['-y', '@modelcontextprotocol/server-filesystem@0.6.3', '/data', '/srv'],
    });
    assert.match(refusal({ server: fixture('published-server-filesystem-0.6.3') })[1], /registry-input-missing/);
  });

  it('maps server-fetch 0.6.3 (PyPI) to uvx mcp-server-fetch==0.6.3', () => {
    assert.deepEqual(parse({ server: fixture('published-server-fetch-0.6.3') }).config.mcpServers.a, { command: 'uvx', args: ['mcp-server-fetch==0.6.3'] });
  });
});
