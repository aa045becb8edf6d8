import { z } from 'zod';
import { McpProtocolSchema } from '../settings.js';
import { secretRefIn } from './rules.js';
import { timeoutMs, type DockerServer, type RemoteServer, type ServerConfig, type StdioServer } from './servers.js';

/**
 * The MCP Registry's `server.json` (schema `server.schema.json`, camelCase since 2025-09-16) as a
 * server entry: `{ "server": <server.json>, "inputs": { <input name>: <value> } }`. One package or
 * remote is chosen and mapped onto the internal shapes, so the allow-lists and command patterns
 * see the mapped command. Arguments are mapped one value per argv element, never through a shell
 * (the schema warns clients against one). Every refusal starts with a stable name.
 */

/** An input's user-visible name: what `inputs` keys it by. */
const Input = z.looseObject({
  description: z.string().optional(),
  isRequired: z.boolean().optional(),
  isSecret: z.boolean().optional(),
  format: z.string().optional(),
  value: z.string().optional(),
  default: z.string().optional(),
  choices: z.array(z.string()).optional(),
  get variables() {
    return z.record(z.string(), Input).optional();
  },
});
type Input = z.infer<typeof Input>;
const KeyValueInput = Input.extend({ name: z.string().min(1) });
const Argument = Input.extend({
  type: z.enum(['positional', 'named']),
  name: z.string().optional(),
  valueHint: z.string().optional(),
  isRepeated: z.boolean().optional(),
});
type Argument = z.infer<typeof Argument>;

const Transport = z.looseObject({
  type: z.string(),
  url: z.string().optional(),
  headers: z.array(KeyValueInput).optional(),
});

const Package = z.looseObject({
  registryType: z.string(),
  identifier: z.string().min(1),
  version: z.string().optional(),
  runtimeHint: z.string().optional(),
  transport: Transport.optional(),
  runtimeArguments: z.array(Argument).optional(),
  packageArguments: z.array(Argument).optional(),
  environmentVariables: z.array(KeyValueInput).optional(),
});
type Package = z.infer<typeof Package>;

const Remote = z.looseObject({
  type: z.string(),
  url: z.string().min(1),
  headers: z.array(KeyValueInput).optional(),
  variables: z.record(z.string(), Input).optional(),
});
type Remote = z.infer<typeof Remote>;

export const ServerJsonSchema = z.looseObject({
  $schema: z.string().optional(),
  name: z.string().min(1),
  version: z.string().optional(),
  packages: z.array(Package).optional(),
  remotes: z.array(Remote).optional(),
});

const InputValue = z.union([z.string(), z.array(z.string())]);

export const RegistryEntrySchema = z.strictObject({
  type: z.literal('registry').optional(),
  server: ServerJsonSchema,
  /** Values of the server.json's inputs, by name: env var, header, named argument, positional `valueHint`, or `{variable}`. */
  inputs: z.record(z.string(), InputValue).optional(),
  /** Which package or remote to run, by index; default: the first package of a supported type, else the first remote. */
  package: z.number().int().min(0).optional(),
  remote: z.number().int().min(0).optional(),
  timeout: timeoutMs.optional(),
  protocol: McpProtocolSchema.optional(),
});
export type RegistryEntry = z.infer<typeof RegistryEntrySchema>;

/** A refusal: `<name>: <what is wrong>`, the name stable for alerts and docs. */
export class RegistryRefusal extends Error {
  override readonly name = 'RegistryRefusal';
  constructor(
    readonly reason: RegistryReason,
    detail: string,
  ) {
    super(`${reason}: ${detail}`);
  }
}
export type RegistryReason =
  | 'registry-type-unsupported'
  | 'registry-version-unpinned'
  | 'registry-input-missing'
  | 'registry-input-not-secret-ref'
  | 'registry-input-not-a-choice'
  | 'registry-input-invalid'
  | 'registry-transport-unsupported'
  | 'registry-no-package';

const RUNNERS: Record<string, 'npx' | 'uvx' | 'oci'> = { npm: 'npx', pypi: 'uvx', oci: 'oci' };

