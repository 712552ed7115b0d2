// Leader election on a coordination.k8s.io Lease, so that two controller replicas can run
// and exactly one writes. Optimistic concurrency on the Lease's resourceVersion decides
// races. The timing argument: a successful renewal that *started* at t means no other
// replica can consider the lease expired before t + leaseDuration (they time it from when
// they saw it change, which is later). This replica stops leading at t + renewDeadline,
// from a timer of its own on a monotonic clock, whatever its requests are doing: every
// attempt is aborted at that deadline, and writes pass a fence (writeSignal) that is
// closed from then on and aborts writes in flight. leaseDuration - renewDeadline is the
// margin for a write that left before the deadline and is still on its way.
import type { V1Lease } from "@kubernetes/client-node";
import type { Logger } from "../observability/log.ts";
import type { KubeClient, WriteFence } from "./client.ts";
import { type Clock, monotonicClock, type TimerHandle } from "./clock.ts";
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
  /** Monotonic clock and timers (tests inject a fake one). */
  clock?: Clock;
  /** Wall clock, only for the timestamps written into the Lease (informational). */
  wallClock?: () => number;
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

/** Refusal of the write fence: this replica does not lead (any more). */
export class NotLeaderError extends Error {
  constructor(message = "not the leader: write refused") {
    super(message);
    this.name = "NotLeaderError";
  }
}

/** Kubernetes MicroTime: RFC 3339 with microseconds. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
}

type Attempt = "acquired" | "held-by-other" | "failed";

/** Runs the election loop; calls onStarted when elected and onStopped when leadership is lost. */
export class LeaderElector implements WriteFence {
  readonly #api: KubeClient;
  readonly #o: Required<Omit<LeaderElectionOptions, "clock" | "wallClock">>;
  readonly #clock: Clock;
  readonly #wall: () => number;
  readonly #log: Logger;
  readonly #path: string;
  #leading = false;
  #running = false;
  #stopped = false;
  #tickTimer: TimerHandle;
  #stepDownTimer: TimerHandle;
  /** Monotonic start time of the last successful acquire or renew. */
  #renewedAt = Number.NEGATIVE_INFINITY;
  /** Monotonic time the last attempt ended (health: the loop is alive). */
  #lastAttemptEnd = 0;
  /** Aborted when this term ends: cuts off writes in flight. */
  #term = new AbortController();
  #onStopped: () => void = () => {};
  /** The Lease version last seen, and when (monotonic) it was first seen. */
  #observed: { rv: string; localSeen: number } | undefined;

