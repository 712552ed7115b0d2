import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  countReadyEndpoints,
  type EligibilityInput,
  EXCLUDE_FROM_LB_LABEL,
  eligibleNodes,
  endpointsAllow,
  type L2AdvertisementInfo,
  loadBalancingExclusion,
  type NodeInfo,
} from "./eligibility.ts";

function node(name: string, extra: Partial<NodeInfo> = {}): NodeInfo {
  return { name, labels: {}, ready: "True", networkUnavailable: "False", ...extra };
}

const allAds: L2AdvertisementInfo[] = [{ name: "all" }];

/** Three healthy nodes, all live, one advertisement for everything, endpoints on n1 and n2. */
function input(over: Partial<EligibilityInput> = {}): EligibilityInput {
  return {
    nodes: [node("n1"), node("n2"), node("n3")],
    liveSpeakers: new Set(["n1", "n2", "n3"]),
    l2Advertisements: allAds,
    pool: { name: "default", labels: { tier: "public" } },
    service: {
      externalTrafficPolicy: "Cluster",
      endpoints: {
        byNode: new Map([
          ["n1", 2],
          ["n2", 1],
        ]),
        total: 3,
      },
    },
    ...over,
  };
}

const names = (r: ReturnType<typeof eligibleNodes>) => r.nodes.map((n) => n.name);

describe("eligibleNodes: node health", () => {
  it("takes every healthy live node for Cluster", () => {
    const r = eligibleNodes(input());
    expect(r.nodes).toEqual([
      { name: "n1", interfaces: "auto" },
      { name: "n2", interfaces: "auto" },
      { name: "n3", interfaces: "auto" },
    ]);
    expect(r.reason).toBeUndefined();
    expect(r.excluded).toEqual([]);
  });

  it.each<[string, NodeInfo, string | undefined, string]>([
    ["Ready False", node("n2", { ready: "False" }), undefined, "NotReady"],
    ["Ready Unknown", node("n2", { ready: "Unknown" }), undefined, "NotReady"],
    ["no Ready condition", { name: "n2", labels: {} }, undefined, "NotReady"],
    [
      "NetworkUnavailable True",
      node("n2", { networkUnavailable: "True" }),
      undefined,
      "NetworkUnavailable",
    ],
    [
      "exclusion label",
      node("n2", { labels: { [EXCLUDE_FROM_LB_LABEL]: "true" } }),
      undefined,
      "ExcludedByLabel",
    ],
    [
      "exclusion label, empty value",
      node("n2", { labels: { [EXCLUDE_FROM_LB_LABEL]: "" } }),
      undefined,
      "ExcludedByLabel",
    ],
    ["speaker not live", node("n2"), "dead", "SpeakerNotLive"],
  ])("drops a node with %s", (_, n2, dead, cause) => {
    const live = new Set(["n1", "n2", "n3"]);
    if (dead) live.delete("n2");
    const r = eligibleNodes(input({ nodes: [node("n1"), n2, node("n3")], liveSpeakers: live }));
    expect(names(r)).toEqual(["n1", "n3"]);
    expect(r.excluded).toEqual([{ name: "n2", cause }]);
  });

  it("keeps a node whose NetworkUnavailable is Unknown or absent", () => {
    const r = eligibleNodes(
      input({
        nodes: [
          node("n1", { networkUnavailable: "Unknown" }),
          { name: "n2", labels: {}, ready: "True" },
        ],
      }),
    );
    expect(names(r)).toEqual(["n1", "n2"]);
  });

  it("ignores live speakers on unknown nodes and sorts by name", () => {
    const r = eligibleNodes(
      input({ nodes: [node("b"), node("a")], liveSpeakers: new Set(["a", "b", "ghost"]) }),
    );
    expect(names(r)).toEqual(["a", "b"]);
  });
});

