import type { V1EndpointSlice, V1Node, V1Service } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { ANNOTATIONS, isOurs, statusIPs } from "../api/service.ts";
import { desiredForwarding } from "../dataplane/desired.ts";
import { countReadyEndpoints } from "./eligibility.ts";
import { ANNOTATION_VALUE_LIMIT, slimEndpointSlice, slimNode, slimService } from "./slim.ts";

const lbService: V1Service = {
  metadata: {
    name: "web",
    namespace: "shop",
    uid: "u-1",
    resourceVersion: "42",
    labels: { app: "web" },
    annotations: {
      [ANNOTATIONS.allocatedFromPool]: "main",
      "ironlb.dev/rebalance": "true",
      "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(2000),
    },
    managedFields: [{ manager: "kubectl" }],
  },
  spec: {
    type: "LoadBalancer",
    loadBalancerClass: "ironlb.dev/ironlb",
    externalTrafficPolicy: "Local",
    sessionAffinity: "ClientIP",
    sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
    selector: { app: "web" },
    clusterIP: "198.51.100.5",
    clusterIPs: ["198.51.100.5"],
    ports: [{ name: "http", port: 80, protocol: "TCP", targetPort: 8080, nodePort: 31000 }],
  },
  status: {
    loadBalancer: { ingress: [{ ip: "198.51.100.70", ipMode: "Proxy", ports: [] }] },
  },
};

const slice: V1EndpointSlice = {
  metadata: {
    name: "web-abc",
    namespace: "shop",
    resourceVersion: "7",
    labels: {
      "kubernetes.io/service-name": "web",
      "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
    },
    ownerReferences: [{ apiVersion: "v1", kind: "Service", name: "web", uid: "u-1" }],
  },
  addressType: "IPv4",
  ports: [{ name: "http", port: 8080, protocol: "TCP", appProtocol: "http" }],
  endpoints: [
    {
      addresses: ["198.51.100.130", "198.51.100.131"],
      nodeName: "node1",
      zone: "a",
      conditions: { ready: true, serving: true, terminating: false },
      targetRef: { kind: "Pod", name: "web-1", namespace: "shop", uid: "p-1" },
    },
    { addresses: ["198.51.100.160"], nodeName: "node2", conditions: { ready: false } },
    { addresses: ["198.51.100.161"] },
  ],
};

describe("slimService", () => {
  it("keeps what the decision, the forwarder and Events read, and drops the rest", () => {
    const s = slimService(structuredClone(lbService));
    expect(s).toEqual({
      metadata: {
        name: "web",
        namespace: "shop",
        uid: "u-1",
        resourceVersion: "42",
        labels: { app: "web" },
        annotations: { [ANNOTATIONS.allocatedFromPool]: "main", "ironlb.dev/rebalance": "true" },
      },
      spec: {
        type: "LoadBalancer",
        loadBalancerClass: "ironlb.dev/ironlb",
        externalTrafficPolicy: "Local",
        sessionAffinity: "ClientIP",
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
        ports: [{ name: "http", port: 80, protocol: "TCP" }],
      },
      status: { loadBalancer: { ingress: [{ ip: "198.51.100.70", ipMode: "Proxy" }] } },
    });
    const filter = { lbClass: "ironlb.dev/ironlb", handleUnclassed: false };
    expect(isOurs(s, filter)).toBe(true);
    expect(statusIPs(s)).toEqual(["198.51.100.70"]);
  });

  it("reduces a Service of another type to its identity and type", () => {
    const s = slimService({
      ...structuredClone(lbService),
      spec: { type: "ClusterIP", ports: [] },
    });
    expect(s).toEqual({
      metadata: { name: "web", namespace: "shop", uid: "u-1", resourceVersion: "42" },
      spec: { type: "ClusterIP" },
    });
    expect(isOurs(s, { lbClass: "x", handleUnclassed: true })).toBe(false);
  });

  it("gives the forwarder the same answer as the full objects", () => {
    const input = { node: "node1", lbClass: "ironlb.dev/ironlb", handleUnclassed: false };
    const full = desiredForwarding({ ...input, services: [lbService], slices: [slice] });
    const slim = desiredForwarding({
      ...input,
      services: [slimService(structuredClone(lbService))],
      slices: [slimEndpointSlice(structuredClone(slice))],
    });
    expect(full).toHaveLength(1);
    expect(full[0]!.endpoints).toEqual([{ address: "198.51.100.130", port: 8080 }]);
    expect(slim).toEqual(full);
  });
});

describe("slimEndpointSlice", () => {
  it("keeps the Service label, ports, and per endpoint node, readiness and first address", () => {
    expect(slimEndpointSlice(structuredClone(slice))).toEqual({
      metadata: {
        name: "web-abc",
        namespace: "shop",
        resourceVersion: "7",
        labels: { "kubernetes.io/service-name": "web" },
      },
      addressType: "IPv4",
      ports: [{ name: "http", port: 8080, protocol: "TCP" }],
      endpoints: [
        { addresses: ["198.51.100.130"], nodeName: "node1", conditions: { ready: true } },
        { addresses: ["198.51.100.160"], nodeName: "node2", conditions: { ready: false } },
        { addresses: ["198.51.100.161"] },
      ],
    });
  });

  it("counts the same ready endpoints as the full object", () => {
    const full = countReadyEndpoints([slice], "IPv4");
    expect(full.total).toBe(2);
    expect(countReadyEndpoints([slimEndpointSlice(structuredClone(slice))], "IPv4")).toEqual(full);
  });
});

describe("slimNode", () => {
  it("keeps name, labels, the drain annotation and the Ready and NetworkUnavailable conditions only", () => {
    const node: V1Node = {
      metadata: {
        name: "node1",
        resourceVersion: "9",
        labels: { zone: "a" },
        annotations: { a: "b", "ironlb.dev/drain": "true" },
      },
      spec: { podCIDR: "198.51.100.128/27" },
      status: {
        conditions: [
          { type: "MemoryPressure", status: "False", message: "ok" },
          { type: "Ready", status: "True", reason: "KubeletReady", message: "ready" },
          { type: "NetworkUnavailable", status: "False" },
        ],
        images: [{ names: ["a"], sizeBytes: 1 }],
      },
    };
    expect(slimNode(node)).toEqual({
      metadata: {
        name: "node1",
        resourceVersion: "9",
        labels: { zone: "a" },
        annotations: { "ironlb.dev/drain": "true" },
      },
      status: {
        conditions: [
          { type: "Ready", status: "True" },
          { type: "NetworkUnavailable", status: "False" },
        ],
      },
    });
  });
});

describe("slimService bounds what the Service's owner writes", () => {
  it("keeps an annotation value over 1 KiB as a placeholder that is no pool name and not true", () => {
    const svc = structuredClone(lbService);
    svc.metadata!.annotations = {
      [ANNOTATIONS.allocatedFromPool]: "p".repeat(200_000),
      "ironlb.dev/rebalance": "true".padEnd(200_000, " "),
    };
    const slim = slimService(svc);
    expect(JSON.stringify(slim).length).toBeLessThan(1_024);
    expect(slim.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool]).toMatch(
      /^\(a value longer/,
    );
    expect(slim.metadata?.annotations?.["ironlb.dev/rebalance"]).not.toBe("true");
    const atLimit = "p".repeat(ANNOTATION_VALUE_LIMIT);
    svc.metadata!.annotations = { [ANNOTATIONS.allocatedFromPool]: atLimit };
    expect(slimService(svc).metadata?.annotations?.[ANNOTATIONS.allocatedFromPool]).toBe(atLimit);
  });
});
