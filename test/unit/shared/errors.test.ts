import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CLIENT_INFO } from '../../../src/job/mcp/result.js';
import { SERVE_INFO } from '../../../src/serve/tools.js';
import { VERSION } from '../../../src/shared/version.js';
import { repoRoot } from '../../testbed/cache.js';
import {
  AbortedError,
  causeChain,
  apiStatus,
  classifyProduceError,
  FatalError,
  isBug,
  isConflict,
  isNotFound,
  isRetriable,
  isUndecodable,
  kafkaErrorType,
  RetriableError,
  TerminalError,
} from '../../../src/shared/errors.js';
import { ExitCode, exitCodeFor } from '../../../src/shared/contract/exit-codes.js';
import { classifyApiError, isQuotaExceeded } from '../../../src/shared/errors.js';
import { backoffMs } from '../../../src/shared/retry.js';

const apiError = (code: number, message: string) =>
  Object.assign(new Error(`HTTP-Code: ${code}`), { code, body: JSON.stringify({ kind: 'Status', message, code }) });

describe('classifyApiError', () => {
  it('treats a Job the API server judged invalid as terminal', () => {
    const e = classifyApiError(apiError(422, 'Job.batch "x" is invalid: spec.template.spec.containers[0].image: Required value'), 'create Job x');
    assert.ok(e instanceof TerminalError);
    assert.equal(e.reason, 'invalid-job');
    assert.match(e.message, /containers\[0\]\.image: Required value/);
  });

  it('retries quota, missing namespaces, throttling, server errors, timeouts and network failures', () => {
    const quota = apiError(
      403,
      'jobs.batch "x" is forbidden: exceeded quota: jobs, requested: count/jobs.batch=1, used: count/jobs.batch=5, limited: count/jobs.batch=5',
    );
    assert.ok(isQuotaExceeded(quota));
    for (const err of [
      quota,
      apiError(504, 'the server was unable to return a response in the time allotted'),
      apiError(500, 'Internal error occurred: etcdserver: leader changed'),
      apiError(404, 'namespaces "x" not found'),
      apiError(429, 'slow down'),
      apiError(500, 'etcd'),
      apiError(503, 'unavailable'),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' }),
    ]) {
      const e = classifyApiError(err, 'create Job x');
      assert.ok(e instanceof RetriableError, String(err));
    }
    assert.match(classifyApiError(quota, 'create Job x').message, /quota exceeded/);
  });

  it("dead-letters a Job a validating admission webhook denied, with the API server's message (job-rejected)", () => {
    const e = classifyApiError(
      apiError(403, 'admission webhook "validation.gatekeeper.sh" denied the request: [no-privileged] privileged containers are not allowed'),
      'create Job x',
    );
    assert.ok(e instanceof TerminalError);
    assert.equal(e.reason, 'job-rejected');
    assert.match(e.message, /validation\.gatekeeper\.sh" denied the request: \[no-privileged\]/);
  });

  it('dead-letters a Job any webhook denied, in every wording and code the API server gives a denial (job-rejected)', () => {
    for (const [code, msg] of [
      [403, 'admission webhook "deny.example.com" denied the request without explanation'],
      [400, 'admission webhook "jobs.policy.example" denied the request: team label missing'],
    ] as const) {
      const e = classifyApiError(apiError(code, msg), 'create Job x');
      assert.ok(e instanceof TerminalError && e.reason === 'job-rejected', `${code} ${msg}: ${String(e)}`);
    }
  });

  it('retries a denial a webhook answers with 429 or 5xx: the webhook is overloaded or broken, not the message', () => {
    for (const code of [429, 500, 503]) {
      const e = classifyApiError(apiError(code, 'admission webhook "m.example" denied the request: policy engine unavailable'), 'create Job x');
      assert.ok(e instanceof RetriableError, `${code}: ${String(e)}`);
    }
  });

  it('dead-letters a Job a ValidatingAdmissionPolicy denied with its default reason (422 Invalid) as job-rejected, not invalid-job', () => {
    const e = classifyApiError(
      apiError(422, "jobs.batch \"x\" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: no such jobs"),
      'create Job x',
    );
    assert.ok(e instanceof TerminalError);
    assert.equal(e.reason, 'job-rejected');
  });

  it('dead-letters a Job a ValidatingAdmissionPolicy denied (job-rejected)', () => {
    const e = classifyApiError(
      apiError(
        403,
        "jobs.batch \"x\" is forbidden: ValidatingAdmissionPolicy 'deny-labelled' with binding 'deny-labelled-binding' denied request: no such jobs",
      ),
      'create Job x',
    );
    assert.ok(e instanceof TerminalError);
    assert.equal(e.reason, 'job-rejected');
  });

  it('dead-letters a Job too large to store: 413, or etcd\'s "request is too large" (job-rejected)', () => {
    for (const err of [apiError(413, 'Request entity too large: limit is 3145728'), apiError(500, 'etcdserver: request is too large')]) {
      const e = classifyApiError(err, 'create Job x');
      assert.ok(e instanceof TerminalError, statusMessageOf(err));
      assert.equal(e.reason, 'job-rejected');
    }
  });

  it("fails loudly (FatalError) on an RBAC denial: the controller's own Role is wrong, no message fixes it", () => {
    const e = classifyApiError(
      apiError(
        403,
        'jobs.batch is forbidden: User "system:serviceaccount:mcp:controller" cannot create resource "jobs" in API group "batch" in the namespace "work"',
      ),
      'create Job x',
    );
    assert.ok(e instanceof FatalError);
    assert.match(e.message, /Role/);
  });
});

const statusMessageOf = (e: Error) => e.message;

describe('isRetriable', () => {
  it('never retries bugs, always retries RetriableError, never TerminalError', () => {
    assert.equal(isRetriable(new TypeError('x is undefined')), false);
    assert.equal(isRetriable(new RangeError('bad')), false);
    assert.equal(isRetriable(new TerminalError('invalid-json', 'x')), false);
    assert.equal(isRetriable(new RetriableError('x')), true);
    assert.equal(isRetriable(Object.assign(new Error('kafka'), { retriable: true })), true);
    assert.equal(isRetriable(new Error('unknown')), false);
  });
});

describe('exitCodeFor', () => {
  it('exits 0 only when every server initialized', () => {
    assert.equal(exitCodeFor(['initialized', 'initialized']), ExitCode.OK);
  });
  it('asks for a retry when only retriable failures happened', () => {
    assert.equal(exitCodeFor(['initialized', 'failed-retriable']), ExitCode.RETRIABLE);
  });
  it('fails for good when any server failed permanently, since a retry meets it again', () => {
    assert.equal(exitCodeFor(['failed-retriable', 'failed-permanent']), ExitCode.PERMANENT);
  });
  it('uses distinct codes that are not a Node crash (1) or a signal (128+)', () => {
    const codes = Object.values(ExitCode);
    assert.equal(new Set(codes).size, codes.length);
    for (const c of [ExitCode.RETRIABLE, ExitCode.PERMANENT]) assert.ok(c > 1 && c < 128);
  });
});

describe('backoffMs', () => {
  it('grows exponentially from the initial delay to the cap, within the jitter', () => {
    assert.equal(backoffMs(0, { initialMs: 100, jitter: 0 }), 100);
    assert.equal(backoffMs(3, { initialMs: 100, jitter: 0 }), 800);
    assert.equal(backoffMs(40, { initialMs: 100, maxMs: 5000, jitter: 0 }), 5000);
    assert.equal(backoffMs(2, { initialMs: 100, jitter: 0.5, random: () => 0 }), 200);
    assert.equal(backoffMs(2, { initialMs: 100, jitter: 0.5, random: () => 1 }), 600);
  });
});

describe('Kafka errors', () => {
  it('treats records too large and authorization failures as terminal, and everything else from a producer as retriable', () => {
    for (const type of ['MESSAGE_TOO_LARGE', 'TOPIC_AUTHORIZATION_FAILED', 'SASL_AUTHENTICATION_FAILED']) {
      assert.ok(classifyProduceError(Object.assign(new Error(type), { type }), 'send') instanceof TerminalError, type);
    }
    // kafkajs wraps the broker's error once retries run out
    const wrapped = Object.assign(new Error('retries exceeded'), {
      name: 'KafkaJSNumberOfRetriesExceeded',
      cause: Object.assign(new Error('too big'), { type: 'RECORD_LIST_TOO_LARGE' }),
    });
    assert.equal(kafkaErrorType(wrapped), 'RECORD_LIST_TOO_LARGE');
    assert.ok(classifyProduceError(wrapped, 'send') instanceof TerminalError);
    for (const e of [Object.assign(new Error('x'), { type: 'LEADER_NOT_AVAILABLE' }), new Error('Connection timeout')]) {
      assert.ok(classifyProduceError(e, 'send') instanceof RetriableError);
    }
  });

  it('recognises a batch kafkajs cannot decode, also when wrapped', () => {
    const e = Object.assign(new Error('LZ4 compression not implemented'), { name: 'KafkaJSNotImplemented' });
    assert.equal(isUndecodable(e), true);
    assert.equal(isUndecodable(new Error('outer', { cause: e })), true);
    assert.equal(isUndecodable(new Error('Connection closed')), false);
  });

  it('decides "is a bug" in one place, and never retries bugs, aborts or fatal errors', () => {
    assert.equal(isBug(new TypeError('x')), true);
    assert.equal(isBug(new ReferenceError('x')), true);
    assert.equal(isBug(new Error('x')), false);
    assert.equal(isRetriable(new AbortedError('stop')), false);
    assert.equal(isRetriable(new FatalError('stop')), false);
    assert.equal(isRetriable(Object.assign(new TypeError('x'), { retriable: true })), false);
  });

  it('reads Kubernetes status codes without casts', () => {
    const e = (code: number) => Object.assign(new Error(`HTTP-Code: ${code}`), { code });
    assert.equal(isNotFound(e(404)), true);
    assert.equal(isConflict(e(409)), true);
    assert.equal(apiStatus(new Error('ECONNRESET')), undefined);
  });
});

describe('causeChain', () => {
  it('walks cause, originalError and the first of an aggregate, outermost first, and stops on a loop', () => {
    const root = new Error('root');
    const agg = Object.assign(new Error('aggregate'), { errors: [root] });
    const wrapped = Object.assign(new Error('retries'), { originalError: agg });
    const outer = new Error('outer', { cause: wrapped });
    assert.deepEqual(
      [...causeChain(outer)].map((e) => (e as Error).message),
      ['outer', 'retries', 'aggregate', 'root'],
    );
    const loop: { cause?: unknown; message: string } = { message: 'loop' };
    loop.cause = loop;
    assert.equal([...causeChain(loop)].length, 8);
  });
});

describe('VERSION', () => {
  it("is package.json's version, the one place it is declared", () => {
    const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    assert.equal(VERSION, pkg.version);
    assert.equal(CLIENT_INFO.version, pkg.version);
    assert.equal(SERVE_INFO.version, pkg.version);
  });
});
