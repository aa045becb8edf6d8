import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { ControllerConfigSchema, controllerPolicy, deploymentSecrets } from '../../../src/controller/config.js';
import { buildJob } from '../../../src/controller/jobs/job-builder.js';
import { TerminalError } from '../../../src/shared/errors.js';
import { parseMessage, validationPolicy, type ValidationPolicy } from '../../../src/shared/contract/message.js';
import {
  canonicalAddress,
  commandMatches,
  envKeyRefusal,
  isSecretAllowed,
  parseCommandPatterns,
  refusedEnvKey,
  remoteChecker,
  secretRefIn,
  urlRefusal,
  type RemotePolicy,
} from '../../../src/shared/contract/policy.js';
import { parseConfig } from '../../../src/shared/settings.js';

const none: RemotePolicy = { allow: [], serviceCidrs: [], podCidrs: [], apiServerHosts: [] };

describe('secret references', () => {
  it('reads secret_ref:<secret>:<key> as a whole value, and after an auth scheme only where a header allows it', () => {
    assert.deepEqual(secretRefIn('secret_ref:mcp-ref-github:TOKEN'), { secret: 'mcp-ref-github', key: 'TOKEN' });
    assert.deepEqual(secretRefIn('Bearer secret_ref:mcp-ref-github:TOKEN', true), { secret: 'mcp-ref-github', key: 'TOKEN', scheme: 'Bearer' });
    assert.equal(secretRefIn('Bearer secret_ref:mcp-ref-github:TOKEN'), undefined);
    assert.equal(secretRefIn('plain value'), undefined);
    assert.equal(secretRefIn('see secret_ref:a:b'), undefined);
  });

  it('calls a malformed reference malformed, naming nothing but the form', () => {
    for (const bad of ['secret_ref:', 'secret_ref:a', 'secret_ref:a:b:c', 'secret_ref:Upper:K', 'secret_ref:a:..', 'secret_ref:a:k/x', 'secret_ref::K']) {
      assert.match(String(secretRefIn(bad)), /secret_ref:<secret>:<key>/, bad);
    }
  });

  it('allows Secrets by name or prefix glob, and none by default', () => {
    assert.equal(isSecretAllowed('mcp-ref-github', []), false);
    assert.equal(isSecretAllowed('mcp-ref-github', ['mcp-ref-github']), true);
    assert.equal(isSecretAllowed('mcp-ref-github', ['mcp-ref-*']), true);
    assert.equal(isSecretAllowed('kafka-admin', ['mcp-ref-*', 'other']), false);
  });

  it("never allows the deployment's own Secrets or a service-account token, whatever the glob says", () => {
    assert.equal(isSecretAllowed('mcp-job-kafka', ['mcp-*'], ['mcp-job-kafka', 'mcp-env']), false);
    assert.equal(isSecretAllowed('mcp-env', ['mcp-env'], ['mcp-job-kafka', 'mcp-env']), false);
    assert.equal(isSecretAllowed('mcp-controller-token-x7k2q', ['mcp-*']), false);
    assert.equal(isSecretAllowed('mcp-ref-github', ['mcp-ref-*'], ['mcp-job-kafka']), true);
    assert.equal(isSecretAllowed('mcp-ref-github-token', ['mcp-ref-*']), true);
  });

  it('names as reserved the Job Kafka Secret, the envFile Secret and every Secret the Job template reads', () => {
    const template = {
      spec: {
        template: {
          spec: {
            volumes: [
              { name: 'a', secret: { secretName: 'tpl-volume' } },
              { name: 'b', projected: { sources: [{ secret: { name: 'tpl-projected' } }, { configMap: { name: 'cm' } }] } },
            ],
            containers: [
              {
                name: 'job',
                envFrom: [{ secretRef: { name: 'tpl-envfrom' } }],
                env: [{ name: 'X', valueFrom: { secretKeyRef: { name: 'tpl-keyref', key: 'k' } } }],
              },
            ],
          },
        },
      },
    } satisfies k8s.V1Job;
    assert.deepEqual(deploymentSecrets({ JOB_KAFKA_SECRET_NAME: 'mcp-job-kafka', JOB_SECRET_NAME: 'mcp-env' }, template), [
      'mcp-env',
      'mcp-job-kafka',
      'tpl-envfrom',
      'tpl-keyref',
      'tpl-projected',
      'tpl-volume',
    ]);
    assert.deepEqual(deploymentSecrets({ JOB_KAFKA_SECRET_NAME: undefined, JOB_SECRET_NAME: undefined }), []);
  });
});

