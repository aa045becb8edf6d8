import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { brokers, freshTopic, useKafka } from '../helpers.js';
import { CONTROLLER } from '../support.js';

const run = promisify(execFile);

describe('the produce command', () => {
  const { admin } = useKafka();
  const total = async (topic: string) => (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
  const valid = (i: number) => JSON.stringify({ jobID: `j${i}`, jobType: 'server-init', payload: { mcpServers: { a: { command: 'node', args: ['x.js'] } } } });

  it('sends every line of a file of valid messages', async () => {
    const topic = await freshTopic(admin, 2);
    const file = join(mkdtempSync(join(tmpdir(), 'produce-')), 'm.jsonl');
    writeFileSync(file, `${[1, 2, 3].map(valid).join('\n')}\n`);
    const { stdout } = await run(process.execPath, [CONTROLLER, 'produce', '--kafka-brokers', brokers().join(','), '--kafka-topic', topic, '--file', file]);
    assert.match(stdout, /sent 3 messages/);
    assert.equal(await total(topic), 3);
  });

  it('sends nothing from a file with an invalid line, naming the line and the reason', async () => {
    const topic = await freshTopic(admin, 1);
    const file = join(mkdtempSync(join(tmpdir(), 'produce-')), 'm.jsonl');
    writeFileSync(file, `${valid(1)}\n{"jobID":"x","jobType":"nope","payload":{}}\n${valid(2)}\n`);
    await assert.rejects(
      run(process.execPath, [CONTROLLER, 'produce', '--kafka-brokers', brokers().join(','), '--kafka-topic', topic, '--file', file]),
      (err: { code: number; stderr: string }) => {
        assert.equal(err.code, 65);
        assert.match(err.stderr, /line 2: unknown-job-type/);
        return true;
      },
    );
    assert.equal(await total(topic), 0);
  });

  it('sends invalid messages on purpose with --no-validate', async () => {
    const topic = await freshTopic(admin, 1);
    const { stdout } = await run(process.execPath, [
      CONTROLLER,
      'produce',
      '--kafka-brokers',
      brokers().join(','),
      '--kafka-topic',
      topic,
      '--message',
      'not json',
      '--no-validate',
    ]);
    assert.match(stdout, /sent to .* partition 0 offset 0/);
    assert.equal(await total(topic), 1);
  });
});
