import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { repoRoot } from '../testbed/cache.js';
import { freshTopic, waitFor, useKafka } from '../helpers.js';
import { alive as isAlive } from '../../src/job/mcp/processes.js';
import { checksumOf } from '../../src/shared/contract/message.js';
import { runJob } from '../support.js';

const FIXTURE = join(repoRoot, 'dist', 'test', 'fixtures', 'mcp-server.js');

describe('the job binary', () => {
  const { admin, producer } = useKafka();
  let topic: string;
  before(async () => {
    topic = await freshTopic(admin, 2, 'jobs');
  });

  async function produce(value: string | Buffer, partition = 0): Promise<{ offset: string; sha: string }> {
    const [r] = await producer.send({ topic, messages: [{ value, partition }] });
    return { offset: r!.baseOffset!, sha: checksumOf(Buffer.from(value)) };
  }

  const message = (servers: Record<string, unknown>, jobID = 'job-1') =>
    JSON.stringify({ jobID, jobType: 'server-init', payload: JSON.stringify({ mcpServers: servers }) });
  const coords = (offset: string, partition = 0) => ({ KAFKA_TOPIC: topic, KAFKA_PARTITION: String(partition), KAFKA_OFFSET: offset });

  it('initializes a real stdio MCP server and reports its tools, prompts and resources, exiting 0', async () => {
    // Another message before and after: the job must read exactly its own offset.
    await produce(message({ wrong: { command: 'node', args: ['nope'] } }, 'before'), 1);
    const m = await produce(message({ fixture: { command: 'node', args: [FIXTURE] } }), 1);
    await produce(message({ wrong: { command: 'node', args: ['nope'] } }, 'after'), 1);
    const r = await runJob({ ...coords(m.offset, 1), MCP_MESSAGE_SHA256: m.sha });
    assert.equal(r.code, 0);
    assert.equal(r.summary.jobID, 'job-1');
    assert.equal(r.summary.status, 'initialized');
    assert.deepEqual(r.summary.servers.fixture.tools, ['echo', 'add']);
    assert.deepEqual(r.summary.servers.fixture.prompts, ['greet']);
    assert.equal(r.summary.servers.fixture.resources, 1);
    assert.equal(r.summary.servers.fixture.server, 'fixture-server@1.2.3');
    assert.match(r.summary.servers.fixture.protocol, /^\d{4}-\d{2}-\d{2}$/);
    assert.ok(
      r.logs.some((l) => /^server fixture initialized: fixture-server 1\.2\.3, 2 tools/.test(l.msg)),
      'one readable line per server',
    );
  });

  it('exits with the permanent code when a server command cannot be started', async () => {
    const m = await produce(message({ missing: { command: 'no-such-mcp-server-binary', args: [] } }));
    const r = await runJob({ ...coords(m.offset), ALLOWED_COMMANDS: 'node,no-such-mcp-server-binary' });
    assert.equal(r.code, 65);
    assert.equal(r.summary.servers.missing.status, 'failed-permanent');
    assert.equal(r.summary.servers.missing.reason, 'spawn-failed');
  });

  it('times out a server that never answers initialize, kills it, and exits with the retry code', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hang-'));
    const pidFile = join(dir, 'pid');
    const m = await produce(message({ hung: { command: 'node', args: [FIXTURE, '--hang', '--pid-file', pidFile] } }));
    const r = await runJob({ ...coords(m.offset), MCP_INIT_TIMEOUT_MS: '1500' });
    assert.equal(r.code, 75);
    assert.equal(r.summary.servers.hung.status, 'failed-retriable');
    assert.equal(r.summary.servers.hung.reason, 'timeout');
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await waitFor(() => !isAlive(pid), { timeoutMs: 5000, description: `hung server ${pid} to be gone` });
  });

  it('reports a server that exits in the middle of the handshake as retriable', async () => {
    const m = await produce(message({ quitter: { command: 'node', args: [FIXTURE, '--exit-mid-handshake'] } }));
    const r = await runJob(coords(m.offset));
    assert.equal(r.code, 75);
    assert.equal(r.summary.servers.quitter.reason, 'server-exited');
  });

  it('fails for good when one of several servers fails permanently, and still reports the others', async () => {
    const m = await produce(
      message({
        good: { command: 'node', args: [FIXTURE] },
        crash: { command: 'node', args: [FIXTURE, '--crash'] },
        missing: { command: 'no-such-mcp-server-binary' },
      }),
    );
    const r = await runJob({ ...coords(m.offset), ALLOWED_COMMANDS: 'node,no-such-mcp-server-binary' });
    assert.equal(r.code, 65);
    assert.equal(r.summary.servers.good.status, 'initialized');
    assert.equal(r.summary.servers.crash.status, 'failed-retriable');
    assert.equal(r.summary.servers.missing.status, 'failed-permanent');
  });

  it('passes envFile variables from the secrets folder to the server', async () => {
    const secrets = mkdtempSync(join(tmpdir(), 'secrets-'));
    mkdirSync(join(secrets, 'db'));
    writeFileSync(join(secrets, 'db', '.env'), 'EXTRA_TOOL=query_database\n# comment\nOTHER="x y"\n');
    const m = await produce(message({ db: { command: 'node', args: [FIXTURE], envFile: 'db/.env' } }));
    const r = await runJob({ ...coords(m.offset), SECRETS_DIR: secrets });
    assert.equal(r.code, 0);
    assert.deepEqual(r.summary.servers.db.tools, ['echo', 'add', 'query_database']);
  });

  it('refuses a message whose bytes differ from the checksum the controller saw', async () => {
    const m = await produce(message({ fixture: { command: 'node', args: [FIXTURE] } }));
    const r = await runJob({ ...coords(m.offset), MCP_MESSAGE_SHA256: 'a'.repeat(64) });
    assert.equal(r.code, 65);
    assert.equal(r.summary.reason, 'checksum-mismatch');
  });

  it('fails for good, saying so, when its message was deleted by retention', async () => {
    const m = await produce(message({ fixture: { command: 'node', args: [FIXTURE] } }));
    await produce('filler');
    await admin.fetchTopicMetadata({ topics: [topic] }); // kafkajs' admin finds no leader for a topic it has not looked up
    await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: String(BigInt(m.offset) + 1n) }] });
    const r = await runJob(coords(m.offset));
    assert.equal(r.code, 65);
    assert.equal(r.summary.reason, 'message-gone');
    assert.match(r.summary.error, /retention/);
  });

  it('fails for good on an invalid message, naming the reason', async () => {
    const m = await produce(JSON.stringify({ jobID: 'j', jobType: 'server-init', payload: { mcpServers: { x: { command: 'bash' } } } }));
    const r = await runJob(coords(m.offset));
    assert.equal(r.code, 65);
    assert.equal(r.summary.reason, 'command-not-allowed');
  });

  it('does not join or commit to any consumer group', async () => {
    const m = await produce(message({ fixture: { command: 'node', args: [FIXTURE] } }));
    const before = (await admin.listGroups()).groups.length;
    const r = await runJob(coords(m.offset));
    assert.equal(r.code, 0);
    assert.equal((await admin.listGroups()).groups.length, before);
  });
});
