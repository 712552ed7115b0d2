import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { DEFAULT_AFFINITY_SECONDS, desiredForwarding } from "./desired.ts";

const filter = { lbClass: "ironlb.dev/lb", handleUnclassed: true };

function svc(
  name: string,
  o: {
    ips?: { ip: string; ipMode?: string }[];
    etp?: "Cluster" | "Local";
    affinity?: number | "default";
    ports?: { name?: string; port: number; protocol?: string }[];
    type?: string;
    lbClass?: string;
  } = {},
): V1Service {
  return {
    metadata: { name, namespace: "default" },
    spec: {
      type: o.type ?? "LoadBalancer",
      ...(o.lbClass ? { loadBalancerClass: o.lbClass } : {}),
      externalTrafficPolicy: o.etp ?? "Cluster",
      ...(o.affinity !== undefined
        ? {
            sessionAffinity: "ClientIP",
            ...(o.affinity === "default"
              ? {}
              : { sessionAffinityConfig: { clientIP: { timeoutSeconds: o.affinity } } }),
          }
        : {}),
      ports: (o.ports ?? [{ name: "http", port: 80 }]).map((p) => ({ protocol: "TCP", ...p })),
    },
    status: {
      loadBalancer: {
        ingress: (o.ips ?? [{ ip: "198.51.100.10", ipMode: "Proxy" }]).map((i) => ({ ...i })),
      },
    },
  };
}

function slice(
  service: string,
  family: "IPv4" | "IPv6",
  eps: { addr: string; node?: string; ready?: boolean }[],
  ports: { name?: string; port: number; protocol?: string }[] = [{ name: "http", port: 8080 }],
): V1EndpointSlice {
  return {
    addressType: family,
    metadata: {
      name: `${service}-${family}`,
      namespace: "default",
      labels: { "kubernetes.io/service-name": service },
    },
    endpoints: eps.map((e) => ({
      addresses: [e.addr],
      ...(e.node ? { nodeName: e.node } : {}),
      ...(e.ready === undefined ? {} : { conditions: { ready: e.ready } }),
    })),
    ports: ports.map((p) => ({ protocol: "TCP", ...p })),
  };
}

const v4eps = [
  { addr: "198.51.100.131", node: "node1" },
  { addr: "198.51.100.146", node: "node2" },
  { addr: "198.51.100.130", node: "node1", ready: false },
];

