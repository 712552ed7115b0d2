import { describe, expect, it } from "vitest";
import { Allocator } from "./allocator.ts";
import { okIPs, PREFER_DUAL, pool, REQUIRE_DUAL, SINGLE_V6, svc } from "./testkit.ts";
import type { AllocationResult, FailureReason, PoolSpec, ServiceRequest } from "./types.ts";

function withPools(...pools: PoolSpec[]): Allocator {
  const a = new Allocator();
  a.setPools(pools);
  return a;
}

function expectFailure(r: AllocationResult, reason: FailureReason, message?: RegExp | string) {
  if (r.ok) throw new Error(`expected ${reason}, got ${r.ips.join(",")} from ${r.pool}`);
  expect(r.reason).toBe(reason);
  if (message !== undefined) expect(r.message).toMatch(message);
}

describe("pool reports", () => {
  it("counts addresses, lists invalid entries and keeps the rest of the pool working", () => {
    const a = new Allocator();
    const reports = a.setPools([
      pool("p", [
        "192.0.2.0/30",
        "not-an-ip",
        "192.0.2.10-192.0.2.11",
        "2001:db8::/126",
        "10.0.0.0/33",
      ]),
    ]);
    expect(reports).toEqual([
      {
        name: "p",
        assignedIPv4: 0,
        assignedIPv6: 0,
        availableIPv4: 6,
        availableIPv6: 4,
        invalidAddresses: ["not-an-ip", "10.0.0.0/33"],
        overlapsWith: [],
        empty: false,
        warnings: [],
      },
    ]);
    expect(okIPs(a.assign(svc("ns/a"))).ips).toEqual(["192.0.2.0"]);
    expect(a.reports()[0]).toMatchObject({ assignedIPv4: 1, availableIPv4: 5 });
  });

  it("marks a pool with no usable address as empty", () => {
    const a = new Allocator();
    const [r] = a.setPools([pool("p", ["bogus"])]);
    expect(r).toMatchObject({ empty: true, invalidAddresses: ["bogus"] });
    const [r2] = a.setPools([
      pool("p", ["192.0.2.0/30"], { excludeNetworkAndBroadcast: true, avoidBuggyIPs: true }),
    ]);
    expect(r2).toMatchObject({ empty: false, availableIPv4: 2 });
  });

  it("handles huge IPv6 pools without enumerating them and saturates the count", () => {
    const a = new Allocator();
    const [r] = a.setPools([pool("big", ["2001:db8::/48", "2001:db8:1::/64"])]);
    expect(r?.availableIPv6).toBe(Number.MAX_SAFE_INTEGER);
    const got = okIPs(a.assign(svc("ns/a", { families: SINGLE_V6 })));
    expect(got.ips).toEqual(["2001:db8::"]);
    const [r2] = a.setPools([pool("small", ["2001:db8::/112"])]);
    expect(r2).toMatchObject({ availableIPv6: 65535, assignedIPv6: 1 });
  });

  it("reports are sorted by name", () => {
    const a = new Allocator();
    const names = a
      .setPools([pool("b", ["192.0.2.1/32"]), pool("a", ["192.0.2.2/32"])])
      .map((r) => r.name);
    expect(names).toEqual(["a", "b"]);
  });
});

describe("deterministic choice", () => {
  it("takes the lowest free address and fills gaps left by releases", () => {
    const a = withPools(pool("p", ["192.0.2.10-192.0.2.20"]));
    expect(okIPs(a.assign(svc("ns/a"))).ips).toEqual(["192.0.2.10"]);
    expect(okIPs(a.assign(svc("ns/b"))).ips).toEqual(["192.0.2.11"]);
    expect(okIPs(a.assign(svc("ns/c"))).ips).toEqual(["192.0.2.12"]);
    a.release("ns/b");
    expect(okIPs(a.assign(svc("ns/d"))).ips).toEqual(["192.0.2.11"]);
    expect(okIPs(a.assign(svc("ns/e"))).ips).toEqual(["192.0.2.13"]);
  });

  it.each<[string, PoolSpec[], string]>([
    [
      "lower priority number first",
      [
        pool("a", ["192.0.2.1/32"], { priority: 2 }),
        pool("b", ["198.51.100.1/32"], { priority: 1 }),
      ],
      "b",
    ],
    [
      "pools with a priority before pools without",
      [pool("a", ["192.0.2.1/32"]), pool("z", ["198.51.100.1/32"], { priority: 100 })],
      "z",
    ],
    [
      "equal priority: by name",
      [
        pool("b", ["192.0.2.1/32"], { priority: 1 }),
        pool("a", ["198.51.100.1/32"], { priority: 1 }),
      ],
      "a",
    ],
    ["no priorities: by name", [pool("b", ["192.0.2.1/32"]), pool("a", ["198.51.100.1/32"])], "a"],
    [
      "priority 0 counts as a priority",
      [pool("a", ["192.0.2.1/32"]), pool("b", ["198.51.100.1/32"], { priority: 0 })],
      "b",
    ],
  ])("%s", (_name, pools, expected) => {
    const a = withPools(...pools);
    expect(okIPs(a.assign(svc("ns/a"))).pool).toBe(expected);
  });

  it("moves to the next pool when the first is full, and names the pools when all are", () => {
    const a = withPools(
      pool("first", ["192.0.2.1/32"], { priority: 1 }),
      pool("second", ["198.51.100.1/32"], { priority: 2 }),
    );
    expect(okIPs(a.assign(svc("ns/a"))).pool).toBe("first");
    expect(okIPs(a.assign(svc("ns/b"))).pool).toBe("second");
    expectFailure(a.assign(svc("ns/c")), "PoolExhausted", /first.*second/);
  });

  it("canonicalizes addresses in results", () => {
    const a = withPools(pool("p", ["2001:DB8:0:0::0/120"]));
    const r = okIPs(
      a.assign(svc("ns/a", { families: SINGLE_V6, requestedIPs: ["2001:0DB8:0000::0005"] })),
    );
    expect(r.ips).toEqual(["2001:db8::5"]);
    expect(a.holders("2001:db8:0:0:0:0:0:5")).toEqual(["ns/a"]);
    expect(a.poolOf("2001:DB8::5")).toBe("p");
  });
});

