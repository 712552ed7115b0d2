// A watch-backed cache of one resource type, behaving like client-go's reflector: list,
// then watch from the list's resourceVersion with bookmarks and a server-side timeout
// (randomized 5-10 min, so that replicas do not reconnect in step); on "410 Gone" list
// again (reporting objects that vanished meanwhile as deleted); on any other failure
// re-watch after a backoff with jitter. A watch that brings neither an event nor a
// bookmark for the silence timeout is presumed stuck (a frozen connection or proxy:
// TCP keepalive cannot see those) and restarted. Handlers see every change in order,
// never an update whose resourceVersion did not change; the first complete list marks
// the cache synced. Progress (a list, an open watch, an event, a bookmark) is recorded
// on a monotonic clock for health checks.
import type { KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "../observability/log.ts";
import {
  type KubeClient,
  type Query,
  ResponseTooLargeError,
  type WatchHandle,
  type WatchHealth,
} from "./client.ts";
import { type Clock, monotonicClock, type TimerHandle, unref } from "./clock.ts";
import { describeError, httpStatus } from "./errors.ts";
import { getPage, PAGE } from "./list.ts";

export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(obj: T): void;
  delete?(obj: T): void;
}

export interface InformerOptions<T> {
  /**
   * Reduces each object to what the component needs before it is cached and handed to
   * the handlers (memory: thousands of full objects add up). It must keep
   * metadata.name, namespace and resourceVersion. One that throws is logged and counted,
   * and that object is cached whole.
   */
  transform?: (obj: T) => T;
  /** Default: the client's watchSettings.silenceTimeoutMs. */
  silenceTimeoutMs?: number;
  /** Default: the process's monotonic clock and timers. */
  clock?: Clock;
  /** Default: Math.random (jitter of the backoff and of the server-side timeout). */
  random?: () => number;
}

const BACKOFF_START_MS = 250;
const BACKOFF_MAX_MS = 30_000;
/** Server-side watch timeout range, as client-go's reflector: [5, 10) minutes. */
const WATCH_TIMEOUT_MIN_S = 300;
/** A watch that ends normally sooner than this, with no event, counts as a failure. */
const SHORT_WATCH_MS = 1_000;

