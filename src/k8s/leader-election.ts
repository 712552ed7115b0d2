// Leader election on a coordination.k8s.io Lease, so that two controller replicas can run
// and exactly one writes. Optimistic concurrency on the Lease's resourceVersion decides
// races; a leader that cannot renew in time steps down before another can take over.
import type { V1Lease } from "@kubernetes/client-node";
import type { Logger } from "../observability/log.ts";
import type { KubeClient } from "./client.ts";
import { describeError, httpStatus } from "./errors.ts";

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  /** This replica's identity (pod name). */
  identity: string;
  /** How long a lease is valid without renewal (default 15 s). */
  leaseDurationMs?: number;
  /** A leader that has not renewed within this time steps down (default 10 s). */
  renewDeadlineMs?: number;
  /** How often to try to acquire or renew (default 2 s). */
  retryPeriodMs?: number;
}

/** The wire form of a Lease (timestamps are strings on the wire). */
type Lease = Omit<V1Lease, "spec"> & {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
};

/** Kubernetes MicroTime: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

/** Runs the election loop; calls onStarted when elected and onStopped when leadership is lost. */
export class LeaderElector {
  readonly #api: KubeClient;
  readonly #o: Required<LeaderElectionOptions>;
  readonly #log: Logger;
  readonly #path: string;
  #leading = false;
  #stopped = false;
  #timer: NodeJS.Timeout | undefined;
  #lastRenew = 0;
  /** The Lease version last seen, and when (local clock) it was first seen. */
  #observed: { rv: string; localSeen: number } | undefined;

  constructor(api: KubeClient, opts: LeaderElectionOptions, log: Logger) {
    this.#api = api;
    this.#o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...opts };
    this.#log = log.child({ lease: `${opts.namespace}/${opts.name}` });
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${opts.namespace}/leases`;
  }

  get leading(): boolean {
    return this.#leading;
  }

  /** Starts campaigning. */
  run(onStarted: () => void, onStopped: () => void): void {
    const tick = async () => {
      if (this.#stopped) return;
      const ok = await this.#tryAcquireOrRenew();
      const now = Date.now();
      if (ok) {
        this.#lastRenew = now;
        if (!this.#leading) {
          this.#leading = true;
          this.#log.info({ identity: this.#o.identity }, "became leader");
          onStarted();
        }
      } else if (this.#leading && now - this.#lastRenew > this.#o.renewDeadlineMs) {
        this.#leading = false;
        this.#log.error({ identity: this.#o.identity }, "lost leadership");
        onStopped();
      }
      if (!this.#stopped) this.#timer = setTimeout(tick, this.#o.retryPeriodMs);
    };
    void tick();
  }

  /** Stops campaigning; a leader gives the lease up so that another replica takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    if (!this.#leading) return;
    this.#leading = false;
    try {
      const lease = await this.#api.get<Lease>(`${this.#path}/${this.#o.name}`);
      if (lease.spec?.holderIdentity !== this.#o.identity) return;
      lease.spec.holderIdentity = undefined;
      lease.spec.leaseDurationSeconds = 1;
      lease.spec.renewTime = microTime(0);
      await this.#api.replace(`${this.#path}/${this.#o.name}`, lease);
      this.#log.info("released leadership");
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, "could not release the lease");
    }
  }

  async #tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity } = this.#o;
    const now = microTime(Date.now());
    const durationS = Math.ceil(this.#o.leaseDurationMs / 1000);
    let lease: Lease;
    try {
      lease = await this.#api.get<Lease>(`${this.#path}/${name}`);
    } catch (err) {
      if (httpStatus(err) !== 404) {
        this.#log.warn({ err: describeError(err) }, "reading the lease failed");
        return false;
      }
      try {
        await this.#api.create(this.#path, {
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds: durationS,
            acquireTime: now,
            renewTime: now,
            leaseTransitions: 0,
          },
        });
        return true;
      } catch (err2) {
        if (httpStatus(err2) !== 409)
          this.#log.warn({ err: describeError(err2) }, "creating the lease failed");
        return false;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    const rv = lease.metadata?.resourceVersion ?? "";
    // Expiry is judged by when *we* last saw the lease change, not by the holder's clock.
    if (!this.#observed || this.#observed.rv !== rv) this.#observed = { rv, localSeen: Date.now() };
    const durationMs = (spec.leaseDurationSeconds ?? durationS) * 1000;
    const expired = holder === "" || Date.now() - this.#observed.localSeen > durationMs;
    if (holder !== identity && !expired) return false;
    const body: Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: durationS,
        renewTime: now,
        acquireTime: holder === identity ? spec.acquireTime : now,
        leaseTransitions: (spec.leaseTransitions ?? 0) + (holder === identity ? 0 : 1),
      },
    };
    try {
      const updated = await this.#api.replace<Lease>(`${this.#path}/${name}`, body);
      this.#observed = { rv: updated.metadata?.resourceVersion ?? "", localSeen: Date.now() };
      return true;
    } catch (err) {
      if (httpStatus(err) !== 409)
        this.#log.warn({ err: describeError(err) }, "renewing the lease failed");
      return false;
    }
  }
}
