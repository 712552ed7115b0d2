import { describe, expect, it } from "vitest";
import { chooseOwner } from "../speaker/election.ts";
import { formatRows, type StatusInput, statusRows } from "./status.ts";

const NOW = Date.parse("2026-12-01T12:00:00Z");
const filter = { lbClass: "ironlb.dev/lb", handleUnclassed: true };

function svc(name: string, ip?: string, extra: Record<string, unknown> = {}) {
  return {
    metadata: {
      name,
      namespace: "shop",
      annotations: { "ironlb.dev/ip-allocated-from-pool": "public" },
    },
    spec: { type: "LoadBalancer", externalTrafficPolicy: "Cluster" },
    status: ip ? { loadBalancer: { ingress: [{ ip }] } } : {},
    ...extra,
  };
}

function input(over: Partial<StatusInput> = {}): StatusInput {
  const lease = (node: string, renew: string) => ({
    metadata: { name: `ironlb-speaker-${node}` },
    spec: { holderIdentity: node, renewTime: renew as never, leaseDurationSeconds: 6 },
  });
  return {
    services: [svc("web", "198.51.100.7"), svc("api", "198.51.100.8")] as never,
    slices: [
      {
        metadata: {
          name: "web-1",
          namespace: "shop",
          labels: { "kubernetes.io/service-name": "web" },
        },
        addressType: "IPv4",
        endpoints: [{ addresses: ["203.0.113.20"], nodeName: "node1" }],
      },
    ] as never,
    nodes: ["node1", "node2"].map((name) => ({
      metadata: { name },
      status: { conditions: [{ type: "Ready", status: "True" }] },
    })) as never,
    pools: [{ metadata: { name: "public" }, spec: { addresses: ["198.51.100.0/24"] } }] as never,
    ads: [{ metadata: { name: "lan" }, spec: {} }] as never,
    leases: [
      lease("node1", "2026-12-01T11:59:58Z"),
      lease("node2", "2026-12-01T11:59:59Z"),
    ] as never,
    announcements: [
      {
        metadata: { name: "198-51-100-7" },
        status: { ip: "198.51.100.7", node: "node2", interfaces: ["eth0"] },
      },
    ] as never,
    ...over,
  };
}

