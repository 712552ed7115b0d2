// Builders for allocator tests: small pool and Service specs with sensible defaults.

import type { AllocationResult, Family, PoolSpec, ServiceRequest } from "./types.ts";

/** Creation time of test pools unless a test says otherwise. */
export const T0 = "2024-01-01T00:00:00Z";

/** A pool with every option off, autoAssign on, created at T0. */
export function pool(name: string, addresses: string[], extra: Partial<PoolSpec> = {}): PoolSpec {
  return {
    name,
    addresses,
    autoAssign: true,
    avoidBuggyIPs: false,
    excludeNetworkAndBroadcast: false,
    creationTimestamp: T0,
    ...extra,
  };
}

/** A single-stack IPv4, Cluster-policy Service "ns/name" exposing 80/TCP. */
export function svc(key: string, extra: Partial<ServiceRequest> = {}): ServiceRequest {
  const [namespace = "default"] = key.split("/");
  return {
    key,
    namespace,
    labels: {},
    namespaceLabels: {},
    families: [{ family: "IPv4", required: true }],
    requestedIPs: [],
    ports: [{ protocol: "TCP", port: 80 }],
    trafficPolicy: "Cluster",
    ...extra,
  };
}

/** Families for the three Kubernetes ipFamilyPolicy values. */
export const SINGLE_V6: ServiceRequest["families"] = [{ family: "IPv6", required: true }];
export const REQUIRE_DUAL: ServiceRequest["families"] = [
  { family: "IPv4", required: true },
  { family: "IPv6", required: true },
];
export const PREFER_DUAL: ServiceRequest["families"] = [
  { family: "IPv4", required: true },
  { family: "IPv6", required: false },
];

/** Unwraps a successful result, failing the test with the message otherwise. */
export function okIPs(r: AllocationResult): { ips: string[]; pool: string } {
  if (!r.ok) throw new Error(`expected success, got ${r.reason}: ${r.message}`);
  return { ips: r.ips, pool: r.pool };
}

/** The family of a canonical address string. */
export function familyOf(ip: string): Family {
  return ip.includes(":") ? "IPv6" : "IPv4";
}
