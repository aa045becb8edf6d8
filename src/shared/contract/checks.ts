import { posix } from 'node:path';
import { TerminalError } from '../errors.js';
import type { ValidationPolicy } from './message.js';
import {
  commandMatches,
  envKeyRefusal,
  globMatch,
  isSecretAllowed,
  PolicyReason,
  secretRefIn,
  urlRefusal,
  type RemotePolicy,
  type SecretRef,
} from './policy.js';
import type { ClientCredentials, ServerConfig } from './servers.js';

const NO_REMOTE_EXCEPTIONS: RemotePolicy = { allow: [], serviceCidrs: [], podCidrs: [], apiServerHosts: [] };

function secretRefsOf(where: string, values: Record<string, string> | undefined, schemeAllowed: boolean, policy: ValidationPolicy): SecretRef[] {
  const refs: SecretRef[] = [];
  for (const [k, v] of Object.entries(values ?? {})) {
    const r = secretRefIn(v, schemeAllowed);
    if (r === undefined) continue;
    if (typeof r === 'string') throw new TerminalError('invalid-payload', `${where}.${k}: ${r}`);
    if (!isSecretAllowed(r.secret, policy.allowedSecrets ?? [], policy.reservedSecrets)) {
      const allowed = (policy.allowedSecrets ?? []).some((a) => globMatch(a, r.secret));
      throw new TerminalError(
        PolicyReason.secretNotAllowed,
        allowed
          ? `${where}.${k}: Secret ${JSON.stringify(r.secret)} is one the deployment itself uses (or a service-account token) and is never referenced`
          : `${where}.${k}: Secret ${JSON.stringify(r.secret)} is not one the operator allowed (JOB_ALLOWED_SECRETS: ${(policy.allowedSecrets ?? []).join(', ') || 'none'})`,
      );
    }
    refs.push({ secret: r.secret, key: r.key });
  }
  return refs;
}

/**
 * What a message's server may do, checked the same way by the controller (before any Job exists)
 * and by the job (before it starts or connects): the command and what follows it, its environment
 * keys, its envFile's place, the Secrets it references and the address its `url` names. Throws a
 * TerminalError with a stable reason; returns the secret references it found. `sidecar` marks a
 * server the controller places in the Job's own pod (`type: docker`): its url is not checked here,
 * before DNS; the job's connect-time check (src/job/mcp/transports/remote-fetch.ts) still applies to it.
 */
export function checkServer(name: string, server: ServerConfig, policy: ValidationPolicy, opts: { sidecar?: boolean } = {}): SecretRef[] {
  const where = `server ${name}`;
  if (server.type === 'docker') {
    // An operator-allowed image still runs its own runtime: the same keys would load code into it.
    checkEnvKeys(where, server.environment, policy);
    // The sidecar gets them as secretKeyRef env (the kubelet resolves them); the job mounts the
    // same keys, so a missing one fails the Job for good by name instead of a silent empty value.
    return secretRefsOf(`${where}: environment`, server.environment, false, policy);
  }
  if ('command' in server) {
    if (!isCommandAllowed(server.command, policy.allowedCommands)) {
      throw new TerminalError(
        'command-not-allowed',
        `${where}: command ${JSON.stringify(server.command)} is not in the allow-list (${policy.allowedCommands.join(', ')})`,
      );
    }
    if (policy.commandPatterns?.length && !policy.commandPatterns.some((p) => commandMatches(server.command, server.args, p))) {
      throw new TerminalError(
        PolicyReason.commandArgsNotAllowed,
        `${where}: the command line matches none of ALLOWED_COMMAND_PATTERNS (${policy.commandPatterns.join('; ')})`,
      );
    }
    // A pattern admits words, not where they lead: npx and uvx resolve a relative spec or file
    // against the working directory, so a message may not choose it while patterns are set.
    if (policy.commandPatterns?.length && server.cwd !== undefined) {
      throw new TerminalError(
        PolicyReason.commandArgsNotAllowed,
        `${where}: cwd is not accepted while ALLOWED_COMMAND_PATTERNS is set (package specs resolve against it); leave cwd out`,
      );
    }
    checkEnvKeys(where, server.env, policy);
    if (server.envFile !== undefined) resolveEnvFile(server.envFile, policy.secretsDir);
    return secretRefsOf(`${where}: env`, server.env, false, policy);
  }
  if (!opts.sidecar) {
    const why = urlRefusal(server.url, policy.remote ?? NO_REMOTE_EXCEPTIONS);
    if (why) {
      throw new TerminalError(
        PolicyReason.urlNotAllowed,
        `${where}: url host ${JSON.stringify(new URL(server.url).hostname)} is refused (${why}); ALLOWED_REMOTE_HOSTS can allow it`,
      );
    }
  }
  if (server.oauth && Object.keys(server.headers ?? {}).some((h) => h.toLowerCase() === 'authorization')) {
    throw new TerminalError('invalid-payload', `${where}: an Authorization header and OAuth authentication exclude each other`);
  }
  return [
    ...secretRefsOf(`${where}: headers`, server.headers, true, policy),
    ...secretRefsOf(`${where}: authentication`, oauthSecrets(server.oauth), false, policy),
  ];
}

