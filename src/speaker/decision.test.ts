import { describe, expect, it } from "vitest";
import {
  decide,
  hasQuorum,
  type MembershipView,
  poolOf,
  reactToLinks,
  type Snapshot,
} from "./decision.ts";
import { chooseOwner } from "./election.ts";

const NODES = ["node1", "node2", "node3"];
const IPS = Array.from({ length: 12 }, (_, i) => `198.51.100.${10 + i}`);

/** A 3-node cluster, one Cluster-policy Service per IP, every node with an endpoint. */
function snapshot(o: {
  self: string;
  live?: string[];
  settled?: boolean;
  quorum?: boolean;
  owners?: Record<string, string>;
  held?: string[];
  contested?: string[];
  ips?: string[];
  local?: Record<string, string[]>;
  rebalance?: string[];
  notReady?: string[];
  drain?: Record<string, "drain" | "force">;
}): Snapshot {
  const ips = o.ips ?? IPS;
  const membership: MembershipView = {
    self: o.self,
    live: new Set(o.live ?? NODES),
    settled: o.settled ?? true,
    quorum: o.quorum ?? true,
  };
  return {
    services: ips.map((ip, i) => ({
      key: `default/svc${i}`,
      ips: [ip],
      externalTrafficPolicy: o.local?.[ip] ? "Local" : "Cluster",
      allocatedFromPool: "lan",
      rebalance: o.rebalance?.includes(ip) ?? false,
    })),
    slices: ips.map((ip, i) => ({
      service: `default/svc${i}`,
      addressType: "IPv4",
      endpoints: (o.local?.[ip] ?? NODES).map((n) => ({
        nodeName: n,
        conditions: { ready: true },
      })),
    })),
    nodes: NODES.map((name) => ({
      name,
      labels: {},
      ready: o.notReady?.includes(name) ? "False" : "True",
      ...(o.drain?.[name] ? { drain: o.drain[name] } : {}),
    })),
    pools: [{ name: "lan", labels: {}, addresses: ["198.51.100.0/24"] }],
    ads: [{ name: "lan" }],
    membership,
    currentOwners: new Map(Object.entries(o.owners ?? {})),
    held: new Set(o.held ?? []),
    contested: new Set(o.contested ?? []),
  };
}

/** Owner of every IP as each node sees it. */
function ownersSeenBy(nodes: string[], base: Parameters<typeof snapshot>[0]) {
  return nodes.map((self) => {
    const d = decide(snapshot({ ...base, self }));
    return Object.fromEntries([...d.ips].map(([ip, x]) => [ip, x.owner]));
  });
}

/** An IP whose hash owner among all three nodes is `node`. */
function ipHashedTo(node: string): string {
  const ip = IPS.find((x) => chooseOwner(x, NODES) === node);
  if (!ip) throw new Error(`no IP hashes to ${node}`);
  return ip;
}

