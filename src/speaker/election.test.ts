import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chooseOwner, fnv1a64Hex, rendezvousWeight } from "./election.ts";

const nodeName = fc.stringMatching(/^[a-z0-9]([a-z0-9.-]{0,20}[a-z0-9])?$/);
const nodeSet = fc.uniqueArray(nodeName, { minLength: 1, maxLength: 12 });
const ipv4 = fc.ipV4();
const anyIP = fc.oneof(fc.ipV4(), fc.ipV6());

/** chooseOwner for each of many IPs (no entry when no node is eligible). */
function chooseOwners(ips: Iterable<string>, nodes: readonly string[]): Map<string, string> {
  const owners = new Map<string, string>();
  for (const ip of ips) {
    const owner = chooseOwner(ip, nodes);
    if (owner !== undefined) owners.set(ip, owner);
  }
  return owners;
}

/** The nodes by falling weight for `ip` (ties by name): the order they would take it over. */
function rankNodes(ip: string, nodes: readonly string[]): string[] {
  return [...new Set(nodes)].sort(
    (x, y) => rendezvousWeight(y, ip) - rendezvousWeight(x, ip) || (x < y ? -1 : x > y ? 1 : 0),
  );
}

function ipsOf(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  return out;
}

describe("fnv1a64", () => {
  it.each([
    ["", "cbf29ce484222325"],
    ["a", "af63dc4c8601ec8c"],
    ["foobar", "85944171f73967e8"],
  ])("matches the published vector for %j", (text, hex) => {
    expect(fnv1a64Hex(text)).toBe(hex);
  });

  it("matches a bigint reference implementation", () => {
    const reference = (text: string): string => {
      let h = 0xcbf29ce484222325n;
      for (const b of new TextEncoder().encode(text)) {
        h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
      }
      return h.toString(16).padStart(16, "0");
    };
    fc.assert(fc.property(fc.string({ unit: "grapheme" }), (s) => fnv1a64Hex(s) === reference(s)));
  });
});

describe("rendezvousWeight", () => {
  // Pinned values: a change here reassigns IPs in a running cluster during an upgrade.
  it.each([
    ["node-a", "192.0.2.1", 8972761160112078],
    ["node-b", "192.0.2.1", 2442782249045976],
    ["worker-1", "2001:db8::10", 8943987043457468],
  ])("is stable for (%s, %s)", (node, ip, weight) => {
    expect(rendezvousWeight(node, ip)).toBe(weight);
  });

  it.each([
    ["192.0.2.1", "node-a"],
    ["192.0.2.2", "node-c"],
    ["192.0.2.3", "node-b"],
    ["198.51.100.7", "node-c"],
    ["2001:db8::1", "node-b"],
    ["2001:db8::2", "node-c"],
  ])("pins the owner of %s among node-a..c", (ip, owner) => {
    expect(chooseOwner(ip, ["node-a", "node-b", "node-c"])).toBe(owner);
  });

  it("is a safe non-negative integer", () => {
    fc.assert(
      fc.property(nodeName, anyIP, (n, ip) => {
        const w = rendezvousWeight(n, ip);
        return Number.isSafeInteger(w) && w >= 0;
      }),
    );
  });

  it("separates node and IP (no concatenation ambiguity)", () => {
    expect(rendezvousWeight("node1", "0.0.0.1")).not.toBe(rendezvousWeight("node", "10.0.0.1"));
  });
});

