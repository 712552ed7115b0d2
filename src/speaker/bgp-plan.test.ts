import { describe, expect, it } from "vitest";
import type { BGPPeerSpec } from "../api/bgppeer.ts";
import {
  type BgpAdvertisementInfo,
  type BgpPeerInfo,
  type BgpSnapshot,
  derivedRouterID,
  peerConfig,
  planBgp,
} from "./bgp-plan.ts";
import type { PoolSnapshot, ServiceSnapshot } from "./decision.ts";
import { EXCLUDE_FROM_LB_LABEL, type NodeInfo } from "./eligibility.ts";

const self = "n1";
const node = (extra: Partial<NodeInfo> = {}): NodeInfo => ({
  name: self,
  labels: { rack: "r1" },
  ready: "True",
  ...extra,
});
const pool = (name: string, addresses: string[], labels = {}): PoolSnapshot => ({
  name,
  labels,
  addresses,
});
const ad = (name: string, extra: Partial<BgpAdvertisementInfo> = {}): BgpAdvertisementInfo => ({
  name,
  aggregationLength: 32,
  aggregationLengthV6: 128,
  ...extra,
});
const peer = (name: string, extra: Partial<BGPPeerSpec> = {}): BgpPeerInfo => ({
  name,
  spec: { myASN: 64512, peerASN: 64500, peerAddress: "192.0.2.1", peerPort: 179, ...extra },
});
const svc = (
  key: string,
  ips: string[],
  extra: Partial<ServiceSnapshot> = {},
): ServiceSnapshot => ({ key, ips, externalTrafficPolicy: "Cluster", labels: {}, ...extra });
/** Ready endpoints of a Service on the given nodes (both families). */
const slices = (service: string, nodes: string[], ready = true) =>
  (["IPv4", "IPv6"] as const).map((addressType) => ({
    service,
    addressType,
    endpoints: nodes.map((nodeName) => ({ nodeName, conditions: { ready } })),
  }));

const base = (extra: Partial<BgpSnapshot> = {}): BgpSnapshot => ({
  self,
  node: node(),
  nodeIPv4: "192.0.2.11",
  services: [svc("shop/web", ["198.51.100.10"])],
  slices: slices("shop/web", ["n2"]),
  pools: [pool("public", ["198.51.100.0/24", "2001:db8:100::/64"])],
  advertisements: [ad("all")],
  peers: [peer("tor-a")],
  ...extra,
});

/** peer -> prefixes, for compact expectations. */
const prefixes = (s: BgpSnapshot) =>
  Object.fromEntries([...planBgp(s).peers].map(([n, p]) => [n, p.routes.map((r) => r.prefix)]));
const reason = (s: BgpSnapshot, ip: string) => planBgp(s).ips.get(ip)?.reason;