describe("decide", () => {
  it("cold start: every IP has one owner, the same on every node, and each owner claims it", () => {
    const views = ownersSeenBy(NODES, { self: "node1" });
    expect(views[1]).toEqual(views[0]);
    expect(views[2]).toEqual(views[0]);
    const claimed = NODES.flatMap((self) => [...decide(snapshot({ self })).mine.keys()]);
    expect(claimed.sort()).toEqual([...IPS].sort());
    for (const self of NODES) {
      for (const a of decide(snapshot({ self })).mine.values()) expect(a.gratuitous).toBe(true);
    }
  });

  it("every IP held and not contested: nothing to send again", () => {
    const d = decide(snapshot({ self: "node1", held: IPS }));
    expect([...d.mine.values()].every((a) => !a.gratuitous)).toBe(true);
  });

  describe("fault 1: the owner stalls, another node takes over, the owner resumes", () => {
    const ip = ipHashedTo("node1");
    const interim = chooseOwner(ip, ["node2", "node3"])!;

    it("while node1 is silent, the interim node claims the IP with a gratuitous burst", () => {
      const d = decide(
        snapshot({ self: interim, live: ["node2", "node3"], owners: { [ip]: "node1" } }),
      );
      expect(d.ips.get(ip)?.owner).toBe(interim);
      expect(d.mine.get(ip)?.gratuitous).toBe(true);
    });

    it("node1 back and the interim owner recorded: it stays with the interim node everywhere", () => {
      const views = ownersSeenBy(NODES, { self: "node1", owners: { [ip]: interim } });
      for (const v of views) expect(v[ip]).toBe(interim);
      expect(
        decide(snapshot({ self: "node1", owners: { [ip]: interim }, held: [ip] })).mine.has(ip),
      ).toBe(false);
    });

    it("node1 back before the interim node's record: node1 owns it and sends again (contested)", () => {
      const d = decide(
        snapshot({ self: "node1", owners: { [ip]: "node1" }, held: [ip], contested: [ip] }),
      );
      expect(d.mine.get(ip)?.gratuitous).toBe(true);
      const other = decide(snapshot({ self: interim, owners: { [ip]: "node1" }, held: [ip] }));
      expect(other.mine.has(ip)).toBe(false);
    });
  });

  describe("fault 2: a node rejoins with half-known membership", () => {
    it("claims nothing it does not hold until settled, though the hash names it", () => {
      const mineByHash = IPS.filter((ip) => chooseOwner(ip, ["node2", "node3"]) === "node3");
      expect(mineByHash.length).toBeGreaterThan(0);
      const d = decide(snapshot({ self: "node3", live: ["node2", "node3"], settled: false }));
      expect(d.mine.size).toBe(0);
      expect([...d.deferred.keys()].sort()).toEqual(mineByHash.sort());
    });

    it("keeps what it holds while settling, and re-announces a contested IP only once settled", () => {
      const ip = ipHashedTo("node3");
      const base = { self: "node3", held: [ip], owners: { [ip]: "node3" }, contested: [ip] };
      const d = decide(snapshot({ ...base, settled: false }));
      expect([...d.mine.keys()]).toEqual([ip]);
      expect(d.mine.get(ip)?.gratuitous).toBe(false);
      expect(decide(snapshot(base)).mine.get(ip)?.gratuitous).toBe(true);
    });

    it("once settled it sees node1's recorded ownership and claims none of node1's IPs", () => {
      const owners = Object.fromEntries(IPS.map((ip) => [ip, chooseOwner(ip, NODES)!]));
      const d = decide(snapshot({ self: "node3", owners }));
      for (const ip of d.mine.keys()) expect(owners[ip]).toBe("node3");
    });
  });

  describe("fault 3: starvation", () => {
    it("a node that hears less than a majority takes nothing over", () => {
      const d = decide(snapshot({ self: "node2", live: ["node2"], quorum: false }));
      expect(d.mine.size).toBe(0);
      expect(d.deferred.size).toBe(IPS.length);
    });

    it("and keeps answering for what it holds", () => {
      const ip = ipHashedTo("node2");
      const d = decide(snapshot({ self: "node2", live: ["node2"], quorum: false, held: [ip] }));
      expect([...d.mine.keys()]).toEqual([ip]);
      expect(d.mine.get(ip)?.gratuitous).toBe(false);
    });
  });

  describe("fault 4: a recovered node does not take its IPs back", () => {
    it("link up on node1: IPs taken over stay with their new owners", () => {
      const moved = IPS.filter((ip) => chooseOwner(ip, NODES) === "node1");
      const owners = Object.fromEntries(
        IPS.map((ip) => [ip, chooseOwner(ip, ["node2", "node3"])!]),
      );
      for (const v of ownersSeenBy(NODES, { self: "node1", owners })) {
        for (const ip of moved) expect(v[ip]).toBe(owners[ip]);
      }
      expect(decide(snapshot({ self: "node1", owners })).mine.size).toBe(0);
    });

    it("the operator asks for a re-balance: the hash's choice again", () => {
      const ip = ipHashedTo("node1");
      const d = decide(snapshot({ self: "node1", owners: { [ip]: "node2" }, rebalance: [ip] }));
      expect(d.ips.get(ip)?.by).toBe("hash");
      expect(d.mine.has(ip)).toBe(true);
    });

    it("the owner becomes ineligible (not Ready): the IP moves", () => {
      const ip = ipHashedTo("node1");
      const d = decide(snapshot({ self: "node1", owners: { [ip]: "node2" }, notReady: ["node2"] }));
      expect(d.ips.get(ip)?.owner).toBe("node1");
    });

    it("Local policy: the endpoint leaves the owner, the IP follows it", () => {
      const ip = IPS[0]!;
      const d = decide(
        snapshot({ self: "node3", owners: { [ip]: "node1" }, local: { [ip]: ["node3"] } }),
      );
      expect(d.ips.get(ip)?.owner).toBe("node3");
    });
  });

  describe("split brain (as seen with MetalLB's memberlist)", () => {
    it("partition {node1} | {node2, node3}: the majority takes node1's IPs, node1 keeps only its own", () => {
      const owners = Object.fromEntries(IPS.map((ip) => [ip, chooseOwner(ip, NODES)!]));
      const node1Ips = IPS.filter((ip) => owners[ip] === "node1");
      const minority = decide(
        snapshot({ self: "node1", live: ["node1"], quorum: false, owners, held: node1Ips }),
      );
      expect([...minority.mine.keys()].sort()).toEqual([...node1Ips].sort());
      const majority = ["node2", "node3"].flatMap((self) => [
        ...decide(snapshot({ self, live: ["node2", "node3"], owners })).mine.keys(),
      ]);
      expect(majority.sort()).toEqual([...IPS].sort());
    });

    it("the partition heals: all three agree on the majority's owners", () => {
      const owners = Object.fromEntries(
        IPS.map((ip) => [ip, chooseOwner(ip, ["node2", "node3"])!]),
      );
      const views = ownersSeenBy(NODES, { self: "node1", owners });
      expect(views[0]).toEqual(owners);
      expect(views[1]).toEqual(owners);
      expect(views[2]).toEqual(owners);
    });

    it("two nodes hold one IP: the one the record names keeps it, the other lets go", () => {
      const ip = IPS[3]!;
      const a = decide(snapshot({ self: "node1", owners: { [ip]: "node2" }, held: [ip] }));
      const b = decide(snapshot({ self: "node2", owners: { [ip]: "node2" }, held: [ip] }));
      expect(a.mine.has(ip)).toBe(false);
      expect(b.mine.has(ip)).toBe(true);
    });

    it("a recorded owner that is not a node any more: the hash decides", () => {
      const ip = IPS[4]!;
      const d = decide(snapshot({ self: "node1", owners: { [ip]: "gone" } }));
      expect(d.ips.get(ip)?.owner).toBe(chooseOwner(ip, NODES));
      expect(d.ips.get(ip)?.by).toBe("hash");
    });

    it("nobody live but this node and no quorum: nothing new is claimed", () => {
      const d = decide(snapshot({ self: "node1", live: ["node1"], quorum: false }));
      expect(d.mine.size).toBe(0);
    });
  });

  it("says why an IP is not announced", () => {
    const s = snapshot({ self: "node1", ips: ["198.51.100.10", "203.0.113.250"] });
    const d = decide({
      ...s,
      services: s.services.map(({ allocatedFromPool: _, ...svc }) => svc),
      slices: s.slices.map((x) => (x.service === "default/svc0" ? { ...x, endpoints: [] } : x)),
    });
    expect(d.ips.get("198.51.100.10")?.reason).toBe("no ready endpoints");
    expect(d.ips.get("203.0.113.250")?.reason).toBe("its address is in no IPAddressPool");
  });

  it("a shared IP is announced by one node that every Service using it allows", () => {
    const s = snapshot({ self: "node2", ips: [] });
    const ip = "198.51.100.99";
    const d = decide({
      ...s,
      services: [
        { key: "a/x", ips: [ip], externalTrafficPolicy: "Local" },
        { key: "b/y", ips: [ip], externalTrafficPolicy: "Local" },
      ],
      slices: [
        {
          service: "a/x",
          addressType: "IPv4",
          endpoints: [{ nodeName: "node1" }, { nodeName: "node2" }],
        },
        {
          service: "b/y",
          addressType: "IPv4",
          endpoints: [{ nodeName: "node2" }, { nodeName: "node3" }],
        },
      ],
    });
    expect(d.ips.get(ip)?.owner).toBe("node2");
    expect(d.ips.get(ip)?.services).toEqual(["a/x", "b/y"]);
    expect(d.mine.get(ip)?.services).toEqual(["a/x", "b/y"]);
  });
});