/** The Secret references of an OAuth entry, by field name. */
export function oauthSecrets(oauth: ClientCredentials | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (oauth?.clientSecret) out.clientSecret = oauth.clientSecret;
  if (oauth?.privateKey) out.privateKey = oauth.privateKey;
  return out;
}

function checkEnvKeys(where: string, env: Record<string, string> | undefined, policy: ValidationPolicy): void {
  for (const key of Object.keys(env ?? {})) {
    const why = envKeyRefusal('env', key, policy.allowedEnvKeys);
    if (why) throw new TerminalError(PolicyReason.envKeyNotAllowed, `${where}: ${why}`);
  }
}

/** References once each, in a stable order (the Job's volume is then the same on every build). */
export function uniqueRefs(refs: SecretRef[]): SecretRef[] {
  const seen = new Map(refs.map((r) => [`${r.secret}\0${r.key}`, r]));
  return [...seen.values()].sort((a, b) => (a.secret === b.secret ? (a.key < b.key ? -1 : 1) : a.secret < b.secret ? -1 : 1));
}

export function isCommandAllowed(command: string, allowed: readonly string[]): boolean {
  if (allowed.includes('*')) return true;
  return allowed.includes(command) || (!command.includes('/') && allowed.includes(posix.basename(command)));
}

/** True when an image matches one of the operator's patterns; `*` matches any run of characters. */
export function isImageAllowed(image: string, patterns: readonly string[]): boolean {
  return patterns.some((p) =>
    new RegExp(
      `^${p
        .split('*')
        .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    ).test(image),
  );
}

/** Checks what the contract cannot say per entry: the images are allowed, and sidecars in one pod do not share a port. */
export function checkContainerServers(servers: Record<string, ServerConfig>, policy: ValidationPolicy): void {
  const ports = new Map<number, string>();
  for (const [name, server] of Object.entries(servers)) {
    if (server.type !== 'docker') continue;
    if (policy.allowedImages && !isImageAllowed(server.image, policy.allowedImages)) {
      throw new TerminalError(
        'image-not-allowed',
        `server ${name}: image ${JSON.stringify(server.image)} is not in the allow-list (${policy.allowedImages.join(', ') || 'empty: no container servers'})`,
      );
    }
    const other = ports.get(server.port);
    if (other !== undefined) throw new TerminalError('invalid-payload', `servers ${other} and ${name} both use port ${server.port}; one pod has one network`);
    ports.set(server.port, name);
  }
}

/** Resolves an envFile path inside the secrets folder, or throws if it escapes it. */
export function resolveEnvFile(envFile: string, secretsDir: string): string {
  const root = posix.resolve(secretsDir);
  const full = posix.resolve(root, envFile);
  if (full !== root && full.startsWith(`${root}/`)) return full;
  throw new TerminalError('env-file-outside-secrets', `envFile ${JSON.stringify(envFile)} is outside the secrets directory ${root}`);
}
