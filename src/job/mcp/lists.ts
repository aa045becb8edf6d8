import type { Client } from '@modelcontextprotocol/client';
import type { Deadline } from './deadline.js';
import { LIST_LIMITS, type ListCut, type ResponseGuard } from './result.js';

export type ListKind = 'tools' | 'prompts' | 'resources';
const LIST_METHODS = { tools: 'tools/list', prompts: 'prompts/list', resources: 'resources/list' } as const;

/** One list as read: the names kept and, when it stopped early, why. */
export interface ListRead {
  names: string[];
  cut?: ListCut;
}

/** Cuts one name to the per-name limit on code points, marking the cut. */
function keptName(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  if (text.length <= LIST_LIMITS.nameChars) return text;
  const cps = Array.from(text.slice(0, LIST_LIMITS.nameChars + 1));
  return cps.length <= LIST_LIMITS.nameChars ? text : `${cps.slice(0, LIST_LIMITS.nameChars).join('')}…`;
}

/**
 * Every page of one list, following `nextCursor` up to LIST_LIMITS.pages. Pages are requested one
 * by one (not the SDK's aggregate walk, which throws at its cap and keeps nothing) so a capped
 * list still reports what it read. What is kept is bounded across pages — LIST_LIMITS.names names
 * and LIST_LIMITS.bytes of them — whatever a server sends, and a page over the transport's
 * response cap (`guard`) ends the list too: the names read so far are kept and `cut` says why.
 * Items are copied one by one: a page's array is never spread into a call (a page of more than
 * ~125k items would overflow the argument stack).
 */
export async function listAll(client: Client, kind: ListKind, meta: Record<string, string>, deadline: Deadline, guard?: ResponseGuard): Promise<ListRead> {
  const names: string[] = [];
  let bytes = 0;
  let cursor: string | undefined;
  for (let pageNo = 0; pageNo < LIST_LIMITS.pages; pageNo++) {
    const params = { ...(cursor !== undefined ? { cursor } : {}), ...(Object.keys(meta).length ? { _meta: meta } : {}) };
    if (guard) guard.tripped = false;
    let page: { tools?: { name: string }[]; prompts?: { name: string }[]; resources?: { uri: string }[]; nextCursor?: string };
    try {
      page = (await deadline.run(
        `${LIST_METHODS[kind]} page ${pageNo + 1}`,
        client.request({ method: LIST_METHODS[kind], params }, { timeout: deadline.remaining() }),
      )) as typeof page;
    } catch (err) {
      if (guard?.tripped) return { names, cut: 'response-bytes' };
      throw err;
    }
    const items: unknown[] = (kind === 'resources' ? page.resources : page[kind]) ?? [];
    for (const item of items) {
      if (names.length >= LIST_LIMITS.names) return { names, cut: 'names' };
      const name = keptName(kind === 'resources' ? (item as { uri: string }).uri : (item as { name: string }).name);
      const size = Buffer.byteLength(name, 'utf8');
      if (bytes + size > LIST_LIMITS.bytes) return { names, cut: 'bytes' };
      bytes += size;
      names.push(name);
    }
    if (page.nextCursor === undefined || page.nextCursor === cursor) return { names };
    cursor = page.nextCursor;
  }
  return { names, cut: 'pages' };
}
