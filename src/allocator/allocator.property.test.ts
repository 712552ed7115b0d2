// Property tests: random pools and random sequences of operations, checked against a
// brute-force model of which pool may hand out which address (the universe is small
// enough to enumerate), plus the sharing rule applied pairwise to every shared IP.

import { isDeepStrictEqual } from "node:util";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatIP } from "../net/address.ts";
import { Allocator } from "./allocator.ts";
import { isBuggyIPv4 } from "./intervals.ts";
import { sharingConflict } from "./sharing.ts";
import { PREFER_DUAL, pool, REQUIRE_DUAL, SINGLE_V6, svc } from "./testkit.ts";
import type { Family, PoolSpec, ServiceRequest } from "./types.ts";

// 192.0.2.192 .. 192.0.3.63 crosses a .255/.0 boundary; 2001:db8:: .. 2001:db8::7f.
const V4_BASE = 0xc00002c0n;
const V6_BASE = 0x20010db8n << 96n;
const SIZE = 128;
const base = (f: Family) => (f === "IPv4" ? V4_BASE : V6_BASE);
const ipAt = (f: Family, offset: number) =>
  formatIP({ family: f, value: base(f) + BigInt(offset) });

/** `arb` one time in `every`, undefined otherwise. */
function sometimes<T>(arb: fc.Arbitrary<T>, every: number): fc.Arbitrary<T | undefined> {
  return fc.oneof(
    { weight: every - 1, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: arb },
  );
}

interface Entry {
  family: Family;
  kind: "cidr" | "range" | "bogus";
  lo: number;
  hi: number;
  prefix: number;
}

const entryArb: fc.Arbitrary<Entry> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({
        family: fc.constantFrom<Family>("IPv4", "IPv6"),
        size: fc.integer({ min: 0, max: 6 }),
        at: fc.nat(SIZE - 1),
      })
      .map(({ family, size, at }) => {
        const len = 2 ** size;
        const lo = at - (at % len);
        return {
          family,
          kind: "cidr" as const,
          lo,
          hi: lo + len - 1,
          prefix: (family === "IPv4" ? 32 : 128) - size,
        };
      }),
  },
  {
    weight: 3,
    arbitrary: fc
      .record({
        family: fc.constantFrom<Family>("IPv4", "IPv6"),
        a: fc.nat(SIZE - 1),
        b: fc.nat(SIZE - 1),
      })
      .map(({ family, a, b }) => ({
        family,
        kind: "range" as const,
        lo: Math.min(a, b),
        hi: Math.max(a, b),
        prefix: 0,
      })),
  },
  {
    weight: 1,
    arbitrary: fc.constant<Entry>({ family: "IPv4", kind: "bogus", lo: 0, hi: -1, prefix: 0 }),
  },
);

function render(e: Entry): string {
  if (e.kind === "bogus") return "192.0.2.300/24";
  if (e.kind === "cidr") return `${ipAt(e.family, e.lo)}/${e.prefix}`;
  return `${ipAt(e.family, e.lo)}-${ipAt(e.family, e.hi)}`;
}

interface GenPool {
  spec: PoolSpec;
  entries: Entry[];
}

const TIMES = ["2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z", "2024-03-01T00:00:00Z"];
const POOL_NAMES = ["p0", "p1", "p2"];

const poolsArb: fc.Arbitrary<GenPool[]> = fc
  .array(
    fc.record({
      entries: fc.array(entryArb, { minLength: 1, maxLength: 3 }),
      autoAssign: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, fc.constant(false)),
      avoidBuggyIPs: fc.boolean(),
      excludeNetworkAndBroadcast: fc.boolean(),
      priority: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
      namespaces: sometimes(fc.constant(["a"]), 4),
      acrossNamespaces: fc.boolean(),
      time: fc.constantFrom(...TIMES),
    }),
    { minLength: 1, maxLength: 3 },
  )
  .map((ps) =>
    ps.map((p, i) => ({
      entries: p.entries,
      spec: pool(POOL_NAMES[i]!, p.entries.map(render), {
        autoAssign: p.autoAssign,
        avoidBuggyIPs: p.avoidBuggyIPs,
        excludeNetworkAndBroadcast: p.excludeNetworkAndBroadcast,
        priority: p.priority,
        namespaces: p.namespaces === undefined ? undefined : [...p.namespaces],
        allowSharingAcrossNamespaces: p.acrossNamespaces,
        creationTimestamp: p.time,
      }),
    })),
  );