  constructor(api: KubeClient, opts: LeaderElectionOptions, log: Logger) {
    this.#api = api;
    const { clock, wallClock, ...rest } = opts;
    this.#o = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...rest };
    if (this.#o.renewDeadlineMs >= this.#o.leaseDurationMs)
      throw new Error("the renew deadline must be shorter than the lease duration");
    this.#clock = clock ?? monotonicClock;
    this.#wall = wallClock ?? Date.now;
    this.#log = log.child({ lease: `${opts.namespace}/${opts.name}` });
    this.#path = `/apis/coordination.k8s.io/v1/namespaces/${opts.namespace}/leases`;
  }

  /** True while this replica leads: it renewed the lease less than the renew deadline ago. */
  isLeader(): boolean {
    return this.#leading && this.#clock.now() - this.#renewedAt < this.#o.renewDeadlineMs;
  }

  /** The write fence: throws unless leading; the signal aborts when the term ends. */
  writeSignal(): AbortSignal {
    if (!this.isLeader()) throw new NotLeaderError();
    return this.#term.signal;
  }

  /**
   * Why the election is not healthy, or undefined: a leader must be within its renew
   * deadline; a candidate's loop must have finished an attempt recently (each attempt
   * ends by the renew deadline, then waits the retry period).
   */
  unhealthy(): string | undefined {
    if (!this.#running || this.#stopped) return undefined;
    if (this.#leading)
      return this.isLeader() ? undefined : "leader did not renew within the renew deadline";
    const since = this.#clock.now() - this.#lastAttemptEnd;
    const bound = 2 * (this.#o.renewDeadlineMs + this.#o.retryPeriodMs);
    return since > bound
      ? `no lease attempt finished for ${Math.round(since / 1000)} s`
      : undefined;
  }

  /** Starts campaigning. */
  run(onStarted: () => void, onStopped: () => void): void {
    this.#running = true;
    this.#onStopped = onStopped;
    this.#lastAttemptEnd = this.#clock.now();
    const tick = async () => {
      if (this.#stopped) return;
      const start = this.#clock.now();
      // A leader's attempt ends at its renew deadline; a candidate's gets as long.
      const budget = this.#leading
        ? this.#renewedAt + this.#o.renewDeadlineMs - start
        : this.#o.renewDeadlineMs;
      const attempt = new AbortController();
      const cancel = this.#clock.setTimeout(
        () => attempt.abort(new Error("renew deadline passed")),
        Math.max(0, budget),
      );
      let result: Attempt;
      try {
        result = await this.#tryAcquireOrRenew(attempt.signal);
      } catch (err) {
        this.#log.warn({ err: describeError(err) }, "lease attempt failed");
        result = "failed";
      }
      this.#clock.clearTimeout(cancel);
      this.#lastAttemptEnd = this.#clock.now();
      if (this.#stopped) return;
      if (result === "acquired") {
        this.#renewedAt = start;
        if (!this.#leading) {
          this.#leading = true;
          this.#term = new AbortController();
          this.#log.info({ identity: this.#o.identity }, "became leader");
          onStarted();
        }
        this.#armStepDown();
      } else if (result === "held-by-other" && this.#leading) {
        this.#stepDown("another replica holds the lease");
      }
      if (!this.#stopped) this.#tickTimer = this.#clock.setTimeout(tick, this.#o.retryPeriodMs);
    };
    void tick();
  }

  /** Stops campaigning; a leader gives the lease up so that another replica takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#clock.clearTimeout(this.#tickTimer);
    this.#clock.clearTimeout(this.#stepDownTimer);
    const wasLeader = this.isLeader();
    this.#leading = false;
    this.#term.abort(new NotLeaderError("stopping"));
    if (!wasLeader) return;
    // A renewal of ours still in flight may land between the read and the write (409):
    // read again, or the other replicas wait out the whole lease duration.
    for (let attempt = 1; ; attempt++) {
      try {
        const lease = await this.#api.get<Lease>(`${this.#path}/${this.#o.name}`);
        if (lease.spec?.holderIdentity !== this.#o.identity) return;
        lease.spec.holderIdentity = undefined;
        lease.spec.leaseDurationSeconds = 1;
        lease.spec.renewTime = microTime(0);
        await this.#api.replace(`${this.#path}/${this.#o.name}`, lease);
        this.#log.info("released leadership");
        return;
      } catch (err) {
        if (httpStatus(err) === 409 && attempt < 3) continue;
        this.#log.warn({ err: describeError(err) }, "could not release the lease");
        return;
      }
    }
  }

  #armStepDown(): void {
    this.#clock.clearTimeout(this.#stepDownTimer);
    const left = this.#renewedAt + this.#o.renewDeadlineMs - this.#clock.now();
    this.#stepDownTimer = this.#clock.setTimeout(
      () => {
        if (!this.#leading) return;
        // Timers may fire a little early by the monotonic clock's reckoning: then wait on.
        if (this.isLeader()) this.#armStepDown();
        else this.#stepDown("could not renew the lease in time");
      },
      Math.max(0, left),
    );
  }

  #stepDown(why: string): void {
    this.#leading = false;
    this.#clock.clearTimeout(this.#stepDownTimer);
    this.#term.abort(new NotLeaderError(`not the leader any more: ${why}`));
    this.#log.error({ identity: this.#o.identity, reason: why }, "lost leadership");
    this.#onStopped();
  }

  async #tryAcquireOrRenew(signal: AbortSignal): Promise<Attempt> {
    const { namespace, name, identity } = this.#o;
    const now = microTime(this.#wall());
    const durationS = Math.ceil(this.#o.leaseDurationMs / 1000);
    let lease: Lease;
    try {
      lease = await this.#api.get<Lease>(`${this.#path}/${name}`, undefined, signal);
    } catch (err) {
      if (httpStatus(err) !== 404) {
        this.#log.warn({ err: describeError(err) }, "reading the lease failed");
        return "failed";
      }
      try {
        await this.#api.create(
          this.#path,
          {
            metadata: { name, namespace },
            spec: {
              holderIdentity: identity,
              leaseDurationSeconds: durationS,
              acquireTime: now,
              renewTime: now,
              leaseTransitions: 0,
            },
          },
          signal,
        );
        return "acquired";
      } catch (err2) {
        if (httpStatus(err2) !== 409)
          this.#log.warn({ err: describeError(err2) }, "creating the lease failed");
        return "failed";
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    const rv = lease.metadata?.resourceVersion ?? "";
    // Expiry is judged by when *we* last saw the lease change, on our monotonic clock:
    // neither the holder's clock nor a jump of ours matters.
    if (!this.#observed || this.#observed.rv !== rv)
      this.#observed = { rv, localSeen: this.#clock.now() };
    const durationMs = (spec.leaseDurationSeconds ?? durationS) * 1000;
    const expired = holder === "" || this.#clock.now() - this.#observed.localSeen > durationMs;
    if (holder !== identity && !expired) return "held-by-other";
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
      const updated = await this.#api.replace<Lease>(`${this.#path}/${name}`, body, signal);
      this.#observed = {
        rv: updated.metadata?.resourceVersion ?? "",
        localSeen: this.#clock.now(),
      };
      return "acquired";
    } catch (err) {
      if (httpStatus(err) === 409) return this.#leading ? "failed" : "held-by-other";
      this.#log.warn({ err: describeError(err) }, "renewing the lease failed");
      return "failed";
    }
  }
}