describe("autoAssign", () => {
  const pools = [
    pool("manual", ["192.0.2.0/24"], { autoAssign: false, priority: 1 }),
    pool("auto", ["198.51.100.0/24"]),
  ];

  it("is never chosen automatically", () => {
    const a = withPools(...pools);
    expect(okIPs(a.assign(svc("ns/a"))).pool).toBe("auto");
  });

  it("serves a Service that names it", () => {
    const a = withPools(...pools);
    expect(okIPs(a.assign(svc("ns/a", { pool: "manual" })))).toEqual({
      ips: ["192.0.2.0"],
      pool: "manual",
    });
  });

  it("serves a Service that requests one of its IPs", () => {
    const a = withPools(...pools);
    expect(okIPs(a.assign(svc("ns/a", { requestedIPs: ["192.0.2.7"] })))).toEqual({
      ips: ["192.0.2.7"],
      pool: "manual",
    });
  });

  it("gives NoMatchingPool when only manual pools exist", () => {
    const a = withPools(pools[0]!);
    expectFailure(a.assign(svc("ns/a")), "NoMatchingPool", /manual: autoAssign is off/);
  });

  it("turning it off keeps existing assignments", () => {
    const a = withPools(pool("p", ["192.0.2.0/24"]));
    okIPs(a.assign(svc("ns/a")));
    a.setPools([pool("p", ["192.0.2.0/24"], { autoAssign: false })]);
    expect(a.invalidated()).toEqual([]);
    expect(okIPs(a.assign(svc("ns/a")))).toEqual({ ips: ["192.0.2.0"], pool: "p" });
    expectFailure(a.assign(svc("ns/b")), "NoMatchingPool");
  });
});

describe("requested IPs", () => {
  const base = () =>
    withPools(
      pool("p", ["192.0.2.0/24", "2001:db8::/64"], { avoidBuggyIPs: true }),
      pool("q", ["198.51.100.0/24"]),
      pool("team", ["203.0.113.0/24"], { namespaces: ["team"] }),
    );

  it("gives the requested IP even when a lower one is free", () => {
    const a = base();
    expect(okIPs(a.assign(svc("ns/a", { requestedIPs: ["192.0.2.50"] })))).toEqual({
      ips: ["192.0.2.50"],
      pool: "p",
    });
  });

  it.each<[string, Partial<ServiceRequest>, FailureReason, RegExp]>([
    [
      "outside every pool",
      { requestedIPs: ["10.1.2.3"] },
      "IPNotInPool",
      /10\.1\.2\.3 is not in any pool/,
    ],
    [
      "excluded by avoidBuggyIPs",
      { requestedIPs: ["192.0.2.255"] },
      "IPNotInPool",
      /avoidBuggyIPs/,
    ],
    [
      "in a pool the Service may not use",
      { requestedIPs: ["203.0.113.5"] },
      "IPNotInPool",
      /pool team.*namespaces/,
    ],
    [
      "not in the named pool",
      { requestedIPs: ["192.0.2.5"], pool: "q" },
      "IPNotInPool",
      /not in the requested pool q/,
    ],
    [
      "named pool does not exist",
      { requestedIPs: ["192.0.2.5"], pool: "nope" },
      "PoolNotFound",
      /nope/,
    ],
    ["unparsable", { requestedIPs: ["192.0.2.500"] }, "InvalidRequest", /not an IP/],
    [
      "two of one family",
      { requestedIPs: ["192.0.2.5", "192.0.2.6"] },
      "InvalidRequest",
      /more than one IPv4/,
    ],
    [
      "a family the Service does not use",
      { requestedIPs: ["2001:db8::5"] },
      "InvalidRequest",
      /IPv6/,
    ],
    [
      "in two pools",
      { requestedIPs: ["192.0.2.5", "2001:db8::5"], families: REQUIRE_DUAL, pool: undefined },
      "InvalidRequest",
      /./,
    ],
  ])("refused when %s", (name, extra, reason, message) => {
    const a = base();
    if (name === "in two pools") {
      a.setPools([pool("p", ["192.0.2.0/24"]), pool("p6", ["2001:db8::/64"])]);
    }
    expectFailure(a.assign(svc("ns/a", extra)), reason, message);
  });

  it("refuses an IP in use, naming the holder", () => {
    const a = base();
    okIPs(a.assign(svc("ns/a", { requestedIPs: ["192.0.2.9"] })));
    expectFailure(
      a.assign(svc("ns/b", { requestedIPs: ["192.0.2.9"] })),
      "IPInUse",
      /192\.0\.2\.9 is in use by ns\/a/,
    );
  });

  it("allocates the other family from the requested IP's pool", () => {
    const a = base();
    const r = okIPs(
      a.assign(svc("ns/a", { families: REQUIRE_DUAL, requestedIPs: ["2001:db8::99"] })),
    );
    expect(r).toEqual({ ips: ["192.0.2.1", "2001:db8::99"], pool: "p" });
  });

  it("auto-allocation skips a requested IP that is taken", () => {
    const a = withPools(pool("p", ["192.0.2.0/30"]));
    okIPs(a.assign(svc("ns/a", { requestedIPs: ["192.0.2.0"] })));
    expect(okIPs(a.assign(svc("ns/b"))).ips).toEqual(["192.0.2.1"]);
  });
});

describe("pool requested by name", () => {
  it("uses only that pool", () => {
    const a = withPools(
      pool("a", ["192.0.2.1/32"], { priority: 1 }),
      pool("b", ["198.51.100.1/32"]),
    );
    expect(okIPs(a.assign(svc("ns/x", { pool: "b" }))).pool).toBe("b");
    expectFailure(a.assign(svc("ns/y", { pool: "b" })), "PoolExhausted", /pool b/);
  });

  it("PoolNotFound when absent", () => {
    const a = withPools(pool("a", ["192.0.2.1/32"]));
    expectFailure(a.assign(svc("ns/x", { pool: "missing" })), "PoolNotFound", /missing/);
  });

  it("NoMatchingPool when the named pool does not admit the Service", () => {
    const a = withPools(pool("a", ["192.0.2.1/32"], { namespaces: ["other"] }));
    expectFailure(a.assign(svc("ns/x", { pool: "a" })), "NoMatchingPool", /namespace ns/);
  });
});

