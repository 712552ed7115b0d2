// Reading a collection in pages of bounded size: a page larger than PAGE_BYTES (objects
// carrying big annotations, say) is asked for again in smaller pages, down to one object,
// which may be as large as the client's body cap. That bounds what a list costs in memory
// without making large objects unreadable.
import { type KubeClient, type Query, ResponseTooLargeError } from "./client.ts";

export interface List<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

/** Objects asked for per page at first (client-go's reflector asks for 500 too). */
export const PAGE = 500;
/**
 * A page larger than this is asked for again in smaller pages: what a list holds in memory
 * at once (the text and the objects parsed from it) stays a few times this, however large
 * the objects. A single object may be as large as the client's cap.
 */
export const PAGE_BYTES = 2 << 20;

/**
 * One page of `path` from `cont`. `size` is the page size to ask for, halved (and kept so,
 * for the next pages) each time a page is larger than PAGE_BYTES; `onSmaller` hears about
 * each halving. One object alone may be as large as the client's cap; larger, the
 * ResponseTooLargeError is thrown.
 */
export async function getPage<T>(
  client: KubeClient,
  path: string,
  query: Query,
  cont: string | undefined,
  size: { value: number },
  onSmaller?: (err: ResponseTooLargeError) => void,
): Promise<List<T>> {
  for (;;) {
    try {
      return await client.request<List<T>>("GET", path, {
        query: { ...query, limit: size.value, continue: cont },
        maxBodyBytes: size.value > 1 ? PAGE_BYTES : undefined,
      });
    } catch (err) {
      if (!(err instanceof ResponseTooLargeError) || size.value <= 1) throw err;
      size.value = Math.max(1, Math.floor(size.value / 2));
      onSmaller?.(err);
    }
  }
}

/** Every object of a collection, one page at a time (for one-shot readers). */
export async function* listPages<T>(
  client: KubeClient,
  path: string,
  query: Query = {},
): AsyncGenerator<T[]> {
  const size = { value: PAGE };
  let cont: string | undefined;
  do {
    const page = await getPage<T>(client, path, query, cont, size);
    if (!Array.isArray(page?.items)) throw new Error(`list ${path}: the answer is not a list`);
    yield page.items;
    cont = page.metadata?.continue || undefined;
  } while (cont);
}

/** Every object of a collection (paged as listPages). */
export async function listAll<T>(
  client: KubeClient,
  path: string,
  query: Query = {},
): Promise<T[]> {
  const all: T[] = [];
  for await (const items of listPages<T>(client, path, query)) all.push(...items);
  return all;
}
