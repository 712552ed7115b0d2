import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { KubeClient } from "./client.ts";
import { EarlyFakeClock, FakeClock } from "./fake-clock.ts";
import { LeaderElector, NotLeaderError } from "./leader-election.ts";

const log = pino({ level: "silent" });

interface StoredLease {
  metadata: { name: string; namespace: string; resourceVersion: string };
  spec: Record<string, unknown> & { holderIdentity?: string };
}

/**
 * A Lease store standing in for the API server (get/create/replace with optimistic
 * concurrency). `hang` makes every request wait until its signal aborts.
 */
class FakeLeaseApi {
  lease: StoredLease | undefined;
  rv = 0;
  hang = false;
  /** Signals of requests that hung, to check they were aborted. */
  hung: AbortSignal[] = [];
  calls = 0;

  #wait<T>(signal: AbortSignal | undefined, answer: () => T): Promise<T> {
    this.calls++;
    if (!this.hang) {
      try {
        return Promise.resolve(answer());
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise((_resolve, reject) => {
      if (!signal) return; // never answers: the old behaviour this guards against
      this.hung.push(signal);
      signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    });
  }

  get = (_p: string, _q?: unknown, signal?: AbortSignal) =>
    this.#wait(signal, () => {
      if (!this.lease) throw Object.assign(new Error("not found"), { code: 404 });
      return structuredClone(this.lease);
    });

  create = (_p: string, body: StoredLease, signal?: AbortSignal) =>
    this.#wait(signal, () => {
      if (this.lease) throw Object.assign(new Error("exists"), { code: 409 });
      this.lease = { ...body, metadata: { ...body.metadata, resourceVersion: String(++this.rv) } };
      return structuredClone(this.lease);
    });

  replace = (_p: string, body: StoredLease, signal?: AbortSignal) =>
    this.#wait(signal, () => {
      if (body.metadata.resourceVersion !== this.lease?.metadata.resourceVersion)
        throw Object.assign(new Error("conflict"), { code: 409 });
      this.lease = { ...body, metadata: { ...body.metadata, resourceVersion: String(++this.rv) } };
      return structuredClone(this.lease);
    });

  /** Another replica renews (or takes) the lease. */
  otherWrites(holder: string): void {
    this.lease = {
      metadata: { name: "ctl", namespace: "ns", resourceVersion: String(++this.rv) },
      spec: { ...this.lease?.spec, holderIdentity: holder, leaseDurationSeconds: 15 },
    };
  }
}

/** Lets pending promise callbacks run (the fake API answers without I/O). */
const settle = () => new Promise((r) => setImmediate(r));

/** Advances the fake clock in small steps, letting the elector's awaits resolve between. */
async function advance(clock: FakeClock, ms: number, step = 100): Promise<void> {
  for (let t = 0; t < ms; t += step) {
    clock.advance(Math.min(step, ms - t));
    await settle();
  }
}

const electors: LeaderElector[] = [];
function elector(api: FakeLeaseApi, clock: FakeClock, identity: string, wallClock?: () => number) {
  const e = new LeaderElector(
    api as unknown as KubeClient,
    {
      namespace: "ns",
      name: "ctl",
      identity,
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      clock,
      wallClock,
    },
    log,
  );
  electors.push(e);
  return e;
}

afterEach(async () => {
  for (const e of electors.splice(0)) await e.stop();
});

