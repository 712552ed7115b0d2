// A watch-backed cache of one resource type that keeps itself alive: client-node's
// ListWatch stops on errors other than 410, so this restarts it with backoff and tells
// the caller when the first full list has been seen (the cache is "synced").
import {
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  ListWatch,
  Watch,
} from "@kubernetes/client-node";
import type { Logger } from "../observability/log.ts";
import { describeError } from "./client.ts";

export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(obj: T): void;
  delete?(obj: T): void;
}

/**
 * Drops metadata.managedFields from a cached object: nothing here reads them, and with
 * thousands of Services they would be most of the cache's memory.
 */
function slim(obj: KubernetesObject): void {
  if (obj.metadata?.managedFields) obj.metadata.managedFields = undefined;
}

/** A resource cache plus change notifications. */
export class Informer<T extends KubernetesObject> {
  readonly #lw: ListWatch<T>;
  readonly #log: Logger;
  #synced = false;
  #stopped = false;
  #backoffMs = 500;
  #syncWaiters: (() => void)[] = [];

  /**
   * @param path the watch path, e.g. "/api/v1/services"
   * @param list lists the resource (used for the initial list and after a lost watch)
   */
  constructor(
    kc: KubeConfig,
    path: string,
    list: () => Promise<KubernetesListObject<T>>,
    handlers: InformerHandlers<T>,
    log: Logger,
    labelSelector?: string,
  ) {
    this.#log = log.child({ watch: path });
    const listAndMarkSynced = async () => {
      const result = await list();
      for (const item of result.items) slim(item);
      // ListWatch delivers the list's items as add/update before returning to the
      // watch; marking sync on the next tick means handlers have seen every item.
      setImmediate(() => this.#markSynced());
      return result;
    };
    this.#lw = new ListWatch<T>(path, new Watch(kc), listAndMarkSynced, false, labelSelector);
    // Registered first, so that the cached object is slimmed before anyone sees it.
    this.#lw.on("add", slim);
    this.#lw.on("update", slim);
    if (handlers.add) this.#lw.on("add", handlers.add);
    if (handlers.update) this.#lw.on("update", handlers.update);
    if (handlers.delete) this.#lw.on("delete", handlers.delete);
    this.#lw.on("connect", () => {
      this.#backoffMs = 500;
    });
    this.#lw.on("error", (err) => this.#restart(err));
  }

  /** Starts listing and watching. Resolves when the watch has started. */
  async start(): Promise<void> {
    try {
      await this.#lw.start();
    } catch (err) {
      this.#restart(err);
    }
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
    return this.#lw.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    return this.#lw.list(namespace);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#lw.stop();
  }

  #markSynced(): void {
    if (this.#synced) return;
    this.#synced = true;
    for (const w of this.#syncWaiters.splice(0)) w();
  }

  #restart(err: unknown): void {
    if (this.#stopped) return;
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, 30_000);
    this.#log.warn({ err: describeError(err), retryInMs: delay }, "watch failed; restarting");
    setTimeout(() => {
      if (!this.#stopped) void this.start();
    }, delay).unref();
  }
}
