import { readFileSync } from 'node:fs';
import { PolicyReason, SECRET_REFS_DIR, secretRefIn, secretRefPath } from '../../shared/contract/policy.js';
import { InitFailure } from './failures.js';
import type { InitOptions } from './result.js';

/** What a header value may hold: printable Latin-1 and tab (the rule the message schema applies). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * The value of each `secret_ref:<secret>:<key>` among `values`, read from the file the Job mounted
 * for it, and added to `secrets` so a failure's text can be scrubbed of it. A key the Secret lacks
 * (the volume is optional, so the pod starts anyway) fails for good, and so does a value Node
 * would refuse (a NUL in an env value; CR, LF, NUL or a non-Latin-1 character in a header), whose
 * error would quote it: both naming the Secret and the key, never the value.
 */
export function resolveSecretRefs(
  values: Record<string, string> | undefined,
  schemeAllowed: boolean,
  opts: InitOptions,
  secrets: string[],
): Record<string, string> | undefined {
  if (!values) return values;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) {
    const ref = secretRefIn(v, schemeAllowed);
    if (ref === undefined || typeof ref === 'string') {
      out[k] = v;
      continue;
    }
    let value: string;
    try {
      value = readFileSync(secretRefPath(opts.secretRefsDir ?? SECRET_REFS_DIR, ref), 'utf8');
    } catch (err) {
      throw new InitFailure(
        'failed-permanent',
        'secret-missing',
        `${k}: Secret ${JSON.stringify(ref.secret)} has no key ${JSON.stringify(ref.key)} in this Job (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      );
    }
    secrets.push(value);
    if (schemeAllowed ? !HEADER_VALUE.test(value) : value.includes('\0')) {
      throw new InitFailure(
        'failed-permanent',
        PolicyReason.secretInvalid,
        `${k}: the value of Secret ${JSON.stringify(ref.secret)} key ${JSON.stringify(ref.key)} cannot be ${schemeAllowed ? 'a header value (printable Latin-1, no CR, LF or NUL)' : 'an environment value (it holds a NUL byte)'}`,
      );
    }
    out[k] = ref.scheme ? `${ref.scheme} ${value}` : value;
  }
  return out;
}

/**
 * A failure's text with every resolved secret value replaced by `[secret]`: the second guard,
 * behind the checks of resolveSecretRefs, against an error that quotes what it was given.
 */
export function scrubSecrets(text: string, secrets: readonly string[]): string {
  const forms = secrets.flatMap((v) => [v, v.trim(), JSON.stringify(v).slice(1, -1)]).filter((v) => v.length > 0);
  let out = text;
  for (const v of [...new Set(forms)].sort((a, b) => b.length - a.length)) out = out.split(v).join('[secret]');
  return out;
}
