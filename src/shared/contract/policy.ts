import { posix } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { TerminalError } from '../errors.js';
import type { SharedConfig } from '../settings.js';
import { INIT_CONCURRENCY, JOB_START_ALLOWANCE_MS, SERVER_MARGIN_MS, serversWorstCaseMs, SIDECAR_START_ALLOWANCE_MS } from './budget.js';
import type { MCPServersConfig } from './dialects.js';
import { deploymentSecrets, jobSpecLimits, type JobPolicySettings } from './job-policy.js';
import {
  commandMatches,
  envKeyRefusal,
  globMatch,
  isSecretAllowed,
  PolicyReason,
  remoteChecker,
  secretRefIn,
  urlRefusal,
  type RemotePolicy,
  type SecretRef,
} from './rules.js';
import { MAX_CONTAINER_SPEC_BYTES, type ClientCredentials, type ServerConfig } from './servers.js';

/**
 * The message policy: what a message may make a Job do beyond its shape. The one module that
 * builds it from the settings (validationPolicy, jobValidationPolicy) and the one that raises
 * every refusal — the controller before any Job exists, `serve` before it produces, the job again
 * before it starts or reaches a server (checkMessage, checkServer, checkEnvFileKeys,
 * connectChecker). The rules themselves (globs, secret references, addresses) are in rules.ts.
 */

/** What the controller and the job both check beyond shape. */
export interface ValidationPolicy {
  /** Commands a stdio server may run (basename or full path); `*` allows any. */
  allowedCommands: readonly string[];
  /** Folder mounted from a Secret; envFile paths must resolve inside it. */
  secretsDir: string;
  /** Largest accepted value, in bytes. */
  maxMessageBytes: number;
  /**
   * Image patterns a container server may use (`*` matches any run of characters). The
   * controller, which runs the images, checks them; undefined means not checked here (the job,
   * which only connects to what the controller started).
   */
  allowedImages?: readonly string[];
  /**
   * The controller's check that a message can finish in time: the Job's activeDeadlineSeconds
   * in ms, and the per-server deadline a server without its own `timeout` gets. The job does
   * not check (its Job's deadline is already set).
   */
  deadline?: { jobMs: number; serverTimeoutMs: number };
  /** Secrets `secret_ref:` may name (names or `prefix-*`); none when absent. */
  allowedSecrets?: readonly string[];
  /** Secrets the deployment itself uses, refused whatever `allowedSecrets` says. */
  reservedSecrets?: readonly string[];
  /** Keys allowed despite the default refusal of code-loading keys (see rules.ts). */
  allowedEnvKeys?: readonly string[];
  /** When set, a stdio command line must match one of these (see `commandMatches`). */
  commandPatterns?: readonly string[];
  /** Addresses a remote `url` may reach; the default refusals apply when absent. */
  remote?: RemotePolicy;
}

export type PolicySettings = Pick<
  SharedConfig,
  | 'ALLOWED_COMMANDS'
  | 'SECRETS_DIR'
  | 'MAX_MESSAGE_BYTES'
  | 'JOB_ALLOWED_SECRETS'
  | 'ALLOWED_ENV_KEYS'
  | 'ALLOWED_COMMAND_PATTERNS'
  | 'ALLOWED_REMOTE_HOSTS'
  | 'CLUSTER_SERVICE_CIDR'
  | 'CLUSTER_POD_CIDR'
>;

/** In a pod, the kubelet's address of the API server (`KUBERNETES_SERVICE_HOST`): refused as a remote url like its names. */
export function apiServerHostsOf(host: string | undefined): string[] {
  return host ? [host] : [];
}

/** The policy every program derives from its (shared) settings: what the job applies. */
export function validationPolicy(cfg: PolicySettings, apiServerHosts: readonly string[] = []): ValidationPolicy {
  return {
    allowedCommands: cfg.ALLOWED_COMMANDS,
    secretsDir: cfg.SECRETS_DIR,
    maxMessageBytes: cfg.MAX_MESSAGE_BYTES,
    allowedSecrets: cfg.JOB_ALLOWED_SECRETS,
    allowedEnvKeys: cfg.ALLOWED_ENV_KEYS,
    commandPatterns: cfg.ALLOWED_COMMAND_PATTERNS,
    remote: { allow: cfg.ALLOWED_REMOTE_HOSTS, serviceCidrs: cfg.CLUSTER_SERVICE_CIDR, podCidrs: cfg.CLUSTER_POD_CIDR, apiServerHosts },
  };
}

