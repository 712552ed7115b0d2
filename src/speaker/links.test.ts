import { describe, expect, it } from "vitest";
import { decide } from "./decision.ts";
import {
  type EligibilityInput,
  eligibleNodes,
  type NodeInfo,
  nodesOnSubnet,
} from "./eligibility.ts";
import type { HostInterface } from "./interfaces.ts";
import { formatLinks, linksContain, type PublishedLink, parseLinks, usableLinks } from "./links.ts";

function host(name: string, cidrs: string[], extra: Partial<HostInterface> = {}): HostInterface {
  return {
    name,
    up: true,
    mac: "02:00:00:00:00:01",
    addresses: cidrs.map((cidr) => ({
      address: cidr.split("/")[0]!,
      family: cidr.includes(":") ? "IPv6" : "IPv4",
      internal: false,
      cidr,
    })),
    ...extra,
  };
}

describe("usableLinks / formatLinks / parseLinks", () => {
  it("publishes up LAN interfaces with their subnets, not loopback, plumbing or down links", () => {
    const links = usableLinks([
      host("lo", ["127.0.0.1/8"]),
      host("eth1", ["198.51.100.5/24", "2001:db8:1::5/64"]),
      host("eth0", ["192.0.2.5/24"]),
      host("eth2", ["203.0.113.9/24"], { up: false }),
      host("cni0", ["10.244.0.1/24"]),
      host("kube-ipvs0", ["192.0.2.200/32"]),
      host("dummy0", ["192.0.2.201/32"]),
    ]);
    expect(links).toEqual([
      { name: "dummy0", cidrs: [] },
      { name: "eth0", cidrs: ["192.0.2.5/24"] },
      { name: "eth1", cidrs: ["198.51.100.5/24", "2001:db8:1::5/64"] },
    ]);
    expect(parseLinks(formatLinks(links))).toEqual(links);
  });

  it.each<[string, string | undefined]>([
    ["absent", undefined],
    ["not JSON", "eth0=192.0.2.5/24"],
    ["an array", "[]"],
    ["a list that is not of strings", '{"eth0":[5]}'],
    ["null", "null"],
  ])("reads %s as 'publishes nothing'", (_, text) => {
    expect(parseLinks(text)).toBeUndefined();
  });

  it("keeps an interface whose CIDRs are malformed, without them", () => {
    expect(parseLinks('{"eth0":["nonsense","192.0.2.5/40","192.0.2.5/24"]}')).toEqual([
      { name: "eth0", cidrs: ["192.0.2.5/24"] },
    ]);
  });

  it.each<[string, string, boolean]>([
    ["192.0.2.5/24", "192.0.2.77", true],
    ["192.0.2.5/24", "192.0.3.1", false],
    ["192.0.2.5/32", "192.0.2.5", false],
    ["2001:db8:1::5/64", "2001:db8:1::99", true],
    ["2001:db8:1::5/64", "192.0.2.5", false],
    ["192.0.2.5/24", "not-an-ip", false],
  ])("%s holds %s: %s", (cidr, ip, want) => {
    expect(linksContain([{ name: "eth0", cidrs: [cidr] }], ip)).toBe(want);
  });
});

const LAN1: PublishedLink[] = [{ name: "eth0", cidrs: ["192.0.2.1/24"] }];
const LAN12: PublishedLink[] = [
  { name: "eth0", cidrs: ["192.0.2.2/24"] },
  { name: "eth1", cidrs: ["198.51.100.2/24"] },
];

function node(name: string, links?: PublishedLink[]): NodeInfo {
  return { name, labels: {}, ready: "True", ...(links ? { links } : {}) };
}

function run(nodes: NodeInfo[], ip: string, ads: EligibilityInput["l2Advertisements"]) {
  return eligibleNodes({
    nodes,
    liveSpeakers: new Set(nodes.map((n) => n.name)),
    l2Advertisements: ads,
    pool: { name: "p", labels: {} },
    service: { externalTrafficPolicy: "Cluster", endpoints: { byNode: new Map(), total: 1 } },
    onSubnet: new Set(nodesOnSubnet(nodes, ip)),
  });
}