describe("statusRows", () => {
  it("says a drained node is handing an IP over, or keeps one no other node may announce", () => {
    const drained = (node: string) => ({
      metadata: { name: node, annotations: { "ironlb.dev/drain": "true" } },
      status: { conditions: [{ type: "Ready", status: "True" }] },
    });
    const ready = { metadata: { name: "node1" }, status: input().nodes[0]!.status };
    // web: Cluster, recorded on node2, which is drained: the speakers move it to node1.
    const moving = statusRows(input({ nodes: [ready, drained("node2")] as never }), filter, NOW);
    expect(moving.find((r) => r.ip === "198.51.100.7")?.state).toBe(
      "moving: node2 recorded, speakers choose node1",
    );
    // Local with its only endpoint on node1, recorded there, node1 drained: kept.
    const local = input({
      services: [svc("web", "198.51.100.7")] as never,
      nodes: [drained("node1"), input().nodes[1]] as never,
      announcements: [
        {
          metadata: { name: "198-51-100-7" },
          status: { ip: "198.51.100.7", node: "node1", interfaces: ["eth0"] },
        },
      ] as never,
    });
    (local.services[0]!.spec as { externalTrafficPolicy: string }).externalTrafficPolicy = "Local";
    expect(statusRows(local, filter, NOW)[0]?.state).toMatch(
      /^announced, drained node keeps it: node1 is drained, but no other node may announce 198\.51\.100\.7/,
    );
  });

  it("names the announcing node and interface, and why an IP is not announced", () => {
    expect(statusRows(input(), filter, NOW)).toEqual([
      {
        service: "shop/api",
        ip: "198.51.100.8",
        pool: "public",
        node: "-",
        interfaces: "-",
        state: "not announced: no ready endpoints",
      },
      {
        service: "shop/web",
        ip: "198.51.100.7",
        pool: "public",
        node: "node2",
        interfaces: "eth0",
        state: "announced",
      },
    ]);
  });

  it("a Service without IP shows the controller's reason", () => {
    const pending = svc("batch", undefined, {
      status: {
        conditions: [
          {
            type: "ironlb.dev/IPAllocated",
            status: "False",
            reason: "PoolExhausted",
            message: "pool public has no free address",
          },
        ],
      },
    });
    const [row] = statusRows(input({ services: [pending] as never }), filter, NOW);
    expect(row?.state).toBe("pending: PoolExhausted: pool public has no free address");
  });

  it("a recorded owner whose Lease expired: speakers choose another node", () => {
    const leases = input().leases.filter((l) => l.spec?.holderIdentity === "node1");
    const rows = statusRows(input({ leases }), filter, NOW);
    expect(rows.find((r) => r.service === "shop/web")?.state).toBe(
      "moving: node2 recorded, speakers choose node1",
    );
  });

  it("a status IP outside the pool its Service names is not announced for that Service", () => {
    const copy = svc("copy", "198.51.100.7", {
      metadata: {
        name: "copy",
        namespace: "shop",
        annotations: { "ironlb.dev/ip-allocated-from-pool": "other" },
      },
    });
    const pools = [
      ...input().pools,
      { metadata: { name: "other" }, spec: { addresses: ["203.0.113.0/24"] } },
    ] as never;
    const rows = statusRows(
      input({ services: [...input().services, copy] as never, pools }),
      filter,
      NOW,
    );
    expect(rows.find((r) => r.service === "shop/copy")).toEqual({
      service: "shop/copy",
      ip: "198.51.100.7",
      pool: "-",
      node: "-",
      interfaces: "-",
      state:
        "not announced: 198.51.100.7 is not in pool other, which shop/copy names in ironlb.dev/ip-allocated-from-pool",
    });
    // The Service the IP belongs to is still announced.
    expect(rows.find((r) => r.service === "shop/web")?.state).toBe("announced");
  });

  it("reads the speakers' published links: the node the hash would pass over has the subnet", () => {
    // Without the links the hash's choice would announce it: give the subnet to the other.
    const other = chooseOwner("198.51.100.7", ["node1", "node2"]) === "node1" ? "node2" : "node1";
    const leases = input().leases.map((l) => {
      const cidr = l.spec?.holderIdentity === other ? "198.51.100.2/24" : "192.0.2.3/24";
      const links = JSON.stringify({ eth0: [cidr] });
      return { ...l, metadata: { ...l.metadata, annotations: { "ironlb.dev/links": links } } };
    }) as never;
    const rows = statusRows(input({ leases, announcements: [] }), filter, NOW);
    expect(rows.find((r) => r.service === "shop/web")?.state).toBe(
      `pending: ${other} is about to announce it`,
    );
    const ads = [{ metadata: { name: "lan" }, spec: { interfaces: ["eth9"] } }] as never;
    const none = statusRows(input({ leases, ads, announcements: [] }), filter, NOW);
    expect(none.find((r) => r.service === "shop/web")?.state).toBe(
      'not announced: no eligible node among 2: 2 without any interface listed by L2Advertisement "lan"',
    );
  });

  it("in BGP mode: an IP no node announces in Layer 2 but one advertises over BGP says so", () => {
    const bgp = {
      peers: [
        {
          apiVersion: "ironlb.dev/v1beta1",
          kind: "BGPPeer",
          metadata: { name: "tor" },
          spec: { myASN: 64512, peerASN: 64513, peerAddress: "192.0.2.1" },
        },
      ],
      ads: [
        {
          apiVersion: "ironlb.dev/v1beta1",
          kind: "BGPAdvertisement",
          metadata: { name: "public-bgp" },
          spec: { ipAddressPools: ["public"] },
        },
      ],
    } as never;
    const rows = statusRows(input({ ads: [], announcements: [] }), filter, NOW, bgp);
    expect(rows.find((r) => r.service === "shop/web")?.state).toBe(
      "advertised over BGP (see below)",
    );
    // api has no endpoint: neither mode may announce it, and both say why.
    expect(rows.find((r) => r.service === "shop/api")?.state).toBe(
      "not announced: BGP: node1: no ready endpoints",
    );
    // Without BGP, the Layer 2 reason.
    const l2 = statusRows(input({ ads: [], announcements: [] }), filter, NOW);
    expect(l2.find((r) => r.service === "shop/web")?.state).toBe(
      'not announced: no L2Advertisement selects pool "public"',
    );
  });

  it("formats an aligned table", () => {
    const lines = formatRows(statusRows(input(), filter, NOW)).split("\n");
    expect(lines[0]).toMatch(/^SERVICE\s+IP\s+POOL\s+NODE\s+INTERFACES\s+STATUS$/);
    expect(lines[2]).toMatch(/^shop\/web\s+198\.51\.100\.7\s+public\s+node2\s+eth0\s+announced$/);
    expect(lines[0]!.indexOf("IP")).toBe(lines[2]!.indexOf("198"));
  });
});
