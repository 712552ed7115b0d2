// A stateful API server in memory for in-process tests of several components at once: the
// FakeApiServer's sockets and KubeClient's real code paths, with objects kept per
// collection. Lists, gets, creates, merge patches and deletes change the store and every
// open watch of the collection hears of it (a watch opened from an older resourceVersion
// gets what it missed first, as the real server does). Not a validating server: no
// schemas, no selectors, no field managers.
import { FakeApiServer, type OpenWatch } from "./fake-apiserver.ts";

type Obj = {
  metadata?: {
    name?: string;
    namespace?: string;
    resourceVersion?: string;
    uid?: string;
    [k: string]: unknown;
  };
  [k: string]: unknown;
};

interface Change {
  collection: string;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: Obj;
  rv: number;
}

/** "/api/v1/namespaces/ns/services/a/status" -> collection "/api/v1/services", "ns", "a". */
export function parsePath(path: string): { collection: string; namespace?: string; name?: string } {
  const seg = path.split("/").filter(Boolean);
  const prefix = seg[0] === "api" ? seg.slice(0, 2) : seg.slice(0, 3);
  let rest = seg.slice(prefix.length);
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  return { collection: `/${[...prefix, rest[0]].join("/")}`, namespace, name: rest[1] };
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target)
      ? { ...(target as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

const keyOf = (o: Obj) => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;
const notFound = { status: 404, body: { kind: "Status", code: 404, reason: "NotFound" } };

/** One client's way in: its own server (port), so that a test can cut off or delay one client. */
interface Endpoint {
  server: FakeApiServer;
  /** Watch events for this client wait here while it is held (a stalled or cut-off node). */
  held: { w: OpenWatch; type: string; object: Obj }[] | undefined;
  /** Answers instead of the store while set (e.g. 503 to every GET of one collection). */
  refuse: ((method: string, path: string) => number | undefined) | undefined;
}

export class FakeCluster {
  readonly #endpoints = new Map<string, Endpoint>();
  readonly #store = new Map<string, Map<string, Obj>>();
  readonly #log: Change[] = [];
  #rv = 1;
  /** Every write a client made (client, method, path, body): what tests assert on. */
  readonly writes: { client: string; method: string; path: string; body: unknown }[] = [];

  /** Starts a server for one client (a speaker, a controller) and returns its URL. */
  async endpoint(client: string): Promise<string> {
    const server = new FakeApiServer();
    const e: Endpoint = { server, held: undefined, refuse: undefined };
    server.onRequest = (method, path, _q, body) => this.#request(e, client, method, path, body);
    server.onWatchOpened = (w) => this.#replay(e, w);
    this.#endpoints.set(client, e);
    return server.start();
  }

  async close(): Promise<void> {
    await Promise.all([...this.#endpoints.values()].map((e) => e.server.close()));
  }

  /**
   * Holds the watch events for `client` (true) or delivers what was held, in order, and
   * the rest as it comes (false): a client that hears nothing for a while, then all of it.
   */
  hold(client: string, on: boolean): void {
    const e = this.#endpoints.get(client);
    if (!e) return;
    if (on) {
      e.held ??= [];
      return;
    }
    const q = e.held ?? [];
    e.held = undefined;
    for (const h of q) if (!h.w.closed) h.w.send(h.type, h.object);
  }

  /** Makes the server answer `client` with an error status while `fn` returns one. */
  refuse(client: string, fn: ((method: string, path: string) => number | undefined) | undefined) {
    const e = this.#endpoints.get(client);
    if (e) e.refuse = fn;
  }

  /** The objects of a collection ("/api/v1/services"), all namespaces. */
  list<T = Obj>(collection: string): T[] {
    return [...(this.#store.get(collection)?.values() ?? [])] as T[];
  }

  get<T = Obj>(collection: string, name: string, namespace?: string): T | undefined {
    return this.#store.get(collection)?.get(`${namespace ?? ""}/${name}`) as T | undefined;
  }

  /** Creates or replaces an object, as another client (kubectl, the controller) would. */
  put(collection: string, obj: Obj): Obj {
    const had = this.get(collection, obj.metadata?.name ?? "", obj.metadata?.namespace);
    return this.#save(collection, structuredClone(obj), had ? "MODIFIED" : "ADDED");
  }

  remove(collection: string, name: string, namespace?: string): void {
    const had = this.get(collection, name, namespace);
    if (!had) return;
    this.#store.get(collection)?.delete(`${namespace ?? ""}/${name}`);
    this.#emit(collection, "DELETED", { ...had, metadata: { ...had.metadata } });
  }

  /** The current resourceVersion: a watch event with a higher one has not been sent yet. */
  get resourceVersion(): number {
    return this.#rv;
  }

  #save(collection: string, obj: Obj, type: "ADDED" | "MODIFIED"): Obj {
    const rv = ++this.#rv;
    const prev = this.get(collection, obj.metadata?.name ?? "", obj.metadata?.namespace);
    obj.metadata = {
      uid: prev?.metadata?.uid ?? `uid-${obj.metadata?.name}-${rv}`,
      ...obj.metadata,
      resourceVersion: String(rv),
    };
    const c = this.#store.get(collection) ?? new Map<string, Obj>();
    this.#store.set(collection, c);
    c.set(keyOf(obj), obj);
    this.#emit(collection, type, obj, rv);
    return obj;
  }

  #emit(collection: string, type: Change["type"], object: Obj, rv = ++this.#rv): void {
    if (type === "DELETED") object.metadata = { ...object.metadata, resourceVersion: String(rv) };
    const change: Change = { collection, type, object: structuredClone(object), rv };
    this.#log.push(change);
    for (const e of this.#endpoints.values())
      for (const w of e.server.openWatches()) {
        if (parsePath(w.path).collection !== collection) continue;
        if (e.held) e.held.push({ w, type, object: change.object });
        else w.send(type, change.object);
      }
  }

  #replay(e: Endpoint, w: OpenWatch): void {
    const from = Number(w.query.get("resourceVersion") ?? "0");
    const collection = parsePath(w.path).collection;
    for (const c of this.#log) {
      if (c.collection !== collection || c.rv <= from) continue;
      if (e.held) e.held.push({ w, type: c.type, object: c.object });
      else w.send(c.type, c.object);
    }
  }

  #request(e: Endpoint, client: string, method: string, path: string, body: string) {
    const { collection, namespace, name } = parsePath(path);
    const parsed = body ? (JSON.parse(body) as Obj) : undefined;
    if (method !== "GET") this.writes.push({ client, method, path, body: parsed });
    const refused = e.refuse?.(method, path);
    if (refused !== undefined)
      return { status: refused, body: { kind: "Status", code: refused, message: "refused" } };
    const existing = name ? this.get(collection, name, namespace) : undefined;
    switch (method) {
      case "GET":
        if (!name)
          return {
            status: 200,
            body: {
              kind: "List",
              metadata: { resourceVersion: String(this.#rv) },
              items: this.list(collection).filter(
                (o) => namespace === undefined || o.metadata?.namespace === namespace,
              ),
            },
          };
        return existing ? { status: 200, body: existing } : notFound;
      case "POST": {
        const obj = structuredClone(parsed ?? {});
        obj.metadata = { ...obj.metadata, ...(namespace ? { namespace } : {}) };
        if (this.get(collection, obj.metadata.name ?? "", obj.metadata.namespace))
          return { status: 409, body: { kind: "Status", code: 409, reason: "AlreadyExists" } };
        return { status: 201, body: this.#save(collection, obj, "ADDED") };
      }
      case "PATCH":
      case "PUT": {
        if (!existing) return notFound;
        const next = (
          method === "PUT" ? structuredClone(parsed) : mergePatch(existing, parsed)
        ) as Obj;
        return { status: 200, body: this.#save(collection, next, "MODIFIED") };
      }
      case "DELETE":
        if (!existing || !name) return notFound;
        this.remove(collection, name, namespace);
        return { status: 200, body: existing };
      default:
        return { status: 405, body: { kind: "Status", code: 405 } };
    }
  }
}

/** Resolves once `cond` holds (checked every few ms), or rejects after `timeoutMs`. */
export async function waitUntil(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`condition not met in ${timeoutMs} ms: ${cond}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