/**
 * An exact version: no range (`^`, `~`, `>`, `*`, `x`, `||`, spaces), no tag such as `latest`.
 * npm's semver and PyPI's PEP 440 (`1.0.6`, `2025.1.1`, `0.1.0a1`, `1!2.0`) both fit.
 */
const EXACT_VERSION = /^(\d+!)?\d+(\.\d+)*([-.+]?[0-9A-Za-z]+(\.[0-9A-Za-z]+)*)*$/;
function isExactVersion(v: string | undefined): v is string {
  return v !== undefined && EXACT_VERSION.test(v) && !/(^|\.)(x|X)(\.|$)/.test(v);
}

/** Resolves inputs; collects nothing secret itself (secret values stay `secret_ref:` strings for checkServer and the job). */
class Inputs {
  constructor(private readonly given: Record<string, string | string[]>) {}

  /** One input's values ([] when optional and absent), after `{variable}` substitution and its checks. */
  values(where: string, key: string | undefined, input: Input, repeatable = false): string[] {
    const given = key !== undefined ? this.given[key] : undefined;
    let values: string[];
    if (input.value !== undefined) values = [this.substitute(where, input.value, input.variables ?? {})];
    else if (given !== undefined) {
      if (Array.isArray(given) && !repeatable) throw new RegistryRefusal('registry-input-invalid', `${where} takes one value, not a list`);
      values = Array.isArray(given) ? given : [given];
      if (input.isSecret) {
        for (const v of values) {
          if (typeof secretRefIn(v) !== 'object') {
            throw new RegistryRefusal('registry-input-not-secret-ref', `${where} is secret: give it as secret_ref:<secret>:<key>`);
          }
        }
      }
    } else if (input.default !== undefined && !input.isSecret) values = [input.default];
    else if (input.isRequired)
      throw new RegistryRefusal('registry-input-missing', `${where} is required: give it in "inputs"${key ? ` as ${JSON.stringify(key)}` : ''}`);
    else values = [];
    for (const v of values) this.check(where, input, v, given !== undefined);
    return values;
  }

  private check(where: string, input: Input, v: string, given: boolean): void {
    if (given && input.choices?.length && !input.choices.includes(v)) {
      throw new RegistryRefusal('registry-input-not-a-choice', `${where} must be one of ${input.choices.join(', ')}`);
    }
    if (input.format === 'number' && given && !/^-?\d+(\.\d+)?$/.test(v)) throw new RegistryRefusal('registry-input-invalid', `${where} is a number`);
    if (input.format === 'boolean' && given && v !== 'true' && v !== 'false') throw new RegistryRefusal('registry-input-invalid', `${where} is true or false`);
    if (v.includes('\0')) throw new RegistryRefusal('registry-input-invalid', `${where} must not contain a NUL byte`);
  }

  /** `{name}` placeholders filled from inputs or their defaults; a secret may only fill a whole value or follow an auth scheme. */
  substitute(where: string, template: string, variables: Record<string, Input>, secretsAllowed = true): string {
    return template.replace(/\{([A-Za-z0-9_.-]+)\}/g, (whole, name: string) => {
      const variable = variables[name];
      if (!variable) return whole;
      const [v] = this.values(`${where} variable ${JSON.stringify(name)}`, name, variable);
      if (v === undefined) throw new RegistryRefusal('registry-input-missing', `${where} variable ${JSON.stringify(name)} has no value: give it in "inputs"`);
      // A secret_ref is resolved only as a whole value, or after an auth scheme in a header.
      if (
        variable.isSecret &&
        (!secretsAllowed || (template !== whole && !new RegExp(`^[A-Za-z][A-Za-z0-9-]* \\{${name.replace(/\./g, '\\.')}\\}$`).test(template)))
      ) {
        throw new RegistryRefusal(
          'registry-input-not-secret-ref',
          `${where}: a secret variable must be the whole value (or follow an auth scheme such as "Bearer "), and never part of a URL`,
        );
      }
      return v;
    });
  }