describe("serviceAllocation", () => {
  const team = { matchLabels: { team: "a" } };
  it.each<[string, Partial<PoolSpec>, Partial<ServiceRequest>, boolean]>([
    ["namespaces: listed", { namespaces: ["ns", "x"] }, {}, true],
    ["namespaces: not listed", { namespaces: ["x"] }, {}, false],
    ["namespaces: empty list means unset", { namespaces: [] }, {}, true],
    [
      "namespaceSelectors: match",
      { namespaceSelectors: [team] },
      { namespaceLabels: { team: "a" } },
      true,
    ],
    [
      "namespaceSelectors: no match",
      { namespaceSelectors: [team] },
      { namespaceLabels: { team: "b" } },
      false,
    ],
    [
      "namespaceSelectors: any selector",
      { namespaceSelectors: [{ matchLabels: { x: "y" } }, team] },
      { namespaceLabels: { team: "a" } },
      true,
    ],
    ["serviceSelectors: match", { serviceSelectors: [team] }, { labels: { team: "a" } }, true],
    [
      "serviceSelectors: namespace labels do not count",
      { serviceSelectors: [team] },
      { namespaceLabels: { team: "a" } },
      false,
    ],
    [
      "serviceSelectors: In",
      {
        serviceSelectors: [
          { matchExpressions: [{ key: "env", operator: "In", values: ["prod", "stage"] }] },
        ],
      },
      { labels: { env: "stage" } },
      true,
    ],
    [
      "serviceSelectors: NotIn",
      {
        serviceSelectors: [
          { matchExpressions: [{ key: "env", operator: "NotIn", values: ["prod"] }] },
        ],
      },
      { labels: { env: "prod" } },
      false,
    ],
    [
      "serviceSelectors: Exists",
      { serviceSelectors: [{ matchExpressions: [{ key: "public", operator: "Exists" }] }] },
      { labels: { public: "" } },
      true,
    ],
    [
      "serviceSelectors: DoesNotExist",
      { serviceSelectors: [{ matchExpressions: [{ key: "internal", operator: "DoesNotExist" }] }] },
      { labels: { internal: "true" } },
      false,
    ],
    [
      "all set restrictions must pass",
      { namespaces: ["ns"], serviceSelectors: [team] },
      { labels: { team: "b" } },
      false,
    ],
    [
      "all set restrictions pass",
      { namespaces: ["ns"], namespaceSelectors: [{}], serviceSelectors: [team] },
      { labels: { team: "a" } },
      true,
    ],
    // namespaces and namespaceSelectors are alternatives, as MetalLB merges them.
    [
      "namespaces or namespaceSelectors: listed, labels do not match",
      { namespaces: ["ns"], namespaceSelectors: [team] },
      { namespaceLabels: { team: "b" } },
      true,
    ],
    [
      "namespaces or namespaceSelectors: labels match, not listed",
      { namespaces: ["x"], namespaceSelectors: [team] },
      { namespaceLabels: { team: "a" } },
      true,
    ],
    [
      "namespaces or namespaceSelectors: neither",
      { namespaces: ["x"], namespaceSelectors: [team] },
      { namespaceLabels: { team: "b" } },
      false,
    ],
    [
      "namespaces or namespaceSelectors, and serviceSelectors too",
      { namespaces: ["x"], namespaceSelectors: [team], serviceSelectors: [team] },
      { namespaceLabels: { team: "a" }, labels: { team: "b" } },
      false,
    ],
  ])("%s", (_name, restriction, extra, allowed) => {
    const a = withPools(pool("p", ["192.0.2.0/24"], restriction));
    const r = a.assign(svc("ns/s", extra));
    if (allowed) expect(okIPs(r).pool).toBe("p");
    else expectFailure(r, "NoMatchingPool");
  });

  it("says which namespace rules the Service fails", () => {
    const team = { matchLabels: { team: "a" } };
    const a = withPools(
      pool("both", ["192.0.2.0/24"], { namespaces: ["x"], namespaceSelectors: [team] }),
    );
    expectFailure(
      a.assign(svc("ns/s", { pool: "both" })),
      "NoMatchingPool",
      "pool both may not be used by ns/s: namespace ns is not in its namespaces and the labels of namespace ns match none of its namespaceSelectors",
    );
  });

  it("skips pools the Service may not use and takes the next", () => {
    const a = withPools(
      pool("a", ["192.0.2.0/24"], { priority: 1, namespaces: ["other"] }),
      pool("b", ["198.51.100.0/24"], { priority: 2 }),
    );
    expect(okIPs(a.assign(svc("ns/s"))).pool).toBe("b");
  });
});

describe("address exclusions", () => {
  it("avoidBuggyIPs skips .0 and .255", () => {
    const a = withPools(pool("p", ["192.0.2.254-192.0.3.1"], { avoidBuggyIPs: true }));
    expect(a.reports()[0]?.availableIPv4).toBe(2);
    expect(okIPs(a.assign(svc("ns/a"))).ips).toEqual(["192.0.2.254"]);
    expect(okIPs(a.assign(svc("ns/b"))).ips).toEqual(["192.0.3.1"]);
    expectFailure(a.assign(svc("ns/c")), "PoolExhausted");
  });

  it("avoidBuggyIPs does not touch IPv6", () => {
    const a = withPools(pool("p", ["2001:db8::ff-2001:db8::100"], { avoidBuggyIPs: true }));
    expect(okIPs(a.assign(svc("ns/a", { families: SINGLE_V6 }))).ips).toEqual(["2001:db8::ff"]);
  });

  it.each<[string, string, string, number]>([
    ["/24 skips network and broadcast", "192.0.2.0/24", "192.0.2.1", 254],
    ["range is not affected", "192.0.2.0-192.0.2.255", "192.0.2.0", 256],
    ["/31 has nothing to skip", "192.0.2.0/31", "192.0.2.0", 2],
    ["/32 has nothing to skip", "192.0.2.7/32", "192.0.2.7", 1],
    ["/30 keeps two", "192.0.2.4/30", "192.0.2.5", 2],
  ])("excludeNetworkAndBroadcast: %s", (_name, cidr, first, available) => {
    const a = withPools(pool("p", [cidr], { excludeNetworkAndBroadcast: true }));
    expect(a.reports()[0]?.availableIPv4).toBe(available);
    expect(okIPs(a.assign(svc("ns/a"))).ips).toEqual([first]);
  });

  it("excludeNetworkAndBroadcast: the last address is never given", () => {
    const a = withPools(pool("p", ["192.0.2.0/30"], { excludeNetworkAndBroadcast: true }));
    okIPs(a.assign(svc("ns/a")));
    okIPs(a.assign(svc("ns/b")));
    expectFailure(a.assign(svc("ns/c")), "PoolExhausted");
    expectFailure(
      a.assign(svc("ns/d", { requestedIPs: ["192.0.2.3"] })),
      "IPNotInPool",
      /network or broadcast/,
    );
  });

  it("never assigns an unspecified address (0.0.0.0, ::), even from a pool holding it", () => {
    const a = withPools(pool("all", ["0.0.0.0/0", "::/0"]));
    expect(okIPs(a.assign(svc("ns/a"))).ips).toEqual(["0.0.0.1"]);
    expect(okIPs(a.assign(svc("ns/b", { families: SINGLE_V6 }))).ips).toEqual(["::1"]);
    expect(a.reports()[0]?.availableIPv4).toBe(2 ** 32 - 1 - 1);
    expectFailure(
      a.assign(svc("ns/c", { requestedIPs: ["0.0.0.0"] })),
      "IPNotInPool",
      /0\.0\.0\.0 is the unspecified address/,
    );
    expect(a.restore(svc("ns/d", { families: SINGLE_V6 }), ["::"]).ok).toBe(false);
    const one = withPools(pool("zero", ["0.0.0.0/32"]));
    expect(one.reports()[0]).toMatchObject({ empty: true, availableIPv4: 0 });
  });

  it("warns about pools holding loopback or multicast addresses (they still work)", () => {
    const a = withPools(
      pool("lo", ["127.0.0.0/30"]),
      pool("mc", ["2001:db8::/126", "224.0.0.0-224.0.0.3"]),
      pool("v6", ["ff02::/126", "::1/128"]),
      pool("fine", ["198.51.100.0/24"]),
    );
    const warnings = Object.fromEntries(a.reports().map((r) => [r.name, r.warnings]));
    expect(warnings).toEqual({
      fine: [],
      lo: ["holds loopback addresses (127.0.0.0/8, ::1), which no client can reach"],
      mc: [
        "holds multicast addresses (224.0.0.0/4, ff00::/8), which cannot be a unicast Service IP",
      ],
      v6: [
        "holds loopback addresses (127.0.0.0/8, ::1), which no client can reach",
        "holds multicast addresses (224.0.0.0/4, ff00::/8), which cannot be a unicast Service IP",
      ],
    });
  });

  it("excludeNetworkAndBroadcast does not apply to IPv6", () => {
    const a = withPools(pool("p", ["2001:db8::/120"], { excludeNetworkAndBroadcast: true }));
    expect(okIPs(a.assign(svc("ns/a", { families: SINGLE_V6 }))).ips).toEqual(["2001:db8::"]);
  });
});