describe("planBgp: who advertises (MetalLB's rule)", () => {
  const cases: Array<[string, Partial<BgpSnapshot>, Record<string, string[]>, string?]> = [
    ["a Cluster Service with an endpoint elsewhere", {}, { "tor-a": ["198.51.100.10/32"] }],
    [
      "Cluster without any ready endpoint",
      { slices: slices("shop/web", ["n2"], false) },
      { "tor-a": [] },
      "no ready endpoints",
    ],
    [
      "Local without a local endpoint",
      {
        services: [svc("shop/web", ["198.51.100.10"], { externalTrafficPolicy: "Local" })],
      },
      { "tor-a": [] },
      "externalTrafficPolicy Local and no ready endpoint on this node",
    ],
    [
      "Local with a local endpoint",
      {
        services: [svc("shop/web", ["198.51.100.10"], { externalTrafficPolicy: "Local" })],
        slices: slices("shop/web", [self]),
      },
      { "tor-a": ["198.51.100.10/32"] },
    ],
    [
      "a NetworkUnavailable node",
      { node: node({ networkUnavailable: "True" }) },
      { "tor-a": [] },
      "this node is NetworkUnavailable",
    ],
    [
      "a node labelled exclude-from-external-load-balancers (empty value)",
      { node: node({ labels: { [EXCLUDE_FROM_LB_LABEL]: "" } }) },
      { "tor-a": [] },
      `this node is labelled ${EXCLUDE_FROM_LB_LABEL}`,
    ],
    [
      "a NotReady node still advertises (no Ready check in BGP mode)",
      { node: node({ ready: "False" }) },
      { "tor-a": ["198.51.100.10/32"] },
    ],
    ["no BGPAdvertisement", { advertisements: [] }, { "tor-a": [] }, "no BGPAdvertisement exists"],
    [
      "an advertisement for another pool",
      { advertisements: [ad("other", { ipAddressPools: ["private"] })] },
      { "tor-a": [] },
      'no BGPAdvertisement selects pool "public"',
    ],
    [
      "an advertisement selecting the pool by label",
      {
        pools: [pool("public", ["198.51.100.0/24"], { exposure: "bgp" })],
        advertisements: [
          ad("by-label", { ipAddressPoolSelectors: [{ matchLabels: { exposure: "bgp" } }] }),
        ],
      },
      { "tor-a": ["198.51.100.10/32"] },
    ],
    [
      "serviceSelectors leaving the Service out",
      {
        advertisements: [ad("web-only", { serviceSelectors: [{ matchLabels: { tier: "web" } }] })],
      },
      { "tor-a": [] },
      'the serviceSelectors of BGPAdvertisement "web-only" leave shop/web out',
    ],
    [
      "serviceSelectors matching the Service's labels",
      {
        services: [svc("shop/web", ["198.51.100.10"], { labels: { tier: "web" } })],
        advertisements: [ad("web-only", { serviceSelectors: [{ matchLabels: { tier: "web" } }] })],
      },
      { "tor-a": ["198.51.100.10/32"] },
    ],
    [
      "advertisement nodeSelectors leaving this node out",
      { advertisements: [ad("r2", { nodeSelectors: [{ matchLabels: { rack: "r2" } }] })] },
      { "tor-a": [] },
      'this node is not selected by the nodeSelectors of BGPAdvertisement "r2"',
    ],
    [
      "an IP in no pool",
      { services: [svc("shop/web", ["203.0.113.5"])] },
      { "tor-a": [] },
      "its address is in no IPAddressPool",
    ],
    [
      "an IP outside the pool its Service names (never advertised)",
      {
        services: [svc("shop/web", ["203.0.113.5"], { allocatedFromPool: "public" })],
        pools: [pool("public", ["198.51.100.0/24"]), pool("other", ["203.0.113.0/24"])],
      },
      { "tor-a": [] },
      "203.0.113.5 is not in pool public, which shop/web names in ironlb.dev/ip-allocated-from-pool",
    ],
    [
      "a Node object not seen yet",
      { node: undefined },
      { "tor-a": [] },
      "this node's Node object (n1) is not known yet",
    ],
    [
      "no peer for this node",
      { peers: [peer("tor-b", { nodeSelectors: [{ matchLabels: { rack: "r9" } }] })] },
      {},
      "this node has no BGPPeer (none selects it)",
    ],
    [
      "an advertisement naming a peer of another node",
      {
        peers: [
          peer("tor-a"),
          peer("tor-b", {
            peerAddress: "192.0.2.2",
            nodeSelectors: [{ matchLabels: { rack: "r9" } }],
          }),
        ],
        advertisements: [ad("to-b", { peers: ["tor-b"] })],
      },
      { "tor-a": [] },
      'BGPAdvertisement "to-b" names peers this node has no session with (tor-b)',
    ],
    [
      "IPv6 goes as /128",
      { services: [svc("shop/web", ["2001:db8:100::10"])] },
      { "tor-a": ["2001:db8:100::10/128"] },
    ],
  ];
  for (const [name, input, want, why] of cases) {
    it(name, () => {
      const s = base(input);
      expect(prefixes(s)).toEqual(want);
      const ip = s.services[0]!.ips[0]!;
      expect(reason(s, ip)).toBe(why);
    });
  }
});