describe("decide: drained nodes (ironlb.dev/drain)", () => {
  const ip = ipHashedTo("node1");
  const rest = chooseOwner(ip, ["node2", "node3"])!;
  type Row = {
    name: string;
    base: Parameters<typeof snapshot>[0];
    owner: string | undefined;
    by?: "current" | "hash";
    kept?: boolean;
    reason?: RegExp;
  };
  const rows: Row[] = [
    {
      name: "the drained owner's IP moves to the hash's choice among the others",
      base: { self: "node1", owners: { [ip]: "node1" }, held: [ip], drain: { node1: "drain" } },
      owner: rest,
      by: "hash",
    },
    {
      name: "an IP without owner never lands on a drained node",
      base: { self: "node1", drain: { node1: "drain" } },
      owner: rest,
      by: "hash",
    },
    {
      name: "stickiness: the new owner keeps it once recorded (drained node still drained)",
      base: { self: "node1", owners: { [ip]: rest }, drain: { node1: "drain" } },
      owner: rest,
      by: "current",
    },
    {
      name: "undrained again: stickiness keeps the IP where it moved, no move back",
      base: { self: "node1", owners: { [ip]: rest } },
      owner: rest,
      by: "current",
    },
    {
      name: "Local with the only ready endpoint on the drained node: kept there and reported",
      base: {
        self: "node1",
        owners: { [ip]: "node1" },
        held: [ip],
        local: { [ip]: ["node1"] },
        drain: { node1: "drain" },
      },
      owner: "node1",
      by: "current",
      kept: true,
    },
    {
      name: "every node drained: the owner keeps it (stickiness), reported",
      base: {
        self: "node1",
        owners: { [ip]: "node2" },
        drain: { node1: "drain", node2: "drain", node3: "drain" },
      },
      owner: "node2",
      by: "current",
      kept: true,
    },
    {
      name: "force: the only node that may announce it is drained, the IP is not announced",
      base: {
        self: "node1",
        owners: { [ip]: "node1" },
        held: [ip],
        local: { [ip]: ["node1"] },
        drain: { node1: "force" },
      },
      owner: undefined,
      reason: /drained with ironlb.dev\/drain=force: node1/,
    },
    {
      name: "force with other nodes eligible: moves like drain",
      base: { self: "node1", owners: { [ip]: "node1" }, held: [ip], drain: { node1: "force" } },
      owner: rest,
      by: "hash",
    },
  ];
  for (const r of rows) {
    it(r.name, () => {
      // The same answer on every node, the drained one included.
      const views = ownersSeenBy(NODES, r.base);
      for (const v of views) expect(v[ip]).toBe(r.owner);
      const d = decide(snapshot(r.base)).ips.get(ip)!;
      expect(d.by).toBe(r.by);
      expect(d.drainKept !== undefined).toBe(r.kept ?? false);
      if (r.reason) expect(d.reason).toMatch(r.reason);
      // The drained node (self) claims the IP only when it keeps it.
      expect(decide(snapshot(r.base)).mine.has(ip)).toBe(r.owner === "node1");
    });
  }

  it("no node drained: the same owners as before (the hash over every eligible node)", () => {
    const d = decide(snapshot({ self: "node1", drain: {} }));
    for (const [x, v] of d.ips) expect(v.owner).toBe(chooseOwner(x, NODES));
  });
});

