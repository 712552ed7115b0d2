import type { V1EndpointSlice, V1Node, V1Service } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { clusterSnapshot } from "./snapshot.ts";

const service = (name: string, extra: Partial<V1Service> = {}): V1Service => ({
  metadata: { name, namespace: "shop", ...extra.metadata },
  spec: { type: "LoadBalancer", ...extra.spec },
  status: { loadBalancer: { ingress: [{ ip: "198.51.100.7" }, { ip: "2001:db8::7" }] } },
});

describe("clusterSnapshot", () => {
  it("reads each Service's key, IPs, traffic policy, pool, rebalance request and labels", () => {
    const { services } = clusterSnapshot({
      services: [
        service("web", {
          metadata: {
            labels: { tier: "web" },
            annotations: {
              "ironlb.dev/ip-allocated-from-pool": "public",
              "ironlb.dev/rebalance": "true",
            },
          },
          spec: { externalTrafficPolicy: "Local" },
        }),
        // Anything but "Local" is Cluster, as kube-proxy reads it; "yes" is not "true".
        service("api", {
          metadata: { annotations: { "ironlb.dev/rebalance": "yes" } },
          spec: { externalTrafficPolicy: "local" },
        }),
      ],
      slices: [],
      nodes: [],
      pools: [],
      ads: [],
    });
    expect(services).toEqual([
      {
        key: "shop/web",
        ips: ["198.51.100.7", "2001:db8::7"],
        externalTrafficPolicy: "Local",
        allocatedFromPool: "public",
        rebalance: true,
        labels: { tier: "web" },
      },
      {
        key: "shop/api",
        ips: ["198.51.100.7", "2001:db8::7"],
        externalTrafficPolicy: "Cluster",
        rebalance: false,
        labels: {},
      },
    ]);
  });

  it("ties slices to their Service by label and drops slices without one", () => {
    const slice = (name: string, labels?: Record<string, string>): V1EndpointSlice => ({
      metadata: { name, namespace: "shop", ...(labels ? { labels } : {}) },
      addressType: "IPv4",
      endpoints: [{ addresses: ["203.0.113.20"], nodeName: "node1" }],
    });
    const { slices } = clusterSnapshot({
      services: [],
      slices: [slice("web-abc", { "kubernetes.io/service-name": "web" }), slice("manual")],
      nodes: [],
      pools: [],
      ads: [],
    });
    expect(slices).toEqual([expect.objectContaining({ service: "shop/web", addressType: "IPv4" })]);
  });

  it("reads the two node conditions eligibility looks at, and nothing for absent ones", () => {
    const node = (name: string, conditions: { type: string; status: string }[]): V1Node => ({
      metadata: { name, labels: { zone: "a" } },
      status: { conditions },
    });
    const { nodes } = clusterSnapshot({
      services: [],
      slices: [],
      nodes: [
        node("node1", [
          { type: "Ready", status: "True" },
          { type: "NetworkUnavailable", status: "True" },
          { type: "MemoryPressure", status: "True" },
        ]),
        node("node2", []),
      ],
      pools: [],
      ads: [],
    });
    expect(nodes).toEqual([
      { name: "node1", labels: { zone: "a" }, ready: "True", networkUnavailable: "True" },
      { name: "node2", labels: { zone: "a" } },
    ]);
  });

  it("reads the drain annotation: true drains, force forces, false and absent do not", () => {
    const node = (name: string, drain?: string): V1Node => ({
      metadata: {
        name,
        ...(drain === undefined ? {} : { annotations: { "ironlb.dev/drain": drain } }),
      },
    });
    const { nodes } = clusterSnapshot({
      services: [],
      slices: [],
      nodes: [
        node("a", "true"),
        node("b", "force"),
        node("c", "false"),
        node("d"),
        node("e", "yes"),
      ],
      pools: [],
      ads: [],
    });
    expect(nodes.map((n) => [n.name, n.drain])).toEqual([
      ["a", "drain"],
      ["b", "force"],
      ["c", undefined],
      ["d", undefined],
      ["e", "drain"],
    ]);
  });

  it("gives pools and advertisements their names, a pool without spec no addresses", () => {
    const s = clusterSnapshot({
      services: [],
      slices: [],
      nodes: [],
      pools: [
        {
          metadata: { name: "public", labels: { tier: "web" } },
          spec: { addresses: ["198.51.100.0/24"] },
        },
        { metadata: { name: "broken" } },
      ],
      ads: [
        { metadata: { name: "lan" }, spec: { interfaces: ["eth0"] } },
        { metadata: { name: "all" } },
      ],
    });
    expect(s.pools).toEqual([
      { name: "public", labels: { tier: "web" }, addresses: ["198.51.100.0/24"] },
      { name: "broken", labels: {}, addresses: [] },
    ]);
    expect(s.ads).toEqual([{ name: "lan", interfaces: ["eth0"] }, { name: "all" }]);
  });
});
