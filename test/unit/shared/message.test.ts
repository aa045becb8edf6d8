import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TerminalError } from '../../../src/shared/errors.js';
import { serversWorstCaseMs } from '../../../src/shared/contract/budget.js';
import { isImageAllowed, resolveEnvFile } from '../../../src/shared/contract/checks.js';
import { checksumOf, parseMessage, type ValidationPolicy } from '../../../src/shared/contract/message.js';

const policy: ValidationPolicy = { allowedCommands: ['node', 'npx', 'uv'], secretsDir: '/var/run/mcp-secrets', maxMessageBytes: 4096 };
const servers = { mcpServers: { MariaDB_Server: { command: 'uv', args: ['--directory', 'path/to/server', 'run', 'server.py'], envFile: 'path/to/.env' } } };
const buf = (v: unknown) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v));

function reasonOf(value: Buffer | null): string {
  try {
    parseMessage(value, policy);
  } catch (err) {
    assert.ok(err instanceof TerminalError, `expected a TerminalError, got ${String(err)}`);
    return err.reason;
  }
  assert.fail('expected the message to be rejected');
}

describe('parseMessage', () => {
  it("accepts the design documents' example with the payload as a JSON string", () => {
    const value = buf({ jobID: 'job-123', jobType: 'server-init', payload: JSON.stringify(servers) });
    const m = parseMessage(value, policy);
    assert.equal(m.jobID, 'job-123');
    assert.equal(m.jobType, 'server-init');
    assert.deepEqual(m.config.mcpServers.MariaDB_Server, servers.mcpServers.MariaDB_Server);
    assert.equal(m.checksum, checksumOf(value));
  });

  it('accepts the payload as a JSON object and fills args with an empty list', () => {
    const m = parseMessage(buf({ jobID: 'j', jobType: 'server-init', payload: { mcpServers: { a: { command: 'node' } } } }), policy);
    assert.deepEqual(m.config.mcpServers.a, { command: 'node', args: [] });
  });

  it('accepts remote servers over http and sse', () => {
    const m = parseMessage(
      buf({
        jobID: 'j',
        jobType: 'server-init',
        payload: { mcpServers: { h: { type: 'http', url: 'https://mcp.example/mcp' }, s: { type: 'sse', url: 'http://x:1/sse', headers: { A: 'b' } } } },
      }),
      policy,
    );
    assert.equal(Object.keys(m.config.mcpServers).length, 2);
  });

  it('rejects with a stable reason each kind of bad message', () => {
    const ok = { jobID: 'j', jobType: 'server-init', payload: servers };
    assert.equal(reasonOf(null), 'empty-message');
    assert.equal(reasonOf(Buffer.alloc(0)), 'empty-message');
    assert.equal(reasonOf(buf('not json')), 'invalid-json');
    assert.equal(reasonOf(buf('{"jobID": "j", "jobType": "server-init", "payl')), 'invalid-json');
    assert.equal(reasonOf(Buffer.from([0xff, 0xfe, 0x00, 0x80])), 'invalid-json');
    assert.equal(reasonOf(buf('[1,2]')), 'invalid-envelope');
    assert.equal(reasonOf(buf({ ...ok, jobID: 7 })), 'invalid-envelope');
    assert.equal(reasonOf(buf({ ...ok, payload: 12 })), 'invalid-envelope');
    assert.equal(reasonOf(buf({ ...ok, jobType: 'format-disk' })), 'unknown-job-type');
    assert.equal(reasonOf(buf({ ...ok, payload: 'not json' })), 'invalid-payload');
    assert.equal(reasonOf(buf({ ...ok, payload: { mcpServers: {} } })), 'invalid-payload');
    assert.equal(reasonOf(buf({ ...ok, payload: { mcpServers: { a: { command: 'node', args: 'x' } } } })), 'invalid-payload');
    assert.equal(reasonOf(buf({ ...ok, payload: { mcpServers: { a: { type: 'http', url: 'file:///etc/passwd' } } } })), 'invalid-payload');
    assert.equal(reasonOf(buf({ ...ok, payload: { mcpServers: { a: { command: 'bash', args: ['-c', 'rm -rf /'] } } } })), 'command-not-allowed');
    assert.equal(reasonOf(buf({ ...ok, payload: { mcpServers: { a: { command: '/tmp/node' } } } })), 'command-not-allowed');
    assert.equal(reasonOf(buf({ ...ok, payload: { mcpServers: { a: { command: 'node', envFile: '../../etc/shadow' } } } })), 'env-file-outside-secrets');
    assert.equal(reasonOf(buf({ ...ok, payload: { mcpServers: { a: { command: 'node', envFile: '/etc/shadow' } } } })), 'env-file-outside-secrets');
    assert.equal(reasonOf(buf({ ...ok, padding: 'x'.repeat(5000) })), 'message-too-large');
  });

  it('says what is wrong in the error message', () => {
    assert.throws(() => parseMessage(buf({ jobID: '', jobType: 'server-init', payload: servers }), policy), /jobID: jobID must not be empty/);
    assert.throws(() => parseMessage(buf({ jobID: 'j', jobType: 'x', payload: servers }), policy), /unknown jobType "x"; known: server-init/);
  });
});