  /** Arguments as argv elements: positional → value, named → name then value (or the name alone for a flag that is set). */
  argv(where: string, args: Argument[] | undefined): string[] {
    const out: string[] = [];
    for (const [i, a] of (args ?? []).entries()) {
      const key = a.type === 'named' ? a.name : (a.valueHint ?? a.name);
      const label = `${where}[${i}] ${a.type} ${JSON.stringify(key ?? i)}`;
      if (a.isSecret)
        throw new RegistryRefusal(
          'registry-input-not-secret-ref',
          `${label} is secret, and an argument cannot hold a secret_ref (processes' arguments are visible to others)`,
        );
      const values = this.values(label, key, a, a.isRepeated);
      for (const v of values) {
        if (a.type === 'named') {
          if (!a.name) throw new RegistryRefusal('registry-input-invalid', `${label} has no name`);
          out.push(a.name, v);
        } else out.push(v);
      }
    }
    return out;
  }

  /** Key-value inputs (env vars, headers) as a map; an absent optional one is left out. */
  map(where: string, items: z.infer<typeof KeyValueInput>[] | undefined): Record<string, string> | undefined {
    if (!items?.length) return undefined;
    const out: Record<string, string> = {};
    for (const it of items) {
      const [v] = this.values(`${where} ${JSON.stringify(it.name)}`, it.name, it);
      if (v !== undefined) out[it.name] = v;
    }
    return Object.keys(out).length ? out : undefined;
  }
}

/** The package or remote an entry runs: the one it names, else the first package of a supported type, else the first remote. */
function choose(e: RegistryEntry): { pkg: Package } | { remote: Remote } {
  const packages = e.server.packages ?? [];
  const remotes = e.server.remotes ?? [];
  if (e.package !== undefined && e.remote !== undefined) throw new RegistryRefusal('registry-no-package', 'name "package" or "remote", not both');
  if (e.package !== undefined) {
    const pkg = packages[e.package];
    if (!pkg) throw new RegistryRefusal('registry-no-package', `server.json has ${packages.length} package(s); there is no package ${e.package}`);
    return { pkg };
  }
  if (e.remote !== undefined) {
    const remote = remotes[e.remote];
    if (!remote) throw new RegistryRefusal('registry-no-package', `server.json has ${remotes.length} remote(s); there is no remote ${e.remote}`);
    return { remote };
  }
  const pkg = packages.find((p) => RUNNERS[p.registryType] !== undefined);
  if (pkg) return { pkg };
  if (remotes[0]) return { remote: remotes[0] };
  if (packages.length) {
    throw new RegistryRefusal(
      'registry-type-unsupported',
      `registry type ${[...new Set(packages.map((p) => JSON.stringify(p.registryType)))].join(', ')} cannot be run; supported: npm, pypi, oci, and remotes`,
    );
  }
  throw new RegistryRefusal('registry-no-package', 'server.json has neither packages nor remotes');
}

function remoteType(where: string, type: string): 'http' | 'sse' {
  if (type === 'streamable-http') return 'http';
  if (type === 'sse') return 'sse';
  throw new RegistryRefusal('registry-transport-unsupported', `${where} transport ${JSON.stringify(type)}; a remote is streamable-http or sse`);
}

function fromRemote(remote: Remote, inputs: Inputs): RemoteServer {
  const url = inputs.substitute('remote url', remote.url, remote.variables ?? {}, false);
  const headers = inputs.map('remote header', remote.headers);
  return { type: remoteType('remote', remote.type), url, ...(headers ? { headers } : {}) };
}

/** An OCI image pinned to a tag other than `latest` or to a digest. */
function ociImage(pkg: Package): string {
  const id = pkg.identifier;
  const lastPart = id.slice(id.lastIndexOf('/') + 1);
  const hasTag = id.includes('@sha256:') || lastPart.includes(':');
  const image = hasTag ? id : pkg.version ? `${id}:${pkg.version}` : id;
  const tag = image.includes('@') ? 'digest' : image.slice(image.lastIndexOf(':') + 1);
  if (!image.includes('@') && (!image.slice(image.lastIndexOf('/') + 1).includes(':') || tag === 'latest')) {
    throw new RegistryRefusal(
      'registry-version-unpinned',
      `oci package ${JSON.stringify(id)} names no tag or digest (or "latest"); a registry entry runs a pinned image`,
    );
  }
  return image;
}