describe("desiredForwarding", () => {
  const cases: {
    name: string;
    services: V1Service[];
    slices: V1EndpointSlice[];
    want: unknown[];
  }[] = [
    {
      name: "Cluster: every ready endpoint, masquerade",
      services: [svc("web")],
      slices: [slice("web", "IPv4", v4eps)],
      want: [
        {
          service: "default/web",
          ip: "198.51.100.10",
          family: 4,
          protocol: "tcp",
          port: 80,
          masquerade: true,
          endpoints: [
            { address: "198.51.100.131", port: 8080 },
            { address: "198.51.100.146", port: 8080 },
          ],
        },
      ],
    },
    {
      name: "Local: this node's ready endpoints only, client address kept",
      services: [svc("web", { etp: "Local" })],
      slices: [slice("web", "IPv4", v4eps)],
      want: [
        expect.objectContaining({
          masquerade: false,
          endpoints: [{ address: "198.51.100.131", port: 8080 }],
        }),
      ],
    },
    {
      name: "Local without a local ready endpoint: no endpoints (reject)",
      services: [svc("web", { etp: "Local" })],
      slices: [slice("web", "IPv4", [{ addr: "198.51.100.146", node: "node2" }])],
      want: [expect.objectContaining({ endpoints: [] })],
    },
    {
      name: "ipMode VIP (or unset) is kube-proxy's: nothing",
      services: [
        svc("web", { ips: [{ ip: "198.51.100.10", ipMode: "VIP" }, { ip: "198.51.100.11" }] }),
      ],
      slices: [slice("web", "IPv4", v4eps)],
      want: [],
    },
    {
      name: "not ours (other class, not a LoadBalancer): nothing",
      services: [svc("a", { lbClass: "other" }), svc("b", { type: "ClusterIP" })],
      slices: [slice("a", "IPv4", v4eps), slice("b", "IPv4", v4eps)],
      want: [],
    },
    {
      name: "dual-stack: each IP family gets its own endpoints",
      services: [
        svc("web", {
          ips: [
            { ip: "198.51.100.10", ipMode: "Proxy" },
            { ip: "2001:db8:2:100::10", ipMode: "Proxy" },
          ],
        }),
      ],
      slices: [
        slice("web", "IPv4", [{ addr: "198.51.100.131", node: "node1" }]),
        slice("web", "IPv6", [{ addr: "2001:db8:2:1::5", node: "node1" }]),
      ],
      want: [
        expect.objectContaining({
          ip: "198.51.100.10",
          family: 4,
          endpoints: [{ address: "198.51.100.131", port: 8080 }],
        }),
        expect.objectContaining({
          ip: "2001:db8:2:100::10",
          family: 6,
          endpoints: [{ address: "2001:db8:2:1::5", port: 8080 }],
        }),
      ],
    },
    {
      name: "ports matched by name; several ports; UDP",
      services: [
        svc("dns", {
          ports: [
            { name: "dns", port: 53, protocol: "UDP" },
            { name: "dns-tcp", port: 53, protocol: "TCP" },
          ],
        }),
      ],
      slices: [
        slice(
          "dns",
          "IPv4",
          [{ addr: "198.51.100.131" }],
          [
            { name: "dns-tcp", port: 5353, protocol: "TCP" },
            { name: "dns", port: 5300, protocol: "UDP" },
          ],
        ),
      ],
      want: [
        expect.objectContaining({
          protocol: "tcp",
          port: 53,
          endpoints: [{ address: "198.51.100.131", port: 5353 }],
        }),
        expect.objectContaining({
          protocol: "udp",
          port: 53,
          endpoints: [{ address: "198.51.100.131", port: 5300 }],
        }),
      ],
    },
    {
      name: "sessionAffinity ClientIP: its timeout, or Kubernetes' default",
      services: [
        svc("a", { affinity: 60 }),
        svc("b", { affinity: "default", ips: [{ ip: "198.51.100.11", ipMode: "Proxy" }] }),
      ],
      slices: [],
      want: [
        expect.objectContaining({ service: "default/a", affinitySeconds: 60 }),
        expect.objectContaining({
          service: "default/b",
          affinitySeconds: DEFAULT_AFFINITY_SECONDS,
        }),
      ],
    },
    {
      name: "endpoints in several slices are merged and deduplicated; unset ready counts as ready",
      services: [svc("web")],
      slices: [
        slice("web", "IPv4", [{ addr: "198.51.100.131" }]),
        {
          ...slice("web", "IPv4", [{ addr: "198.51.100.131" }, { addr: "198.51.100.129" }]),
          metadata: {
            name: "web-2",
            namespace: "default",
            labels: { "kubernetes.io/service-name": "web" },
          },
        },
      ],
      want: [
        expect.objectContaining({
          endpoints: [
            { address: "198.51.100.129", port: 8080 },
            { address: "198.51.100.131", port: 8080 },
          ],
        }),
      ],
    },
    {
      name: "two Services on one IP:port (a sharing mistake): the first by name wins",
      services: [svc("b"), svc("a")],
      slices: [
        slice("a", "IPv4", [{ addr: "198.51.100.131" }]),
        slice("b", "IPv4", [{ addr: "198.51.100.146" }]),
      ],
      want: [expect.objectContaining({ service: "default/a" })],
    },
    {
      name: "a slice in another namespace does not count",
      services: [svc("web")],
      slices: [
        {
          ...slice("web", "IPv4", v4eps),
          metadata: {
            name: "x",
            namespace: "other",
            labels: { "kubernetes.io/service-name": "web" },
          },
        },
      ],
      want: [expect.objectContaining({ endpoints: [] })],
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(
        desiredForwarding({ ...filter, node: "node1", services: c.services, slices: c.slices }),
      ).toEqual(c.want);
    });
  }
});
