import type { V1EndpointSlice, V1Lease, V1Node, V1Service } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import type { L2AdvertisementSpec } from "../api/l2advertisement.ts";
import { type AnnounceInput, type AnnounceVerdict, announceVerdicts } from "./announceable.ts";

const IP = "192.0.2.10";

function node(name: string, o: { labels?: Record<string, string>; drain?: string } = {}): V1Node {
  return {
    metadata: {
      name,
      labels: o.labels ?? {},
      ...(o.drain ? { annotations: { "ironlb.dev/drain": o.drain } } : {}),
    },
    status: { conditions: [{ type: "Ready", status: "True" }] },
  };
}

function service(o: { ips?: string[]; local?: boolean; pool?: string } = {}): V1Service {
  return {
    metadata: {
      namespace: "default",
      name: "web",
      annotations: { "ironlb.dev/ip-allocated-from-pool": o.pool ?? "lan" },
    },
    spec: { type: "LoadBalancer", externalTrafficPolicy: o.local ? "Local" : "Cluster" },
    status: { loadBalancer: { ingress: (o.ips ?? [IP]).map((ip) => ({ ip })) } },
  };
}

function slice(ready: Record<string, boolean>, addressType = "IPv4"): V1EndpointSlice {
  return {
    metadata: { namespace: "default", labels: { "kubernetes.io/service-name": "web" } },
    addressType,
    endpoints: Object.entries(ready).map(([nodeName, r]) => ({
      addresses: ["10.0.0.1"],
      nodeName,
      conditions: { ready: r },
    })),
  };
}

function pool(name: string, addresses: string[]): AnnounceInput["pools"][number] {
  return {
    apiVersion: "ironlb.dev/v1beta1",
    kind: "IPAddressPool",
    metadata: { name },
    spec: { addresses, autoAssign: true, avoidBuggyIPs: false, excludeNetworkAndBroadcast: false },
  };
}

function ad(name: string, spec: L2AdvertisementSpec): AnnounceInput["ads"][number] {
  return { apiVersion: "ironlb.dev/v1beta1", kind: "L2Advertisement", metadata: { name }, spec };
}

/** Speakers' Leases publishing these links (node -> `ironlb.dev/links`). */
function leases(links: Record<string, string>): V1Lease[] {
  return Object.entries(links).map(([node, text]) => ({
    metadata: { name: `ironlb-speaker-${node}`, annotations: { "ironlb.dev/links": text } },
    spec: { holderIdentity: node },
  }));
}

/** Two Ready nodes with running speakers, pool "lan" advertised by L2Advertisement "lan". */
function base(): AnnounceInput {
  return {
    services: [service()],
    slices: [slice({ n1: true })],
    nodes: [node("n1"), node("n2")],
    pools: [pool("lan", ["192.0.2.0/24", "2001:db8::/64"])],
    ads: [ad("lan", { ipAddressPools: ["lan"] })],
    leases: [],
    live: new Set(["n1", "n2"]),
  };
}

const bgpPeer = {
  apiVersion: "ironlb.dev/v1beta1",
  kind: "BGPPeer",
  metadata: { name: "tor" },
  spec: { myASN: 64512, peerASN: 64513, peerAddress: "192.0.2.1" },
};
const bgpAd = {
  apiVersion: "ironlb.dev/v1beta1",
  kind: "BGPAdvertisement",
  metadata: { name: "lan-bgp" },
  spec: { ipAddressPools: ["lan"] },
};

type Row = [
  name: string,
  change: (i: AnnounceInput) => AnnounceInput,
  want: { announceable: true } | { reason: string; says: string[] },
];

