import { describe, expect, it } from "vitest";
import type { ObjectInputs } from "../speaker/decision.ts";
import { advertiserRows, type BgpStatusInput, formatTable, sessionRows } from "./status-bgp.ts";

const v = "ironlb.dev/v1beta1";
const bgp = (over: Partial<BgpStatusInput> = {}): BgpStatusInput => ({
  peers: [
    {
      apiVersion: v,
      kind: "BGPPeer",
      metadata: { name: "tor" },
      spec: { myASN: 64512, peerASN: 64500, peerAddress: "192.0.2.1", peerPort: 179 },
    },
  ],
  ads: [{ apiVersion: v, kind: "BGPAdvertisement", metadata: { name: "all" } } as never],
  sessions: [],
  ...over,
});
const objects = (over: Partial<ObjectInputs> = {}): ObjectInputs => ({
  services: [
    { key: "shop/web", ips: ["198.51.100.7"], externalTrafficPolicy: "Cluster" },
    { key: "shop/api", ips: ["198.51.100.8"], externalTrafficPolicy: "Local" },
    { key: "shop/db", ips: ["198.51.100.9"], externalTrafficPolicy: "Local" },
  ],
  slices: [
    {
      service: "shop/web",
      addressType: "IPv4",
      endpoints: [{ nodeName: "node2", conditions: { ready: true } }],
    },
    {
      service: "shop/api",
      addressType: "IPv4",
      endpoints: [{ nodeName: "node2", conditions: { ready: true } }],
    },
  ],
  nodes: ["node1", "node2"].map((name) => ({ name, labels: {}, ready: "True" as const })),
  pools: [{ name: "public", labels: {}, addresses: ["198.51.100.0/24"] }],
  ...over,
});

describe("advertiserRows", () => {
  it("names the nodes advertising each IP to each peer, or why none does", () => {
    expect(advertiserRows(objects(), bgp())).toEqual([
      { service: "shop/api", ip: "198.51.100.8", peer: "tor", nodes: "node2" },
      {
        service: "shop/db",
        ip: "198.51.100.9",
        peer: "-",
        nodes: "none (node1: externalTrafficPolicy Local and no ready endpoint on this node)",
      },
      { service: "shop/web", ip: "198.51.100.7", peer: "tor", nodes: "node1,node2" },
    ]);
  });

  it("counts only nodes with a live speaker (a Node without one advertises nothing)", () => {
    expect(advertiserRows(objects(), bgp(), new Set(["node2"]))).toContainEqual({
      service: "shop/web",
      ip: "198.51.100.7",
      peer: "tor",
      nodes: "node2",
    });
  });

  const record = (ip: string, bgpEntries: unknown) => ({
    apiVersion: v,
    kind: "IPAnnouncement",
    metadata: { name: ip.replace(/\./g, "-") },
    status: { ip, bgp: bgpEntries },
  });
  const session = (node: string, peer: string, state: string) => ({
    apiVersion: v,
    kind: "BGPSessionState",
    metadata: { name: `${node}-${peer}` },
    status: { node, peer, state },
  });

  it("with the records, shows who advertises to whom as the speakers recorded it, marking sessions not Established", () => {
    const rows = advertiserRows(
      objects(),
      bgp({
        sessions: [
          session("node1", "tor", "Established"),
          session("node2", "tor", "Connect"),
        ] as never,
      }),
      undefined,
      [
        record("198.51.100.7", [
          { node: "node2", peers: ["tor", "edge"] },
          { node: "node1", peers: ["tor"] },
        ]),
        // A bad writer's record is skipped, not a crash.
        record("198.51.100.9", "not a list"),
      ] as never,
    );
    expect(rows).toEqual([
      // The plan says node2 should; nothing recorded yet.
      {
        service: "shop/api",
        ip: "198.51.100.8",
        peer: "tor",
        nodes: "pending: node2 about to advertise it (not recorded yet)",
      },
      {
        service: "shop/db",
        ip: "198.51.100.9",
        peer: "-",
        nodes: "none (node1: externalTrafficPolicy Local and no ready endpoint on this node)",
      },
      // Recorded: peers the plan alone would not show (another BGPPeer), per node.
      { service: "shop/web", ip: "198.51.100.7", peer: "edge", nodes: "node2" },
      {
        service: "shop/web",
        ip: "198.51.100.7",
        peer: "tor",
        nodes: "node1,node2 (session Connect)",
      },
    ]);
  });

  it("leaves out recorded entries of nodes whose speaker is not live", () => {
    const rows = advertiserRows(objects(), bgp(), new Set(["node2"]), [
      record("198.51.100.7", [
        { node: "node1", peers: ["tor"] },
        { node: "node2", peers: ["tor"] },
      ]),
    ] as never);
    expect(rows).toContainEqual({
      service: "shop/web",
      ip: "198.51.100.7",
      peer: "tor",
      nodes: "node2",
    });
  });

  it("is empty without BGPPeers (BGP mode not in use)", () => {
    expect(advertiserRows(objects(), bgp({ peers: [] }))).toEqual([]);
  });
});

describe("sessionRows", () => {
  it("lists each node's sessions, with the last error only while not Established", () => {
    const st = (node: string, state: string, lastError?: string) => ({
      apiVersion: v,
      kind: "BGPSessionState",
      metadata: { name: `${node}-tor` },
      status: { node, peer: "tor", state, prefixesSent: 2, flaps: 1, lastError },
    });
    const rows = sessionRows(
      bgp({
        sessions: [
          st("node2", "Connect", "connect failed: ECONNREFUSED"),
          st("node1", "Established", "old"),
        ] as never,
      }),
    );
    expect(rows).toEqual([
      {
        node: "node1",
        peer: "tor",
        state: "Established",
        prefixes: "2",
        flaps: "1",
        lastError: "-",
      },
      {
        node: "node2",
        peer: "tor",
        state: "Connect",
        prefixes: "2",
        flaps: "1",
        lastError: "connect failed: ECONNREFUSED",
      },
    ]);
    expect(
      formatTable(
        { node: "NODE", peer: "PEER", state: "STATE", prefixes: "P", flaps: "F", lastError: "ERR" },
        rows,
      ),
    ).toBe(
      [
        "NODE   PEER  STATE        P  F  ERR",
        "node1  tor   Established  2  1  -",
        "node2  tor   Connect      2  1  connect failed: ECONNREFUSED",
      ].join("\n"),
    );
  });
});