describe("eligibleNodes: advertisements", () => {
  it("announces nothing without any L2Advertisement", () => {
    const r = eligibleNodes(input({ l2Advertisements: [] }));
    expect(r.nodes).toEqual([]);
    expect(r.reason).toBe('no L2Advertisement exists, so IPs of pool "default" are not announced');
  });

  it.each<[string, L2AdvertisementInfo, boolean]>([
    ["no pool fields", { name: "x" }, true],
    ["empty pool fields", { name: "x", ipAddressPools: [], ipAddressPoolSelectors: [] }, true],
    ["the pool by name", { name: "x", ipAddressPools: ["other", "default"] }, true],
    ["another pool by name", { name: "x", ipAddressPools: ["other"] }, false],
    [
      "a matching pool selector",
      { name: "x", ipAddressPoolSelectors: [{ matchLabels: { tier: "public" } }] },
      true,
    ],
    [
      "a non-matching pool selector",
      { name: "x", ipAddressPoolSelectors: [{ matchLabels: { tier: "dmz" } }] },
      false,
    ],
    [
      "name miss but selector hit",
      {
        name: "x",
        ipAddressPools: ["other"],
        ipAddressPoolSelectors: [{ matchExpressions: [{ key: "tier", operator: "Exists" }] }],
      },
      true,
    ],
    ["an empty selector (matches all)", { name: "x", ipAddressPoolSelectors: [{}] }, true],
  ])("pool selection with %s", (_, ad, selected) => {
    const r = eligibleNodes(input({ l2Advertisements: [ad] }));
    expect(r.nodes.length > 0).toBe(selected);
    if (!selected) expect(r.reason).toBe('no L2Advertisement selects pool "default"');
  });

  it("selects nodes by nodeSelectors, ORed within and across advertisements", () => {
    const nodes = [
      node("n1", { labels: { zone: "a" } }),
      node("n2", { labels: { zone: "b" } }),
      node("n3", { labels: { zone: "c", edge: "" } }),
    ];
    const r = eligibleNodes(
      input({
        nodes,
        l2Advertisements: [
          {
            name: "za",
            nodeSelectors: [{ matchLabels: { zone: "a" } }, { matchLabels: { zone: "zz" } }],
          },
          {
            name: "edge",
            nodeSelectors: [{ matchExpressions: [{ key: "edge", operator: "Exists" }] }],
          },
          { name: "other-pool", ipAddressPools: ["other"] },
        ],
      }),
    );
    expect(names(r)).toEqual(["n1", "n3"]);
    expect(r.excluded).toEqual([{ name: "n2", cause: "NotSelectedByAdvertisement" }]);
  });

  it("does not let an advertisement for another pool select nodes", () => {
    const r = eligibleNodes(
      input({
        l2Advertisements: [
          { name: "mine", nodeSelectors: [{ matchLabels: { role: "lb" } }] },
          { name: "theirs", ipAddressPools: ["other"] },
        ],
      }),
    );
    expect(r.nodes).toEqual([]);
    expect(r.reason).toBe(
      'no eligible node among 3: 3 not selected by the nodeSelectors of L2Advertisement "mine"',
    );
  });

  it("unions interfaces of matching advertisements per node", () => {
    const r = eligibleNodes(
      input({
        nodes: [node("n1", { labels: { a: "1" } }), node("n2")],
        l2Advertisements: [
          { name: "x", interfaces: ["eth1", "eth0"] },
          {
            name: "y",
            interfaces: ["eth0", "bond0"],
            nodeSelectors: [{ matchLabels: { a: "1" } }],
          },
          { name: "z", interfaces: ["eth9"], ipAddressPools: ["other"] },
        ],
      }),
    );
    expect(r.nodes).toEqual([
      { name: "n1", interfaces: ["bond0", "eth0", "eth1"] },
      { name: "n2", interfaces: ["eth0", "eth1"] },
    ]);
  });

  it("makes interfaces auto when any matching advertisement has no list", () => {
    const r = eligibleNodes(
      input({
        nodes: [node("n1", { labels: { a: "1" } }), node("n2")],
        l2Advertisements: [
          { name: "x", interfaces: ["eth1"] },
          { name: "y", interfaces: [], nodeSelectors: [{ matchLabels: { a: "1" } }] },
        ],
      }),
    );
    expect(r.nodes).toEqual([
      { name: "n1", interfaces: "auto" },
      { name: "n2", interfaces: ["eth1"] },
    ]);
  });
});