describe("LeaderElector", () => {
  it("acquires a free lease and renews it every retry period", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const e = elector(api, clock, "a");
    let started = 0;
    e.run(
      () => started++,
      () => {},
    );
    await settle();
    expect(started).toBe(1);
    expect(e.isLeader()).toBe(true);
    expect(api.lease?.spec.holderIdentity).toBe("a");
    const rv = api.rv;
    await advance(clock, 6_100);
    expect(api.rv).toBeGreaterThanOrEqual(rv + 3);
    expect(e.isLeader()).toBe(true);
    expect(e.unhealthy()).toBeUndefined();
  });

  it("steps down at the renew deadline while a renewal hangs, before the lease can expire", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const e = elector(api, clock, "a");
    let stoppedAt: number | undefined;
    e.run(
      () => {},
      () => {
        stoppedAt = clock.now();
      },
    );
    await settle();
    const renewedAt = clock.now();
    expect(e.isLeader()).toBe(true);
    const fence = e.writeSignal();
    api.hang = true; // the next renewal (at +2 s) never gets an answer
    await advance(clock, 9_900);
    expect(e.isLeader()).toBe(true);
    await advance(clock, 200);
    // Stepped down 10 s after the last successful renewal started: 5 s before expiry.
    expect(stoppedAt).toBeDefined();
    expect(stoppedAt! - renewedAt).toBeLessThanOrEqual(10_000);
    expect(e.isLeader()).toBe(false);
    expect(e.unhealthy()).toBeUndefined();
    // The hung renewal was cancelled and writes are fenced off.
    expect(api.hung.length).toBeGreaterThan(0);
    expect(api.hung.every((s) => s.aborted)).toBe(true);
    expect(fence.aborted).toBe(true);
    expect(() => e.writeSignal()).toThrow(NotLeaderError);
    // After 25 s of hanging it still does not claim to lead (the scenario).
    await advance(clock, 15_000);
    expect(e.isLeader()).toBe(false);
  });

  it("the fence closes at the deadline even when timers run late (a stalled event loop)", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const e = elector(api, clock, "a");
    e.run(
      () => {},
      () => {},
    );
    await settle();
    api.hang = true;
    // Time passes and no timer runs (a long GC pause, CPU starvation): the fence judges
    // by the clock, not by whether the step-down timer has fired yet.
    clock.stall(9_999);
    expect(() => e.writeSignal()).not.toThrow();
    clock.stall(1);
    expect(e.isLeader()).toBe(false);
    expect(() => e.writeSignal()).toThrow(NotLeaderError);
  });

  it("steps down even when its timer fires a little early", async () => {
    const api = new FakeLeaseApi();
    const clock = new EarlyFakeClock(1);
    const e = elector(api, clock, "a");
    let stopped = 0;
    e.run(
      () => {},
      () => stopped++,
    );
    await settle();
    api.hang = true;
    await advance(clock, 10_500);
    expect(e.isLeader()).toBe(false);
    expect(stopped).toBe(1);
  });

  it("with Node's own timers (faked), a hung renewal ends leadership before the lease expires", async () => {
    vi.useFakeTimers();
    try {
      const api = new FakeLeaseApi();
      const e = new LeaderElector(
        api as unknown as KubeClient,
        { namespace: "ns", name: "ctl", identity: "a" },
        log,
      );
      electors.push(e);
      let stopped = 0;
      e.run(
        () => {},
        () => stopped++,
      );
      await vi.advanceTimersByTimeAsync(10);
      expect(e.isLeader()).toBe(true);
      api.hang = true;
      await vi.advanceTimersByTimeAsync(14_000);
      expect(e.isLeader()).toBe(false);
      expect(stopped).toBe(1);
      await vi.advanceTimersByTimeAsync(11_000);
      expect(e.isLeader()).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it("steps down at once when another replica holds the lease", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const e = elector(api, clock, "a");
    let stopped = 0;
    e.run(
      () => {},
      () => stopped++,
    );
    await settle();
    expect(e.isLeader()).toBe(true);
    api.otherWrites("b"); // e.g. someone force-took the lease
    await advance(clock, 2_100);
    expect(stopped).toBe(1);
    expect(e.isLeader()).toBe(false);
  });

  it("a candidate waits for the lease to stay unchanged for its duration, on its own clock", async () => {
    const api = new FakeLeaseApi();
    api.otherWrites("a");
    const clock = new FakeClock();
    const b = elector(api, clock, "b");
    let started = 0;
    b.run(
      () => started++,
      () => {},
    );
    // a keeps renewing: b never takes over.
    for (let i = 0; i < 20; i++) {
      await advance(clock, 2_000, 500);
      api.otherWrites("a");
    }
    expect(started).toBe(0);
    expect(b.unhealthy()).toBeUndefined();
    // a dies: b takes over only after the lease stayed unchanged for 15 s.
    const diedAt = clock.now();
    await advance(clock, 14_000, 500);
    expect(started).toBe(0);
    await advance(clock, 4_000, 500);
    expect(started).toBe(1);
    expect(clock.now() - diedAt).toBeGreaterThan(15_000);
    expect(api.lease?.spec.holderIdentity).toBe("b");
    expect(api.lease?.spec.leaseTransitions).toBe(1);
  });

  it("a wall-clock jump changes nothing: neither the leader nor a candidate", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    let wall = Date.parse("2026-01-01T00:00:00Z");
    const a = elector(api, clock, "a", () => wall);
    const b = elector(api, clock, "b", () => wall);
    let aStopped = 0;
    let bStarted = 0;
    a.run(
      () => {},
      () => aStopped++,
    );
    await settle();
    b.run(
      () => bStarted++,
      () => {},
    );
    await advance(clock, 3_000);
    wall += 3_600_000; // an hour forward
    await advance(clock, 10_000);
    wall -= 7_200_000; // two hours back
    await advance(clock, 10_000);
    expect(a.isLeader()).toBe(true);
    expect(aStopped).toBe(0);
    expect(bStarted).toBe(0);
    expect(api.lease?.spec.holderIdentity).toBe("a");
  });

  it("a candidate whose attempts hang is cancelled and keeps trying (healthy loop)", async () => {
    const api = new FakeLeaseApi();
    api.otherWrites("a");
    api.hang = true;
    const clock = new FakeClock();
    const b = elector(api, clock, "b");
    b.run(
      () => {},
      () => {},
    );
    await advance(clock, 60_000, 500);
    expect(api.hung.length).toBeGreaterThanOrEqual(4);
    expect(api.hung.slice(0, -1).every((s) => s.aborted)).toBe(true);
    expect(b.unhealthy()).toBeUndefined();
  });

  it("stop() gives the lease up", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const e = elector(api, clock, "a");
    e.run(
      () => {},
      () => {},
    );
    await settle();
    await e.stop();
    expect(api.lease?.spec.holderIdentity).toBeUndefined();
    expect(e.isLeader()).toBe(false);
  });

  it("stop() gives the lease up even when a renewal of its own lands in between", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const e = elector(api, clock, "a");
    e.run(
      () => {},
      () => {},
    );
    await settle();
    expect(e.isLeader()).toBe(true);
    // The renewal that was in flight when stop() began reaches the server after stop()
    // read the Lease: the release is then a write against an older version.
    const get = api.get;
    api.get = async (...args) => {
      const read = await get(...args);
      api.get = get;
      api.otherWrites("a");
      return read;
    };
    await e.stop();
    expect(api.lease?.spec.holderIdentity).toBeUndefined();
  });
});
