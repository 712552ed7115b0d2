// Allocator figures: alloc+release operations per second in an IPv4 /16 and an IPv6 /64
// pool, and heap memory per assigned address. Run: npm run bench -- allocator
import { Allocator } from "../src/allocator/allocator.ts";
import type { ServiceRequest } from "../src/allocator/types.ts";

function request(i: number, family: "IPv4" | "IPv6"): ServiceRequest {
  return {
    key: `bench/s${i}`,
    namespace: "bench",
    labels: {},
    namespaceLabels: {},
    families: [{ family, required: true }],
    requestedIPs: [],
    ports: [{ protocol: "TCP", port: 80 }],
    trafficPolicy: "Cluster",
  };
}

function pool(name: string, cidr: string) {
  return {
    name,
    addresses: [cidr],
    autoAssign: true,
    avoidBuggyIPs: false,
    excludeNetworkAndBroadcast: false,
    creationTimestamp: "2026-01-01T00:00:00Z",
  };
}

function opsPerSecond(family: "IPv4" | "IPv6", cidr: string, live: number, ops: number): number {
  const a = new Allocator();
  a.setPools([pool("p", cidr)]);
  // A realistic fill level first: `live` Services hold addresses.
  for (let i = 0; i < live; i++)
    if (!a.assign(request(i, family)).ok) throw new Error("pool too small");
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    // Release one of the live Services and assign a new one: one alloc+release pair.
    const victim = (i * 7919) % live;
    a.release(`bench/s${victim}`);
    const r = a.assign(request(victim, family));
    if (!r.ok) throw new Error(r.message);
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return ops / s;
}

function bytesPerAddress(family: "IPv4" | "IPv6", cidr: string, n: number): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc");
  const a = new Allocator();
  a.setPools([pool("p", cidr)]);
  const reqs = Array.from({ length: n }, (_, i) => request(i, family));
  gc();
  const before = process.memoryUsage().heapUsed;
  for (const r of reqs) a.assign(r);
  gc();
  const after = process.memoryUsage().heapUsed;
  if (a.reports()[0]!.assignedIPv4 + a.reports()[0]!.assignedIPv6 !== n)
    throw new Error("not all assigned");
  return (after - before) / n;
}

/**
 * No IPv4 documentation block is a /16, so the /16 is 198.18.0.0/16 (RFC 2544's benchmark
 * range). The allocator is pure arithmetic here: nothing is ever sent to these addresses.
 */
export function runAllocatorBench(): Record<string, string> {
  const v4 = opsPerSecond("IPv4", "198.18.0.0/16", 20_000, 100_000);
  const v6 = opsPerSecond("IPv6", "2001:db8:1::/64", 20_000, 100_000);
  const m4 = bytesPerAddress("IPv4", "198.18.0.0/16", 50_000);
  const m6 = bytesPerAddress("IPv6", "2001:db8:1::/64", 50_000);
  return {
    "alloc+release ops/s, IPv4 /16 with 20,000 assigned": Math.round(v4).toLocaleString("en"),
    "alloc+release ops/s, IPv6 /64 with 20,000 assigned": Math.round(v6).toLocaleString("en"),
    "heap bytes per assigned address, IPv4 /16 (50,000 assigned)": Math.round(m4).toString(),
    "heap bytes per assigned address, IPv6 /64 (50,000 assigned)": Math.round(m6).toString(),
  };
}