describe("hasQuorum", () => {
  it.each([
    [1, 1, true],
    [2, 1, false],
    [2, 2, true],
    [3, 1, false],
    [3, 2, true],
    [4, 2, false],
    [5, 3, true],
  ])("%i members, %i live: %s", (members, live, want) => {
    expect(hasQuorum(members, live)).toBe(want);
  });
});

describe("poolOf", () => {
  const pools = [
    { name: "a", labels: {}, addresses: ["198.51.100.0/25"] },
    { name: "b", labels: {}, addresses: ["198.51.100.128-198.51.100.200", "2001:db8::/120"] },
  ];
  it.each([
    ["198.51.100.5", undefined, "a"],
    ["198.51.100.150", undefined, "b"],
    ["2001:db8::7", undefined, "b"],
    ["198.51.100.5", "a", "a"],
    ["2001:db8::7", "b", "b"],
    // The named pool exists but does not hold the IP: no other pool rescues it.
    ["198.51.100.5", "b", "outside b"],
    ["203.0.113.1", "a", "outside a"],
    ["2001:db8::7", "a", "outside a"],
    // The named pool is gone (renamed, deleted): the pool holding the IP counts.
    ["198.51.100.5", "missing", "a"],
    ["203.0.113.1", "missing", undefined],
    ["203.0.113.1", undefined, undefined],
    ["not-an-ip", "a", undefined],
  ])("%s (annotation %s) -> %s", (ip, named, want) => {
    const m = poolOf(ip, pools, named);
    expect(m === undefined ? undefined : "pool" in m ? m.pool.name : `outside ${m.outside}`).toBe(
      want,
    );
  });
});

