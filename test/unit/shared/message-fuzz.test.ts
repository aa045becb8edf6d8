import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ControllerConfigSchema, controllerPolicy } from '../../../src/controller/config.js';
import { TERMINAL_REASONS, TerminalError } from '../../../src/shared/errors.js';
import { parseMessage } from '../../../src/shared/contract/message.js';
import { parseConfig } from '../../../src/shared/settings.js';

const reasons: ReadonlySet<string> = new Set(TERMINAL_REASONS);

/** Two policies: the defaults, and one with every allow-list set, so each policy path runs. */
const policies = [
  controllerPolicy(parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 't' }), undefined, []),
  controllerPolicy(
    parseConfig(ControllerConfigSchema, {
      KAFKA_BROKERS: 'k:9092',
      KAFKA_TOPIC: 't',
      ALLOWED_COMMANDS: 'node,npx,uvx',
      ALLOWED_ENV_KEYS: 'API_*,HOME',
      ALLOWED_COMMAND_PATTERNS: 'npx -y @modelcontextprotocol/*',
      ALLOWED_REMOTE_HOSTS: '*.example.com,10.0.0.0/8',
      JOB_ALLOWED_SECRETS: 'mcp-*',
      ALLOWED_IMAGES: 'mcp/*',
      MAX_MESSAGE_BYTES: '4096',
    }),
    undefined,
    ['10.96.0.1'],
  ),
];

/** Parses, and says what came out: a message, or a refusal whose reason is a declared one. Anything else fails the property. */
function outcome(value: Uint8Array | null): string {
  const results: string[] = [];
  for (const p of policies) {
    try {
      parseMessage(value === null ? null : Buffer.from(value), p);
      results.push('ok');
    } catch (err) {
      assert.ok(err instanceof TerminalError, `not a TerminalError: ${String(err)} (${(err as Error)?.stack ?? ''})`);
      assert.ok(reasons.has(err.reason), `undeclared reason ${err.reason}`);
      assert.ok(err.message.length > 0);
      results.push(err.reason);
    }
  }
  return results.join(',');
}

const text = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom('', '\0', '..', '../../etc/passwd', '${HOME}', 'node', 'npx', 'http://10.96.0.1/', 'API_KEY'),
);
const anyValue = fc.oneof(
  text,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(text, { maxLength: 4 }),
  fc.dictionary(text, text, { maxKeys: 4 }),
);
const field = <T>(a: fc.Arbitrary<T>) => fc.oneof(a, anyValue);

/** Server entries in every dialect, with fields of the right names and values of any shape. */
const serverEntry = fc.record(
  {
    type: field(fc.constantFrom('stdio', 'http', 'sse', 'streamable-http', 'docker', 'url')),
    command: field(fc.oneof(fc.constantFrom('node', 'npx', 'uvx', '/bin/sh'), fc.array(text, { maxLength: 3 }))),
    args: field(fc.array(text, { maxLength: 6 })),
    env: field(fc.dictionary(text, text, { maxKeys: 5 })),
    environment: field(fc.dictionary(fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,8}$/), text, { maxKeys: 5 })),
    envFile: field(text),
    cwd: field(text),
    url: field(fc.oneof(fc.webUrl(), fc.constantFrom('http://127.0.0.1:1/mcp', 'https://api.example.com/mcp', 'http://[::1]/', 'file:///etc/passwd'))),
    endpoint: field(fc.webUrl()),
    headers: field(fc.dictionary(text, text, { maxKeys: 3 })),
    image: field(fc.constantFrom('mcp/x:1', 'evil/x', 'a'.repeat(300))),
    port: field(fc.integer({ min: -1, max: 70_000 })),
    timeout: field(fc.double({ min: -1, max: 1e6, noNaN: false })),
    protocol: field(fc.constantFrom('2025-06-18', '2024-11-05', 'latest')),
    resources: field(
      fc.record({ memory_limit: field(fc.constantFrom('256m', '1k', 'lots')), cpu_limit: field(fc.constantFrom('0.5', 100, '-1')) }, { requiredKeys: [] }),
    ),
    health_check: field(fc.record({ path: field(text), interval: field(fc.integer()), timeout: field(fc.integer()) }, { requiredKeys: [] })),
  },
  { requiredKeys: [] },
);
const servers = fc.oneof(
  fc.record({ mcpServers: fc.dictionary(fc.oneof(fc.stringMatching(/^[a-z]{1,6}$/), text), serverEntry, { maxKeys: 4 }) }),
  fc.record({ servers: fc.dictionary(fc.stringMatching(/^[a-z]{1,6}$/), serverEntry, { maxKeys: 3 }) }),
  fc.dictionary(text, anyValue, { maxKeys: 3 }),
);
const envelope = fc.record(
  {
    jobID: field(fc.string({ minLength: 1, maxLength: 20 })),
    jobType: field(fc.constantFrom('server-init', 'other')),
    payload: fc.oneof(
      servers,
      servers.map((s) => JSON.stringify(s)),
      anyValue,
    ),
  },
  { requiredKeys: [] },
);
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

describe('message parsing and policy over hostile input (fuzz)', () => {
  it('answers arbitrary bytes with a declared refusal, never a crash', () => {
    fc.assert(
      fc.property(fc.option(fc.uint8Array({ maxLength: 3000 }), { nil: null }), (b) => void outcome(b)),
      { numRuns: 500 },
    );
  });

  it('answers arbitrary JSON with a declared refusal, never a crash', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => void outcome(enc(v))),
      { numRuns: 500 },
    );
  });

  it('answers envelopes with servers of every dialect and values of any shape with a message or a declared refusal, never a crash', () => {
    fc.assert(
      fc.property(envelope, (v) => void outcome(enc(v))),
      { numRuns: 1000 },
    );
  });
});