describe('environment keys', () => {
  it('refuses, in any case, each key that changes how a runtime loads code', () => {
    for (const key of [
      'NODE_OPTIONS',
      'node_options',
      'NODE_PATH',
      'LD_PRELOAD',
      'LD_LIBRARY_PATH',
      'DYLD_INSERT_LIBRARIES',
      'PYTHONPATH',
      'PYTHONSTARTUP',
      'NPM_CONFIG_REGISTRY',
      'npm_config_registry',
      'UV_INDEX_URL',
      'PIP_INDEX_URL',
      'PATH',
      'BASH_ENV',
      'ENV',
      'JAVA_TOOL_OPTIONS',
      '_JAVA_OPTIONS',
      'PERL5OPT',
      'RUBYOPT',
      'GIT_SSH_COMMAND',
    ]) {
      assert.ok(refusedEnvKey(key), key);
    }
  });

  it('lets other keys through, and the keys or patterns an operator allows', () => {
    for (const key of ['API_KEY', 'GITHUB_TOKEN', 'ALLOWED_DIRECTORIES', 'NODE_ENV', 'HOME_DIR', 'MYPATH']) assert.equal(refusedEnvKey(key), undefined, key);
    assert.equal(refusedEnvKey('NODE_OPTIONS', ['node_options']), undefined);
    assert.equal(refusedEnvKey('PIP_INDEX_URL', ['PIP_*']), undefined);
    assert.equal(refusedEnvKey('LD_PRELOAD', ['PIP_*']), 'LD_*');
  });

  it('refuses a key that is not an environment variable name, such as one carrying "=" or a NUL, whatever is allowed', () => {
    for (const key of ['NODE_OPTIONS=--require=/x', 'A\0B', '1ABC', 'A-B', 'A.B', '', 'A B', 'É']) {
      assert.match(String(envKeyRefusal('env', key, ['*'])), /is not an environment variable name/, JSON.stringify(key));
    }
    assert.match(String(envKeyRefusal('env', 'A\0B')), /key "A\\u0000B"/);
    assert.equal(envKeyRefusal('env', '_Api_Key1'), undefined);
  });
});