describe("decide: an IP outside the pool its Service names", () => {
  const lan = { name: "lan", labels: {}, addresses: ["198.51.100.0/24"] };
  const dmz = { name: "dmz", labels: {}, addresses: ["203.0.113.0/24"] };
  const base = (services: Snapshot["services"]): Snapshot => ({
    ...snapshot({ self: "node1", ips: [] }),
    services,
    pools: [lan, dmz],
    ads: [{ name: "all" }],
    slices: services.map((x) => ({
      service: x.key,
      addressType: "IPv4",
      endpoints: NODES.map((n) => ({ nodeName: n, conditions: { ready: true } })),
    })),
  });
  const svc = (key: string, ip: string, pool?: string): Snapshot["services"][number] => ({
    key,
    ips: [ip],
    externalTrafficPolicy: "Cluster",
    ...(pool ? { allocatedFromPool: pool } : {}),
  });

  it.each<[string, Snapshot["services"], string | undefined, string[]]>([
    ["in the named pool: announced", [svc("a/x", "198.51.100.9", "lan")], undefined, []],
    [
      "outside the named pool, though another pool holds it: not announced",
      [svc("a/x", "203.0.113.9", "lan")],
      "203.0.113.9 is not in pool lan, which a/x names in ironlb.dev/ip-allocated-from-pool",
      ["a/x"],
    ],
    [
      "outside every pool, one named: not announced, saying which pool",
      [svc("a/x", "192.0.2.9", "lan")],
      "192.0.2.9 is not in pool lan, which a/x names in ironlb.dev/ip-allocated-from-pool",
      ["a/x"],
    ],
    [
      "the named pool does not exist: the pool holding the IP counts",
      [svc("a/x", "203.0.113.9", "renamed")],
      undefined,
      [],
    ],
    [
      "no annotation, in no pool",
      [svc("a/x", "192.0.2.9")],
      "its address is in no IPAddressPool",
      [],
    ],
  ])("%s", (_name, services, reason, refused) => {
    const ip = services[0]!.ips[0]!;
    const d = decide(base(services)).ips.get(ip)!;
    expect(d.reason).toBe(reason);
    expect(d.owner === undefined).toBe(reason !== undefined);
    expect((d.refused ?? []).map((r) => r.service)).toEqual(refused);
  });

  it("another Service's status copying a held IP neither steers nor stops its announcement", () => {
    const d = decide(
      base([svc("bank/s", "198.51.100.9", "lan"), svc("evil/s", "198.51.100.9", "dmz")]),
    );
    const x = d.ips.get("198.51.100.9")!;
    expect(x.owner).toBeDefined();
    expect(x.reason).toBeUndefined();
    expect(x.pool).toBe("lan");
    expect(x.refused).toEqual([
      {
        service: "evil/s",
        pool: "dmz",
        reason:
          "198.51.100.9 is not in pool dmz, which evil/s names in ironlb.dev/ip-allocated-from-pool",
      },
    ]);
    // The announcement (its record and Events) is for the Service it belongs to only.
    const owner = x.owner!;
    const mine = decide({
      ...base([svc("bank/s", "198.51.100.9", "lan"), svc("evil/s", "198.51.100.9", "dmz")]),
      membership: { self: owner, live: new Set(NODES), settled: true, quorum: true },
    }).mine;
    expect(mine.get("198.51.100.9")?.services).toEqual(["bank/s"]);
  });

  it("one live node, the same on every node, reports a refusal", () => {
    const services = [svc("a/x", "203.0.113.9", "lan")];
    const seen = NODES.map(
      (self) =>
        decide({ ...base(services), membership: { ...base(services).membership, self } }).ips.get(
          "203.0.113.9",
        )?.reportedBy,
    );
    expect(new Set(seen).size).toBe(1);
    expect(NODES).toContain(seen[0]);
    // A node that is not live does not report.
    const without = decide({
      ...base(services),
      membership: { self: "node1", live: new Set(["node2"]), settled: true, quorum: true },
    });
    expect(without.ips.get("203.0.113.9")?.reportedBy).toBe("node2");
  });
});

