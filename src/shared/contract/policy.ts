import { BlockList, isIP } from 'node:net';
import { posix } from 'node:path';

/**
 * What a message may make a Job do, beyond its shape: which Secrets it may reference, which
 * environment keys it may set, which command lines it may run, which addresses it may reach.
 * Pure functions of the operator's settings; the controller applies them before any Job exists
 * (dead-lettering with the reason) and the job applies them again at run time, where it can also
 * see DNS answers and the contents of an envFile.
 */

/** Stable reasons of each refusal, as they appear in dead-letter records and summaries. */
export const PolicyReason = {
  secretNotAllowed: 'secret-not-allowed',
  envKeyNotAllowed: 'env-key-not-allowed',
  commandArgsNotAllowed: 'command-args-not-allowed',
  urlNotAllowed: 'url-not-allowed',
  secretInvalid: 'secret-invalid',
} as const;

/**
 * A glob: `*` is any run of characters, `?` one; nothing else is special. Case-sensitive unless
 * told otherwise. `wildcardSkips` lists characters neither `*` nor `?` may stand for, and
 * `wildcardNeverLeads` those the text a wildcard stands for may not begin with.
 */
export function globMatch(glob: string, text: string, ignoreCase = false, wildcardSkips = '', wildcardNeverLeads = ''): boolean {
  const esc = (chars: string) => chars.replace(/[\]\\^-]/g, '\\$&');
  const any = wildcardSkips ? `[^${esc(wildcardSkips)}]` : '.';
  const lead = wildcardNeverLeads ? `(?![${esc(wildcardNeverLeads)}])` : '';
  // `*` standing for nothing is always allowed: the lead rule is about the text it stands for.
  const star = lead ? `(?:${lead}${any}+)?` : `${any}*`;
  const re = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/[*?]/g, (c) => (c === '*' ? star : `${lead}${any}`));
  return new RegExp(`^${re}$`, ignoreCase ? 'is' : 's').test(text);
}

// ---------------------------------------------------------------------------------------------
// Secret references (seed 003): `secret_ref:<secret>:<key>`.

export const SECRET_REF_PREFIX = 'secret_ref:';

/** A key of a Kubernetes Secret, as the API server accepts it. */
const SECRET_KEY = /^[-._a-zA-Z0-9]{1,253}$/;
/** A Secret's name: a DNS-1123 subdomain. */
const SECRET_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export interface SecretRef {
  secret: string;
  key: string;
}

/**
 * The secret reference a value holds, if any. A value is a reference when it is
 * `secret_ref:<secret>:<key>` as a whole or, where `schemeAllowed` (a header value), after an
 * auth scheme and one space (`Bearer secret_ref:…`). Returns undefined for a plain value and a
 * string saying what is wrong for a malformed reference — never echoing anything but the names.
 */
export function secretRefIn(value: string, schemeAllowed = false): (SecretRef & { scheme?: string }) | string | undefined {
  const m = schemeAllowed ? /^([A-Za-z][A-Za-z0-9-]*) (secret_ref:.*)$/s.exec(value) : null;
  const ref = m ? m[2]! : value;
  if (!ref.startsWith(SECRET_REF_PREFIX)) return undefined;
  const parts = ref.slice(SECRET_REF_PREFIX.length).split(':');
  const [secret, key] = parts;
  if (parts.length !== 2 || !secret || !key || secret.length > 253 || !SECRET_NAME.test(secret) || !SECRET_KEY.test(key) || key === '.' || key === '..') {
    return 'a secret reference is secret_ref:<secret>:<key> (a Secret name and one of its keys)';
  }
  return { secret, key, ...(m ? { scheme: m[1]! } : {}) };
}

/**
 * A legacy service-account token Secret's name, `<account>-token-<5 random characters>`: a token
 * of the API server, never something a message should hand to a server.
 */
const SERVICE_ACCOUNT_TOKEN = /-token-[a-z0-9]{5}$/;

