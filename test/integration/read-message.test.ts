import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RetriableError, TerminalError } from '../../src/shared/errors.js';
import type { Coordinates } from '../../src/shared/contract/identity.js';
import { kafkaConnection } from '../../src/shared/kafka/kafka.js';
import { readOneMessage } from '../../src/shared/kafka/read-message.js';
import { brokers, freshTopic, uniqueName, useKafka, waitFor } from '../helpers.js';

/**
 * The job's one-record read: the common case is one fetch; a miss is explained from the
 * partition's bounds. Each case the explanation tells apart, against the real broker.
 */
describe('reading one record by its coordinates', () => {
  const { kafka, admin, producer } = useKafka('read-message-tests');
  const connection = kafkaConnection({ brokers: brokers(), clientId: 'read-message-tests', level: 'silent' });

  /** Reading `at` fails for good with `message-gone`, saying `why`. */
  async function rejectsAsGone(at: Coordinates, why: RegExp): Promise<void> {
    await assert.rejects(readOneMessage(connection, at), (err: unknown) => {
      assert.ok(err instanceof TerminalError, String(err));
      assert.equal(err.reason, 'message-gone');
      assert.match(err.message, why);
      return true;
    });
  }

  /**
   * A fresh topic holding one record written in a transaction that ends as `end` (offset 0), its
   * marker (offset 1) and a plain record after it (offset 2, 'after'). The coordinator writes the
   * marker after the commit or abort returns, so it is waited for: the plain record then lands
   * after it, keeping the marker below the high watermark.
   */
  async function transactionThenRecord(value: string, end: 'commit' | 'abort'): Promise<string> {
    const topic = await freshTopic(admin);
    const tx = kafka.producer({ transactionalId: uniqueName('tx'), idempotent: true, maxInFlightRequests: 1 });
    await tx.connect();
    try {
      const t = await tx.transaction();
      await t.send({ topic, messages: [{ value, partition: 0 }] });
      await (end === 'commit' ? t.commit() : t.abort());
    } finally {
      await tx.disconnect();
    }
    await waitFor(async () => (await admin.fetchTopicOffsets(topic))[0]!.high === '2', { description: `the ${end} marker written` });
    await producer.send({ topic, messages: [{ value: 'after', partition: 0 }] });
    return topic;
  }

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
    await rejectsAsGone({ topic: uniqueName('missing'), partition: 0, offset: '0' }, /does not exist/);
  });

  it('fails for good at the offset of a transaction marker, which holds no record', async () => {
    const topic = await transactionThenRecord('in-tx', 'commit');
    assert.equal((await readOneMessage(connection, { topic, partition: 0, offset: '0' })).value?.toString(), 'in-tx');
    await rejectsAsGone({ topic, partition: 0, offset: '1' }, /holds no record/);
    assert.equal((await readOneMessage(connection, { topic, partition: 0, offset: '2' })).value?.toString(), 'after');
  });

  it("fails for good at the offset of an aborted transaction's record, as a read-committed consumer skips it", async () => {
    const topic = await transactionThenRecord('aborted', 'abort');
    await rejectsAsGone({ topic, partition: 0, offset: '0' }, /holds no record/);
    assert.equal((await readOneMessage(connection, { topic, partition: 0, offset: '2' })).value?.toString(), 'after');
  });
});
