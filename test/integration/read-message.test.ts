import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RetriableError, TerminalError } from '../../src/shared/errors.js';
import { kafkaConnection } from '../../src/shared/kafka.js';
import { readOneMessage } from '../../src/shared/read-message.js';
import { brokers, freshTopic, uniqueName, useKafka, waitFor } from '../helpers.js';

/**
 * The job's one-record read: the common case is one fetch; a miss is explained from the
 * partition's bounds. Each case the explanation tells apart, against the real broker.
 */
describe('reading one record by its coordinates', () => {
  const { kafka, admin, producer } = useKafka('read-message-tests');
  const connection = kafkaConnection({ brokers: brokers(), clientId: 'read-message-tests', level: 'silent' });

  it('returns the record at an offset inside a batch, with its key and headers', async () => {
    const topic = await freshTopic(admin);
    // One send, one record batch: the fetch returns the whole batch and the reader picks the offset.
    await producer.send({ topic, messages: Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `v${i}`, headers: { n: String(i) }, partition: 0 })) });
    const one = await readOneMessage(connection, { topic, partition: 0, offset: '6' });
    assert.equal(one.value?.toString(), 'v6');
    assert.equal(one.key?.toString(), 'k6');
    assert.deepEqual(one.headers, { n: '6' });
  });

  it('says a retry may help when the offset is not written yet', async () => {
    const topic = await freshTopic(admin);
    await producer.send({ topic, messages: [{ value: 'only', partition: 0 }] });
    for (const offset of ['1', '5']) {
      await assert.rejects(readOneMessage(connection, { topic, partition: 0, offset }), (err: unknown) => {
        assert.ok(err instanceof RetriableError, `offset ${offset}: ${String(err)}`);
        assert.match(err.message, /not readable yet \(high watermark 1\)/);
        return true;
      });
    }
  });

  it('fails for good when the topic does not exist', async () => {
    await assert.rejects(readOneMessage(connection, { topic: uniqueName('missing'), partition: 0, offset: '0' }), (err: unknown) => {
      assert.ok(err instanceof TerminalError, String(err));
      assert.equal(err.reason, 'message-gone');
      assert.match(err.message, /does not exist/);
      return true;
    });
  });

  it('fails for good at the offset of a transaction marker, which holds no record', async () => {
    const topic = await freshTopic(admin);
    const tx = kafka.producer({ transactionalId: uniqueName('tx'), idempotent: true, maxInFlightRequests: 1 });
    await tx.connect();
    try {
      const t = await tx.transaction();
      await t.send({ topic, messages: [{ value: 'in-tx', partition: 0 }] });
      await t.commit();
    } finally {
      await tx.disconnect();
    }
    // Offset 0 is the record, offset 1 the commit marker, which the coordinator writes after the
    // commit returns; a plain record after it keeps the marker below the high watermark.
    await waitFor(async () => (await admin.fetchTopicOffsets(topic))[0]!.high === '2', { description: 'the commit marker written' });
    await producer.send({ topic, messages: [{ value: 'after', partition: 0 }] });
    assert.equal((await readOneMessage(connection, { topic, partition: 0, offset: '0' })).value?.toString(), 'in-tx');
    await assert.rejects(readOneMessage(connection, { topic, partition: 0, offset: '1' }), (err: unknown) => {
      assert.ok(err instanceof TerminalError, String(err));
      assert.equal(err.reason, 'message-gone');
      assert.match(err.message, /holds no record/);
      return true;
    });
    assert.equal((await readOneMessage(connection, { topic, partition: 0, offset: '2' })).value?.toString(), 'after');
  });

  it("fails for good at the offset of an aborted transaction's record, as a read-committed consumer skips it", async () => {
    const topic = await freshTopic(admin);
    const tx = kafka.producer({ transactionalId: uniqueName('tx'), idempotent: true, maxInFlightRequests: 1 });
    await tx.connect();
    try {
      const t = await tx.transaction();
      await t.send({ topic, messages: [{ value: 'aborted', partition: 0 }] });
      await t.abort();
    } finally {
      await tx.disconnect();
    }
    // Offset 0 is the aborted record, offset 1 the abort marker, then a plain record.
    await waitFor(async () => (await admin.fetchTopicOffsets(topic))[0]!.high === '2', { description: 'the abort marker written' });
    await producer.send({ topic, messages: [{ value: 'after', partition: 0 }] });
    await assert.rejects(readOneMessage(connection, { topic, partition: 0, offset: '0' }), (err: unknown) => {
      assert.ok(err instanceof TerminalError, String(err));
      assert.equal(err.reason, 'message-gone');
      assert.match(err.message, /holds no record/);
      return true;
    });
    assert.equal((await readOneMessage(connection, { topic, partition: 0, offset: '2' })).value?.toString(), 'after');
  });
});