describe('server-config dialects', () => {
  const parse = (payload: unknown) => parseMessage(buf({ jobID: 'j', jobType: 'server-init', payload }), policy).config.mcpServers;
  const refusal = (payload: unknown): string => {
    try {
      parse(payload);
    } catch (err) {
      assert.ok(err instanceof TerminalError);
      assert.equal(err.reason, 'invalid-payload');
      return err.message;
    }
    assert.fail('expected the payload to be refused');
  };

  it('maps a Claude Desktop / Claude Code stdio entry with cwd, env, envFile and timeout (ms)', () => {
    const m = parse({ mcpServers: { a: { type: 'stdio', command: 'node', args: ['s.js'], cwd: '/srv', env: { A: '1' }, envFile: 'a.env', timeout: 5000 } } });
    assert.deepEqual(m.a, { type: 'stdio', command: 'node', args: ['s.js'], cwd: '/srv', env: { A: '1' }, envFile: 'a.env', timeoutMs: 5000 });
  });

  it('reads a bare command as stdio', () => {
    assert.deepEqual(parse({ mcpServers: { a: { command: 'npx', args: ['-y', 'x'] } } }).a, { command: 'npx', args: ['-y', 'x'] });
  });

  it('maps http, streamable-http and sse entries, with headers and a pinned protocol', () => {
    const m = parse({
      mcpServers: {
        h: { type: 'http', url: 'https://mcp.example/mcp', headers: { 'X-Team': 'a' }, protocol: '2026-07-28' },
        s: { type: 'streamable-http', url: 'https://mcp.example/mcp', timeout: 1000 },
        e: { type: 'sse', url: 'http://old.example/sse' },
      },
    });
    assert.deepEqual(m.h, { type: 'http', url: 'https://mcp.example/mcp', headers: { 'X-Team': 'a' }, protocol: '2026-07-28' });
    assert.deepEqual(m.s, { type: 'http', url: 'https://mcp.example/mcp', timeoutMs: 1000 });
    assert.deepEqual(m.e, { type: 'sse', url: 'http://old.example/sse' });
  });

  it('reads a url without type as Streamable HTTP that falls back to SSE', () => {
    assert.deepEqual(parse({ mcpServers: { u: { url: 'http://x:1/mcp' } } }).u, { type: 'http', url: 'http://x:1/mcp', sseFallback: true });
  });

  it('accepts the VS Code top-level key servers, normalised to mcpServers', () => {
    const m = parse({ servers: { v: { type: 'stdio', command: 'node', args: [] }, w: { type: 'http', url: 'http://x:1/mcp' } } });
    assert.deepEqual(Object.keys(m), ['v', 'w']);
  });

  it("maps the seed's URL provider, its timeout in seconds and its bearer token, ignoring health_check", () => {
    const m = parse({
      mcpServers: {
        p: {
          type: 'url',
          endpoint: 'http://svc:8000/mcp',
          health_check: { path: '/health', interval: 30, timeout: 10 },
          timeout: 30,
          authentication: { type: 'bearer', token: 't0k' },
        },
      },
    });
    assert.deepEqual(m.p, { type: 'http', url: 'http://svc:8000/mcp', sseFallback: true, headers: { Authorization: 'Bearer t0k' }, timeoutMs: 30_000 });
  });

  it('refuses an unknown field, naming it, in every dialect', () => {
    assert.match(refusal({ mcpServers: { a: { command: 'node', disabled: true } } }), /mcpServers\.a.*"disabled"/);
    assert.match(refusal({ servers: { a: { type: 'http', url: 'http://x/mcp', oauth: {} } } }), /servers\.a.*"oauth"/);
    assert.match(refusal({ mcpServers: { a: { type: 'url', endpoint: 'http://x/mcp', retries: 3 } } }), /mcpServers\.a.*"retries"/);
    assert.match(refusal({ mcpServers: { a: { type: 'url', endpoint: 'http://x/mcp', health_check: { path: '/h', port: 1 } } } }), /"port"/);
    assert.match(refusal({ mcpServers: { a: { command: 'node' } }, inputs: [] }), /"inputs"/);
  });

  it('refuses what it cannot map, saying why', () => {
    assert.match(refusal({ mcpServers: { a: { type: 'docker', image: 'mcp/x' } } }), /mcpServers\.a\.port/);
    assert.match(refusal({ mcpServers: { a: { type: 'docker', image: 'mcp/x', port: 8001, resources: { memory_limit: '256 MB' } } } }), /memory_limit/);
    assert.match(refusal({ mcpServers: { a: { type: 'docker', image: 'mcp/x', port: 8001, resources: { cpu_limit: '-1' } } } }), /cpu_limit/);
    assert.match(refusal({ mcpServers: { a: { type: 'docker', image: 'mcp/x', port: 8001, volumes: ['/:/host'] } } }), /"volumes"/);
    assert.match(refusal({ mcpServers: { a: { type: 'ws', url: 'ws://x' } } }), /unknown type "ws"/);
    assert.match(refusal({ mcpServers: { a: { args: [] } } }), /needs "command"/);
    assert.match(refusal({ mcpServers: { a: { command: 'node', timeout: 60 } } }), /timeout is in milliseconds/);
    assert.match(refusal({ mcpServers: { a: { command: 'node', protocol: '2024' } } }), /protocol/);
    assert.match(refusal({ mcpServers: { a: { command: 'node' } }, servers: { b: { command: 'node' } } }), /exactly one of mcpServers or servers/);
  });
});