/**
 * Whether a message may reference this Secret: the operator allowed it (names, or `prefix-*`
 * globs, `JOB_ALLOWED_SECRETS`), and it is neither one the deployment itself uses (`reserved`:
 * the Job's Kafka credentials, the envFile Secret, those the Job template mounts) nor a
 * service-account token — whatever a broad glob says.
 */
export function isSecretAllowed(secret: string, allowed: readonly string[], reserved: readonly string[] = []): boolean {
  if (reserved.includes(secret) || SERVICE_ACCOUNT_TOKEN.test(secret)) return false;
  return allowed.some((a) => globMatch(a, secret));
}

/** Where the Job mounts the referenced keys: `<dir>/<secret>/<key>`, one projected volume. */
export const SECRET_REFS_DIR = '/var/run/mcp-secret-refs';

/** The file a reference resolves from, inside the refs folder. */
export function secretRefPath(dir: string, ref: SecretRef): string {
  return posix.join(dir, ref.secret, ref.key);
}

// ---------------------------------------------------------------------------------------------
// Environment keys that change how a runtime loads code.

/**
 * What an environment key may look like: a portable name. Anything else is refused before the
 * code-loading list is consulted, since `NODE_OPTIONS=--require=/x` as a key becomes the entry
 * `NODE_OPTIONS=--require=/x=` of the child's environment, which sets NODE_OPTIONS.
 */
export const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A key, quoted and cut short, safe to put in a refusal whatever it holds. */
export function quotedKey(key: string): string {
  return JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}…` : key);
}

/**
 * Why an environment key is refused, or undefined: not a portable name, or a code-loading key
 * the operator did not allow (see refusedEnvKey). `where` prefixes the text (`env`, `envFile x`).
 */
export function envKeyRefusal(where: string, key: string, allowed: readonly string[] = []): string | undefined {
  if (!ENV_KEY.test(key)) return `${where} key ${quotedKey(key)} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)`;
  const hit = refusedEnvKey(key, allowed);
  return hit ? `${where} key ${quotedKey(key)} changes how a runtime loads code (${hit}) and is refused; ALLOWED_ENV_KEYS can allow it` : undefined;
}

/**
 * Refused by default, compared case-insensitively (`*` ends a prefix). Each one lets a value
 * run code before, or instead of, the command the allow-list admitted: preload options and
 * module paths of Node, Python, Perl, Ruby and Java, the dynamic loader's, the shell's start-up
 * files, npm/pip/uv configuration (registry, index, scripts, config files), git's ssh command
 * (npx may fetch a git dependency), and `PATH`, which picks the binary a bare command name runs.
 */
export const REFUSED_ENV_KEYS: readonly string[] = [
  'PATH',
  'NODE_OPTIONS',
  'NODE_PATH',
  'NODE_REPL_EXTERNAL_MODULE',
  'LD_*',
  'DYLD_*',
  'PYTHON*',
  'NPM_CONFIG_*',
  'NPX_*',
  'COREPACK_*',
  'UV_*',
  'PIP_*',
  'PERL5*',
  'PERLLIB',
  'RUBY*',
  'GEM_*',
  'BUNDLE_*',
  'JAVA_TOOL_OPTIONS',
  '_JAVA_OPTIONS',
  'JDK_JAVA_OPTIONS',
  'CLASSPATH',
  'BASH_ENV',
  'ENV',
  'SHELLOPTS',
  'BASHOPTS',
  'PS4',
  'GIT_*',
  'GCONV_PATH',
];

/**
 * The default-refused pattern an environment key matches, unless the operator allowed it
 * (`ALLOWED_ENV_KEYS`: keys or `PREFIX*` patterns, case-insensitive); undefined when it may be set.
 */
export function refusedEnvKey(key: string, allowed: readonly string[] = []): string | undefined {
  const hit = REFUSED_ENV_KEYS.find((p) => globMatch(p, key, true));
  if (hit === undefined) return undefined;
  return allowed.some((a) => globMatch(a, key, true)) ? undefined : hit;
}

// ---------------------------------------------------------------------------------------------
// Command patterns: what may follow the command.

/**
 * Parses `ALLOWED_COMMAND_PATTERNS`: patterns separated by `;`, each a list of words separated by
 * spaces. Empty parts are dropped.
 */
export function parseCommandPatterns(text: string): string[] {
  return text
    .split(';')
    .map((p) => p.trim().replace(/\s+/g, ' '))
    .filter(Boolean);
}

/**
 * Characters a wildcard in an argument never stands for: a package spec turns into another
 * source with them (`x@npm:evil` an npm alias, `x@github:o/r`, `x@https://…`, `git+https://…`).
 */