const rows: Row[] = [
  ["a node may announce it", (i) => i, { announceable: true }],
  [
    "no L2Advertisement selects the pool",
    (i) => ({ ...i, ads: [ad("other", { ipAddressPools: ["other"] })] }),
    { reason: "NoAdvertisement", says: [IP, 'no L2Advertisement selects pool "lan"'] },
  ],
  [
    "no L2Advertisement at all",
    (i) => ({ ...i, ads: [] }),
    { reason: "NoAdvertisement", says: ['no L2Advertisement selects pool "lan"'] },
  ],
  [
    "the advertisement's nodeSelectors match no node",
    (i) => ({
      ...i,
      ads: [
        ad("lan", { ipAddressPools: ["lan"], nodeSelectors: [{ matchLabels: { rack: "r9" } }] }),
      ],
    }),
    { reason: "NoEligibleNode", says: ["2 not selected by the nodeSelectors of", '"lan"'] },
  ],
  [
    "no node has an interface the advertisement lists",
    (i) => ({
      ...i,
      ads: [ad("lan", { ipAddressPools: ["lan"], interfaces: ["eth1"] })],
      leases: leases({ n1: '{"eth0":["192.0.2.2/24"]}', n2: '{"eth0":["192.0.2.3/24"]}' }),
    }),
    { reason: "NoEligibleNode", says: ["2 without any interface listed by"] },
  ],
  [
    // The speakers' rule: outside every node's subnets, any node may answer (routed setups).
    "no node has an interface in the IP's subnet: every node may announce",
    (i) => ({ ...i, leases: leases({ n1: '{"eth0":["198.51.100.2/24"]}' }) }),
    { announceable: true },
  ],
  [
    "the only node in the IP's subnet has no running speaker",
    (i) => ({
      ...i,
      live: new Set(["n2"]),
      leases: leases({ n1: '{"eth0":["192.0.2.2/24"]}', n2: '{"eth0":["198.51.100.3/24"]}' }),
    }),
    { reason: "NoEligibleNode", says: ["1 without a live speaker", "1 without an interface in"] },
  ],
  [
    "no node runs a speaker",
    (i) => ({ ...i, live: new Set() }),
    { reason: "NoEligibleNode", says: ["2 without a live speaker"] },
  ],
  [
    "every node is drained with force",
    (i) => ({ ...i, nodes: [node("n1", { drain: "force" }), node("n2", { drain: "force" })] }),
    { reason: "NoEligibleNode", says: ["ironlb.dev/drain=force: n1, n2"] },
  ],
  [
    "a drained node still announces when it is the only one (drain hands over, force withdraws)",
    (i) => ({ ...i, nodes: [node("n1", { drain: "true" })] }),
    { announceable: true },
  ],
  [
    "Local without a ready endpoint anywhere",
    (i) => ({ ...i, services: [service({ local: true })], slices: [slice({ n1: false })] }),
    { reason: "NoReadyEndpoints", says: ["no ready endpoints"] },
  ],
  [
    "Cluster without any EndpointSlice",
    (i) => ({ ...i, slices: [] }),
    { reason: "NoReadyEndpoints", says: ["no ready endpoints"] },
  ],
  [
    "Local with its endpoints only on a node without speaker",
    (i) => ({
      ...i,
      services: [service({ local: true })],
      live: new Set(["n2"]),
    }),
    { reason: "NoEligibleNode", says: ["no node with a ready endpoint has a live speaker"] },
  ],
  [
    "its IP is in no pool",
    (i) => ({ ...i, services: [service({ ips: ["203.0.113.5"], pool: "gone" })] }),
    { reason: "NotInPool", says: ["203.0.113.5: its address is in no IPAddressPool"] },
  ],
  [
    "its IP is outside the pool it is attributed to",
    (i) => ({
      ...i,
      pools: [...i.pools, pool("dmz", ["203.0.113.0/24"])],
      services: [service({ pool: "dmz" })],
    }),
    { reason: "NotInPool", says: ["is not in pool dmz"] },
  ],
  [
    "dual-stack: only the IP no node may announce is named",
    (i) => ({ ...i, services: [service({ ips: [IP, "2001:db8::10"] })] }),
    { reason: "NoReadyEndpoints", says: ["no node may announce 2001:db8::10: no ready endpoints"] },
  ],
  [
    "BGP alone announces it: a BGPAdvertisement and a peer, no L2Advertisement",
    (i) => ({ ...i, ads: [], bgpPeers: [bgpPeer], bgpAds: [bgpAd] }),
    { announceable: true },
  ],
  [
    "BGP alone, but no node runs a speaker",
    (i) => ({ ...i, ads: [], bgpPeers: [bgpPeer], bgpAds: [bgpAd], live: new Set() }),
    { reason: "NoEligibleNode", says: ["BGP: no node with a running speaker"] },
  ],
  [
    "BGP alone, every node labelled exclude-from-external-load-balancers",
    (i) => ({
      ...i,
      ads: [],
      bgpPeers: [bgpPeer],
      bgpAds: [bgpAd],
      nodes: ["n1", "n2"].map((n) =>
        node(n, { labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "" } }),
      ),
    }),
    { reason: "NoEligibleNode", says: ["BGP: n1: this node is labelled"] },
  ],
  [
    "a BGPAdvertisement without any BGPPeer announces nothing",
    (i) => ({ ...i, ads: [], bgpAds: [bgpAd] }),
    { reason: "NoAdvertisement", says: ['no L2Advertisement selects pool "lan"'] },
  ],
  [
    "both modes select the pool and neither may announce: both reasons",
    (i) => ({ ...i, bgpPeers: [bgpPeer], bgpAds: [bgpAd], live: new Set() }),
    { reason: "NoEligibleNode", says: ["Layer 2: no eligible node among 2", "; BGP: "] },
  ],
];

describe("announceVerdicts", () => {
  it.each(rows)("%s", (_name, change, want) => {
    const v = announceVerdicts(change(base())).get("default/web");
    if ("announceable" in want) {
      expect(v).toEqual({ announceable: true });
      return;
    }
    expect(v?.announceable).toBe(false);
    const no = v as Extract<AnnounceVerdict, { announceable: false }>;
    expect(no.reason).toBe(want.reason);
    for (const s of want.says) expect(no.message).toContain(s);
  });

  it("says nothing about a Service without IPs", () => {
    const v = announceVerdicts({ ...base(), services: [service({ ips: [] })] });
    expect(v.size).toBe(0);
  });

  it("goes back to announceable when a node becomes able to", () => {
    const down = announceVerdicts({ ...base(), live: new Set() }).get("default/web");
    expect(down?.announceable).toBe(false);
    const up = announceVerdicts({ ...base(), live: new Set(["n2"]) }).get("default/web");
    expect(up).toEqual({ announceable: true });
  });
});
