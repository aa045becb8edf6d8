import { isIP } from 'node:net';
import { localhostAllowedHostnames, localhostAllowedOrigins, validateHostHeader, validateOriginHeader } from '@modelcontextprotocol/server';

/** Whether an address to listen on is this machine only (where a browser page is the attacker to fear). */
export function isLoopbackBind(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  return isIP(h) === 4 && h.startsWith('127.');
}

export interface RebindingPolicy {
  /** Host names (no port) a request's Host may name; undefined: not checked. */
  hosts?: string[];
  /** Origin host names a request's Origin may name; a request without Origin (not a browser) passes. */
  origins?: string[];
}

/**
 * DNS-rebinding protection from the settings: a page on another site that makes the browser
 * resolve its name to 127.0.0.1 reaches a loopback server with its own name in Host and its own
 * Origin. Bound to loopback, Host must be a localhost name unless SERVE_ALLOWED_HOSTS says
 * otherwise; bound elsewhere, Host is checked only when SERVE_ALLOWED_HOSTS is set (a Service
 * is reached under names this process cannot know). Origin, when a browser sends one, must be
 * a localhost one or in SERVE_ALLOWED_ORIGINS. `*` turns either check off.
 */
export function rebindingPolicy(bind: string, allowedHosts: string[], allowedOrigins: string[]): RebindingPolicy {
  const hosts = allowedHosts.length ? allowedHosts : isLoopbackBind(bind) ? localhostAllowedHostnames() : undefined;
  const origins = allowedOrigins.length ? allowedOrigins : localhostAllowedOrigins();
  return {
    ...(hosts && !hosts.includes('*') ? { hosts: hosts.map((h) => h.toLowerCase()) } : {}),
    ...(origins.includes('*') ? {} : { origins: origins.map((o) => o.toLowerCase()) }),
  };
}

/** Why a request is refused (its Host or Origin), or undefined when it may proceed. */
export function rebindingRefusal(p: RebindingPolicy, host: string | undefined, origin: string | undefined): string | undefined {
  if (p.hosts) {
    const r = validateHostHeader(host, p.hosts);
    if (!r.ok) return r.message;
  }
  if (p.origins) {
    const r = validateOriginHeader(origin, p.origins);
    if (!r.ok) return r.message;
  }
  return undefined;
}
