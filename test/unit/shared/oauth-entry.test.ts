import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { OAuthError } from '@modelcontextprotocol/client';
import { classify } from '../../../src/job/mcp/failures.js';
import { TerminalError } from '../../../src/shared/errors.js';
import { parseMessage, type ValidationPolicy } from '../../../src/shared/contract/message.js';

const policy: ValidationPolicy = { allowedCommands: [], secretsDir: '/s', maxMessageBytes: 65536, allowedSecrets: ['mcp-oauth'] };
const msg = (entry: unknown) => Buffer.from(JSON.stringify({ jobID: 'j', jobType: 'server-init', payload: { mcpServers: { a: entry } } }));
const auth = { type: 'oauth2', grant: 'client_credentials', method: 'client_secret_basic', clientId: 'c', clientSecret: 'secret_ref:mcp-oauth:k' };
const refusal = (entry: unknown): [string, string] => {
  try {
    parseMessage(msg(entry), policy);
  } catch (err) {
    assert.ok(err instanceof TerminalError);
    return [err.reason, err.message];
  }
  assert.fail('expected a refusal');
};

describe('OAuth client-credentials entries', () => {
  it('maps authentication on http, sse, a bare url and the URL provider to the internal oauth, and mounts the referenced key', () => {
    const oauth = { method: 'client_secret_basic', clientId: 'c', clientSecret: 'secret_ref:mcp-oauth:k' };
    const parse = (entry: unknown) => parseMessage(msg(entry), policy);
    assert.deepEqual(parse({ type: 'sse', url: 'https://m.example/sse', authentication: auth }).config.mcpServers.a, {
      type: 'sse',
      url: 'https://m.example/sse',
      oauth,
    });
    assert.deepEqual(parse({ url: 'https://m.example/mcp', authentication: auth }).config.mcpServers.a, {
      type: 'http',
      url: 'https://m.example/mcp',
      sseFallback: true,
      oauth,
    });
    const provider = parse({ type: 'url', endpoint: 'https://m.example/mcp', authentication: { ...auth, scopes: ['x'], issuer: 'https://auth.example' } });
    assert.deepEqual(provider.config.mcpServers.a, {
      type: 'http',
      url: 'https://m.example/mcp',
      sseFallback: true,
      oauth: { ...oauth, scopes: ['x'], issuer: 'https://auth.example' },
    });
    assert.deepEqual(provider.secretRefs, [{ secret: 'mcp-oauth', key: 'k' }]);
    const jwt = parse({
      type: 'http',
      url: 'https://m.example/mcp',
      authentication: {
        type: 'oauth2',
        grant: 'client_credentials',
        method: 'private_key_jwt',
        clientId: 'c',
        privateKey: 'secret_ref:mcp-oauth:pem',
        algorithm: 'ES256',
      },
    });
    assert.deepEqual(jwt.secretRefs, [{ secret: 'mcp-oauth', key: 'pem' }]);
  });

  it('refuses a plain secret, a Secret not allowed, a missing key, another grant, and an Authorization header beside it, never echoing a value', () => {
    const http = (a: unknown, extra: Record<string, unknown> = {}) => ({ type: 'http', url: 'https://m.example/mcp', authentication: a, ...extra });
    const cases: [unknown, string, RegExp][] = [
      [http({ ...auth, clientSecret: 'plain-s3cret' }), 'invalid-payload', /clientSecret is a secret_ref/],
      [http({ ...auth, clientSecret: 'secret_ref:other:k' }), 'secret-not-allowed', /authentication\.clientSecret: Secret "other"/],
      [http({ ...auth, method: 'private_key_jwt' }), 'invalid-payload', /private_key_jwt takes privateKey/],
      [http({ ...auth, clientSecret: undefined }), 'invalid-payload', /client_secret_basic takes clientSecret/],
      [http({ ...auth, grant: 'authorization_code' }), 'invalid-payload', /grant is client_credentials/],
      [http({ ...auth, algorithm: 'HS256' }), 'invalid-payload', /algorithm/],
      [http({ ...auth, scopes: ['a b'] }), 'invalid-payload', /a scope is printable ASCII without spaces/],
      [http(auth, { headers: { authorization: 'Bearer x' } }), 'invalid-payload', /an Authorization header and OAuth authentication exclude each other/],
    ];
    for (const [entry, reason, text] of cases) {
      const [r, m] = refusal(entry);
      assert.equal(r, reason, JSON.stringify(entry));
      assert.match(m, text);
      assert.doesNotMatch(m, /plain-s3cret/);
    }
  });

  it('sorts an authorization server refusal as a permanent auth-failed and its own trouble as retriable', () => {
    const refused = classify(new OAuthError('invalid_client', 'client authentication failed'), 'handshake');
    assert.equal(refused.outcome, 'failed-permanent');
    assert.equal(refused.reason, 'auth-failed');
    assert.equal(refused.message, 'handshake: authorization server: invalid_client');
    const busy = classify(new Error('wrapped', { cause: new OAuthError('temporarily_unavailable', 'later') }), 'handshake');
    assert.equal(busy.outcome, 'failed-retriable');
    assert.equal(busy.reason, 'auth-failed');
  });
});
