// A watch-backed cache of one resource type: list once, then watch from the list's
// resourceVersion; on "410 Gone" list again (reporting objects that vanished meanwhile
// as deleted); on any other failure re-watch with backoff. Handlers see every object
// change in order, and the first complete list marks the cache synced.
import type { KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "../observability/log.ts";
import type { KubeClient, Query, WatchHandle } from "./client.ts";
import { describeError, httpStatus } from "./errors.ts";

export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(obj: T): void;
  delete?(obj: T): void;
}

interface List<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items: T[];
}

const PAGE = 500;

/** A resource cache plus change notifications. */
export class Informer<T extends KubernetesObject> {
  readonly #client: KubeClient;
  readonly #path: string;
  readonly #query: Query;
  readonly #handlers: InformerHandlers<T>;
  readonly #log: Logger;
  readonly #objects = new Map<string, T>();
  #rv = "";
  #watch: WatchHandle | undefined;
  #synced = false;
  #stopped = false;
  #backoffMs = 250;
  #syncWaiters: (() => void)[] = [];
  #timer: NodeJS.Timeout | undefined;

  /**
   * @param path the collection, e.g. "/api/v1/services"
   * @param query e.g. { labelSelector: "ironlb.dev/speaker" }
   */
  constructor(
    client: KubeClient,
    path: string,
    handlers: InformerHandlers<T>,
    log: Logger,
    query: Query = {},
  ) {
    this.#client = client;
    this.#path = path;
    this.#query = query;
    this.#handlers = handlers;
    this.#log = log.child({ watch: path });
  }

  /** Starts listing and watching in the background. */
  async start(): Promise<void> {
    this.#stopped = false;
    void this.#run();
  }

  /** Resolves once the first complete list has been delivered to the handlers. */
  synced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  get isSynced(): boolean {
    return this.#synced;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.#objects.get(cacheKey(namespace, name));
  }

  /** Cached objects, optionally of one namespace. */
  list(namespace?: string): T[] {
    const all = [...this.#objects.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata?.namespace === namespace);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#watch?.abort();
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    try {
      if (!this.#rv) await this.#relist();
      this.#startWatch();
    } catch (err) {
      this.#retry(err);
    }
  }

  async #relist(): Promise<void> {
    const seen = new Set<string>();
    let cont: string | undefined;
    let rv = "";
    do {
      const page: List<T> = await this.#client.get<List<T>>(this.#path, {
        ...this.#query,
        limit: PAGE,
        continue: cont,
      });
      rv = page.metadata?.resourceVersion ?? rv;
      cont = page.metadata?.continue || undefined;
      for (const obj of page.items ?? []) {
        seen.add(keyOf(obj));
        this.#upsert(obj);
      }
    } while (cont);
    for (const [key, obj] of this.#objects) {
      if (!seen.has(key)) {
        this.#objects.delete(key);
        this.#handlers.delete?.(obj);
      }
    }
    this.#rv = rv;
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#syncWaiters.splice(0)) w();
    }
  }

  #startWatch(): void {
    if (this.#stopped) return;
    this.#watch = this.#client.watch<T>(
      this.#path,
      { ...this.#query, resourceVersion: this.#rv },
      (ev) => {
        this.#backoffMs = 250;
        const obj = ev.object;
        if (ev.type === "BOOKMARK") {
          this.#rv = obj.metadata?.resourceVersion ?? this.#rv;
          return;
        }
        if (ev.type === "DELETED") {
          this.#objects.delete(keyOf(obj));
          this.#handlers.delete?.(obj);
        } else {
          this.#upsert(obj);
        }
        this.#rv = obj.metadata?.resourceVersion ?? this.#rv;
      },
      (err) => {
        if (this.#stopped) return;
        if (!err) {
          // The server ends watches every few minutes: continue where we were.
          void this.#run();
          return;
        }
        if (httpStatus(err) === 410) this.#rv = ""; // too old: list again
        this.#retry(err);
      },
    );
  }

  #upsert(obj: T): void {
    // Nothing reads managedFields; with thousands of objects they would be most of the cache.
    if (obj.metadata?.managedFields) obj.metadata.managedFields = undefined;
    const key = keyOf(obj);
    const had = this.#objects.has(key);
    this.#objects.set(key, obj);
    if (had) this.#handlers.update?.(obj);
    else this.#handlers.add?.(obj);
  }

  #retry(err: unknown): void {
    if (this.#stopped) return;
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, 30_000);
    const level = httpStatus(err) === 410 ? "debug" : "warn";
    this.#log[level]({ err: describeError(err), retryInMs: delay }, "watch interrupted; resuming");
    this.#timer = setTimeout(() => void this.#run(), delay);
    this.#timer.unref();
  }
}

function cacheKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}

function keyOf(obj: KubernetesObject): string {
  return cacheKey(obj.metadata?.namespace, obj.metadata?.name ?? "");
}