describe('command patterns', () => {
  const p = parseCommandPatterns(' npx -y @modelcontextprotocol/* ;uvx  mcp-server-* ** ; ;/opt/bin/server');
  const allowed = (cmd: string, ...args: string[]) => p.some((x) => commandMatches(cmd, args, x));

  it('parses ;-separated patterns and drops empty ones', () => {
    assert.deepEqual(p, ['npx -y @modelcontextprotocol/*', 'uvx mcp-server-* **', '/opt/bin/server']);
  });

  it('admits a command line that matches one pattern word by word', () => {
    assert.ok(allowed('npx', '-y', '@modelcontextprotocol/server-memory'));
    assert.ok(allowed('/usr/local/bin/npx', '-y', '@modelcontextprotocol/server-everything'));
    assert.ok(allowed('uvx', 'mcp-server-fetch'));
    assert.ok(allowed('uvx', 'mcp-server-git', '--repository', '/tmp/r'));
    assert.ok(allowed('/opt/bin/server'));
  });

  it('refuses other packages, code flags, extra arguments and another binary of the same name', () => {
    assert.ok(!allowed('npx', '-y', 'evil-package'));
    assert.ok(!allowed('npx', '-y', '@modelcontextprotocol/server-memory', '--node-options=--require=x'));
    assert.ok(!allowed('npx', '-y', '@other/x @modelcontextprotocol/y'));
    assert.ok(!allowed('node', '-e', 'process.exit(0)'));
    assert.ok(!allowed('uvx', '--from', 'evil', 'mcp-server-x'));
    assert.ok(!allowed('server'));
  });

  it('lets no wildcard stand for @, : or /, so an npm alias, a git or URL spec never matches', () => {
    for (const spec of [
      '@modelcontextprotocol/x@npm:evil',
      '@modelcontextprotocol/x@github:evil/repo',
      '@modelcontextprotocol/x@https://evil.example/x.tgz',
      '@modelcontextprotocol/x@git+https://evil.example/r.git',
      '@modelcontextprotocol/a/b',
      '@modelcontextprotocol/x@1.2.3',
    ]) {
      assert.ok(!allowed('npx', '-y', spec), spec);
    }
    assert.ok(!allowed('uvx', 'mcp-server-x@git+https://evil.example/r'));
    assert.ok(!allowed('uvx', 'mcp-server-x:evil'));
    assert.ok(!commandMatches('uvx', ['mcp-server-x@git+https://evil.example/r'], 'uvx mcp-server-?*'));
    assert.ok(!allowed('uvx', 'mcp-server-x @ git+https://evil.example/r.git'));
    assert.ok(commandMatches('npx', ['-y', '@modelcontextprotocol/x@1.2.3'], 'npx -y @modelcontextprotocol/*@*'));
    assert.ok(!commandMatches('npx', ['-y', '@modelcontextprotocol/x@npm:evil'], 'npx -y @modelcontextprotocol/*@*'));
  });

  it('lets no wildcard stand for a local path (text led by . or ~) or match an archive name, which npm and uv install from the working directory', () => {
    const versioned = 'npx -y @modelcontextprotocol/*@*';
    for (const spec of ['@modelcontextprotocol/x@.', '@modelcontextprotocol/x@..', '@modelcontextprotocol/x@~', '@modelcontextprotocol/x@evil.tgz']) {
      assert.ok(!commandMatches('npx', ['-y', spec], versioned), spec);
    }
    for (const spec of [
      '@modelcontextprotocol/.',
      '@modelcontextprotocol/..',
      '@modelcontextprotocol/~x',
      '@modelcontextprotocol/x.tgz',
      '@modelcontextprotocol/x.tar.gz',
    ]) {
      assert.ok(!allowed('npx', '-y', spec), spec);
    }
    for (const word of ['.', '..', '.hidden', '~', 'evil.tgz', 'pkg.tar', 'mcp_server-1.0-py3-none-any.whl', 'x.zip']) {
      assert.ok(!commandMatches('npx', ['-y', word], 'npx -y *'), word);
    }
    assert.ok(!allowed('uvx', 'mcp-server-x.whl'));
    assert.ok(!allowed('uvx', 'mcp-server-x.tar.gz', '--flag'));
    // What the wildcard stands for is judged, not the literal text around it.
    assert.ok(commandMatches('npx', ['-y', '@modelcontextprotocol/x@1.2.3'], versioned));
    assert.ok(commandMatches('node', ['/srv/a.js'], 'node /srv/a.js'));
    assert.ok(commandMatches('node', ['/srv/x.js'], 'node /srv/*.js'));
    assert.ok(commandMatches('node', ['/srv/server-.js'], 'node /srv/server-*.js'));
    assert.ok(!commandMatches('node', ['/srv/..js'], 'node /srv/*.js'));
  });
});