describe("IP families", () => {
  const dual = pool("dual", ["192.0.2.0/24", "2001:db8::/64"]);
  const v4only = pool("v4", ["198.51.100.0/24"], { priority: 1 });

  it("RequireDualStack gets both, in the Service's family order", () => {
    const a = withPools(dual);
    expect(okIPs(a.assign(svc("ns/a", { families: REQUIRE_DUAL }))).ips).toEqual([
      "192.0.2.0",
      "2001:db8::",
    ]);
    const v6first = [REQUIRE_DUAL[1]!, REQUIRE_DUAL[0]!];
    expect(okIPs(a.assign(svc("ns/b", { families: v6first }))).ips).toEqual([
      "2001:db8::1",
      "192.0.2.1",
    ]);
  });

  it("RequireDualStack: FamilyUnavailable when no usable pool offers both", () => {
    const a = withPools(v4only);
    expectFailure(
      a.assign(svc("ns/a", { families: REQUIRE_DUAL })),
      "FamilyUnavailable",
      /^no pool that ns\/a may use has both IPv4 and IPv6 addresses \(pool v4 has only IPv4\)$/,
    );
  });

  it("single-stack IPv6 with only IPv4 pools: FamilyUnavailable", () => {
    const a = withPools(v4only);
    expectFailure(
      a.assign(svc("ns/a", { families: SINGLE_V6 })),
      "FamilyUnavailable",
      /^no pool that ns\/a may use has IPv6 addresses \(pool v4 has only IPv4\)$/,
    );
    expectFailure(
      a.assign(svc("ns/b", { families: SINGLE_V6, pool: "v4" })),
      "FamilyUnavailable",
      /^pool v4 has no IPv6 addresses \(it has only IPv4\)$/,
    );
  });

  it("all IPs come from one pool: a dual-stack Service skips a higher-priority single-family pool", () => {
    const a = withPools(v4only, pool("v6", ["2001:db8:1::/64"], { priority: 1 }), dual);
    expect(okIPs(a.assign(svc("ns/a", { families: REQUIRE_DUAL })))).toEqual({
      ips: ["192.0.2.0", "2001:db8::"],
      pool: "dual",
    });
  });

  it("PreferDualStack takes the second family when the pool has it", () => {
    const a = withPools(dual);
    expect(okIPs(a.assign(svc("ns/a", { families: PREFER_DUAL }))).ips).toEqual([
      "192.0.2.0",
      "2001:db8::",
    ]);
  });

  it("PreferDualStack settles for one family, from the first pool in order", () => {
    const a = withPools(v4only, dual);
    expect(okIPs(a.assign(svc("ns/a", { families: PREFER_DUAL })))).toEqual({
      ips: ["198.51.100.0"],
      pool: "v4",
    });
  });

  it("PreferDualStack settles for one family when the second is exhausted", () => {
    const a = withPools(pool("p", ["192.0.2.0/24", "2001:db8::1/128"]));
    okIPs(a.assign(svc("ns/a", { families: SINGLE_V6 })));
    expect(okIPs(a.assign(svc("ns/b", { families: PREFER_DUAL }))).ips).toEqual(["192.0.2.0"]);
  });

  it("PreferDualStack gains its second family on a later assign once the pool offers it", () => {
    const a = withPools(pool("p", ["192.0.2.0/24"]));
    expect(okIPs(a.assign(svc("ns/a", { families: PREFER_DUAL }))).ips).toEqual(["192.0.2.0"]);
    a.setPools([pool("p", ["192.0.2.0/24", "2001:db8::/64"])]);
    expect(okIPs(a.assign(svc("ns/a", { families: PREFER_DUAL }))).ips).toEqual([
      "192.0.2.0",
      "2001:db8::",
    ]);
  });

  it("RequireDualStack with one family exhausted: PoolExhausted naming the family", () => {
    const a = withPools(pool("p", ["192.0.2.0/24", "2001:db8::1/128"]));
    okIPs(a.assign(svc("ns/a", { families: SINGLE_V6 })));
    expectFailure(
      a.assign(svc("ns/b", { families: REQUIRE_DUAL })),
      "PoolExhausted",
      /pool p has no free IPv6/,
    );
    // Nothing leaked from the failed attempt.
    expect(a.reports()[0]).toMatchObject({ assignedIPv4: 1 - 1, assignedIPv6: 1 });
  });

  it("InvalidRequest for malformed family lists", () => {
    const a = withPools(dual);
    expectFailure(a.assign(svc("ns/a", { families: [] })), "InvalidRequest");
    expectFailure(
      a.assign(svc("ns/a", { families: [REQUIRE_DUAL[0]!, REQUIRE_DUAL[0]!] })),
      "InvalidRequest",
    );
    expectFailure(
      a.assign(svc("ns/a", { families: [{ family: "IPv4", required: false }] })),
      "InvalidRequest",
    );
  });
});