describe("eligibleNodes: published links", () => {
  const auto = [{ name: "ad" }];
  it.each<[string, NodeInfo[], string, string[], Array<[string, string]>]>([
    [
      "auto: only nodes with the IP's subnet",
      [node("a", LAN1), node("b", LAN12), node("c", LAN12)],
      "198.51.100.40",
      ["b", "c"],
      [["a", "NotOnIPSubnet"]],
    ],
    [
      "auto: every node when none has the IP's subnet (an off-subnet pool)",
      [node("a", LAN1), node("b", LAN12)],
      "203.0.113.40",
      ["a", "b"],
      [],
    ],
    [
      "auto: a node that publishes nothing (an older speaker) stays eligible",
      [node("a", LAN1), node("old"), node("b", LAN12)],
      "198.51.100.40",
      ["b", "old"],
      [["a", "NotOnIPSubnet"]],
    ],
    [
      "auto: only older speakers: every node, as before",
      [node("old1"), node("old2")],
      "198.51.100.40",
      ["old1", "old2"],
      [],
    ],
    [
      "auto: IPv6 by the IPv6 subnet",
      [node("a", [{ name: "eth0", cidrs: ["2001:db8:1::1/64"] }]), node("b", LAN12)],
      "2001:db8:1::40",
      ["a"],
      [["b", "NotOnIPSubnet"]],
    ],
  ])("%s", (_, nodes, ip, want, excluded) => {
    const r = run(nodes, ip, auto);
    expect(r.nodes.map((n) => n.name)).toEqual(want);
    expect(r.excluded.map((e) => [e.name, e.cause])).toEqual(excluded);
  });

  it("explicit interfaces: only nodes that publish one of them (older speakers too)", () => {
    const r = run([node("a", LAN1), node("b", LAN12), node("old")], "192.0.2.40", [
      { name: "ad", interfaces: ["eth1"] },
    ]);
    expect(r.nodes.map((n) => n.name)).toEqual(["b", "old"]);
    expect(r.excluded).toEqual([{ name: "a", cause: "NoListedInterface" }]);
  });

  it("says why when no node has a listed interface", () => {
    const r = run([node("a", LAN1), node("b", LAN12)], "192.0.2.40", [
      { name: "ad", interfaces: ["eth9"] },
    ]);
    expect(r.nodes).toEqual([]);
    expect(r.reason).toBe(
      'no eligible node among 2: 2 without any interface listed by L2Advertisement "ad"',
    );
  });

  it("says why when the nodes with the IP's subnet are not eligible", () => {
    const nodes = [node("a", LAN1), { ...node("b", LAN12), ready: "False" as const }];
    const r = run(nodes, "198.51.100.40", [{ name: "ad" }]);
    expect(r.nodes).toEqual([]);
    expect(r.reason).toBe(
      "no eligible node among 2: 1 not Ready, 1 without an interface in the IP's subnet",
    );
  });
});

describe("decide: the subnet rule per IP", () => {
  it("gives two IPs of one pool in different subnets different eligible nodes", () => {
    const d = decide({
      services: [
        { key: "ns/a", ips: ["192.0.2.40", "198.51.100.40"], externalTrafficPolicy: "Cluster" },
      ],
      slices: [{ service: "ns/a", addressType: "IPv4", endpoints: [{ nodeName: "a" }] }],
      nodes: [
        node("a", LAN1),
        node("b", LAN12),
        node("c", [{ name: "eth0", cidrs: ["198.51.100.3/24"] }]),
      ],
      pools: [{ name: "p", labels: {}, addresses: ["192.0.2.0/24", "198.51.100.0/24"] }],
      ads: [{ name: "ad" }],
      membership: { self: "a", live: new Set(["a", "b", "c"]), settled: true, quorum: true },
      currentOwners: new Map(),
      held: new Set(),
      contested: new Set(),
    });
    expect(d.ips.get("192.0.2.40")?.eligible.map((n) => n.name)).toEqual(["a", "b"]);
    expect(d.ips.get("198.51.100.40")?.eligible.map((n) => n.name)).toEqual(["b", "c"]);
  });
});