describe('remote addresses', () => {
  const check = remoteChecker({ ...none, serviceCidrs: ['10.96.0.0/12'], podCidrs: ['10.244.0.0/16', 'fd00:10:244::/56'], apiServerHosts: ['10.96.0.1'] });

  it('refuses loopback, link-local, unspecified, the cluster ranges and the API server, IPv4-mapped IPv6 included', () => {
    const cases: [string, string][] = [
      ['127.0.0.1', 'loopback'],
      ['127.9.9.9', 'loopback'],
      ['::1', 'loopback'],
      ['::ffff:127.0.0.1', 'loopback'],
      ['::ffff:7f00:1', 'loopback'],
      ['169.254.169.254', 'link-local'],
      ['::ffff:169.254.169.254', 'link-local'],
      ['fe80::1', 'link-local'],
      ['0.0.0.0', 'unspecified'],
      ['::', 'unspecified'],
      ['10.96.0.1', 'api-server'],
      ['10.100.3.4', 'cluster-service-cidr'],
      ['10.244.7.8', 'cluster-pod-cidr'],
      ['fd00:10:244::5', 'cluster-pod-cidr'],
      ['fd00:ec2::254', 'cloud-metadata'],
      ['100.100.100.200', 'cloud-metadata'],
      ['64:ff9b::a9fe:a9fe', 'nat64'],
      ['64:ff9b::127.0.0.1', 'nat64'],
      ['64:ff9b::5db8:d822', 'nat64'],
    ];
    for (const [ip, why] of cases) assert.equal(check.address(ip), why, ip);
  });

  it('lets public addresses and names through; refuses names it can decide without DNS', () => {
    assert.equal(check.address('93.184.216.34'), undefined);
    assert.equal(check.address('2606:2800:220:1::1'), undefined);
    assert.equal(check.host('mcp.example.com'), undefined);
    assert.equal(check.host('localhost'), 'loopback');
    assert.equal(check.host('a.localhost'), 'loopback');
    assert.equal(check.host('kubernetes.default.svc'), 'api-server');
    assert.equal(check.host('[::1]'), 'loopback');
    assert.equal(check.host('169.254.169.254'), 'link-local');
  });

  it('lets the allow-list open any of them, by CIDR, address or host name', () => {
    const open = remoteChecker({ ...none, allow: ['127.0.0.2', '10.0.0.0/8', '*.internal.example'], apiServerHosts: ['10.96.0.1'] });
    assert.equal(open.address('127.0.0.2'), undefined);
    assert.equal(open.address('127.0.0.1'), 'loopback');
    assert.equal(open.address('10.96.0.1'), undefined);
    assert.equal(open.host('mcp.internal.example'), 'allowed');
  });

  it('puts addresses in one canonical form', () => {
    assert.equal(canonicalAddress('[::FFFF:7F00:1]'), '127.0.0.1');
    assert.equal(canonicalAddress('fe80::1%eth0'), 'fe80::1');
    assert.equal(canonicalAddress('example.com'), undefined);
  });

  it('decides a URL from its host before any DNS', () => {
    assert.equal(urlRefusal('http://169.254.169.254/latest/meta-data', none), 'link-local');
    assert.equal(urlRefusal('http://[::ffff:169.254.169.254]/', none), 'link-local');
    assert.equal(urlRefusal('http://localhost:8080/mcp', none), 'loopback');
    assert.equal(urlRefusal('https://kubernetes.default.svc/api', none), 'api-server');
    assert.equal(urlRefusal('https://mcp.example.com/mcp', none), undefined);
  });
});

