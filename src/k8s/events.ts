// Kubernetes Events on the objects a component acts on: what `kubectl describe` shows.
// Repeats of the same event are folded into one Event with a count, as kubectl expects,
// so a Service that keeps failing does not flood the API. Events are the least urgent
// writes: a few at a time (`maxInFlight`), in the order emitted, so that a burst of them
// never holds the connections the status writes need.
import { randomBytes } from "node:crypto";
import type { Logger } from "../observability/log.ts";
import type { KubeClient } from "./client.ts";
import { describeError } from "./errors.ts";

/** The object an Event is about. */
export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  /** Empty for cluster-scoped objects (their events go to the "default" namespace). */
  namespace?: string;
  uid?: string;
}

/** The Event target for a Service. */
export function serviceTarget(svc: {
  metadata?: { name?: string; namespace?: string; uid?: string };
}): EventTarget {
  return {
    apiVersion: "v1",
    kind: "Service",
    name: svc.metadata?.name ?? "",
    namespace: svc.metadata?.namespace,
    uid: svc.metadata?.uid,
  };
}

interface Folded {
  name: string;
  namespace: string;
  count: number;
  last: number;
}

const FOLD_WINDOW_MS = 10 * 60_000;
/**
 * Folded events are swept for expired ones at most this often: a sweep per Event made a
 * burst of distinct Events quadratic (10,000 Services each told NotAnnounceable: 10,000
 * sweeps of 10,000 entries, most of the controller's time and garbage).
 */
const PRUNE_EVERY_MS = 60_000;
/** Events waiting beyond this are dropped (and counted in a log line): a bound on memory. */
const MAX_BACKLOG = 20_000;

interface Pending {
  target: EventTarget;
  type: "Normal" | "Warning";
  reason: string;
  message: string;
  at: number;
  done: () => void;
}

/** Emits Events without blocking the caller; API errors are logged, never thrown. */
export class EventRecorder {
  readonly #api: KubeClient;
  readonly #component: string;
  readonly #instance: string;
  readonly #log: Logger;
  readonly #folded = new Map<string, Folded>();
  readonly #now: () => number;
  readonly #maxInFlight: number;
  readonly #backlog: Pending[] = [];
  #inFlight = 0;
  #dropped = 0;
  #prunedAt = Number.NEGATIVE_INFINITY;

  /**
   * `now`: the wall clock (Event timestamps are wall-clock times); tests inject one.
   * `maxInFlight`: Event writes at once; the rest wait their turn.
   */
  constructor(
    api: KubeClient,
    component: string,
    instance: string,
    log: Logger,
    now: () => number = Date.now,
    maxInFlight = 2,
  ) {
    this.#api = api;
    this.#now = now;
    this.#maxInFlight = maxInFlight;
    this.#component = component;
    this.#instance = instance;
    this.#log = log;
  }

  /**
   * Records a Normal or Warning event, stamped now, written when its turn comes; returns a
   * promise (resolved once written or given up) only tests need to await.
   */
  emit(
    target: EventTarget,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
  ): Promise<void> {
    const at = this.#now();
    if (this.#backlog.length >= MAX_BACKLOG) {
      if (this.#dropped++ % 1000 === 0)
        this.#log.warn(
          { dropped: this.#dropped, reason, object: `${target.namespace ?? ""}/${target.name}` },
          "too many Events waiting: dropping some",
        );
      return Promise.resolve();
    }
    return new Promise<void>((done) => {
      this.#backlog.push({ target, type, reason, message, at, done });
      this.#pump();
    });
  }

  /** Events written or waiting (tests). */
  get pending(): number {
    return this.#backlog.length + this.#inFlight;
  }

  #pump(): void {
    while (this.#inFlight < this.#maxInFlight && this.#backlog.length > 0) {
      const p = this.#backlog.shift()!;
      this.#inFlight++;
      this.#emit(p.target, p.type, p.reason, p.message, p.at)
        .catch((err: unknown) => {
          this.#log.warn(
            {
              err: describeError(err),
              reason: p.reason,
              object: `${p.target.namespace ?? ""}/${p.target.name}`,
            },
            "could not record event",
          );
        })
        .finally(() => {
          this.#inFlight--;
          p.done();
          this.#pump();
        });
    }
  }

  async #emit(
    target: EventTarget,
    type: "Normal" | "Warning",
    reason: string,
    message: string,
    now: number,
  ): Promise<void> {
    const namespace = target.namespace || "default";
    const key = `${target.uid ?? `${namespace}/${target.kind}/${target.name}`}|${type}|${reason}|${message}`;
    const nowIso = new Date(now).toISOString();
    const prev = this.#folded.get(key);
    if (prev && now - prev.last < FOLD_WINDOW_MS) {
      prev.count++;
      prev.last = now;
      try {
        await this.#api.mergePatch(`/api/v1/namespaces/${prev.namespace}/events/${prev.name}`, {
          count: prev.count,
          lastTimestamp: nowIso,
        });
        return;
      } catch {
        // The event expired or was deleted: record a new one below.
      }
    }
    this.#prune(now);
    const name = `${target.name}.${randomBytes(8).toString("hex")}`;
    await this.#api.create(`/api/v1/namespaces/${namespace}/events`, {
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: target.apiVersion,
        kind: target.kind,
        name: target.name,
        namespace: target.namespace || undefined,
        uid: target.uid,
      },
      type,
      reason,
      message,
      count: 1,
      firstTimestamp: nowIso,
      lastTimestamp: nowIso,
      source: { component: this.#component, host: this.#instance },
      reportingComponent: `ironlb.dev/${this.#component}`,
      reportingInstance: this.#instance,
    });
    this.#folded.set(key, { name, namespace, count: 1, last: now });
  }

  #prune(now: number): void {
    if (this.#folded.size < 5000 || now - this.#prunedAt < PRUNE_EVERY_MS) return;
    this.#prunedAt = now;
    for (const [k, v] of this.#folded) if (now - v.last >= FOLD_WINDOW_MS) this.#folded.delete(k);
  }
}