/** Brute force: which pool may hand out each address of the universe ("family/offset"). */
function model(pools: GenPool[]): Map<string, string> {
  const byAge = [...pools].sort(
    (a, b) =>
      Date.parse(a.spec.creationTimestamp) - Date.parse(b.spec.creationTimestamp) ||
      (a.spec.name < b.spec.name ? -1 : 1),
  );
  const claimed = new Set<string>();
  const owner = new Map<string, string>();
  for (const p of byAge) {
    const raw = new Set<string>();
    for (const e of p.entries) {
      for (let o = e.lo; o <= e.hi; o++) {
        const k = `${e.family}/${o}`;
        raw.add(k);
        const skipEnds =
          p.spec.excludeNetworkAndBroadcast &&
          e.kind === "cidr" &&
          e.family === "IPv4" &&
          e.prefix <= 30;
        if (skipEnds && (o === e.lo || o === e.hi)) continue;
        if (claimed.has(k)) continue;
        if (p.spec.avoidBuggyIPs && e.family === "IPv4" && isBuggyIPv4(V4_BASE + BigInt(o)))
          continue;
        owner.set(k, p.spec.name);
      }
    }
    for (const k of raw) claimed.add(k);
  }
  return owner;
}

function keyOfIP(ip: string): string {
  const family: Family = ip.includes(":") ? "IPv6" : "IPv4";
  for (let o = 0; o < SIZE; o++) if (ipAt(family, o) === ip) return `${family}/${o}`;
  return `${family}/outside`;
}

const FAMILY_CHOICES: ServiceRequest["families"][] = [
  [{ family: "IPv4", required: true }],
  SINGLE_V6,
  REQUIRE_DUAL,
  PREFER_DUAL,
  [
    { family: "IPv6", required: true },
    { family: "IPv4", required: false },
  ],
];
const PORTS = [
  { protocol: "TCP" as const, port: 80 },
  { protocol: "TCP" as const, port: 443 },
  { protocol: "UDP" as const, port: 53 },
];
const N_SERVICES = 8;
// More runs on demand: FC_RUNS=5000 npx vitest run ...
const RUNS = Number(process.env.FC_RUNS ?? 200);
const serviceKey = (i: number) => `${i % 2 === 0 ? "a" : "b"}/s${i}`;

// With `sharing`, nearly every Service has a key and a single port, so that legal and
// refused sharing both happen often.
const requestArb = (i: number, sharing = false): fc.Arbitrary<ServiceRequest> =>
  fc
    .record({
      families: fc.constantFrom(...FAMILY_CHOICES),
      requested: sometimes(fc.record({ v6: fc.boolean(), at: fc.nat(15) }), 4),
      pool: sometimes(fc.constantFrom("p0", "p1", "p2", "nope"), sharing ? 12 : 5),
      sharingKey: sharing
        ? fc.oneof(fc.constant(undefined), {
            weight: 4,
            arbitrary: fc.constantFrom("k1", "k1", "k1", "k2"),
          })
        : sometimes(fc.constantFrom("k1", "k1", "k2"), 2),
      ports: sharing
        ? fc.nat(5).map((n) => [n === 5 ? PORTS[2]! : { protocol: "TCP" as const, port: 80 + n }])
        : fc.subarray(PORTS, { minLength: 1 }),
      local: fc.nat(sharing ? 5 : 3).map((n) => n === 0),
      app: fc.constantFrom("x", "y"),
    })
    .map((r) => {
      const req = svc(serviceKey(i), {
        families: r.families,
        pool: r.pool,
        sharingKey: r.sharingKey,
        ports: r.ports,
        trafficPolicy: r.local ? "Local" : "Cluster",
        selector: { app: r.app },
      });
      if (r.requested !== undefined) {
        const f: Family = r.requested.v6 ? "IPv6" : "IPv4";
        if (r.families.some((x) => x.family === f)) req.requestedIPs = [ipAt(f, r.requested.at)];
      }
      return req;
    });

type Op =
  | { op: "assign"; req: ServiceRequest }
  | { op: "release"; i: number }
  | { op: "restore"; req: ServiceRequest; ips: string[] }
  | { op: "setPools"; pools: GenPool[] };

const opArb = (sharing: boolean): fc.Arbitrary<Op> =>
  fc.integer({ min: 0, max: N_SERVICES - 1 }).chain((i) =>
    fc.oneof(
      { weight: 6, arbitrary: requestArb(i, sharing).map((req): Op => ({ op: "assign", req })) },
      { weight: 2, arbitrary: fc.constant<Op>({ op: "release", i }) },
      {
        weight: 1,
        arbitrary: fc
          .tuple(
            requestArb(i),
            fc.subarray([ipAt("IPv4", 5), ipAt("IPv4", 64), ipAt("IPv6", 3)], { minLength: 1 }),
          )
          .map(([req, ips]): Op => ({ op: "restore", req, ips })),
      },
      { weight: 1, arbitrary: poolsArb.map((pools): Op => ({ op: "setPools", pools })) },
    ),
  );

