// Issue 16: configuration never costs an IP. A frozen pool (its object cannot be read) keeps
// what it gave and gives nothing new; an edit that cannot be met keeps the Service's IPs
// (retain) where they are still legal for it, and only then.
import { describe, expect, it } from "vitest";
import { Allocator } from "./allocator.ts";
import { okIPs, pool, REQUIRE_DUAL, svc } from "./testkit.ts";
import type { AllocationResult, FailureReason, PoolSpec } from "./types.ts";

function withPools(...pools: PoolSpec[]): Allocator {
  const a = new Allocator();
  a.setPools(pools);
  return a;
}

function failure(r: AllocationResult): { reason: FailureReason; message: string } {
  if (r.ok) throw new Error(`expected a failure, got ${r.ips.join(",")} from ${r.pool}`);
  return { reason: r.reason, message: r.message };
}

describe("a frozen pool", () => {
  it("keeps every IP it gave across setPools and restore, and gives no new one", () => {
    const a = withPools(pool("p", ["192.0.2.0/30"]));
    expect(okIPs(a.assign(svc("ns/a"))).ips).toEqual(["192.0.2.0"]);
    a.setPools([pool("p", ["192.0.2.0/30"], { frozen: true })]);
    expect(a.invalidated()).toEqual([]);
    expect(a.get("ns/a")).toEqual({ ips: ["192.0.2.0"], pool: "p" });
    // Reconciles of the holder keep its IP.
    expect(okIPs(a.assign(svc("ns/a"))).ips).toEqual(["192.0.2.0"]);
    // Nothing new, automatically or by name or by IP.
    expect(failure(a.assign(svc("ns/b"))).reason).toBe("NoMatchingPool");
    expect(failure(a.assign(svc("ns/b"))).message).toMatch("p: it is frozen");
    expect(failure(a.assign(svc("ns/c", { pool: "p" }))).reason).toBe("PoolFrozen");
    expect(failure(a.assign(svc("ns/d", { requestedIPs: ["192.0.2.1"] }))).reason).toBe(
      "PoolFrozen",
    );
    // A controller restart next to a frozen pool restores its IPs.
    const b = withPools(pool("p", ["192.0.2.0/30"], { frozen: true }));
    expect(okIPs(b.restore(svc("ns/a"), ["192.0.2.0"])).ips).toEqual(["192.0.2.0"]);
    expect(b.reports()[0]).toMatchObject({ assignedIPv4: 1 });
  });

  it("lets a holder ask for its own IP, and other pools serve new Services", () => {
    const a = withPools(pool("p", ["192.0.2.0/30"]), pool("q", ["198.51.100.0/30"]));
    expect(okIPs(a.assign(svc("ns/a"))).ips).toEqual(["192.0.2.0"]);
    a.setPools([pool("p", ["192.0.2.0/30"], { frozen: true }), pool("q", ["198.51.100.0/30"])]);
    expect(okIPs(a.assign(svc("ns/a", { requestedIPs: ["192.0.2.0"] }))).ips).toEqual([
      "192.0.2.0",
    ]);
    expect(okIPs(a.assign(svc("ns/b"))).pool).toBe("q");
  });

  it("does not give a holder a second family it lacks; it keeps what it has", () => {
    const a = withPools(pool("p", ["192.0.2.0/30", "2001:db8::/126"]));
    okIPs(a.assign(svc("ns/a")));
    a.setPools([pool("p", ["192.0.2.0/30", "2001:db8::/126"], { frozen: true })]);
    const r = failure(a.assign(svc("ns/a", { families: REQUIRE_DUAL })));
    expect(r.reason).toBe("PoolFrozen");
    expect(a.get("ns/a")).toEqual({ ips: ["192.0.2.0"], pool: "p" });
  });
});

