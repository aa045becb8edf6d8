import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { retentionGap } from '../../../src/controller/intake/group-admin.js';

describe('retentionGap', () => {
  it('finds the messages retention deleted between the committed offset and the log start', () => {
    assert.deepEqual(retentionGap(10n, 25n, 25n), { from: 10n, to: 24n, count: 15 });
  });

  it('sees no gap when the first record fetched is the committed one', () => {
    assert.equal(retentionGap(10n, 10n, 3n), undefined);
  });

  it('sees no gap when records are missing but the log still starts at or before the committed offset (transaction markers, compaction)', () => {
    assert.equal(retentionGap(10n, 12n, 8n), undefined);
  });

  it('sees no gap for a group that never committed (it starts where the log starts)', () => {
    assert.equal(retentionGap(-1n, 40n, 40n), undefined);
  });
});
