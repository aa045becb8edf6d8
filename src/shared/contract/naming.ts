import { createHash } from 'node:crypto';

/** Kubernetes object names (DNS-1123 labels, as Job names must be for their pods' labels) fit 63 characters. */
export const MAX_NAME = 63;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= MAX_NAME && DNS1123_LABEL.test(s);
}

/** Lower-case, runs of anything else to one `-`, no `-` at either end. */
export function sanitize(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
}

function shortHash(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 8);
}

/**
 * The Job name for the message at `topic`/`partition`/`offset`: `<prefix>-<topic>-<hash>-<partition>-<offset>`,
 * `<hash>` being 8 hex digits of sha256 over the prefix and the raw topic. It is a function of the
 * message's identity alone, so a redelivered message maps to the same name and the API server's
 * 409 stops a second Job; and it is injective across prefixes and topics (`mcp` + `prod-jobs`
 * and `mcp-prod` + `jobs` read alike but hash apart), so two controllers in one namespace never
 * meet each other's Jobs. The readable part is shortened to fit 63 characters; the hash keeps it
 * apart.
 */
export function jobName(prefix: string, topic: string, partition: number, offset: string | bigint | number): string {
  const tail = `${partition}-${offset}`;
  const p = sanitize(prefix) || 'mcp';
  const hash = shortHash(`${prefix}\0${topic}`);
  const room = MAX_NAME - (p.length + 1) - (hash.length + 1) - (tail.length + 1) - 1;
  const topicPart = sanitize(topic).slice(0, Math.max(0, room)).replace(/-+$/, '');
  return [p, topicPart, hash, tail].filter(Boolean).join('-');
}

/**
 * The name releases before this one gave a message's Job: `<prefix>-<topic>-<partition>-<offset>`,
 * with a hash of the topic only when the topic did not survive sanitising or the name was too
 * long. Not injective across prefixes; kept so an upgraded controller still finds the Jobs its
 * predecessor made for messages it had not committed (see MessageHandler).
 */
export function legacyJobName(prefix: string, topic: string, partition: number, offset: string | bigint | number): string {
  const tail = `${partition}-${offset}`;
  const p = sanitize(prefix) || 'mcp';
  const t = sanitize(topic);
  const plain = `${p}-${t}-${tail}`;
  if (t === topic && t.length > 0 && plain.length <= MAX_NAME) return plain;
  const hash = shortHash(topic);
  const room = MAX_NAME - (p.length + 1) - (hash.length + 1) - (tail.length + 1) - 1;
  const topicPart = t.slice(0, Math.max(0, room)).replace(/-+$/, '');
  return [p, topicPart, hash, tail].filter(Boolean).join('-');
}

/** A label value (≤63, alphanumeric at both ends) from free text such as a producer's jobID. */
export function labelValue(s: string): string {
  const v = s
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .slice(0, MAX_NAME)
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return v;
}