const ARG_WILDCARD_SKIPS = '@:/';

/**
 * Characters the text a wildcard stands for never begins with: npm reads a spec (or the part
 * after a name's `@`) that begins with `.` or `~` as a local path, resolved against the working
 * directory (`x@.`, `x@..`, `.`, `..`), and `~` begins a home path.
 */
const ARG_WILDCARD_NEVER_LEADS = '.~';

/**
 * Archive names: npm installs `x.tgz`, `x.tar`, `x.tar.gz` (and `name@x.tgz`) from the file, pip
 * and uv a wheel, a zip or an sdist from theirs. A wildcard word never admits one.
 */
const ARCHIVE_NAME = /\.(tgz|tar|tar\.gz|tar\.bz2|tar\.xz|tar\.zst|tbz2?|txz|zip|whl|egg)$/i;

/**
 * Whether a command line matches a pattern, word by word: the first word matches the command (or,
 * when the word has no `/`, the command's basename), each next word one argument as a glob (`*`
 * within the argument, never matching `@`, `:` or `/`, never standing for text that begins with
 * `.` or `~`, and a word with a wildcard never matching an archive name), and a last word `**`
 * any number of further arguments. So `npx -y @modelcontextprotocol/*` admits exactly
 * `npx -y @modelcontextprotocol/server-memory`, nothing after it and no alias, URL, local path
 * or archive spec; `uvx mcp-server-* **` admits any arguments after the package.
 */
export function commandMatches(command: string, args: readonly string[], pattern: string): boolean {
  const words = pattern.split(' ');
  const [first, ...rest] = words;
  if (first === undefined) return false;
  if (!globMatch(first, command) && !(!first.includes('/') && globMatch(first, posix.basename(command)))) return false;
  const tailAny = rest.at(-1) === '**';
  const fixed = tailAny ? rest.slice(0, -1) : rest;
  if (tailAny ? args.length < fixed.length : args.length !== fixed.length) return false;
  return fixed.every((w, i) => {
    const arg = args[i]!;
    if (/[*?]/.test(w) && ARCHIVE_NAME.test(arg)) return false;
    return globMatch(w, arg, false, ARG_WILDCARD_SKIPS, ARG_WILDCARD_NEVER_LEADS);
  });
}

// ---------------------------------------------------------------------------------------------
// Remote URLs: which addresses a message's `url` may reach.

/** The address policy both programs build from their settings. */
export interface RemotePolicy {
  /** `ALLOWED_REMOTE_HOSTS`: CIDRs, addresses and host names (`*.example.com`) allowed whatever they resolve to. */
  allow: readonly string[];
  /** `CLUSTER_SERVICE_CIDR`, `CLUSTER_POD_CIDR`. */
  serviceCidrs: readonly string[];
  podCidrs: readonly string[];
  /** The API server as this process knows it: `KUBERNETES_SERVICE_HOST` and the names it goes by. */
  apiServerHosts: readonly string[];
}

/** The API server's in-cluster names (the `kubernetes` Service of `default`). */
export const API_SERVER_NAMES = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'];

/** An address in canonical form: IPv4 dotted, IPv6 compressed lower-case, IPv4-mapped IPv6 as IPv4. */
export function canonicalAddress(addr: string): string | undefined {
  const bare = addr.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  const family = isIP(bare);
  if (family === 4) return new URL(`http://${bare}/`).hostname;
  if (family !== 6) return undefined;
  const v6 = new URL(`http://[${bare}]/`).hostname.slice(1, -1);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return v6;
}

