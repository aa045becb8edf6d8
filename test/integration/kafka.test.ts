import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { freshTopic, uniqueName, useKafka, waitFor } from '../helpers.js';

describe('the test bed broker', () => {
  const { kafka, admin, producer } = useKafka();

  it('delivers produced messages to a consumer group and stores its committed offsets', async () => {
    const topic = await freshTopic(admin, 3);
    const sent = Array.from({ length: 30 }, (_, i) => ({ key: `k${i}`, value: `v${i}` }));
    await producer.send({ topic, messages: sent });

    const groupId = uniqueName('group');
    const consumer = kafka.consumer({ groupId });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const got = new Map<string, string>();
    await consumer.run({ eachMessage: async ({ message }) => void got.set(String(message.key), String(message.value)) });
    await waitFor(() => got.size === sent.length, { timeoutMs: 30_000, description: 'all 30 messages consumed' });
    for (const m of sent) assert.equal(got.get(m.key), m.value);
    await consumer.disconnect();

    const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
    const committed = offsets!.partitions.reduce((n, p) => n + Number(p.offset === '-1' ? 0 : p.offset), 0);
    assert.equal(committed, sent.length);
  });
});