describe("eligibleNodes: endpoints and traffic policy", () => {
  const local = (byNode: [string, number][], total?: number): EligibilityInput["service"] => ({
    externalTrafficPolicy: "Local",
    endpoints: { byNode: new Map(byNode), total: total ?? byNode.reduce((s, [, n]) => s + n, 0) },
  });

  it.each(["Cluster", "Local"] as const)("has no node without ready endpoints (%s)", (policy) => {
    const r = eligibleNodes(
      input({
        service: { externalTrafficPolicy: policy, endpoints: { byNode: new Map(), total: 0 } },
      }),
    );
    expect(r).toEqual({ nodes: [], reason: "no ready endpoints", excluded: [] });
  });

  it("Cluster announces from nodes without a local endpoint", () => {
    const r = eligibleNodes(
      input({
        service: { externalTrafficPolicy: "Cluster", endpoints: { byNode: new Map(), total: 1 } },
      }),
    );
    expect(names(r)).toEqual(["n1", "n2", "n3"]);
  });

  it("Local takes only nodes with a ready endpoint", () => {
    const r = eligibleNodes(
      input({
        service: local([
          ["n1", 2],
          ["n3", 0],
          ["n2", 1],
        ]),
      }),
    );
    expect(names(r)).toEqual(["n1", "n2"]);
    expect(r.excluded).toEqual([{ name: "n3", cause: "NoLocalEndpoint" }]);
  });

  it("Local explains when the endpoint nodes have no live speaker", () => {
    const r = eligibleNodes(
      input({
        service: local([
          ["n1", 1],
          ["n2", 1],
        ]),
        liveSpeakers: new Set(["n3"]),
      }),
    );
    expect(r.nodes).toEqual([]);
    expect(r.reason).toBe(
      "externalTrafficPolicy Local and no node with a ready endpoint has a live speaker",
    );
  });

  it("Local lists what is wrong with each endpoint node", () => {
    const r = eligibleNodes(
      input({
        nodes: [node("n1", { ready: "False" }), node("n2"), node("n3")],
        service: local([
          ["n1", 1],
          ["n2", 1],
        ]),
        liveSpeakers: new Set(["n1", "n3"]),
      }),
    );
    expect(r.reason).toBe(
      "externalTrafficPolicy Local and no node with a ready endpoint is eligible: n1 not Ready; n2 without a live speaker",
    );
  });

  it("Local explains endpoints on unknown nodes or without nodeName", () => {
    const r = eligibleNodes(input({ service: local([["elsewhere", 1]], 2) }));
    expect(r.reason).toBe(
      "externalTrafficPolicy Local and no known node holds a ready endpoint of the Service",
    );
  });

  it("Cluster summarises causes in check order", () => {
    const r = eligibleNodes(
      input({
        nodes: [
          node("a"),
          node("b", { ready: "False" }),
          node("c", { labels: { [EXCLUDE_FROM_LB_LABEL]: "x" } }),
          node("d"),
        ],
        liveSpeakers: new Set(["b", "c"]),
      }),
    );
    expect(r.reason).toBe(
      `no eligible node among 4: 2 without a live speaker, 1 not Ready, 1 labelled ${EXCLUDE_FROM_LB_LABEL}`,
    );
  });

  it("says so when no node is known", () => {
    expect(eligibleNodes(input({ nodes: [] })).reason).toBe("no nodes are known");
  });
});

describe("eligibleNodes: properties", () => {
  const arbNode = fc.record({
    name: fc.constantFrom("n1", "n2", "n3", "n4", "n5"),
    labels: fc.dictionary(
      fc.constantFrom("zone", "role", EXCLUDE_FROM_LB_LABEL),
      fc.constantFrom("a", "b"),
    ),
    ready: fc.constantFrom("True", "False", "Unknown", undefined),
    networkUnavailable: fc.constantFrom("True", "False", undefined),
  });
  const arbSelector = fc.record(
    {
      matchLabels: fc.dictionary(
        fc.constantFrom("zone", "role", "tier"),
        fc.constantFrom("a", "b", "public"),
      ),
    },
    { requiredKeys: [] },
  );
  const arbAd = fc.record(
    {
      name: fc.constantFrom("ad1", "ad2", "ad3"),
      ipAddressPools: fc.subarray(["default", "other"]),
      ipAddressPoolSelectors: fc.array(arbSelector, { maxLength: 2 }),
      nodeSelectors: fc.array(arbSelector, { maxLength: 2 }),
      interfaces: fc.subarray(["eth0", "eth1"]),
    },
    { requiredKeys: ["name"] },
  );
  const arbInput = fc.record({
    nodes: fc.uniqueArray(arbNode, { selector: (n) => n.name, maxLength: 5 }),
    liveSpeakers: fc.subarray(["n1", "n2", "n3", "n4", "n5"]).map((a) => new Set(a)),
    l2Advertisements: fc.array(arbAd, { maxLength: 3 }),
    pool: fc.constant({ name: "default", labels: { tier: "public" } }),
    service: fc.record({
      externalTrafficPolicy: fc.constantFrom("Cluster" as const, "Local" as const),
      endpoints: fc
        .array(fc.tuple(fc.constantFrom("n1", "n2", "n3", "n6"), fc.nat(3)), { maxLength: 4 })
        .chain((pairs) => {
          const byNode = new Map<string, number>(pairs);
          const sum = [...byNode.values()].reduce((s, n) => s + n, 0);
          return fc.nat(2).map((extra) => ({ byNode, total: sum + extra }));
        }),
    }),
  });

  it("returns a reason exactly when no node is eligible, and accounts for every node", () => {
    fc.assert(
      fc.property(arbInput, (inp) => {
        const r = eligibleNodes(inp as EligibilityInput);
        if ((r.nodes.length === 0) !== (r.reason !== undefined)) return false;
        if (r.nodes.length > 0) {
          const all = [...r.nodes.map((n) => n.name), ...r.excluded.map((e) => e.name)].sort();
          if (
            all.join() !==
            inp.nodes
              .map((n) => n.name)
              .sort()
              .join()
          )
            return false;
        }
        return r.nodes.every((n) => {
          const info = inp.nodes.find((x) => x.name === n.name)!;
          return (
            inp.liveSpeakers.has(n.name) &&
            info.ready === "True" &&
            info.networkUnavailable !== "True" &&
            !(EXCLUDE_FROM_LB_LABEL in info.labels) &&
            (inp.service.externalTrafficPolicy === "Cluster" ||
              (inp.service.endpoints.byNode.get(n.name) ?? 0) > 0)
          );
        });
      }),
    );
  });

  it("never adds nodes when a speaker dies", () => {
    fc.assert(
      fc.property(arbInput, fc.constantFrom("n1", "n2", "n3"), (inp, dying) => {
        const before = names(eligibleNodes(inp as EligibilityInput));
        const live = new Set(inp.liveSpeakers);
        live.delete(dying);
        const after = names(eligibleNodes({ ...(inp as EligibilityInput), liveSpeakers: live }));
        return after.every((n) => before.includes(n)) && !after.includes(dying);
      }),
    );
  });
});