describe("decide: eligibility shared by the Services of a pool", () => {
  it("still tells Services without ready endpoints and Local ones apart", () => {
    const base = snapshot({ self: "node1", ips: IPS.slice(0, 3), local: { [IPS[2]!]: ["node2"] } });
    // svc1 has no endpoint at all: its IP has no owner, the others' do.
    const s: Snapshot = {
      ...base,
      slices: base.slices.map((sl) =>
        sl.service === "default/svc1" ? { ...sl, endpoints: [] } : sl,
      ),
    };
    const d = decide(s);
    expect(d.ips.get(IPS[0]!)?.eligible.map((n) => n.name)).toEqual(NODES);
    expect(d.ips.get(IPS[1]!)?.owner).toBeUndefined();
    expect(d.ips.get(IPS[1]!)?.reason).toBe("no ready endpoints");
    expect(d.ips.get(IPS[2]!)?.eligible.map((n) => n.name)).toEqual(["node2"]);
    expect(d.ips.get(IPS[2]!)?.owner).toBe("node2");
  });
});

describe("reactToLinks", () => {
  const links = (o: Record<string, boolean>) => new Map(Object.entries(o));
  const announced = new Map([
    ["198.51.100.10", ["eth0"]],
    ["198.51.100.11", ["eth0", "eth1"]],
    ["198.51.100.12", ["eth1"]],
  ]);
  const isVirtual = (n: string) => n.startsWith("veth") || n.startsWith("cni");
  const cases: Array<{
    name: string;
    before: Record<string, boolean>;
    after: Record<string, boolean>;
    lost: string[];
    withdraw: string[];
    rejoin: string[];
  }> = [
    {
      name: "carrier lost on eth0: withdraw everything announced there, nothing else",
      before: { eth0: true, eth1: true },
      after: { eth0: false, eth1: true },
      lost: ["eth0"],
      withdraw: ["198.51.100.10 eth0", "198.51.100.11 eth0"],
      rejoin: [],
    },
    {
      name: "eth1 removed: its announcements go",
      before: { eth0: true, eth1: true },
      after: { eth0: true },
      lost: ["eth1"],
      withdraw: ["198.51.100.11 eth1", "198.51.100.12 eth1"],
      rejoin: [],
    },
    {
      name: "carrier back on eth0: a rejoin, nothing withdrawn",
      before: { eth0: false, eth1: true },
      after: { eth0: true, eth1: true },
      lost: [],
      withdraw: [],
      rejoin: ["eth0"],
    },
    {
      name: "a pod's veth and the CNI bridge coming up are no rejoin",
      before: { eth0: true, veth12: false, cni0: false },
      after: { eth0: true, veth12: true, cni0: true },
      lost: [],
      withdraw: [],
      rejoin: [],
    },
    {
      name: "a link seen for the first time is no rejoin (start, hotplug)",
      before: { eth0: true },
      after: { eth0: true, eth2: true },
      lost: [],
      withdraw: [],
      rejoin: [],
    },
    {
      name: "nothing changed: nothing to do",
      before: { eth0: true, eth1: true },
      after: { eth0: true, eth1: true },
      lost: [],
      withdraw: [],
      rejoin: [],
    },
    {
      name: "both down at once (a bond's members): every announcement goes",
      before: { eth0: true, eth1: true },
      after: { eth0: false, eth1: false },
      lost: ["eth0", "eth1"],
      withdraw: [
        "198.51.100.10 eth0",
        "198.51.100.11 eth0",
        "198.51.100.11 eth1",
        "198.51.100.12 eth1",
      ],
      rejoin: [],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const r = reactToLinks({
        before: links(c.before),
        after: links(c.after),
        announced,
        isVirtual,
      });
      expect(r.lost).toEqual(c.lost);
      expect(r.withdraw.map((w) => `${w.ip} ${w.ifname}`).sort()).toEqual(c.withdraw);
      expect(r.rejoin).toEqual(c.rejoin);
    });
  }
});

