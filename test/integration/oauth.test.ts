/**
 * OAuth client credentials against a real authorization server (oidc-provider) in front of an MCP
 * server that checks each token's signature, issuer and audience: the job discovers the
 * authorization server from the MCP server's metadata, gets a token with `client_secret_basic` or
 * `private_key_jwt`, and no credential of either kind reaches a result or a summary.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { initializeServer } from '../../src/job/mcp/initialize.js';
import type { InitOptions } from '../../src/job/mcp/result.js';
import { buildSummary } from '../../src/job/summary.js';
import type { RemoteServer, ServerConfig } from '../../src/shared/contract/servers.js';
import { startOAuthBed, type OAuthBed } from '../fixtures/oauth-bed.js';

const SECRET = 'mcp-oauth';

/** A Job's mounted Secret keys: `<dir>/<secret>/<key>`. */
function secretRefsDir(values: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'oauth-refs-'));
  mkdirSync(join(dir, SECRET));
  for (const [k, v] of Object.entries(values)) writeFileSync(join(dir, SECRET, k), v);
  return dir;
}

describe('OAuth client credentials for a remote server', () => {
  let bed: OAuthBed;
  let refs: string;
  const opts = (allow = ['127.0.0.1']): InitOptions => ({
    timeoutMs: 15_000,
    secretsDir: '/nonexistent',
    allowedCommands: [],
    protocol: 'auto',
    secretRefsDir: refs,
    policy: { allowedSecrets: [SECRET], remote: { allow, serviceCidrs: [], podCidrs: [], apiServerHosts: [] } },
  });
  const basic = (over: Partial<NonNullable<RemoteServer['oauth']>> = {}): ServerConfig => ({
    type: 'http',
    url: bed.mcpUrl,
    oauth: { method: 'client_secret_basic', clientId: bed.basic.clientId, clientSecret: `secret_ref:${SECRET}:client-secret`, scopes: ['mcp:tools'], ...over },
  });
  /** Every credential of this bed: none may appear in a result or summary. */
  const credentials = () => [bed.basic.clientSecret, bed.jwt.privateKeyPem.split('\n')[1]!, ...bed.accepted.map((a) => a.token)];

  before(async () => {
    bed = await startOAuthBed();
    refs = secretRefsDir({ 'client-secret': bed.basic.clientSecret, 'private-key': bed.jwt.privateKeyPem, wrong: 'not-the-secret' });
  });
  after(async () => {
    await bed.close();
  });

  it('is refused by the MCP server without a token, so the tests below show the grant at work', async () => {
    const r = await initializeServer('bare', { type: 'http', url: bed.mcpUrl }, opts());
    assert.equal(r.status, 'failed-permanent', r.error);
    assert.ok(bed.refused > 0);
  });

  it('gets a token with client_secret_basic from the server the metadata names, for this server only, and lists the tools', async () => {
    const before = bed.accepted.length;
    const r = await initializeServer('basic', basic({ issuer: bed.issuer }), opts());
    assert.equal(r.status, 'initialized', r.error);
    assert.deepEqual(r.tools, ['whoami']);
    const used = bed.accepted.slice(before);
    assert.ok(used.length > 0);
    assert.ok(used.every((a) => a.aud === bed.mcpUrl && a.clientId === bed.basic.clientId));
  });

  it('gets a token with private_key_jwt, signing the assertion with the key from the Secret', async () => {
    const before = bed.accepted.length;
    const cfg: ServerConfig = {
      type: 'http',
      url: bed.mcpUrl,
      oauth: { method: 'private_key_jwt', clientId: bed.jwt.clientId, privateKey: `secret_ref:${SECRET}:private-key`, algorithm: 'RS256' },
    };
    const r = await initializeServer('jwt', cfg, opts());
    assert.equal(r.status, 'initialized', r.error);
    assert.deepEqual(r.tools, ['whoami']);
    assert.ok(bed.accepted.slice(before).every((a) => a.clientId === bed.jwt.clientId && a.aud === bed.mcpUrl));
  });

  it('fails for good, as auth-failed, when the authorization server refuses the client', async () => {
    const r = await initializeServer('wrong', basic({ clientSecret: `secret_ref:${SECRET}:wrong` }), opts());
    assert.equal(r.status, 'failed-permanent', r.error);
    assert.equal(r.reason, 'auth-failed', r.error);
    assert.doesNotMatch(r.error ?? '', /not-the-secret/);
  });

  it('sends no credential to an authorization server other than the pinned issuer', async () => {
    const requests = bed.tokenRequests;
    const r = await initializeServer('pinned', basic({ issuer: 'https://auth.example.com' }), opts());
    assert.equal(r.status, 'failed-permanent', r.error);
    assert.equal(r.reason, 'auth-failed', r.error);
    assert.equal(bed.tokenRequests, requests);
  });

  it('keeps every credential out of the results and the summary', async () => {
    const results = [
      await initializeServer('basic', basic(), opts()),
      await initializeServer('wrong', basic({ clientSecret: `secret_ref:${SECRET}:wrong` }), opts()),
    ];
    const text = JSON.stringify(results) + buildSummary({ jobID: 'j', topic: 't', partition: 0, offset: '0', exitCode: 75, reason: 'retriable' }, results);
    for (const c of credentials()) assert.ok(!text.includes(c), `a credential appeared: ${c.slice(0, 6)}…`);
  });
});

describe('OAuth discovery under the remote-URL policy', () => {
  let bed: OAuthBed;
  before(async () => {
    // The authorization server on another loopback address, which the policy below does not allow.
    bed = await startOAuthBed({ asHost: '127.0.0.2' });
  });
  after(async () => {
    await bed.close();
  });

  it('refuses to fetch the metadata or token of an authorization server the policy refuses', async () => {
    const refs = secretRefsDir({ 'client-secret': bed.basic.clientSecret });
    const r = await initializeServer(
      'far',
      {
        type: 'http',
        url: bed.mcpUrl,
        oauth: { method: 'client_secret_basic', clientId: bed.basic.clientId, clientSecret: `secret_ref:${SECRET}:client-secret` },
      },
      {
        timeoutMs: 15_000,
        secretsDir: '/nonexistent',
        allowedCommands: [],
        protocol: 'auto',
        secretRefsDir: refs,
        policy: { allowedSecrets: [SECRET], remote: { allow: ['127.0.0.1'], serviceCidrs: [], podCidrs: [], apiServerHosts: [] } },
      },
    );
    assert.equal(r.status, 'failed-permanent', r.error);
    assert.equal(r.reason, 'url-not-allowed', r.error);
    assert.equal(bed.tokenRequests, 0);
  });
});