/** Every invariant that must hold between any two operations. */
function checkInvariants(a: Allocator, pools: GenPool[], reqs: Map<string, ServiceRequest>) {
  const owner = model(pools);
  const held = new Map<string, { pool: string; keys: string[] }>();
  expect(a.services()).toEqual([...reqs.keys()].sort());
  for (const key of a.services()) {
    const got = a.get(key)!;
    const families = got.ips.map((ip) => (ip.includes(":") ? "IPv6" : "IPv4"));
    expect(new Set(families).size).toBe(families.length);
    for (const ip of got.ips) {
      // Inside its pool, not excluded, not in an older pool's overlap.
      expect(owner.get(keyOfIP(ip))).toBe(got.pool);
      expect(a.poolOf(ip)).toBe(got.pool);
      const h = held.get(ip) ?? { pool: got.pool, keys: [] };
      h.keys.push(key);
      held.set(ip, h);
    }
  }
  for (const [ip, h] of held) {
    expect(a.holders(ip)).toEqual(h.keys.sort());
    const spec = pools.find((p) => p.spec.name === h.pool)!.spec;
    // Two holders of one IP only when sharing is legal, both ways.
    for (const x of h.keys) {
      for (const y of h.keys) {
        if (x !== y) expect(sharingConflict(reqs.get(x)!, reqs.get(y)!, y, spec)).toBeUndefined();
      }
    }
  }
  for (const r of a.reports()) {
    for (const f of ["IPv4", "IPv6"] as const) {
      const usable = [...owner].filter(([k, p]) => p === r.name && k.startsWith(`${f}/`)).length;
      const assigned = [...held].filter(
        ([ip, h]) => h.pool === r.name && ip.includes(":") === (f === "IPv6"),
      ).length;
      expect(f === "IPv4" ? r.assignedIPv4 : r.assignedIPv6).toBe(assigned);
      expect((f === "IPv4" ? r.availableIPv4 : r.availableIPv6) + assigned).toBe(usable);
    }
  }
}

function checkResult(req: ServiceRequest, r: ReturnType<Allocator["assign"]>) {
  if (!r.ok) return;
  const fams = r.ips.map((ip) => (ip.includes(":") ? "IPv6" : "IPv4"));
  for (const f of req.families) if (f.required) expect(fams).toContain(f.family);
  for (const f of fams) expect(req.families.map((x) => x.family)).toContain(f);
  for (const ip of req.requestedIPs) expect(r.ips).toContain(ip);
  if (req.pool !== undefined) expect(r.pool).toBe(req.pool);
}