/** A resource cache plus change notifications. */
export class Informer<T extends KubernetesObject> implements WatchHealth {
  readonly what: string;
  readonly #client: KubeClient;
  readonly #path: string;
  readonly #query: Query;
  readonly #handlers: InformerHandlers<T>;
  readonly #log: Logger;
  readonly #objects = new Map<string, T>();
  readonly #transform: ((obj: T) => T) | undefined;
  readonly #silenceOpt: number | undefined;
  readonly #clock: Clock;
  readonly #random: () => number;
  #rv = "";
  #watch: WatchHandle | undefined;
  #synced = false;
  #started = false;
  #stopped = false;
  #backoffMs = BACKOFF_START_MS;
  /** Objects per list page; halved when a page is larger than the client reads (list.ts). */
  readonly #pageSize = { value: PAGE };
  #syncWaiters: (() => void)[] = [];
  #retryTimer: TimerHandle;
  #silenceTimer: TimerHandle;
  #lastProgress = 0;
  /** Counts watch (re)starts; tells a stale callback of an earlier watch from the current one. */
  #generation = 0;

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
    opts: InformerOptions<T> = {},
  ) {
    this.#client = client;
    this.#path = path;
    this.#query = query;
    this.#handlers = handlers;
    this.#log = log.child({ watch: path });
    this.#transform = opts.transform;
    this.#silenceOpt = opts.silenceTimeoutMs;
    this.#clock = opts.clock ?? monotonicClock;
    this.#random = opts.random ?? Math.random;
    this.what = query.labelSelector ? `${path}?labelSelector=${query.labelSelector}` : path;
  }

  /** Starts listing and watching in the background. */
  async start(): Promise<void> {
    if (this.#started && !this.#stopped) return;
    this.#started = true;
    this.#stopped = false;
    this.#lastProgress = this.#clock.now();
    this.#client.watches.add(this);
    void this.#run();
  }

  /** Resolves once the first complete list has been delivered to the handlers. */
  synced(): Promise<void> {
    if (this.#synced) return Promise.resolve();
    return new Promise((resolve) => this.#syncWaiters.push(resolve));
  }

  /** The last resourceVersion seen (from a list, an event or a bookmark). */
  get resourceVersion(): string {
    return this.#rv;
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
    this.#client.watches.delete(this);
    this.#clock.clearTimeout(this.#retryTimer);
    this.#clock.clearTimeout(this.#silenceTimer);
    this.#watch?.abort();
    this.#watch = undefined;
  }

  /**
   * Why this informer makes no progress, or undefined. Healthy watches make progress at
   * least once per silence timeout (a bookmark, or the restart the timeout causes); this
   * says "stalled" after twice that with none: a restart too brought nothing.
   */
  stalled(): string | undefined {
    if (!this.#started || this.#stopped) return undefined;
    const quiet = this.#clock.now() - this.#lastProgress;
    if (quiet <= 2 * this.#silenceMs()) return undefined;
    return `watch ${this.what}: no progress for ${Math.round(quiet / 1000)} s`;
  }

  #silenceMs(): number {
    return this.#silenceOpt ?? this.#client.watchSettings.silenceTimeoutMs;
  }

  /**
   * Drops the open watch and watches again at once from the last resourceVersion seen.
   * After this host's link was down, events the server sent meanwhile sit behind TCP's
   * retransmission backoff (seconds, growing with the outage); a new connection has them
   * in a round trip. Nothing is lost: the new watch starts where handlers left off.
   */
  reconnect(): void {
    if (this.#stopped || !this.#rv) return; // not watching yet: the list under way is fresh
    this.#generation++;
    this.#clock.clearTimeout(this.#silenceTimer);
    this.#clock.clearTimeout(this.#retryTimer);
    this.#watch?.abort();
    this.#watch = undefined;
    this.#backoffMs = BACKOFF_START_MS;
    void this.#run();
  }

  #progress(): void {
    this.#lastProgress = this.#clock.now();
  }

  async #run(): Promise<void> {
    if (this.#stopped) return;
    const gen = ++this.#generation;
    try {
      if (!this.#rv) await this.#relist();
      if (gen !== this.#generation || this.#stopped) return;
      this.#startWatch(gen);
    } catch (err) {
      if (gen === this.#generation) this.#retry(err);
    }
  }

  async #relist(): Promise<void> {
    const seen = new Set<string>();
    let cont: string | undefined;
    let rv: string;
    do {
      const page = await getPage<T>(
        this.#client,
        this.#path,
        this.#query,
        cont,
        this.#pageSize,
        (err) =>
          this.#log.info(
            { pageSize: this.#pageSize.value, err: describeError(err) },
            "list page too large; asking for smaller pages",
          ),
      );
      if (this.#stopped) return;
      // A 200 that is no list (a proxy's page, a truncated body) must not read as an empty
      // one: that would report every cached object deleted and watch from "now".
      if (!Array.isArray(page?.items) || !page.metadata?.resourceVersion)
        throw new Error(`list ${this.what}: the answer is not a list with a resourceVersion`);
      this.#progress();
      rv = page.metadata.resourceVersion;
      cont = page.metadata.continue || undefined;
      for (const obj of page.items) {
        seen.add(keyOf(obj));
        this.#upsert(obj);
      }
    } while (cont);
    for (const [key, obj] of this.#objects) {
      if (!seen.has(key)) {
        this.#objects.delete(key);
        this.#handle("delete", obj);
      }
    }
    this.#rv = rv;
    if (!this.#synced) {
      this.#synced = true;
      for (const w of this.#syncWaiters.splice(0)) w();
    }
  }

  #startWatch(gen: number): void {
    const timeoutSeconds = WATCH_TIMEOUT_MIN_S + Math.floor(this.#random() * WATCH_TIMEOUT_MIN_S);
    this.#armSilence(gen);
    const startedAt = this.#clock.now();
    let events = 0;
    this.#watch = this.#client.watch<T>(
      this.#path,
      { ...this.#query, resourceVersion: this.#rv, timeoutSeconds },
      (ev) => {
        if (gen !== this.#generation) return;
        events++;
        this.#progress();
        this.#armSilence(gen);
        this.#backoffMs = BACKOFF_START_MS;
        const obj = ev.object;
        if (ev.type === "BOOKMARK") {
          this.#rv = obj.metadata?.resourceVersion ?? this.#rv;
          return;
        }
        if (ev.type === "DELETED") {
          const key = keyOf(obj);
          const cached = this.#objects.get(key);
          this.#objects.delete(key);
          this.#handle("delete", cached ?? this.#reduce(obj));
        } else {
          this.#upsert(obj);
        }
        this.#rv = obj.metadata?.resourceVersion ?? this.#rv;
      },
      (err) => {
        if (gen !== this.#generation || this.#stopped) return;
        this.#clock.clearTimeout(this.#silenceTimer);
        if (!err) {
          // The server ended the watch at timeoutSeconds: continue where we were. One that
          // ends at once with nothing in it is something else (a proxy?): back off.
          if (events === 0 && this.#clock.now() - startedAt < SHORT_WATCH_MS)
            this.#retry(new Error("the watch ended at once without an event"));
          else void this.#run();
          return;
        }
        // 410: too old. Too large: this event cannot be read, a list (in pages as small as
        // it takes) can, and the watch then starts after it. Both: list again.
        if (httpStatus(err) === 410 || err instanceof ResponseTooLargeError) this.#rv = "";
        this.#retry(err);
      },
      () => {
        if (gen !== this.#generation) return;
        this.#progress();
        this.#armSilence(gen);
      },
    );
  }

  #armSilence(gen: number): void {
    this.#clock.clearTimeout(this.#silenceTimer);
    const ms = this.#silenceMs();
    this.#silenceTimer = unref(
      this.#clock.setTimeout(() => {
        if (gen !== this.#generation || this.#stopped) return;
        this.#watch?.abort();
        this.#watch = undefined;
        this.#retry(
          new Error(`no event and no bookmark for ${Math.round(ms / 1000)} s; the watch is stuck`),
        );
      }, ms),
    );
  }

  #reduce(obj: T): T {
    // Nothing reads managedFields; with thousands of objects they would be most of the cache.
    if (obj.metadata?.managedFields) obj.metadata.managedFields = undefined;
    if (!this.#transform) return obj;
    try {
      return this.#transform(obj);
    } catch (err) {
      // A bug in a transform must not stop the cache: this object is kept whole.
      this.#failed("transform", obj, err);
      return obj;
    }
  }

  /**
   * Calls a handler; an exception is logged with the object's key and counted, and the
   * informer carries on (the next event or re-list hands the object over again).
   */
  #handle(kind: "add" | "update" | "delete", obj: T): void {
    try {
      this.#handlers[kind]?.(obj);
    } catch (err) {
      this.#failed(kind, obj, err);
    }
  }

  #failed(what: string, obj: T, err: unknown): void {
    this.#client.stats.informerErrors++;
    this.#log.error(
      {
        object: keyOf(obj),
        in: what,
        err: err instanceof Error ? (err.stack ?? err.message) : String(err),
      },
      "informer handler failed; carrying on",
    );
  }

  #upsert(raw: T): void {
    const key = keyOf(raw);
    const old = this.#objects.get(key);
    const rv = raw.metadata?.resourceVersion;
    // A re-list or a re-watch repeats objects we already have: nothing changed.
    if (old && rv !== undefined && old.metadata?.resourceVersion === rv) return;
    const obj = this.#reduce(raw);
    this.#objects.set(key, obj);
    this.#handle(old ? "update" : "add", obj);
  }

  #retry(err: unknown): void {
    if (this.#stopped) return;
    // Invalidate callbacks of the attempt that failed, then wait [d, 2d) (client-go's jitter 1.0).
    this.#generation++;
    this.#clock.clearTimeout(this.#silenceTimer);
    this.#clock.clearTimeout(this.#retryTimer);
    // A server that answered 429 said when to come back: not sooner than that.
    const retryAfter = (err as { retryAfterMs?: number } | undefined)?.retryAfterMs ?? 0;
    const delay = Math.max(retryAfter, Math.round(this.#backoffMs * (1 + this.#random())));
    this.#backoffMs = Math.min(this.#backoffMs * 2, BACKOFF_MAX_MS);
    const level = httpStatus(err) === 410 ? "debug" : "warn";
    this.#log[level]({ err: describeError(err), retryInMs: delay }, "watch interrupted; resuming");
    this.#retryTimer = unref(this.#clock.setTimeout(() => void this.#run(), delay));
  }
}

function cacheKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ""}/${name}`;
}

function keyOf(obj: KubernetesObject): string {
  return cacheKey(obj.metadata?.namespace, obj.metadata?.name ?? "");
}