describe("planBgp: peers", () => {
  it("selects peers by their nodeSelectors and advertises to the ones an advertisement names", () => {
    const s = base({
      peers: [
        peer("tor-a"),
        peer("tor-b", { peerAddress: "192.0.2.2" }),
        peer("tor-c", {
          peerAddress: "192.0.2.3",
          nodeSelectors: [{ matchLabels: { rack: "r2" } }],
        }),
      ],
      advertisements: [ad("to-b", { peers: ["tor-b", "tor-c"] })],
    });
    expect(prefixes(s)).toEqual({ "tor-a": [], "tor-b": ["198.51.100.10/32"] });
    expect(planBgp(s).ips.get("198.51.100.10")?.advertised).toEqual(
      new Map([["tor-b", ["198.51.100.10/32"]]]),
    );
  });

  it("skips a second peer at the same address and port, saying which one it keeps", () => {
    const plan = planBgp(
      base({
        peers: [peer("b-dup", { peerAddress: "192.0.2.1" }), peer("a-first")],
      }),
    );
    expect([...plan.peers.keys()]).toEqual(["a-first"]);
    expect(plan.skippedPeers).toEqual(
      new Map([
        ["b-dup", 'BGPPeer "a-first" already peers with 192.0.2.1 port 179 from this node'],
      ]),
    );
  });

  it("keeps two peers at one address on different ports", () => {
    const plan = planBgp(base({ peers: [peer("a"), peer("b", { peerPort: 1179 })] }));
    expect([...plan.peers.keys()]).toEqual(["a", "b"]);
  });

  it("translates the spec with MetalLB's defaults", () => {
    expect(peerConfig(peer("tor-a"), "n1", "192.0.2.11")).toEqual({
      name: "tor-a",
      myASN: 64512,
      peerASN: 64500,
      peerAddress: "192.0.2.1",
      peerPort: 179,
      holdTime: 90,
      keepaliveTime: 30,
      connectTime: 10,
      routerID: "192.0.2.11",
    });
    expect(
      peerConfig(
        peer("tor-6", {
          peerASN: undefined,
          dynamicASN: "external",
          peerAddress: "2001:db8::1",
          sourceAddress: "2001:db8::11",
          holdTime: "9s",
          keepaliveTime: "2s",
          connectTime: "1m",
          routerID: "198.51.100.1",
        }),
        "n1",
        undefined,
      ),
    ).toEqual({
      name: "tor-6",
      myASN: 64512,
      peerASN: 0,
      dynamicASN: "external",
      peerAddress: "2001:db8::1",
      sourceAddress: "2001:db8::11",
      peerPort: 179,
      holdTime: 9,
      keepaliveTime: 2,
      connectTime: 60,
      routerID: "198.51.100.1",
    });
    expect(peerConfig(peer("x", { holdTime: "0s" }), "n1", undefined)).toMatchObject({
      holdTime: 0,
      keepaliveTime: 0,
      routerID: derivedRouterID("n1"),
    });
  });

  it("offers graceful restart only when enabled, with its restart time (default 120 s)", () => {
    expect(
      peerConfig(peer("x", { enableGracefulRestart: false }), "n1", undefined),
    ).not.toHaveProperty("gracefulRestartTime");
    expect(peerConfig(peer("x", { enableGracefulRestart: true }), "n1", undefined)).toMatchObject({
      gracefulRestartTime: 120,
    });
    expect(
      peerConfig(
        peer("x", { enableGracefulRestart: true, gracefulRestartTime: "5m" }),
        "n1",
        undefined,
      ),
    ).toMatchObject({ gracefulRestartTime: 300 });
  });

  it("passes GTSM's hop count on only when set", () => {
    expect(peerConfig(peer("x", {}), "n1", undefined)).not.toHaveProperty("ttlSecurityHops");
    expect(peerConfig(peer("x", { ttlSecurityHops: 1 }), "n1", undefined)).toMatchObject({
      ttlSecurityHops: 1,
    });
  });

  it("derives a stable, non-zero IPv4 router ID from the node name", () => {
    expect(derivedRouterID("n1")).toBe(derivedRouterID("n1"));
    expect(derivedRouterID("n1")).not.toBe(derivedRouterID("n2"));
    expect(derivedRouterID("n1")).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(derivedRouterID("n1")).not.toBe("0.0.0.0");
  });
});