describe("countReadyEndpoints", () => {
  it("counts ready-or-unset endpoints, per node when they have one", () => {
    const counts = countReadyEndpoints([
      {
        addressType: "IPv4",
        endpoints: [
          { conditions: { ready: true }, nodeName: "n1" },
          { conditions: {}, nodeName: "n1" },
          { nodeName: "n2" },
          { conditions: { ready: null }, nodeName: "n2" },
          { conditions: { ready: false }, nodeName: "n3" },
          { conditions: { ready: true } },
          { conditions: { ready: true }, nodeName: null },
        ],
      },
      { addressType: "IPv4", endpoints: null },
      { addressType: "IPv4" },
    ]);
    expect(counts.total).toBe(6);
    expect([...counts.byNode]).toEqual([
      ["n1", 2],
      ["n2", 2],
    ]);
  });

  it("filters by address type when asked", () => {
    const slices = [
      { addressType: "IPv4", endpoints: [{ nodeName: "n1" }] },
      { addressType: "IPv6", endpoints: [{ nodeName: "n2" }] },
    ];
    expect([...countReadyEndpoints(slices, "IPv6").byNode.keys()]).toEqual(["n2"]);
    expect(countReadyEndpoints(slices).total).toBe(2);
  });
});

describe("the protocol-neutral checks (Layer 2 and BGP)", () => {
  it.each([
    [{}, undefined, undefined],
    [{}, "False", undefined],
    [{}, "Unknown", undefined],
    [{}, "True", "NetworkUnavailable"],
    [{ [EXCLUDE_FROM_LB_LABEL]: "" }, undefined, "ExcludedByLabel"],
    [{ [EXCLUDE_FROM_LB_LABEL]: "true" }, "True", "NetworkUnavailable"],
  ] as const)("labels %j, NetworkUnavailable %s: %s", (labels, networkUnavailable, want) => {
    expect(
      loadBalancingExclusion({
        name: "n",
        labels,
        ...(networkUnavailable ? { networkUnavailable } : {}),
      }),
    ).toBe(want);
  });

  it.each([
    ["Cluster", { n1: 1 }, 1, "n2", true],
    ["Cluster", {}, 1, "n2", true],
    ["Cluster", {}, 0, "n2", false],
    ["Local", { n1: 1 }, 1, "n1", true],
    ["Local", { n1: 1 }, 1, "n2", false],
    ["Local", {}, 1, "n1", false],
  ] as const)(
    "%s, endpoints by node %j (total %i), node %s: %s",
    (policy, byNode, total, node, want) => {
      expect(
        endpointsAllow(
          {
            externalTrafficPolicy: policy,
            endpoints: { byNode: new Map(Object.entries(byNode)), total },
          },
          node,
        ),
      ).toBe(want);
    },
  );
});
