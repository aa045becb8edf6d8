import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONTROLLER_SETTINGS } from '../../../src/controller/config.js';
import { JOB_SETTINGS } from '../../../src/job/config.js';
import { defaultText, SHARED_SETTINGS, settingsInput, yargsOptions } from '../../../src/shared/settings.js';

describe('settings, one declaration each', () => {
  it('derives every flag, its help, env name and default from the declaration', () => {
    const opts = yargsOptions(CONTROLLER_SETTINGS);
    assert.equal(Object.keys(opts).length, Object.keys(CONTROLLER_SETTINGS).length);
    assert.match(String(opts['max-active-jobs']!.describe), /^Cap on unfinished Jobs.*\[env MAX_ACTIVE_JOBS\] \(default 100\)$/);
    assert.match(String(opts['allowed-commands']!.describe), /\(default node,npx,uv,uvx,python,python3\)$/);
    assert.doesNotMatch(String(opts['kafka-brokers']!.describe), /default/, 'a required setting shows no default');
    for (const [key, schema] of Object.entries(CONTROLLER_SETTINGS)) assert.ok(schema.description, `${key} has a description`);
    for (const [key, schema] of Object.entries(JOB_SETTINGS)) assert.ok(schema.description, `${key} has a description`);
  });

  it('declares what both programs read once: the job and the controller share the very same schema objects', () => {
    for (const key of ['ALLOWED_COMMANDS', 'SECRETS_DIR', 'MAX_MESSAGE_BYTES', 'MCP_INIT_TIMEOUT_MS'] as const) {
      assert.equal(JOB_SETTINGS[key], SHARED_SETTINGS[key]);
      assert.equal(CONTROLLER_SETTINGS[key], SHARED_SETTINGS[key]);
    }
    assert.equal(defaultText(SHARED_SETTINGS.MAX_MESSAGE_BYTES), '1048576');
  });

  it('lets a flag win over the environment and ignores empty values', () => {
    const input = settingsInput(CONTROLLER_SETTINGS, { 'kafka-topic': 'from-flag' }, { KAFKA_TOPIC: 'from-env', JOB_NAMESPACE: 'ns', LOG_LEVEL: '' });
    assert.deepEqual(input, { KAFKA_TOPIC: 'from-flag', JOB_NAMESPACE: 'ns' });
  });
});
