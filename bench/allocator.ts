// Allocator figures: alloc+release operations per CPU-second in an IPv4 /16 and an IPv6 /64
// pool, in the best case and in a fragmented pool, and heap memory per assigned address.
// Run: npm run bench -- allocator
import { Allocator } from "../src/allocator/allocator.ts";
import type { ServiceRequest } from "../src/allocator/types.ts";

type Family = "IPv4" | "IPv6";

function request(i: number, family: Family): ServiceRequest {
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

/**
 * A small deterministic generator (xorshift32), so every run frees the same addresses.
 * (Not an LCG: an LCG's low bits cycle, and `% 4` would free exactly every fourth one.)
 */
function xorshift(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

function filled(family: Family, cidr: string, live: number): Allocator {
  const a = new Allocator();
  a.setPools([pool("p", cidr)]);
  for (let i = 0; i < live; i++) {
    if (!a.assign(request(i, family)).ok) throw new Error("pool too small");
  }
  return a;
}

/**
 * Operations per CPU-second of this process: on two cores shared with other work, wall
 * time says more about the neighbours than about the allocator. (On an idle machine the
 * two agree: the loop is single-threaded and never waits.)
 */
function timed(ops: number, op: (i: number) => void): number {
  const c0 = process.cpuUsage();
  for (let i = 0; i < ops; i++) op(i);
  const c = process.cpuUsage(c0);
  return ops / ((c.user + c.system) / 1e6);
}

/**
 * Best case: a Service is released and assigned again; the address it frees is the lowest
 * free one, so the allocation takes it straight back (the pool never fragments).
 */
function bestCase(family: Family, cidr: string, live: number, ops: number): number {
  const a = filled(family, cidr, live);
  return timed(ops, (i) => {
    const victim = (i * 7919) % live;
    a.release(`bench/s${victim}`);
    const r = a.assign(request(victim, family));
    if (!r.ok) throw new Error(r.message);
  });
}

/**
 * Fragmented pool: after filling, a random quarter of the Services is deleted, leaving
 * scattered holes (thousands of runs of used addresses). Then each operation deletes a
 * random live Service and creates a new one, which takes the lowest free address: rarely
 * the one just freed, so holes keep moving and the used set stays fragmented.
 */
function fragmented(family: Family, cidr: string, live: number, ops: number): number {
  const a = filled(family, cidr, live);
  const rand = xorshift(42);
  const keys: number[] = [];
  for (let i = 0; i < live; i++) {
    if (rand() % 4 === 0) a.release(`bench/s${i}`);
    else keys.push(i);
  }
  if (keys.length > live * 0.8 || keys.length < live * 0.7) throw new Error("not a quarter freed");
  let next = live;
  return timed(ops, () => {
    const at = rand() % keys.length;
    a.release(`bench/s${keys[at]}`);
    const r = a.assign(request(next, family));
    if (!r.ok) throw new Error(r.message);
    keys[at] = next++;
  });
}

/**
 * Heap the allocator keeps per assigned address: the baseline is taken before any request
 * object exists, and nothing but the allocator holds the requests afterwards (it keeps
 * them, as it does in the controller).
 */
function bytesPerAddress(family: Family, cidr: string, n: number): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --expose-gc");
  const a = new Allocator();
  a.setPools([pool("p", cidr)]);
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < n; i++) a.assign(request(i, family));
  gc();
  const after = process.memoryUsage().heapUsed;
  const r = a.reports()[0]!;
  if (r.assignedIPv4 + r.assignedIPv6 !== n) throw new Error("not all assigned");
  return (after - before) / n;
}

/**
 * No IPv4 documentation block is a /16, so the /16 is 198.18.0.0/16 (RFC 2544's benchmark
 * range). The allocator is pure arithmetic here: nothing is ever sent to these addresses.
 */
export function runAllocatorBench(): Record<string, string> {
  const v4 = ["IPv4", "198.18.0.0/16"] as const;
  const v6 = ["IPv6", "2001:db8:1::/64"] as const;
  const n = (x: number) => Math.round(x).toLocaleString("en");
  return {
    "alloc+release ops per CPU-second, best case (the freed address is taken back), IPv4 /16, 20,000 assigned":
      n(bestCase(...v4, 20_000, 100_000)),
    "alloc+release ops per CPU-second, best case (the freed address is taken back), IPv6 /64, 20,000 assigned":
      n(bestCase(...v6, 20_000, 100_000)),
    "alloc+release ops per CPU-second, fragmented (random frees, ~5,000 scattered holes), IPv4 /16, 20,000 assigned then 1/4 freed":
      n(fragmented(...v4, 20_000, 100_000)),
    "alloc+release ops per CPU-second, fragmented (random frees, ~5,000 scattered holes), IPv6 /64, 20,000 assigned then 1/4 freed":
      n(fragmented(...v6, 20_000, 100_000)),
    "heap bytes the allocator keeps per assigned address (request included), IPv4 /16, 50,000 assigned":
      n(bytesPerAddress(...v4, 50_000)),
    "heap bytes the allocator keeps per assigned address (request included), IPv6 /64, 50,000 assigned":
      n(bytesPerAddress(...v6, 50_000)),
  };
}