describe("allocator properties", { timeout: 300_000 }, () => {
  it.each([
    ["mixed requests", false],
    ["sharing-heavy requests", true],
  ])("random operation sequences keep every invariant (%s)", (_name, sharing) => {
    fc.assert(
      fc.property(poolsArb, fc.array(opArb(sharing), { maxLength: 40 }), (initial, ops) => {
        const a = new Allocator();
        let pools = initial;
        a.setPools(pools.map((p) => p.spec));
        const reqs = new Map<string, ServiceRequest>();
        for (const op of ops) {
          if (op.op === "assign") {
            const r = a.assign(op.req);
            checkResult(op.req, r);
            if (r.ok) reqs.set(op.req.key, op.req);
            // Idempotence: the same request again gives the same answer.
            if (r.ok) expect(a.assign(op.req)).toEqual(r);
          } else if (op.op === "release") {
            a.release(serviceKey(op.i));
            reqs.delete(serviceKey(op.i));
          } else if (op.op === "restore") {
            const r = a.restore(op.req, op.ips);
            if (r.ok) reqs.set(op.req.key, op.req);
          } else {
            const before = new Map(a.services().map((k) => [k, a.get(k)]));
            pools = op.pools;
            a.setPools(pools.map((p) => p.spec));
            const invalidated = a.invalidated();
            // Every Service whose assignment changed is reported, and only those.
            const changed = [...before].filter(([k, g]) => !isDeepStrictEqual(a.get(k), g));
            expect(invalidated).toEqual(changed.map(([k]) => k).sort());
            for (const key of invalidated) {
              if (a.get(key) === undefined) reqs.delete(key);
            }
          }
          checkInvariants(a, pools, reqs);
        }
        // Restart safety: a fresh allocator restored from the state reproduces it.
        const b = new Allocator();
        b.setPools(pools.map((p) => p.spec));
        for (const key of [...a.services()].reverse()) {
          const r = b.restore(reqs.get(key)!, a.get(key)!.ips);
          expect(r.ok).toBe(true);
          expect(b.get(key)).toEqual(a.get(key));
        }
        expect(b.reports()).toEqual(a.reports());
      }),
      { numRuns: RUNS },
    );
  });

  it("assign all then release all returns every pool to empty", () => {
    fc.assert(
      fc.property(
        poolsArb,
        fc.array(fc.nat(N_SERVICES - 1).chain(requestArb), { maxLength: 20 }),
        (pools, requests) => {
          const a = new Allocator();
          const initial = a.setPools(pools.map((p) => p.spec));
          for (const req of requests) a.assign(req);
          for (const req of requests) a.release(req.key);
          expect(a.reports()).toEqual(initial);
          expect(a.services()).toEqual([]);
        },
      ),
      { numRuns: RUNS },
    );
  });

  // Services without requested IPs, pool names or sharing keys, in pools large enough for
  // all of them: each takes the lowest free addresses of its first usable pool, so the set
  // of (pool, IP) pairs handed out cannot depend on the order of the calls.
  it("the set of assigned IPs does not depend on the order of assignment", () => {
    const bigPoolsArb = fc
      .array(
        fc.record({
          v4: fc.boolean(),
          v6: fc.boolean(),
          autoAssign: fc.boolean(),
          avoidBuggyIPs: fc.boolean(),
          excludeNetworkAndBroadcast: fc.boolean(),
          priority: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
          namespaces: fc.option(fc.constantFrom(["a"], ["b"]), { nil: undefined }),
        }),
        { minLength: 1, maxLength: 3 },
      )
      .map((ps) =>
        ps.map((p, i) =>
          pool(
            POOL_NAMES[i]!,
            [...(p.v4 ? [`10.${i}.0.0/24`] : []), ...(p.v6 ? [`2001:db8:${i}::/120`] : [])],
            {
              autoAssign: p.autoAssign,
              avoidBuggyIPs: p.avoidBuggyIPs,
              excludeNetworkAndBroadcast: p.excludeNetworkAndBroadcast,
              priority: p.priority,
              namespaces: p.namespaces === undefined ? undefined : [...p.namespaces],
            },
          ),
        ),
      );
    const plainArb = fc.array(
      fc.record({ ns: fc.constantFrom("a", "b"), families: fc.constantFrom(...FAMILY_CHOICES) }),
      { maxLength: 30 },
    );
    fc.assert(
      fc.property(bigPoolsArb, plainArb, fc.infiniteStream(fc.nat()), (pools, plain, noise) => {
        const reqs = plain.map((p, i) => svc(`${p.ns}/s${i}`, { families: p.families }));
        const shuffled = reqs
          .map((r) => ({ r, k: noise.next().value }))
          .sort((x, y) => x.k - y.k)
          .map((x) => x.r);
        const outcome = (order: ServiceRequest[]) => {
          const a = new Allocator();
          a.setPools(pools);
          const failed: string[] = [];
          for (const r of order) if (!a.assign(r).ok) failed.push(r.key);
          const pairs = a
            .services()
            .flatMap((k) => a.get(k)!.ips.map((ip) => `${a.get(k)!.pool} ${ip}`));
          return { a, failed: failed.sort(), pairs: pairs.sort(), reports: a.reports() };
        };
        const one = outcome(reqs);
        const two = outcome(shuffled);
        expect(two.pairs).toEqual(one.pairs);
        expect(two.failed).toEqual(one.failed);
        expect(two.reports).toEqual(one.reports);
        // Assigning the same set again, in yet another order, changes nothing.
        const before = one.a.services().map((k) => one.a.get(k));
        for (const r of [...shuffled].reverse()) one.a.assign(r);
        expect(one.a.services().map((k) => one.a.get(k))).toEqual(before);
        expect(one.a.reports()).toEqual(one.reports);
      }),
      { numRuns: RUNS },
    );
  });

  it("the same calls give the same IPs", () => {
    fc.assert(
      fc.property(poolsArb, fc.array(opArb(true), { maxLength: 25 }), (pools, ops) => {
        const run = () => {
          const a = new Allocator();
          a.setPools(pools.map((p) => p.spec));
          const out: unknown[] = [];
          for (const op of ops) {
            if (op.op === "assign") out.push(a.assign(op.req));
            else if (op.op === "release") a.release(serviceKey(op.i));
            else if (op.op === "restore") out.push(a.restore(op.req, op.ips));
            else out.push(a.setPools(op.pools.map((p) => p.spec)));
          }
          return out;
        };
        expect(run()).toEqual(run());
      }),
      { numRuns: RUNS },
    );
  });
});