/**
 * The policy of messages that become Jobs (the controller's, and `serve`'s, which must refuse
 * what the controller refuses): the shared one, plus the image allow-list, the Secrets no
 * reference may name (deploymentSecrets) and the check that a message's servers can finish
 * within the Job's activeDeadlineSeconds (see jobSpecLimits). Pure.
 */
export function jobValidationPolicy(cfg: JobPolicySettings, template: k8s.V1Job | undefined, apiServerHosts: readonly string[]): ValidationPolicy {
  return {
    ...validationPolicy(cfg, apiServerHosts),
    allowedImages: cfg.ALLOWED_IMAGES,
    reservedSecrets: deploymentSecrets(cfg, template),
    deadline: { jobMs: jobSpecLimits(cfg, template).activeDeadlineSeconds * 1000, serverTimeoutMs: cfg.MCP_INIT_TIMEOUT_MS },
  };
}

/**
 * Everything a valid-shaped message's servers must pass: each server (checkServer), the
 * container servers together, and the deadline. Throws a TerminalError with a stable reason;
 * returns the Secret references, once each, in a stable order.
 */
export function checkMessage(config: MCPServersConfig, policy: ValidationPolicy): SecretRef[] {
  const refs = Object.entries(config.mcpServers).flatMap(([name, server]) => checkServer(name, server, policy));
  checkContainerServers(config.mcpServers, policy);
  if (policy.deadline) checkDeadline(Object.values(config.mcpServers), policy.deadline);
  return uniqueRefs(refs);
}

function checkDeadline(servers: ServerConfig[], { jobMs, serverTimeoutMs }: NonNullable<ValidationPolicy['deadline']>): void {
  const worst = serversWorstCaseMs(servers.map((s) => (s.timeoutMs ?? serverTimeoutMs) + SERVER_MARGIN_MS));
  const start = JOB_START_ALLOWANCE_MS + SIDECAR_START_ALLOWANCE_MS * servers.filter((s) => s.type === 'docker').length;
  if (worst + start > jobMs) {
    throw new TerminalError(
      'deadline-too-short',
      `the servers' deadlines need up to ${Math.ceil(worst / 1000)} s (${INIT_CONCURRENCY} at a time), more than the Job's activeDeadlineSeconds (${Math.floor(jobMs / 1000)} s) less ${start / 1000} s to start`,
    );
  }
}

/**
 * The keys of an envFile the job read at run time: they meet the same policy as a message's
 * `env`. Throws a TerminalError (`env-key-not-allowed`).
 */
export function checkEnvFileKeys(envFile: string, keys: readonly string[], policy: Pick<ValidationPolicy, 'allowedEnvKeys'>): void {
  for (const key of keys) {
    const why = envKeyRefusal(`envFile ${envFile}:`, key, policy.allowedEnvKeys);
    if (why) throw new TerminalError(PolicyReason.envKeyNotAllowed, why);
  }
}

/**
 * The remote-URL policy at connect time, where DNS answers are known: `host` decides what a name
 * alone decides, `address` each address it resolves to (see remoteChecker).
 */
export function connectChecker(policy: Pick<ValidationPolicy, 'remote'>): ReturnType<typeof remoteChecker> {
  return remoteChecker(policy.remote ?? NO_REMOTE_EXCEPTIONS);
}

/** The default refusals only: no allowed hosts, no cluster ranges known. */
export const NO_REMOTE_EXCEPTIONS: RemotePolicy = { allow: [], serviceCidrs: [], podCidrs: [], apiServerHosts: [] };

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
function uniqueRefs(refs: SecretRef[]): SecretRef[] {
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
function checkContainerServers(servers: Record<string, ServerConfig>, policy: ValidationPolicy): void {
  const ports = new Map<number, string>();
  let specBytes = 0;
  for (const [name, server] of Object.entries(servers)) {
    if (server.type !== 'docker') continue;
    for (const [k, v] of Object.entries(server.environment ?? {})) specBytes += Buffer.byteLength(k) + Buffer.byteLength(v);
    for (const a of server.args ?? []) specBytes += Buffer.byteLength(a);
    if (specBytes > MAX_CONTAINER_SPEC_BYTES) {
      throw new TerminalError(
        'invalid-payload',
        `the container servers' environment and args pass ${MAX_CONTAINER_SPEC_BYTES} bytes (at server ${name}); the Job would be too large to store`,
      );
    }
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