describe("sharing", () => {
  const shared = (key: string, extra: Partial<ServiceRequest> = {}) =>
    svc(key, { sharingKey: "k", ...extra });
  const p = () => withPools(pool("p", ["192.0.2.0/24"]));

  it("two Services with the same key and distinct ports share the requested IP", () => {
    const a = p();
    okIPs(a.assign(shared("ns/a", { requestedIPs: ["192.0.2.5"] })));
    okIPs(
      a.assign(
        shared("ns/b", { requestedIPs: ["192.0.2.5"], ports: [{ protocol: "TCP", port: 443 }] }),
      ),
    );
    expect(a.holders("192.0.2.5")).toEqual(["ns/a", "ns/b"]);
    expect(a.reports()[0]?.assignedIPv4).toBe(1);
  });

  it("the same port number on another protocol is no conflict", () => {
    const a = p();
    okIPs(a.assign(shared("ns/a")));
    expect(okIPs(a.assign(shared("ns/b", { ports: [{ protocol: "UDP", port: 80 }] }))).ips).toEqual(
      ["192.0.2.0"],
    );
  });

  it("auto-allocation prefers an IP held by Services with the same key", () => {
    const a = p();
    okIPs(a.assign(svc("ns/x")));
    okIPs(a.assign(shared("ns/a", { requestedIPs: ["192.0.2.50"] })));
    expect(okIPs(a.assign(shared("ns/b", { ports: [{ protocol: "TCP", port: 53 }] }))).ips).toEqual(
      ["192.0.2.50"],
    );
  });

  it("prefers a shareable IP in a lower-priority pool over a fresh one", () => {
    const a = withPools(
      pool("hi", ["192.0.2.0/24"], { priority: 1 }),
      pool("lo", ["198.51.100.0/24"], { priority: 2 }),
    );
    okIPs(a.assign(shared("ns/a", { pool: "lo" })));
    const r = okIPs(a.assign(shared("ns/b", { ports: [{ protocol: "TCP", port: 81 }] })));
    expect(r).toEqual({ ips: ["198.51.100.0"], pool: "lo" });
  });

  it("Local Services with the same pod selector share", () => {
    const a = p();
    const local = { trafficPolicy: "Local" as const, selector: { app: "x" } };
    okIPs(a.assign(shared("ns/a", local)));
    expect(
      okIPs(a.assign(shared("ns/b", { ...local, ports: [{ protocol: "UDP", port: 53 }] }))).ips,
    ).toEqual(["192.0.2.0"]);
  });

  it.each<[string, Partial<ServiceRequest>, Partial<ServiceRequest>, FailureReason, RegExp]>([
    ["requester has no key", {}, { sharingKey: undefined }, "IPInUse", /in use by ns\/a/],
    [
      "holder has no key",
      { sharingKey: undefined },
      {},
      "IPInUse",
      /in use by ns\/a, which does not allow sharing/,
    ],
    [
      "different key",
      {},
      { sharingKey: "other" },
      "SharingRefused",
      /sharing key "other" differs from "k" of ns\/a/,
    ],
    ["same port", {}, {}, "SharingRefused", /port 80\/TCP already used by ns\/a/],
    [
      "traffic policy differs",
      {},
      { trafficPolicy: "Local", ports: [{ protocol: "TCP", port: 81 }] },
      "SharingRefused",
      /traffic policy Local differs from Cluster of ns\/a/,
    ],
    [
      "Local pod selector differs",
      { trafficPolicy: "Local", selector: { app: "x" } },
      { trafficPolicy: "Local", selector: { app: "y" }, ports: [{ protocol: "TCP", port: 81 }] },
      "SharingRefused",
      /Local pod selector differs from ns\/a/,
    ],
  ])("refused when %s", (_name, first, second, reason, message) => {
    const a = p();
    okIPs(a.assign(shared("ns/a", { requestedIPs: ["192.0.2.5"], ...first })));
    expectFailure(
      a.assign(shared("ns/b", { requestedIPs: ["192.0.2.5"], ...second })),
      reason,
      message,
    );
    expect(a.holders("192.0.2.5")).toEqual(["ns/a"]);
  });

  it("auto-allocation with a key takes a fresh IP when sharing is not legal", () => {
    const a = p();
    okIPs(a.assign(shared("ns/a")));
    expect(okIPs(a.assign(shared("ns/b"))).ips).toEqual(["192.0.2.1"]);
  });

  it("releasing one sharer keeps the IP held by the other", () => {
    const a = p();
    okIPs(a.assign(shared("ns/a")));
    okIPs(a.assign(shared("ns/b", { ports: [{ protocol: "TCP", port: 443 }] })));
    a.release("ns/a");
    expect(a.holders("192.0.2.0")).toEqual(["ns/b"]);
    expect(okIPs(a.assign(svc("ns/c"))).ips).toEqual(["192.0.2.1"]);
    a.release("ns/b");
    expect(a.reports()[0]?.assignedIPv4).toBe(1); // ns/c's
    expect(okIPs(a.assign(svc("ns/d"))).ips).toEqual(["192.0.2.0"]);
  });

  it("must be legal with every holder", () => {
    const a = p();
    okIPs(a.assign(shared("ns/a", { ports: [{ protocol: "TCP", port: 1 }] })));
    okIPs(a.assign(shared("ns/b", { ports: [{ protocol: "TCP", port: 2 }] })));
    expectFailure(
      a.assign(
        shared("ns/c", { requestedIPs: ["192.0.2.0"], ports: [{ protocol: "TCP", port: 2 }] }),
      ),
      "SharingRefused",
      /port 2\/TCP already used by ns\/b/,
    );
  });

  it("a re-assign that keeps the IP records the new ports for later sharing decisions", () => {
    const a = p();
    okIPs(a.assign(shared("ns/a")));
    okIPs(a.assign(shared("ns/a", { ports: [{ protocol: "TCP", port: 8080 }] })));
    expect(okIPs(a.assign(shared("ns/b", { requestedIPs: ["192.0.2.0"] }))).ips).toEqual([
      "192.0.2.0",
    ]);
  });

  describe("across namespaces", () => {
    const across = { allowSharingAcrossNamespaces: true };
    const bank = (extra: Partial<ServiceRequest> = {}) =>
      shared("bank/s", { requestedIPs: ["192.0.2.5"], ...extra });
    const evil = (extra: Partial<ServiceRequest> = {}) =>
      shared("evil/s", { ports: [{ protocol: "TCP", port: 443 }], ...extra });

    it("is refused by default, saying why and which field allows it", () => {
      const a = p();
      okIPs(a.assign(bank()));
      expectFailure(
        a.assign(evil({ requestedIPs: ["192.0.2.5"] })),
        "SharingRefused",
        "cannot share 192.0.2.5: bank/s is in namespace bank, not evil, and pool p does not allow sharing across namespaces (set spec.serviceAllocation.allowSharingAcrossNamespaces: true to allow it)",
      );
      expect(a.holders("192.0.2.5")).toEqual(["bank/s"]);
    });

    it("does not tell the other namespace the holder's sharing key", () => {
      const a = p();
      okIPs(a.assign(bank({ sharingKey: "secret-of-bank" })));
      const r = a.assign(evil({ requestedIPs: ["192.0.2.5"], sharingKey: "guess" }));
      expectFailure(r, "SharingRefused", /namespace bank/);
      expect(JSON.stringify(r)).not.toContain("secret-of-bank");
    });

    it("auto-allocation with the same key takes a fresh IP in another namespace", () => {
      const a = p();
      okIPs(a.assign(bank()));
      expect(okIPs(a.assign(evil())).ips).toEqual(["192.0.2.0"]);
      // Within one namespace the same key still shares.
      expect(
        okIPs(a.assign(shared("bank/t", { ports: [{ protocol: "UDP", port: 53 }] }))).ips,
      ).toEqual(["192.0.2.5"]);
    });

    it("is allowed where the pool says so", () => {
      const a = withPools(pool("p", ["192.0.2.0/24"], across));
      okIPs(a.assign(bank()));
      expect(okIPs(a.assign(evil())).ips).toEqual(["192.0.2.5"]);
      expect(a.holders("192.0.2.5")).toEqual(["bank/s", "evil/s"]);
    });

    it("the setting of the IP's pool counts, not another pool's", () => {
      const a = withPools(pool("p", ["192.0.2.0/24"]), pool("open", ["198.51.100.0/24"], across));
      okIPs(a.assign(bank()));
      expectFailure(a.assign(evil({ requestedIPs: ["192.0.2.5"] })), "SharingRefused");
      okIPs(a.assign(shared("bank/o", { requestedIPs: ["198.51.100.5"] })));
      expect(okIPs(a.assign(evil({ requestedIPs: ["198.51.100.5"] }))).ips).toEqual([
        "198.51.100.5",
      ]);
    });

    it("turning the setting off takes the IP from the Service that joined later", () => {
      const a = withPools(pool("p", ["192.0.2.0/24"], across));
      okIPs(a.assign(bank()));
      okIPs(a.assign(evil()));
      a.invalidated();
      a.setPools([pool("p", ["192.0.2.0/24"])]);
      expect(a.invalidated()).toEqual(["evil/s"]);
      expect(a.holders("192.0.2.5")).toEqual(["bank/s"]);
      expect(a.get("evil/s")).toBeUndefined();
      expect(a.reports()[0]?.assignedIPv4).toBe(1);
      expect(okIPs(a.assign(evil())).ips).toEqual(["192.0.2.0"]);
    });

    it("an unrelated pool change keeps legal cross-namespace sharing", () => {
      const a = withPools(pool("p", ["192.0.2.0/24"], across));
      okIPs(a.assign(bank()));
      okIPs(a.assign(evil()));
      a.invalidated();
      a.setPools([pool("p", ["192.0.2.0/24"], across), pool("q", ["198.51.100.0/24"])]);
      expect(a.invalidated()).toEqual([]);
      expect(a.holders("192.0.2.5")).toEqual(["bank/s", "evil/s"]);
    });

    it("restore: the first restored (the controller restores oldest first) keeps the IP", () => {
      const a = p();
      okIPs(a.restore(bank(), ["192.0.2.5"]));
      expectFailure(
        a.restore(evil(), ["192.0.2.5"]),
        "SharingRefused",
        /bank\/s is in namespace bank, not evil, and pool p does not allow sharing across namespaces/,
      );
      expect(a.holders("192.0.2.5")).toEqual(["bank/s"]);
      const b = withPools(pool("p", ["192.0.2.0/24"], across));
      okIPs(b.restore(bank(), ["192.0.2.5"]));
      okIPs(b.restore(evil(), ["192.0.2.5"]));
      expect(b.holders("192.0.2.5")).toEqual(["bank/s", "evil/s"]);
    });
  });

  it("a port change that collides moves the changed Service to another IP", () => {
    const a = p();
    okIPs(a.assign(shared("ns/a")));
    okIPs(a.assign(shared("ns/b", { ports: [{ protocol: "TCP", port: 443 }] })));
    expect(okIPs(a.assign(shared("ns/b"))).ips).toEqual(["192.0.2.1"]);
    expect(a.holders("192.0.2.0")).toEqual(["ns/a"]);
  });
});

