import type { Client } from '@modelcontextprotocol/client';
import type { Deadline } from './deadline.js';
import { MAX_LIST_PAGES } from './result.js';

export type ListKind = 'tools' | 'prompts' | 'resources';
const LIST_METHODS = { tools: 'tools/list', prompts: 'prompts/list', resources: 'resources/list' } as const;

/**
 * Every page of one list, following `nextCursor` up to MAX_LIST_PAGES. Pages are requested one by
 * one (not the SDK's aggregate walk, which throws at its cap and keeps nothing) so a capped list
 * still reports what it read.
 */
export async function listAll(client: Client, kind: ListKind, meta: Record<string, string>, deadline: Deadline): Promise<{ names: string[]; capped: boolean }> {
  const names: string[] = [];
  let cursor: string | undefined;
  for (let pageNo = 0; pageNo < MAX_LIST_PAGES; pageNo++) {
    const params = { ...(cursor !== undefined ? { cursor } : {}), ...(Object.keys(meta).length ? { _meta: meta } : {}) };
    const page = (await deadline.run(
      `${LIST_METHODS[kind]} page ${pageNo + 1}`,
      client.request({ method: LIST_METHODS[kind], params }, { timeout: deadline.remaining() }),
    )) as { tools?: { name: string }[]; prompts?: { name: string }[]; resources?: { uri: string }[]; nextCursor?: string };
    if (kind === 'resources') names.push(...(page.resources ?? []).map((r) => r.uri));
    else names.push(...(page[kind] ?? []).map((x) => x.name));
    if (page.nextCursor === undefined || page.nextCursor === cursor) return { names, capped: false };
    cursor = page.nextCursor;
  }
  return { names, capped: true };
}