describe("planBgp: attributes, aggregation and merging", () => {
  it("turns communities into numbers and keeps localPref", () => {
    const plan = planBgp(
      base({
        advertisements: [
          ad("attrs", {
            communities: ["no-export", "64512:100", "large:64512:1:2"],
            localPref: 150,
          }),
        ],
      }),
    );
    expect(plan.peers.get("tor-a")?.routes).toEqual([
      {
        prefix: "198.51.100.10/32",
        communities: [64512 * 65536 + 100, 0xffffff01],
        largeCommunities: [[64512, 1, 2]],
        localPref: 150,
      },
    ]);
  });

  it("merges two advertisements of one prefix to one peer: union of communities, highest localPref", () => {
    const plan = planBgp(
      base({
        advertisements: [
          ad("a", { communities: ["64512:1", "large:1:2:3"], localPref: 100 }),
          ad("b", { communities: ["64512:2", "64512:1"], localPref: 200 }),
          ad("c", {}),
        ],
      }),
    );
    expect(plan.peers.get("tor-a")?.routes).toEqual([
      {
        prefix: "198.51.100.10/32",
        communities: [64512 * 65536 + 1, 64512 * 65536 + 2],
        largeCommunities: [[1, 2, 3]],
        localPref: 200,
      },
    ]);
  });

  it("aggregates Services into one covering prefix inside the pool, with both /32 and /24 when two advertisements say so", () => {
    const s = base({
      services: [svc("shop/web", ["198.51.100.10"]), svc("shop/api", ["198.51.100.20"])],
      slices: [...slices("shop/web", ["n2"]), ...slices("shop/api", ["n2"])],
      advertisements: [ad("agg", { aggregationLength: 24 }), ad("host")],
    });
    expect(prefixes(s)).toEqual({
      "tor-a": ["198.51.100.0/24", "198.51.100.10/32", "198.51.100.20/32"],
    });
  });

  it("refuses an aggregate that reaches beyond the pool", () => {
    const s = base({
      pools: [pool("small", ["198.51.100.8-198.51.100.15"])],
      advertisements: [ad("agg", { aggregationLength: 24 })],
    });
    expect(prefixes(s)).toEqual({ "tor-a": [] });
    expect(reason(s, "198.51.100.10")).toBe(
      'BGPAdvertisement "agg" aggregates to 198.51.100.0/24, which reaches beyond pool "small"',
    );
    // Inside the range: fine.
    const ok = base({
      pools: [pool("small", ["198.51.100.8-198.51.100.15"])],
      advertisements: [ad("agg", { aggregationLength: 29 })],
    });
    expect(prefixes(ok)).toEqual({ "tor-a": ["198.51.100.8/29"] });
  });

  it("aggregates IPv6 by aggregationLengthV6", () => {
    const s = base({
      services: [svc("shop/web", ["2001:db8:100::10"])],
      advertisements: [ad("agg6", { aggregationLengthV6: 64 })],
    });
    expect(prefixes(s)).toEqual({ "tor-a": ["2001:db8:100::/64"] });
  });

  it("advertises a shared IP when any of its Services allows it (as MetalLB)", () => {
    const s = base({
      services: [
        svc("shop/a", ["198.51.100.10"], { externalTrafficPolicy: "Local" }),
        svc("shop/b", ["198.51.100.10"]),
      ],
      slices: [...slices("shop/a", ["n2"]), ...slices("shop/b", ["n2"])],
    });
    const plan = planBgp(s);
    expect(prefixes(s)).toEqual({ "tor-a": ["198.51.100.10/32"] });
    expect(plan.ips.get("198.51.100.10")).toMatchObject({
      services: ["shop/a", "shop/b"],
      pool: "public",
    });
    expect(plan.ips.get("198.51.100.10")?.reason).toBeUndefined();
  });

  it("counts endpoints per family: an IPv4 IP needs IPv4 endpoints", () => {
    const s = base({
      slices: [{ service: "shop/web", addressType: "IPv6", endpoints: [{ nodeName: "n2" }] }],
    });
    expect(reason(s, "198.51.100.10")).toBe("no ready endpoints");
  });

  it("is the same for the same input (sorted output)", () => {
    const s = base({
      services: [svc("z/z", ["198.51.100.30"]), svc("a/a", ["198.51.100.3"])],
      slices: [...slices("z/z", ["n2"]), ...slices("a/a", ["n2"])],
    });
    expect(prefixes(s)).toEqual({ "tor-a": ["198.51.100.3/32", "198.51.100.30/32"] });
  });
});

describe("planBgp: drained node (ironlb.dev/drain, RFC 8326 graceful shutdown)", () => {
  const GSHUT = 0xffff0000;
  const route = (s: BgpSnapshot) => planBgp(s).peers.get("tor-a")?.routes[0];
  const local = {
    services: [svc("shop/web", ["198.51.100.10"], { externalTrafficPolicy: "Local" })],
  };

  it("first: every route again with 65535:0 and LOCAL_PREF 0, own communities kept", () => {
    const s = base({
      node: node({ drain: "drain" }),
      advertisements: [ad("all", { communities: ["64512:7"], localPref: 200 })],
    });
    expect(route(s)).toEqual({
      prefix: "198.51.100.10/32",
      communities: [(64512 * 65536 + 7) >>> 0, GSHUT],
      largeCommunities: [],
      localPref: 0,
    });
  });

  it("not drained: no graceful-shutdown community", () => {
    expect(route(base())?.communities).toEqual([]);
    expect(route(base())?.localPref).toBeUndefined();
  });

  it("after the delay: withdrawn, and why", () => {
    const s = base({ node: node({ drain: "drain" }), drainWithdraw: true });
    expect(prefixes(s)).toEqual({ "tor-a": [] });
    expect(reason(s, "198.51.100.10")).toMatch(/^this node is drained/);
  });

  it("Local with ready endpoints on this node only: kept (with 65535:0) and said; force withdraws", () => {
    const kept = base({
      ...local,
      slices: slices("shop/web", [self]),
      node: node({ drain: "drain" }),
      drainWithdraw: true,
    });
    expect(route(kept)?.communities).toEqual([GSHUT]);
    expect(planBgp(kept).ips.get("198.51.100.10")?.drainKept).toMatch(
      /no other node has a ready endpoint/,
    );
    expect(prefixes({ ...kept, node: node({ drain: "force" }) })).toEqual({ "tor-a": [] });
  });

  it("Local with endpoints elsewhere too: withdrawn (the other nodes have paths)", () => {
    const s = base({
      ...local,
      slices: slices("shop/web", [self, "n2"]),
      node: node({ drain: "drain" }),
      drainWithdraw: true,
    });
    expect(prefixes(s)).toEqual({ "tor-a": [] });
  });
});