describe('the message policy, applied by parseMessage', () => {
  const base: ValidationPolicy = { allowedCommands: ['node', 'npx', 'uvx'], secretsDir: '/s', maxMessageBytes: 65536, allowedSecrets: ['mcp-ref-*'] };
  const msg = (servers: unknown) => Buffer.from(JSON.stringify({ jobID: 'j', jobType: 'server-init', payload: { mcpServers: servers } }));
  const refusal = (servers: unknown, policy: ValidationPolicy = base): [string, string] => {
    try {
      parseMessage(msg(servers), policy);
    } catch (err) {
      assert.ok(err instanceof TerminalError);
      return [err.reason, err.message];
    }
    assert.fail('expected a refusal');
  };

  it('dead-letters each refused case with its reason, naming the key or Secret and never a value', () => {
    const cases: [unknown, string, RegExp][] = [
      [
        { a: { command: 'node', env: { TOKEN: 'secret_ref:kafka-admin:password' } } },
        'secret-not-allowed',
        /env\.TOKEN: Secret "kafka-admin" is not one the operator allowed/,
      ],
      [
        { a: { type: 'http', url: 'https://m.example/mcp', headers: { Authorization: 'Bearer secret_ref:other:T' } } },
        'secret-not-allowed',
        /headers\.Authorization/,
      ],
      [
        { a: { type: 'url', endpoint: 'https://m.example/mcp', authentication: { type: 'bearer', token: 'secret_ref:instance_123:AUTH' } } },
        'invalid-payload',
        /secret_ref:<secret>:<key>/,
      ],
      [
        { a: { type: 'url', endpoint: 'https://m.example/mcp', authentication: { type: 'bearer', token: 'secret_ref:other:AUTH' } } },
        'secret-not-allowed',
        /Secret "other"/,
      ],
      [{ a: { command: 'node', env: { NODE_OPTIONS: '--import=data:text/javascript,evil' } } }, 'env-key-not-allowed', /env key "NODE_OPTIONS"/],
      [{ a: { command: 'node', env: { ld_preload: '/tmp/x.so' } } }, 'env-key-not-allowed', /"ld_preload"/],
      [
        { a: { command: 'node', env: { 'NODE_OPTIONS=--require=/x': '' } } },
        'env-key-not-allowed',
        /env key "NODE_OPTIONS=--require=\/x" is not an environment variable name/,
      ],
      [{ a: { type: 'http', url: 'http://169.254.169.254/latest' } }, 'url-not-allowed', /url host "169.254.169.254" is refused \(link-local\)/],
      [{ a: { url: 'http://127.0.0.1:9/mcp' } }, 'url-not-allowed', /loopback/],
      [{ a: { type: 'sse', url: 'http://[::1]:9/sse' } }, 'url-not-allowed', /loopback/],
    ];
    for (const [servers, reason, text] of cases) {
      const [r, m] = refusal(servers);
      assert.equal(r, reason, JSON.stringify(servers));
      assert.match(m, text);
      assert.doesNotMatch(m, /evil|x\.so/);
    }
    const patterns = { ...base, commandPatterns: ['npx -y @modelcontextprotocol/*'] };
    assert.equal(refusal({ a: { command: 'npx', args: ['-y', 'evil'] } }, patterns)[0], 'command-args-not-allowed');
    assert.equal(refusal({ a: { command: 'node', args: ['-e', '1'] } }, patterns)[0], 'command-args-not-allowed');
  });

  it('refuses a cwd while command patterns are set, since package specs resolve against it, and keeps it without patterns', () => {
    const patterns = { ...base, commandPatterns: ['npx -y @modelcontextprotocol/*'] };
    const server = { command: 'npx', args: ['-y', '@modelcontextprotocol/server-memory'] };
    const [reason, text] = refusal({ a: { ...server, cwd: '/tmp/evil' } }, patterns);
    assert.equal(reason, 'command-args-not-allowed');
    assert.match(text, /cwd is not accepted while ALLOWED_COMMAND_PATTERNS is set/);
    assert.doesNotThrow(() => parseMessage(msg({ a: server }), patterns));
    assert.deepEqual(parseMessage(msg({ a: { ...server, cwd: '/srv' } }), base).config.mcpServers.a, { ...server, cwd: '/srv' });
  });

  it('accepts the allowed cases and lists every referenced Secret key once, sorted', () => {
    const m = parseMessage(
      msg({
        a: {
          command: 'npx',
          args: ['-y', '@modelcontextprotocol/server-memory'],
          env: { B: 'secret_ref:mcp-ref-b:KEY', A: 'secret_ref:mcp-ref-a:K2', PLAIN: 'v' },
        },
        b: { type: 'http', url: 'https://m.example/mcp', headers: { Authorization: 'Bearer secret_ref:mcp-ref-a:K1', X: 'secret_ref:mcp-ref-b:KEY' } },
        c: { type: 'url', endpoint: 'https://n.example/mcp', authentication: { type: 'bearer', token: 'secret_ref:mcp-ref-a:K1' } },
        d: { url: 'http://127.0.0.2:9/mcp' },
        e: { command: 'node', env: { NODE_OPTIONS: '--max-old-space-size=64' } },
      }),
      {
        ...base,
        commandPatterns: ['npx -y @modelcontextprotocol/*', 'node'],
        allowedEnvKeys: ['NODE_OPTIONS'],
        remote: { ...none, allow: ['127.0.0.2'] },
      },
    );
    assert.deepEqual(m.secretRefs, [
      { secret: 'mcp-ref-a', key: 'K1' },
      { secret: 'mcp-ref-a', key: 'K2' },
      { secret: 'mcp-ref-b', key: 'KEY' },
    ]);
    assert.deepEqual(m.config.mcpServers.c, {
      type: 'http',
      url: 'https://n.example/mcp',
      sseFallback: true,
      headers: { Authorization: 'Bearer secret_ref:mcp-ref-a:K1' },
    });
  });

  it('derives the policy from the settings, refusing every reference by default', () => {
    const cfg = parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 't' });
    const p = validationPolicy(cfg, ['10.96.0.1']);
    assert.deepEqual(p.allowedSecrets, []);
    assert.deepEqual(p.commandPatterns, []);
    assert.deepEqual(p.remote, { allow: [], serviceCidrs: [], podCidrs: [], apiServerHosts: ['10.96.0.1'] });
    assert.equal(refusal({ a: { command: 'node', env: { T: 'secret_ref:mcp-ref-a:K' } } }, p)[0], 'secret-not-allowed');
    const set = parseConfig(ControllerConfigSchema, {
      KAFKA_BROKERS: 'k:9092',
      KAFKA_TOPIC: 't',
      ALLOWED_COMMAND_PATTERNS: 'npx -y @modelcontextprotocol/*; uvx mcp-server-* **',
      CLUSTER_SERVICE_CIDR: '10.96.0.0/12,fd00::/108',
    });
    assert.deepEqual(set.ALLOWED_COMMAND_PATTERNS, ['npx -y @modelcontextprotocol/*', 'uvx mcp-server-* **']);
    assert.throws(
      () => parseConfig(ControllerConfigSchema, { KAFKA_BROKERS: 'k:9092', KAFKA_TOPIC: 't', CLUSTER_POD_CIDR: '10.0.0.0/33' }),
      /CLUSTER_POD_CIDR/,
    );
  });

  it("dead-letters a reference to the Job's own Kafka or envFile Secret even when the glob covers it", () => {
    const cfg = parseConfig(ControllerConfigSchema, {
      KAFKA_BROKERS: 'k:9092',
      KAFKA_TOPIC: 't',
      JOB_ALLOWED_SECRETS: 'mcp-*',
      JOB_KAFKA_SECRET_NAME: 'mcp-job-kafka',
      JOB_SECRET_NAME: 'mcp-env',
    });
    const p = controllerPolicy(cfg, undefined, []);
    for (const secret of ['mcp-job-kafka', 'mcp-env', 'mcp-default-token-ab12c']) {
      const [reason, text] = refusal({ a: { command: 'node', env: { T: `secret_ref:${secret}:password` } } }, p);
      assert.equal(reason, 'secret-not-allowed', secret);
      assert.match(text, /the deployment itself uses/);
    }
    assert.deepEqual(parseMessage(msg({ a: { command: 'node', env: { T: 'secret_ref:mcp-ref-a:K' } } }), p).secretRefs, [{ secret: 'mcp-ref-a', key: 'K' }]);
  });
});

