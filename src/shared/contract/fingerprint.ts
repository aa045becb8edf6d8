import { createHash } from 'node:crypto';
import { z } from 'zod';

/**
 * RFC 8785 (JSON Canonicalization Scheme). JCS is defined on top of ECMAScript's own
 * serialisation — numbers and strings are written exactly as `JSON.stringify` writes them, object
 * members sorted by their names' UTF-16 code units, which is what `Array.prototype.sort` compares —
 * so the whole scheme is the recursion below; a dependency would add nothing but a package.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new TypeError('JCS has no representation for NaN or Infinity');
    // undefined inside an array is null, as JSON.stringify writes it; a bare undefined has no JSON.
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined && typeof obj[k] !== 'function')
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

const sha256 = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** A tool as `tools/list` returns it; only the fields a user reviews count. */
export interface ListedTool {
  name: string;
  description?: string;
  inputSchema?: unknown;
  outputSchema?: unknown;
  annotations?: unknown;
}

/**
 * A tool's fingerprint: sha256 (hex) of the canonical JSON of its name, description, input and
 * output schema and annotations. Title, icons and `_meta` are left out: they change what a person
 * sees, not what the model is told or what the tool takes.
 */
export function toolDigest(t: ListedTool): string {
  return sha256(
    canonicalJson({ name: t.name, description: t.description, inputSchema: t.inputSchema, outputSchema: t.outputSchema, annotations: t.annotations }),
  );
}

/**
 * One digest of a whole tool list: sha256 of the canonical JSON of `{name: toolDigest}`. The order
 * a server lists its tools in does not change it (the map is canonicalised with sorted keys);
 * adding, removing, renaming or changing any tool does.
 */
export function toolsDigest(digests: Record<string, string>): string {
  return sha256(canonicalJson(digests));
}

/** Every tool's digest by name; a name listed twice keeps the last, as a client's lookup would. */
export function toolDigests(tools: readonly ListedTool[]): Record<string, string> {
  return Object.fromEntries(tools.map((t) => [t.name, toolDigest(t)]));
}

export const DIGEST = z.string().regex(/^[0-9a-f]{64}$/, 'a digest is 64 lower-case hex characters (sha256), as `mcp-job check` prints it');

/**
 * What a message's server entry may pin: the whole list's digest, and/or each tool's digest by
 * name. A `toolDigests` pin is the whole reviewed list: a tool it does not name counts as added.
 */
export const ToolPinFields = {
  toolsDigest: DIGEST.optional(),
  toolDigests: z.record(z.string().min(1).max(256), DIGEST).optional(),
};
export interface ToolPin {
  toolsDigest?: string;
  toolDigests?: Record<string, string>;
}

/** How a server's tools differ from the entry's pin: declared once for the result and the summary. */
export const ToolsChangeSchema = z.object({
  added: z.array(z.string()),
  removed: z.array(z.string()),
  changed: z.array(z.string()),
  /** Set when only the list digest was pinned: which tools differ cannot be told, only that the list did. */
  listDigest: z.object({ pinned: z.string(), found: z.string() }).optional(),
});
export type ToolsChange = z.infer<typeof ToolsChangeSchema>;

/** How the tools found differ from a pin; undefined when they match it (or nothing is pinned). */
export function compareToolPin(pin: ToolPin, found: Record<string, string>): ToolsChange | undefined {
  const change: ToolsChange = { added: [], removed: [], changed: [] };
  if (pin.toolDigests) {
    for (const [name, d] of Object.entries(pin.toolDigests)) {
      if (!(name in found)) change.removed.push(name);
      else if (found[name] !== d) change.changed.push(name);
    }
    for (const name of Object.keys(found)) if (!(name in pin.toolDigests)) change.added.push(name);
  }
  const listFound = toolsDigest(found);
  if (pin.toolsDigest && pin.toolsDigest !== listFound && !pin.toolDigests) change.listDigest = { pinned: pin.toolsDigest, found: listFound };
  const differs = change.added.length + change.removed.length + change.changed.length > 0 || change.listDigest !== undefined;
  // Both pinned and the per-tool pin matches but the list digest does not: the pinned list digest
  // was of another list than the per-tool pin describes. Still a mismatch, said as such.
  if (!differs && pin.toolsDigest && pin.toolsDigest !== listFound) return { ...change, listDigest: { pinned: pin.toolsDigest, found: listFound } };
  for (const k of ['added', 'removed', 'changed'] as const) change[k].sort();
  return differs ? change : undefined;
}

/** One line naming what changed, for the failure's error text. */
export function describeToolsChange(c: ToolsChange): string {
  const parts = (['changed', 'added', 'removed'] as const).filter((k) => c[k].length).map((k) => `${k}: ${c[k].join(', ')}`);
  if (c.listDigest) parts.push(`tool list digest is ${c.listDigest.found}, pinned ${c.listDigest.pinned}`);
  return `the server's tools differ from the pinned ones (${parts.join('; ')})`;
}