describe("idempotence and stability", () => {
  it("assigning again returns the same IPs and changes nothing", () => {
    const a = withPools(pool("p", ["192.0.2.0/24", "2001:db8::/64"]));
    const first = okIPs(a.assign(svc("ns/a", { families: REQUIRE_DUAL })));
    okIPs(a.assign(svc("ns/b")));
    const before = a.reports();
    expect(okIPs(a.assign(svc("ns/a", { families: REQUIRE_DUAL })))).toEqual(first);
    expect(a.reports()).toEqual(before);
  });

  it("a Service keeps its IP after a lower address frees up", () => {
    const a = withPools(pool("p", ["192.0.2.0/24"]));
    okIPs(a.assign(svc("ns/a")));
    okIPs(a.assign(svc("ns/b")));
    a.release("ns/a");
    expect(okIPs(a.assign(svc("ns/b"))).ips).toEqual(["192.0.2.1"]);
  });

  it("a Service keeps its IP when a higher-priority pool appears", () => {
    const a = withPools(pool("old", ["192.0.2.0/24"]));
    okIPs(a.assign(svc("ns/a")));
    a.setPools([pool("old", ["192.0.2.0/24"]), pool("new", ["198.51.100.0/24"], { priority: 0 })]);
    expect(okIPs(a.assign(svc("ns/a")))).toEqual({ ips: ["192.0.2.0"], pool: "old" });
  });

  it("a changed request moves the Service, and the old IP is freed", () => {
    const a = withPools(pool("p", ["192.0.2.0/24"]));
    okIPs(a.assign(svc("ns/a")));
    expect(okIPs(a.assign(svc("ns/a", { requestedIPs: ["192.0.2.9"] }))).ips).toEqual([
      "192.0.2.9",
    ]);
    expect(a.holders("192.0.2.0")).toEqual([]);
    expect(a.reports()[0]?.assignedIPv4).toBe(1);
  });

  it("a failed re-assign leaves the previous assignment in place", () => {
    const a = withPools(pool("p", ["192.0.2.0/24"]));
    okIPs(a.assign(svc("ns/a")));
    expectFailure(a.assign(svc("ns/a", { pool: "nope" })), "PoolNotFound");
    expect(a.get("ns/a")).toEqual({ ips: ["192.0.2.0"], pool: "p" });
    expect(a.holders("192.0.2.0")).toEqual(["ns/a"]);
  });

  it("dropping a family from the request frees that family's IP and keeps the other", () => {
    const a = withPools(pool("p", ["192.0.2.0/24", "2001:db8::/64"]));
    okIPs(a.assign(svc("ns/a", { families: REQUIRE_DUAL })));
    expect(okIPs(a.assign(svc("ns/a"))).ips).toEqual(["192.0.2.0"]);
    expect(a.reports()[0]).toMatchObject({ assignedIPv4: 1, assignedIPv6: 0 });
  });

  it("adding a required family keeps the existing IP and adds one from the same pool", () => {
    const a = withPools(
      pool("v6", ["2001:db8:1::/64"], { priority: 0 }),
      pool("p", ["192.0.2.0/24", "2001:db8::/64"]),
    );
    okIPs(a.assign(svc("ns/a")));
    expect(okIPs(a.assign(svc("ns/a", { families: REQUIRE_DUAL })))).toEqual({
      ips: ["192.0.2.0", "2001:db8::"],
      pool: "p",
    });
  });

  it("release of an unknown key is a no-op; get of it is undefined", () => {
    const a = withPools(pool("p", ["192.0.2.0/24"]));
    a.release("ns/none");
    expect(a.get("ns/none")).toBeUndefined();
  });
});