/** An OCI package runs as the Job's container-server sidecar, reached over HTTP on its port. */
function fromOci(pkg: Package, inputs: Inputs): DockerServer {
  const image = ociImage(pkg);
  const t = pkg.transport;
  if (!t || (t.type !== 'streamable-http' && t.type !== 'sse') || !t.url) {
    throw new RegistryRefusal(
      'registry-transport-unsupported',
      `oci package ${JSON.stringify(pkg.identifier)} speaks ${JSON.stringify(t?.type ?? 'stdio')}; a container server runs as a sidecar and must serve streamable-http on a port (transport.url)`,
    );
  }
  if (t.type === 'sse')
    throw new RegistryRefusal(
      'registry-transport-unsupported',
      `oci package ${JSON.stringify(pkg.identifier)} serves sse; a sidecar is reached over streamable-http`,
    );
  if (pkg.runtimeArguments?.length) {
    throw new RegistryRefusal(
      'registry-transport-unsupported',
      `oci package ${JSON.stringify(pkg.identifier)} has runtimeArguments (docker run flags); a sidecar takes none`,
    );
  }
  let url: URL;
  try {
    url = new URL(inputs.substitute('transport url', t.url, {}));
  } catch {
    throw new RegistryRefusal('registry-transport-unsupported', `oci package transport.url ${JSON.stringify(t.url)} is not a URL`);
  }
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  const args = inputs.argv('packageArguments', pkg.packageArguments);
  const environment = inputs.map('environmentVariables', pkg.environmentVariables);
  return {
    type: 'docker',
    image,
    port,
    path: url.pathname || '/mcp',
    ...(environment ? { environment } : {}),
    ...(args.length ? { args } : {}),
  };
}

function fromPackage(pkg: Package, inputs: Inputs): StdioServer | DockerServer {
  const runner = RUNNERS[pkg.registryType];
  if (!runner) {
    throw new RegistryRefusal(
      'registry-type-unsupported',
      `registry type ${JSON.stringify(pkg.registryType)} cannot be run; supported: npm, pypi, oci, and remotes`,
    );
  }
  if (runner === 'oci') return fromOci(pkg, inputs);
  if (!isExactVersion(pkg.version)) {
    throw new RegistryRefusal(
      'registry-version-unpinned',
      `${pkg.registryType} package ${JSON.stringify(pkg.identifier)} has version ${JSON.stringify(pkg.version ?? null)}; a registry entry runs an exact version`,
    );
  }
  const type = pkg.transport?.type ?? 'stdio';
  if (type !== 'stdio') {
    throw new RegistryRefusal(
      'registry-transport-unsupported',
      `${pkg.registryType} package ${JSON.stringify(pkg.identifier)} speaks ${JSON.stringify(type)}; a package runs over stdio`,
    );
  }
  // npx's own `-y` (and `--yes`) may be listed as a runtime argument; it is always given once.
  const runtime = inputs.argv('runtimeArguments', pkg.runtimeArguments).filter((a) => runner !== 'npx' || (a !== '-y' && a !== '--yes'));
  const spec = runner === 'npx' ? `${pkg.identifier}@${pkg.version}` : `${pkg.identifier}==${pkg.version}`;
  const args = [...(runner === 'npx' ? ['-y'] : []), ...runtime, spec, ...inputs.argv('packageArguments', pkg.packageArguments)];
  const env = inputs.map('environmentVariables', pkg.environmentVariables);
  return { command: runner, args, ...(env ? { env } : {}) };
}

/** Maps a registry entry onto the internal shape, or throws a RegistryRefusal. */
export function registryToInternal(e: RegistryEntry): ServerConfig {
  const inputs = new Inputs(e.inputs ?? {});
  const chosen = choose(e);
  const out: ServerConfig = 'pkg' in chosen ? fromPackage(chosen.pkg, inputs) : fromRemote(chosen.remote, inputs);
  return { ...out, ...(e.timeout ? { timeoutMs: e.timeout } : {}), ...(e.protocol ? { protocol: e.protocol } : {}) };
}