/** A CIDR or a single address as a [network, prefix, family]; undefined if it is neither. */
export function parseCidr(text: string): [string, number, 'ipv4' | 'ipv6'] | undefined {
  const [net, bits] = text.trim().split('/');
  const addr = net === undefined ? undefined : canonicalAddress(net);
  if (!addr) return undefined;
  const family = isIP(addr) === 4 ? 'ipv4' : 'ipv6';
  const max = family === 'ipv4' ? 32 : 128;
  const prefix = bits === undefined ? max : Number(bits);
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (bits !== undefined && !/^\d+$/.test(bits))) return undefined;
  return [addr, prefix, family];
}

function blockList(cidrs: readonly string[]): BlockList {
  const b = new BlockList();
  for (const c of cidrs) {
    const p = parseCidr(c);
    if (p) b.addSubnet(p[0], p[1], p[2]);
  }
  return b;
}

/**
 * Ranges refused whatever the settings say, unless allowed: loopback, link-local, unspecified,
 * the metadata services outside link-local (AWS's IPv6 IMDS, Alibaba's), and NAT64's well-known
 * prefix, through which any IPv4 address — loopback, metadata — can be reached in IPv6 form.
 */
const FIXED_RANGES: [string, readonly string[]][] = [
  ['loopback', ['127.0.0.0/8', '::1/128']],
  ['link-local', ['169.254.0.0/16', 'fe80::/10']],
  ['unspecified', ['0.0.0.0/8', '::/128']],
  ['cloud-metadata', ['fd00:ec2::254/128', '100.100.100.200/32']],
  ['nat64', ['64:ff9b::/96']],
];

/**
 * The checks of one RemotePolicy, built once: `address(ip)` says why an address is refused (or
 * undefined), `host(name)` decides what can be decided from a name alone — a literal address, an
 * allowed name, `localhost`, the API server's names.
 */
export function remoteChecker(policy: RemotePolicy): { address: (ip: string) => string | undefined; host: (name: string) => string | undefined | 'allowed' } {
  const allowCidrs = blockList(policy.allow.filter((a) => parseCidr(a)));
  const allowNames = policy.allow.filter((a) => !parseCidr(a)).map((a) => a.toLowerCase());
  const ranges: [string, BlockList][] = [
    ...FIXED_RANGES.map(([why, cidrs]): [string, BlockList] => [why, blockList(cidrs)]),
    ['cluster-service-cidr', blockList(policy.serviceCidrs)],
    ['cluster-pod-cidr', blockList(policy.podCidrs)],
  ];
  const apiAddrs = new Set(policy.apiServerHosts.map(canonicalAddress).filter((a): a is string => a !== undefined));
  const apiNames = new Set([...API_SERVER_NAMES, ...policy.apiServerHosts.filter((h) => !isIP(h)).map((h) => h.toLowerCase())]);
  const address = (ip: string): string | undefined => {
    const a = canonicalAddress(ip);
    if (a === undefined) return 'not-an-address';
    const family = isIP(a) === 4 ? 'ipv4' : 'ipv6';
    if (allowCidrs.check(a, family)) return undefined;
    if (apiAddrs.has(a)) return 'api-server';
    return ranges.find(([, b]) => b.check(a, family))?.[0];
  };
  const host = (name: string): string | undefined | 'allowed' => {
    const h = name
      .replace(/^\[|\]$/g, '')
      .replace(/\.$/, '')
      .toLowerCase();
    if (canonicalAddress(h) !== undefined) return address(h) ?? 'allowed';
    if (allowNames.some((a) => globMatch(a, h, true))) return 'allowed';
    if (h === 'localhost' || h.endsWith('.localhost')) return 'loopback';
    if (apiNames.has(h)) return 'api-server';
    return undefined;
  };
  return { address, host };
}

/** Why a URL's host is refused before any DNS (a literal address, a known name), or undefined. */
export function urlRefusal(url: string, policy: RemotePolicy): string | undefined {
  let host: string;
  try {
    host = new URL(url).hostname;
  } catch {
    return 'not-a-url';
  }
  const r = remoteChecker(policy).host(host);
  return r === 'allowed' ? undefined : r;
}