describe("pool changes", () => {
  it("shrinking a pool invalidates the Services outside it and only those", () => {
    const a = withPools(pool("p", ["192.0.2.0/24"]));
    okIPs(a.assign(svc("ns/a", { requestedIPs: ["192.0.2.1"] })));
    okIPs(a.assign(svc("ns/b", { requestedIPs: ["192.0.2.200"] })));
    const [r] = a.setPools([pool("p", ["192.0.2.0/25"])]);
    expect(r).toMatchObject({ assignedIPv4: 1, availableIPv4: 127 });
    expect(a.invalidated()).toEqual(["ns/b"]);
    expect(a.invalidated()).toEqual([]); // read clears
    expect(a.get("ns/b")).toBeUndefined();
    expect(a.holders("192.0.2.200")).toEqual([]);
    expect(a.get("ns/a")).toEqual({ ips: ["192.0.2.1"], pool: "p" });
    expectFailure(a.assign(svc("ns/b", { requestedIPs: ["192.0.2.200"] })), "IPNotInPool");
  });

  it("deleting a pool invalidates its Services; re-assign finds another pool", () => {
    const a = withPools(
      pool("a", ["192.0.2.0/24"], { priority: 1 }),
      pool("b", ["198.51.100.0/24"]),
    );
    okIPs(a.assign(svc("ns/x")));
    a.setPools([pool("b", ["198.51.100.0/24"])]);
    expect(a.invalidated()).toEqual(["ns/x"]);
    expect(okIPs(a.assign(svc("ns/x")))).toEqual({ ips: ["198.51.100.0"], pool: "b" });
  });

  it("an IP that moves to another pool the Service may use is kept", () => {
    const a = withPools(pool("old-name", ["192.0.2.0/24"]));
    okIPs(a.assign(svc("ns/x")));
    a.setPools([pool("new-name", ["192.0.2.0/24"])]);
    expect(a.get("ns/x")).toEqual({ ips: ["192.0.2.0"], pool: "new-name" });
    expect(a.invalidated()).toEqual(["ns/x"]); // pool changed: worth a reconcile
    expect(okIPs(a.assign(svc("ns/x")))).toEqual({ ips: ["192.0.2.0"], pool: "new-name" });
  });

  it("a Service that named its pool loses the IP when the range moves to another pool", () => {
    const a = withPools(pool("a", ["192.0.2.0/24"]));
    okIPs(a.assign(svc("ns/x", { pool: "a" })));
    a.setPools([pool("b", ["192.0.2.0/24"])]);
    expect(a.get("ns/x")).toBeUndefined();
    expect(a.invalidated()).toEqual(["ns/x"]);
  });

  it("a selector change that excludes the Service invalidates it", () => {
    const a = withPools(pool("p", ["192.0.2.0/24"]));
    okIPs(a.assign(svc("ns/x")));
    a.setPools([pool("p", ["192.0.2.0/24"], { namespaces: ["other"] })]);
    expect(a.invalidated()).toEqual(["ns/x"]);
    expect(a.get("ns/x")).toBeUndefined();
  });

  it("turning on avoidBuggyIPs invalidates a Service holding .0", () => {
    const a = withPools(pool("p", ["192.0.2.0/24"]));
    okIPs(a.assign(svc("ns/x")));
    okIPs(a.assign(svc("ns/y")));
    a.setPools([pool("p", ["192.0.2.0/24"], { avoidBuggyIPs: true })]);
    expect(a.invalidated()).toEqual(["ns/x"]);
    expect(okIPs(a.assign(svc("ns/x"))).ips).toEqual(["192.0.2.2"]);
  });

  it("a dual-stack Service losing one family keeps the other, and re-assign completes it", () => {
    const a = withPools(pool("p", ["192.0.2.0/24", "2001:db8::/64"]));
    okIPs(a.assign(svc("ns/x", { families: REQUIRE_DUAL })));
    a.setPools([pool("p", ["192.0.2.0/24", "2001:db8:1::/64"])]);
    expect(a.invalidated()).toEqual(["ns/x"]);
    expect(a.get("ns/x")).toEqual({ ips: ["192.0.2.0"], pool: "p" });
    expect(okIPs(a.assign(svc("ns/x", { families: REQUIRE_DUAL }))).ips).toEqual([
      "192.0.2.0",
      "2001:db8:1::",
    ]);
  });

  it("unchanged pools invalidate nothing", () => {
    const pools = [pool("p", ["192.0.2.0/24"])];
    const a = withPools(...pools);
    okIPs(a.assign(svc("ns/x")));
    a.setPools(pools);
    expect(a.invalidated()).toEqual([]);
    expect(a.reports()[0]?.assignedIPv4).toBe(1);
  });
});

describe("overlapping pools", () => {
  const older = pool("older", ["192.0.2.0/25"], { creationTimestamp: "2024-01-01T00:00:00Z" });
  const newer = pool("newer", ["192.0.2.0/24"], {
    creationTimestamp: "2024-06-01T00:00:00Z",
    priority: 0,
  });

  it("the older pool keeps the overlap and the newer reports it", () => {
    const a = new Allocator();
    const reports = a.setPools([newer, older]);
    expect(reports.find((r) => r.name === "newer")).toMatchObject({
      overlapsWith: ["older"],
      availableIPv4: 128,
    });
    expect(reports.find((r) => r.name === "older")).toMatchObject({
      overlapsWith: [],
      availableIPv4: 128,
    });
    // newer has priority, yet may only hand out what it owns.
    expect(okIPs(a.assign(svc("ns/a")))).toEqual({ ips: ["192.0.2.128"], pool: "newer" });
    expect(a.poolOf("192.0.2.5")).toBe("older");
    expectFailure(
      a.assign(svc("ns/b", { pool: "newer", requestedIPs: ["192.0.2.5"] })),
      "IPNotInPool",
      /pool older/,
    );
  });

  it("same creation time: the name decides", () => {
    const a = new Allocator();
    const reports = a.setPools([pool("b", ["192.0.2.0/24"]), pool("a", ["192.0.2.0/24"])]);
    expect(reports.map((r) => [r.name, r.overlapsWith, r.empty])).toEqual([
      ["a", [], false],
      ["b", ["a"], true],
    ]);
  });

  it("a Service naming a pool that lost every address to an older pool says so", () => {
    const a = new Allocator();
    a.setPools([
      older,
      pool("shadowed", ["192.0.2.0/26"], { creationTimestamp: "2025-01-01T00:00:00Z" }),
    ]);
    expectFailure(
      a.assign(svc("ns/a", { pool: "shadowed" })),
      "NoUsableAddresses",
      /^pool shadowed has no usable address: every address it lists belongs to the older pool older$/,
    );
    expectFailure(
      a.assign(svc("ns/b", { pool: "shadowed", families: REQUIRE_DUAL })),
      "NoUsableAddresses",
      /^pool shadowed has no usable address/,
    );
  });

  it("an overlap in one family leaves the other family alone", () => {
    const a = new Allocator();
    const reports = a.setPools([
      pool("a", ["2001:db8::/120"]),
      pool("b", ["2001:db8::/121", "192.0.2.0/24"], { creationTimestamp: "2025-01-01T00:00:00Z" }),
    ]);
    expect(reports[1]).toMatchObject({ overlapsWith: ["a"], availableIPv4: 256, availableIPv6: 0 });
  });

  it("deleting the older pool hands the overlap to the newer one", () => {
    const a = new Allocator();
    a.setPools([older, newer]);
    okIPs(a.assign(svc("ns/x", { requestedIPs: ["192.0.2.5"] })));
    a.setPools([newer]);
    expect(a.get("ns/x")).toEqual({ ips: ["192.0.2.5"], pool: "newer" });
    expect(a.reports()[0]).toMatchObject({ overlapsWith: [], assignedIPv4: 1, availableIPv4: 255 });
  });

  it("an older pool appearing over an assigned IP takes it over without moving it", () => {
    const a = new Allocator();
    a.setPools([newer]);
    okIPs(a.assign(svc("ns/x")));
    a.setPools([newer, older]);
    expect(a.get("ns/x")).toEqual({ ips: ["192.0.2.0"], pool: "older" });
    expect(a.holders("192.0.2.0")).toEqual(["ns/x"]);
  });
});