describe("chooseOwner", () => {
  it("returns undefined without nodes", () => {
    expect(chooseOwner("192.0.2.1", [])).toBeUndefined();
    expect(chooseOwners(["192.0.2.1"], []).size).toBe(0);
    expect(rankNodes("192.0.2.1", [])).toEqual([]);
  });

  it("returns the only node", () => {
    expect(chooseOwner("192.0.2.1", ["only"])).toBe("only");
  });

  it("is deterministic and ignores order and duplicates", () => {
    fc.assert(
      fc.property(anyIP, nodeSet, fc.integer(), (ip, nodes, seed) => {
        const owner = chooseOwner(ip, nodes);
        const shuffled = [...nodes, ...nodes].sort(
          (a, b) => rendezvousWeight(a, String(seed)) - rendezvousWeight(b, String(seed)),
        );
        return (
          owner !== undefined &&
          nodes.includes(owner) &&
          chooseOwner(ip, shuffled) === owner &&
          chooseOwner(ip, nodes) === owner
        );
      }),
    );
  });

  it("picks the node of highest weight, the first in rank", () => {
    fc.assert(
      fc.property(fc.uniqueArray(anyIP, { maxLength: 30 }), nodeSet, (ips, nodes) => {
        const owners = chooseOwners(ips, nodes);
        return ips.every(
          (ip) =>
            owners.get(ip) === chooseOwner(ip, nodes) && rankNodes(ip, nodes)[0] === owners.get(ip),
        );
      }),
    );
  });

  it("removing a node moves only that node's IPs", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(ipv4, { minLength: 1, maxLength: 50 }),
        fc.uniqueArray(nodeName, { minLength: 2, maxLength: 10 }),
        fc.nat(),
        (ips, nodes, k) => {
          const removed = nodes[k % nodes.length]!;
          const rest = nodes.filter((n) => n !== removed);
          const before = chooseOwners(ips, nodes);
          const after = chooseOwners(ips, rest);
          return ips.every((ip) => before.get(ip) === removed || after.get(ip) === before.get(ip));
        },
      ),
    );
  });

  it("adding a node only takes IPs for itself", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(ipv4, { minLength: 1, maxLength: 50 }),
        nodeSet,
        nodeName,
        (ips, nodes, added) => {
          fc.pre(!nodes.includes(added));
          const before = chooseOwners(ips, nodes);
          const after = chooseOwners(ips, [...nodes, added]);
          return ips.every((ip) => after.get(ip) === added || after.get(ip) === before.get(ip));
        },
      ),
    );
  });

  it("the next in rank takes over when the owner goes", () => {
    fc.assert(
      fc.property(anyIP, fc.uniqueArray(nodeName, { minLength: 2, maxLength: 10 }), (ip, nodes) => {
        const [first, second] = rankNodes(ip, nodes);
        return (
          chooseOwner(
            ip,
            nodes.filter((n) => n !== first),
          ) === second
        );
      }),
    );
  });

  it("spreads 10,000 IPs evenly over 5 nodes", () => {
    const nodes = ["node-1", "node-2", "node-3", "node-4", "node-5"];
    const owners = chooseOwners(ipsOf(10_000), nodes);
    const counts = new Map<string, number>();
    for (const owner of owners.values()) counts.set(owner, (counts.get(owner) ?? 0) + 1);
    const expected = 10_000 / nodes.length;
    let chi2 = 0;
    for (const n of nodes) chi2 += ((counts.get(n) ?? 0) - expected) ** 2 / expected;
    // 4 degrees of freedom: P(chi² > 18.47) = 0.001 for a uniform assignment.
    expect(chi2).toBeLessThan(18.47);
  });

  it("spreads IPv6 addresses of one /64 evenly too", () => {
    const nodes = ["a", "b", "c", "d", "e", "f", "g"];
    const ips = Array.from({ length: 7000 }, (_, i) => `2001:db8::${i.toString(16)}`);
    const counts = new Map<string, number>();
    for (const owner of chooseOwners(ips, nodes).values()) {
      counts.set(owner, (counts.get(owner) ?? 0) + 1);
    }
    let chi2 = 0;
    for (const n of nodes) chi2 += ((counts.get(n) ?? 0) - 1000) ** 2 / 1000;
    // 6 degrees of freedom, p = 0.001.
    expect(chi2).toBeLessThan(22.46);
  });

  it("spreads each node's IPs evenly when it leaves", () => {
    const nodes = ["node-1", "node-2", "node-3", "node-4", "node-5"];
    const ips = ipsOf(10_000);
    const before = chooseOwners(ips, nodes);
    const moved = ips.filter((ip) => before.get(ip) === "node-3");
    const after = chooseOwners(
      moved,
      nodes.filter((n) => n !== "node-3"),
    );
    const counts = new Map<string, number>();
    for (const owner of after.values()) counts.set(owner, (counts.get(owner) ?? 0) + 1);
    const expected = moved.length / 4;
    let chi2 = 0;
    for (const n of counts.keys()) chi2 += ((counts.get(n) ?? 0) - expected) ** 2 / expected;
    expect(counts.size).toBe(4);
    expect(chi2).toBeLessThan(16.27); // 3 degrees of freedom, p = 0.001
  });
});
