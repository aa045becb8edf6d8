import { ClientCredentialsProvider, PrivateKeyJwtProvider, type OAuthClientProvider, type OAuthTokens } from '@modelcontextprotocol/client';
import type { ClientCredentials } from '../../../shared/contract/servers.js';

/** What the job sends the authorization server as its client name. */
const CLIENT_NAME = 'mcp-job';

/** Every credential a token response holds joins the values a failure's text is scrubbed of. */
function remember(tokens: OAuthTokens, secrets: string[]): void {
  for (const v of [tokens.access_token, tokens.refresh_token, (tokens as { id_token?: string }).id_token]) if (v) secrets.push(v);
}

/**
 * The SDK's own client-credentials providers (RFC 6749 §4.4 with `client_secret_basic`, or
 * RFC 7523 `private_key_jwt`), with `resolved` holding the Secret values behind the entry's
 * references. They keep the token in memory for this one connection; the token, the Basic
 * credentials and each signed assertion are added to `secrets`, so no failure text carries them.
 */
export function clientCredentialsProvider(cfg: ClientCredentials, resolved: Record<string, string>, secrets: string[]): OAuthClientProvider {
  const scope = cfg.scopes?.join(' ');
  const common = { clientId: cfg.clientId, clientName: CLIENT_NAME, ...(scope ? { scope } : {}), ...(cfg.issuer ? { expectedIssuer: cfg.issuer } : {}) };
  if (cfg.method === 'client_secret_basic') {
    const clientSecret = resolved.clientSecret!;
    secrets.push(btoa(`${cfg.clientId}:${clientSecret}`));
    class Basic extends ClientCredentialsProvider {
      override saveTokens(tokens: OAuthTokens): void {
        remember(tokens, secrets);
        super.saveTokens(tokens);
      }
    }
    return new Basic({ ...common, clientSecret });
  }
  class Jwt extends PrivateKeyJwtProvider {
    override saveTokens(tokens: OAuthTokens): void {
      remember(tokens, secrets);
      super.saveTokens(tokens);
    }
  }
  const provider = new Jwt({ ...common, privateKey: resolved.privateKey!, algorithm: cfg.algorithm ?? 'RS256' });
  const sign = provider.addClientAuthentication;
  provider.addClientAuthentication = async (headers, params, url, metadata) => {
    await sign(headers, params, url, metadata);
    const assertion = params.get('client_assertion');
    if (assertion) secrets.push(assertion);
  };
  return provider;
}
