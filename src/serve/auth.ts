import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * Checks an `Authorization` header against the token. Both sides are hashed first, so the
 * comparison is constant-time whatever the lengths, and neither length leaks.
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header ?? '');
  const given = createHash('sha256')
    .update(m?.[1] ?? '')
    .digest();
  const want = createHash('sha256').update(token).digest();
  return timingSafeEqual(given, want) && m !== null && token.length > 0;
}

/** The token in a file (a mounted Secret's key): trimmed, and refused when empty or too short to matter. */
export function parseTokenFile(text: string): string {
  const token = text.trim();
  if (token.length < 16) throw new Error('the token file holds fewer than 16 characters');
  if (/\s/.test(token)) throw new Error('the token file holds whitespace inside the token');
  return token;
}