describe("restore", () => {
  const pools = () =>
    withPools(
      pool("p", ["192.0.2.0/24", "2001:db8::/64"]),
      pool("q", ["198.51.100.0/24"], { autoAssign: false }),
      pool("team", ["203.0.113.0/24"], { namespaces: ["team"] }),
    );

  it("re-registers IPs without moving them, then assign keeps them", () => {
    const a = pools();
    expect(okIPs(a.restore(svc("ns/a"), ["192.0.2.77"]))).toEqual({
      ips: ["192.0.2.77"],
      pool: "p",
    });
    expect(okIPs(a.restore(svc("ns/b"), ["198.51.100.3"]))).toEqual({
      ips: ["198.51.100.3"],
      pool: "q",
    });
    expect(okIPs(a.assign(svc("ns/a")))).toEqual({ ips: ["192.0.2.77"], pool: "p" });
    expect(okIPs(a.assign(svc("ns/b")))).toEqual({ ips: ["198.51.100.3"], pool: "q" });
    expect(okIPs(a.assign(svc("ns/c"))).ips).toEqual(["192.0.2.0"]);
  });

  it("restores dual-stack IPs in the Service's family order", () => {
    const a = pools();
    expect(
      okIPs(a.restore(svc("ns/a", { families: REQUIRE_DUAL }), ["2001:DB8::5", "192.0.2.5"])).ips,
    ).toEqual(["192.0.2.5", "2001:db8::5"]);
  });

  it("restores a shared IP for both sharers", () => {
    const a = pools();
    okIPs(a.restore(svc("ns/a", { sharingKey: "k" }), ["192.0.2.5"]));
    okIPs(
      a.restore(svc("ns/b", { sharingKey: "k", ports: [{ protocol: "UDP", port: 53 }] }), [
        "192.0.2.5",
      ]),
    );
    expect(a.holders("192.0.2.5")).toEqual(["ns/a", "ns/b"]);
  });

  it.each<[string, ServiceRequest, string[], FailureReason, RegExp]>([
    ["not in any pool", svc("ns/a"), ["10.0.0.1"], "IPNotInPool", /not in any pool/],
    ["in a pool the Service may not use", svc("ns/a"), ["203.0.113.1"], "IPNotInPool", /team/],
    [
      "not in the requested pool",
      svc("ns/a", { pool: "q" }),
      ["192.0.2.1"],
      "IPNotInPool",
      /requested pool q/,
    ],
    [
      "in two pools",
      svc("ns/a", { families: REQUIRE_DUAL }),
      ["198.51.100.1", "2001:db8::1"],
      "IPNotInPool",
      /pool/,
    ],
    ["unparsable", svc("ns/a"), ["nope"], "InvalidRequest", /nope/],
    ["two of a family", svc("ns/a"), ["192.0.2.1", "192.0.2.2"], "InvalidRequest", /IPv4/],
    ["nothing", svc("ns/a"), [], "InvalidRequest", /no IP/],
    ["conflicting with a holder", svc("ns/a"), ["192.0.2.9"], "IPInUse", /ns\/holder/],
  ])("fails when %s, changing nothing", (_name, req, ips, reason, message) => {
    const a = pools();
    okIPs(a.assign(svc("ns/holder", { requestedIPs: ["192.0.2.9"] })));
    const before = a.reports();
    expectFailure(a.restore(req, ips), reason, message);
    expect(a.reports()).toEqual(before);
    expect(a.get(req.key)).toBeUndefined();
  });

  it("a failed restore leaves an existing assignment of the Service in place", () => {
    const a = pools();
    okIPs(a.assign(svc("ns/a")));
    expectFailure(a.restore(svc("ns/a"), ["10.0.0.1"]), "IPNotInPool");
    expect(a.get("ns/a")).toEqual({ ips: ["192.0.2.0"], pool: "p" });
  });
});

describe("performance", () => {
  it("allocates quickly in a /16 with 50,000 addresses used", () => {
    const a = withPools(pool("p", ["10.0.0.0/16"], { avoidBuggyIPs: true }));
    for (let i = 0; i < 50_000; i++) okIPs(a.assign(svc(`ns/s${i}`)));
    // Punch holes, then measure allocations that must find them and the end of the run.
    for (let i = 0; i < 50_000; i += 97) a.release(`ns/s${i}`);
    const n = 5_000;
    const start = performance.now();
    for (let i = 0; i < n; i++) okIPs(a.assign(svc(`ns/t${i}`)));
    const perOp = (performance.now() - start) / n;
    expect(perOp).toBeLessThan(1);
    expect(a.reports()[0]?.assignedIPv4).toBe(50_000 - Math.ceil(50_000 / 97) + n);
  });

  it("a /48 IPv6 pool costs memory only for assigned addresses", () => {
    const a = withPools(pool("p", ["2001:db8::/48"]));
    for (let i = 0; i < 1000; i++) okIPs(a.assign(svc(`ns/s${i}`, { families: SINGLE_V6 })));
    expect(a.get("ns/s999")?.ips).toEqual(["2001:db8::3e7"]);
    expect(a.reports()[0]).toMatchObject({
      assignedIPv6: 1000,
      availableIPv6: Number.MAX_SAFE_INTEGER,
    });
  });
});

describe("services", () => {
  it("services() lists the keys with an assignment", () => {
    const a = withPools(pool("p", ["192.0.2.0/24"]));
    okIPs(a.assign(svc("ns/b")));
    okIPs(a.assign(svc("ns/a")));
    expect(a.services()).toEqual(["ns/a", "ns/b"]);
  });
});
