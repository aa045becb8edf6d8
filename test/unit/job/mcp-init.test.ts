import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { scrubSecrets } from '../../../src/job/mcp/secrets.js';

describe("a failure's text and the secret values of its server", () => {
  it('replaces every resolved value with [secret], as written, trimmed or JSON-escaped, longest first', () => {
    const secrets = ['tok\0en-1234', 'pass-word\n', 'pass'];
    const text = 'spawn: env value "tok\\u0000en-1234" refused; tok\0en-1234; header pass-word here; pass';
    assert.equal(scrubSecrets(text, secrets), 'spawn: env value "[secret]" refused; [secret]; header [secret] here; [secret]');
  });

  it('leaves a text without secrets, and an empty value, alone', () => {
    assert.equal(scrubSecrets('connect: HTTP 401 Unauthorized', ['', '  ']), 'connect: HTTP 401 Unauthorized');
  });
});