describe("decide: periodic gratuitous interval (L2Advertisement gratuitousInterval)", () => {
  const withAds = (ads: Snapshot["ads"]) => {
    const s = snapshot({ self: "node1" });
    return { ...s, ads };
  };
  const intervals = (s: Snapshot) =>
    new Set([...decide(s).mine.values()].map((a) => a.gratuitousIntervalMs));

  it.each([
    { what: "not set: only on takeover", ads: [{ name: "lan" }], want: undefined },
    {
      what: "one advertisement's interval",
      ads: [{ name: "lan", gratuitousInterval: "1m30s" }],
      want: 90_000,
    },
    {
      what: "the shortest of several advertisements for the pool",
      ads: [
        { name: "slow", gratuitousInterval: "5m" },
        { name: "quiet" },
        { name: "fast", gratuitousInterval: "30s" },
      ],
      want: 30_000,
    },
    {
      what: "not from an advertisement that does not select this node",
      ads: [
        { name: "lan", gratuitousInterval: "5m" },
        {
          name: "elsewhere",
          nodeSelectors: [{ matchLabels: { edge: "true" } }],
          gratuitousInterval: "10s",
        },
      ],
      want: 300_000,
    },
    {
      what: "out of bounds (a checker would have refused it): ignored",
      ads: [{ name: "lan", gratuitousInterval: "1s" }],
      want: undefined,
    },
  ])("$what", ({ ads, want }) => {
    const s = withAds(ads);
    expect(decide(s).mine.size).toBeGreaterThan(0);
    expect(intervals(s)).toEqual(new Set([want]));
  });
});