describe("retain after a failed assign", () => {
  // Each row: the edit that cannot be met, and whether the Service keeps 192.0.2.0.
  const rows: {
    name: string;
    setup?: (a: Allocator) => void;
    edit: Parameters<typeof svc>[1];
    assignFails: FailureReason;
    keeps: boolean;
    retainFails?: FailureReason;
  }[] = [
    {
      name: "a pool that does not exist",
      edit: { pool: "typo" },
      assignFails: "PoolNotFound",
      keeps: true,
    },
    {
      name: "an IP another Service holds",
      setup: (a) => okIPs(a.assign(svc("other/x"))),
      edit: { requestedIPs: ["192.0.2.1"] },
      assignFails: "IPInUse",
      keeps: true,
    },
    {
      name: "an IP in no pool",
      edit: { requestedIPs: ["203.0.113.9"] },
      assignFails: "IPNotInPool",
      keeps: true,
    },
    {
      name: "a pool the Service's namespace may not use (access control wins)",
      edit: { namespace: "elsewhere", pool: "p" },
      assignFails: "NoMatchingPool",
      keeps: false,
      retainFails: "NoMatchingPool",
    },
    {
      name: "another family only",
      edit: { families: [{ family: "IPv6", required: true }] },
      assignFails: "FamilyUnavailable",
      keeps: false,
      retainFails: "FamilyUnavailable",
    },
  ];
  for (const row of rows) {
    it(`${row.name}: ${row.keeps ? "keeps" : "does not keep"} the IP`, () => {
      const a = withPools(pool("p", ["192.0.2.0/30"], { namespaces: ["ns", "other"] }));
      okIPs(a.assign(svc("ns/a")));
      row.setup?.(a);
      const req = svc("ns/a", row.edit);
      expect(failure(a.assign(req)).reason).toBe(row.assignFails);
      const r = a.retain(req);
      if (row.keeps) {
        expect(okIPs(r)).toEqual({ ips: ["192.0.2.0"], pool: "p" });
        expect(a.get("ns/a")).toEqual({ ips: ["192.0.2.0"], pool: "p" });
      } else {
        expect(failure(r).reason).toBe(row.retainFails);
        // Failing changes nothing: the caller releases.
        expect(a.get("ns/a")).toEqual({ ips: ["192.0.2.0"], pool: "p" });
      }
    });
  }

  it("refuses when the new request may not share the IP with its other holders", () => {
    const a = withPools(pool("p", ["192.0.2.0/30"]));
    okIPs(a.assign(svc("ns/a", { sharingKey: "k" })));
    okIPs(a.assign(svc("ns/b", { sharingKey: "k", ports: [{ protocol: "TCP", port: 443 }] })));
    expect(a.holders("192.0.2.0")).toEqual(["ns/a", "ns/b"]);
    // ns/b now asks for a missing pool and for port 80, which ns/a serves on that IP.
    const req = svc("ns/b", { sharingKey: "k", pool: "typo" });
    expect(failure(a.assign(req)).reason).toBe("PoolNotFound");
    expect(failure(a.retain(req)).reason).toBe("SharingRefused");
  });

  it("records the new request, so later sharing checks use it", () => {
    const a = withPools(pool("p", ["192.0.2.0/30"]));
    okIPs(a.assign(svc("ns/a", { sharingKey: "k" })));
    const req = svc("ns/a", { sharingKey: "k2", pool: "typo" });
    expect(failure(a.assign(req)).reason).toBe("PoolNotFound");
    okIPs(a.retain(req));
    // A Service with the old key no longer finds ns/a's IP to share.
    const c = okIPs(
      a.assign(svc("ns/c", { sharingKey: "k", ports: [{ protocol: "UDP", port: 53 }] })),
    );
    expect(c.ips).toEqual(["192.0.2.1"]);
    const d = okIPs(
      a.assign(svc("ns/d", { sharingKey: "k2", ports: [{ protocol: "UDP", port: 53 }] })),
    );
    expect(d.ips).toEqual(["192.0.2.0"]);
  });

  it("fails for a Service that holds nothing", () => {
    const a = withPools(pool("p", ["192.0.2.0/30"]));
    expect(failure(a.retain(svc("ns/a"))).reason).toBe("InvalidRequest");
  });
});

describe("a frozen pool and sharing", () => {
  it("keeps an IP shared across namespaces when frozen on a spec that allows it", () => {
    const open = pool("p", ["192.0.2.0/30"], { allowSharingAcrossNamespaces: true });
    const a = withPools(open);
    okIPs(a.assign(svc("bank/s", { sharingKey: "k" })));
    const e = okIPs(
      a.assign(svc("evil/s", { sharingKey: "k", ports: [{ protocol: "TCP", port: 443 }] })),
    );
    expect(e.ips).toEqual(["192.0.2.0"]);
    a.setPools([{ ...open, frozen: true }]);
    expect(a.invalidated()).toEqual([]);
    expect(a.holders("192.0.2.0")).toEqual(["bank/s", "evil/s"]);
    // Nobody new joins a frozen pool's IP.
    const late = a.assign(
      svc("late/s", { sharingKey: "k", ports: [{ protocol: "UDP", port: 53 }] }),
    );
    expect(late.ok).toBe(false);
  });
});