describe('resolveEnvFile', () => {
  it('resolves relative paths inside the secrets folder', () => {
    assert.equal(resolveEnvFile('db/.env', '/s'), '/s/db/.env');
    assert.equal(resolveEnvFile('/s/db/.env', '/s'), '/s/db/.env');
  });

  it('refuses paths that leave the secrets folder, including the folder itself', () => {
    for (const p of ['../x', 'a/../../x', '/etc/passwd', '/s', '/s2/x']) assert.throws(() => resolveEnvFile(p, '/s'), TerminalError, p);
  });
});

describe('a message that cannot finish in time', () => {
  const serversOf = (n: number, timeout?: number) =>
    Buffer.from(
      JSON.stringify({
        jobID: 'd',
        jobType: 'server-init',
        payload: { mcpServers: Object.fromEntries(Array.from({ length: n }, (_, i) => [`s${i}`, { command: 'node', ...(timeout ? { timeout } : {}) }])) },
      }),
    );
  const policy = { allowedCommands: ['node'], secretsDir: '/s', maxMessageBytes: 1 << 20, deadline: { jobMs: 600_000, serverTimeoutMs: 30_000 } };

  it("is refused when its servers' deadlines, four at a time, do not fit the Job's activeDeadlineSeconds", () => {
    assert.throws(
      () => parseMessage(serversOf(5, 400_000), policy),
      (e: TerminalError) => e.reason === 'deadline-too-short' && /up to 810 s/.test(e.message),
    );
  });

  it('is accepted when they fit, with the default per-server deadline for servers that set none', () => {
    assert.equal(Object.keys(parseMessage(serversOf(32), policy).config.mcpServers).length, 32);
    assert.equal(serversWorstCaseMs([10, 10, 10, 10, 10]), 20);
  });
});

describe('values Node would refuse, echoing them in its error', () => {
  const withServer = (server: object) => Buffer.from(JSON.stringify({ jobID: 'v', jobType: 'server-init', payload: { mcpServers: { a: server } } }));
  const policy = { allowedCommands: ['node'], secretsDir: '/s', maxMessageBytes: 1 << 20 };

  it('refuses a header value with CR, LF, NUL or beyond Latin-1, naming the header and never the value', () => {
    for (const bad of ['Bearer SECRET\r\nX: y', 'Bearer SECRET\u0000', 'Bearer SECRET\u2603']) {
      assert.throws(
        () => parseMessage(withServer({ url: 'https://mcp.example/mcp', headers: { Authorization: bad } }), policy),
        (e: TerminalError) => e.reason === 'invalid-payload' && /Authorization/.test(e.message) && !e.message.includes('SECRET'),
      );
    }
  });

  it('refuses a NUL byte in an env value or an argument', () => {
    assert.throws(
      () => parseMessage(withServer({ command: 'node', env: { API_KEY: 'SECRET\u0000' } }), policy),
      (e: TerminalError) => !e.message.includes('SECRET'),
    );
    assert.throws(
      () => parseMessage(withServer({ command: 'node', args: ['a\u0000b'] }), policy),
      (e: TerminalError) => e.reason === 'invalid-payload',
    );
  });
});