describe('the Job of a message with secret references', () => {
  const cfg = parseConfig(ControllerConfigSchema, {
    KAFKA_BROKERS: 'k:9092',
    KAFKA_TOPIC: 't',
    JOB_ALLOWED_SECRETS: 'mcp-ref-*',
    ALLOWED_COMMAND_PATTERNS: 'npx -y @modelcontextprotocol/*',
    ALLOWED_REMOTE_HOSTS: '127.0.0.2',
  });
  const value = Buffer.from(
    JSON.stringify({
      jobID: 'j',
      jobType: 'server-init',
      payload: {
        mcpServers: { a: { command: 'npx', args: ['-y', '@modelcontextprotocol/x'], env: { T: 'secret_ref:mcp-ref-a:TOKEN', U: 'secret_ref:mcp-ref-b:URL' } } },
      },
    }),
  );
  const job = buildJob({ topic: 't', partition: 0, offset: '1' }, parseMessage(value, validationPolicy(cfg)), cfg);
  const pod = job.spec!.template.spec!;

  it('mounts exactly the referenced keys, read-only, from a volume that tolerates a missing key', () => {
    assert.deepEqual(
      pod.volumes!.find((v) => v.name === 'mcp-secret-refs'),
      {
        name: 'mcp-secret-refs',
        projected: {
          defaultMode: 0o440,
          sources: [
            { secret: { name: 'mcp-ref-a', optional: true, items: [{ key: 'TOKEN', path: 'mcp-ref-a/TOKEN' }] } },
            { secret: { name: 'mcp-ref-b', optional: true, items: [{ key: 'URL', path: 'mcp-ref-b/URL' }] } },
          ],
        } satisfies k8s.V1ProjectedVolumeSource,
      },
    );
    assert.deepEqual(
      pod.containers[0]!.volumeMounts!.find((m) => m.name === 'mcp-secret-refs'),
      { name: 'mcp-secret-refs', mountPath: '/var/run/mcp-secret-refs', readOnly: true },
    );
  });

  it('passes the policy settings on to the job, which applies them again', () => {
    const env = Object.fromEntries(pod.containers[0]!.env!.map((e) => [e.name, e.value]));
    assert.equal(env.JOB_ALLOWED_SECRETS, 'mcp-ref-*');
    assert.equal(env.ALLOWED_COMMAND_PATTERNS, 'npx -y @modelcontextprotocol/*');
    assert.equal(env.ALLOWED_REMOTE_HOSTS, '127.0.0.2');
    assert.equal(env.SECRET_REFS_DIR, '/var/run/mcp-secret-refs');
    assert.equal(env.ALLOWED_ENV_KEYS, undefined);
  });
});