describe('container servers (the docker provider)', () => {
  const seed = {
    type: 'docker',
    image: 'mcp/filesystem:latest',
    port: 8001,
    environment: { ALLOWED_DIRECTORIES: '/tmp' },
    command: ['python', '-m', 'mcp_filesystem'],
    resources: { memory_limit: '256m', cpu_limit: '0.5' },
    health_check: { path: '/health', interval: 30, timeout: 10 },
  };
  const withImages = (allowedImages: string[]): ValidationPolicy => ({ ...policy, allowedImages });
  const msgOf = (mcpServers: Record<string, unknown>) => buf({ jobID: 'j', jobType: 'server-init', payload: { mcpServers } });

  it("accepts the seed's example, keeping Docker's command as args and the MCP path /mcp", () => {
    const m = parseMessage(msgOf({ fs: seed }), withImages(['mcp/*']));
    assert.deepEqual(m.config.mcpServers.fs, {
      type: 'docker',
      image: 'mcp/filesystem:latest',
      port: 8001,
      path: '/mcp',
      environment: { ALLOWED_DIRECTORIES: '/tmp' },
      args: ['python', '-m', 'mcp_filesystem'],
      resources: { memory_limit: '256m', cpu_limit: '0.5' },
      health_check: { path: '/health', interval: 30, timeout: 10 },
    });
  });

  it('takes the timeout in seconds, like the URL provider', () => {
    const m = parseMessage(msgOf({ fs: { type: 'docker', image: 'mcp/x', port: 9000, path: '/', timeout: 12 } }), withImages(['*']));
    assert.deepEqual(m.config.mcpServers.fs, { type: 'docker', image: 'mcp/x', port: 9000, path: '/', timeoutMs: 12_000 });
  });

  it('dead-letters an image outside the allow-list, and every image when the list is empty', () => {
    const reason = (p: ValidationPolicy) => {
      try {
        parseMessage(msgOf({ fs: seed }), p);
      } catch (err) {
        return (err as TerminalError).reason + ': ' + (err as TerminalError).message;
      }
      return 'accepted';
    };
    assert.match(reason(withImages([])), /^image-not-allowed: .*mcp\/filesystem:latest.*empty/);
    assert.match(reason(withImages(['registry.example.com/mcp/*'])), /^image-not-allowed/);
    assert.match(reason(withImages(['mcp/filesystem'])), /^image-not-allowed/, 'a pattern without * matches the whole reference');
    assert.equal(reason(withImages(['mcp/filesystem:*'])), 'accepted');
    assert.equal(reason(withImages(['mcp/filesystem:latest'])), 'accepted');
    assert.equal(reason(policy), 'accepted', 'the job, which runs no image, does not check');
  });

  it('refuses two sidecars on one port: a pod has one network', () => {
    assert.throws(
      () => parseMessage(msgOf({ a: seed, b: { ...seed, command: undefined } }), withImages(['*'])),
      (err: TerminalError) => err.reason === 'invalid-payload' && /a and b both use port 8001/.test(err.message),
    );
  });

  it('counts each sidecar start in the deadline budget', () => {
    const deadline = { jobMs: 79_000, serverTimeoutMs: 30_000 };
    const p = { ...withImages(['*']), deadline };
    parseMessage(msgOf({ a: { command: 'node' } }), p);
    assert.throws(
      () => parseMessage(msgOf({ a: seed }), p),
      (err: TerminalError) => err.reason === 'deadline-too-short' && /less 45 s to start/.test(err.message),
    );
  });

  it('matches image patterns with * as any run of characters and nothing else special', () => {
    assert.equal(isImageAllowed('registry.example.com/mcp/fs:1.0', ['registry.example.com/mcp/*']), true);
    assert.equal(isImageAllowed('registry.example.com/mcpx/fs', ['registry.example.com/mcp/*']), false);
    assert.equal(isImageAllowed('registryXexample.com/mcp/fs', ['registry.example.com/mcp/*']), false, 'a dot is a dot');
    assert.equal(isImageAllowed('anything', ['*']), true);
    assert.equal(isImageAllowed('mcp/x', []), false);
  });
});
