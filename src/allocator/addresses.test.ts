import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  canonicalIP,
  countBuggy,
  type Interval,
  intersects,
  isBuggyIPv4,
  normalize,
  parseEntry,
  parseIP,
  subtract,
} from "./addresses.ts";
import { RunSet } from "./runset.ts";

describe("parseIP / canonical text", () => {
  it.each([
    ["192.0.2.1", "192.0.2.1"],
    [" 192.0.2.1 ", "192.0.2.1"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"],
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of equal runs
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // single zero group stays
    ["2001:db8::", "2001:db8::"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
    ["::ffff:c000:0201", "::ffff:192.0.2.1"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
    ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
    ["2001:db8::aaaa:0:0:1", "2001:db8::aaaa:0:0:1"],
  ])("%s -> %s", (input, out) => {
    expect(canonicalIP(input)).toBe(out);
  });

  it.each([
    "",
    "192.0.2",
    "192.0.2.256",
    "192.0.2.01",
    "192.0.2.1.1",
    "192.0.2.-1",
    "a.b.c.d",
    "2001:db8:::1",
    "2001:db8::1::2",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "12345::",
    ":1::",
    "::1:",
    "g::1",
    "fe80::1%eth0",
    "::ffff:192.0.2.256",
    "1:2:3:4:5:6:7:8::",
  ])("rejects %j", (input) => {
    expect(parseIP(input)).toBeUndefined();
  });

  it("round-trips every IPv6 value through its canonical text", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (value) => {
        const text = canonicalIP(
          // Full, uncompressed form as input.
          Array.from({ length: 8 }, (_, i) =>
            ((value >> BigInt(112 - 16 * i)) & 0xffffn).toString(16),
          ).join(":"),
        );
        expect(text).toBeDefined();
        const back = parseIP(text!);
        expect(back).toEqual({ family: "IPv6", value });
        expect(canonicalIP(text!)).toBe(text);
      }),
    );
  });
});

describe("parseEntry", () => {
  it.each([
    ["192.0.2.0/24", { family: "IPv4", lo: 0xc0000200n, hi: 0xc00002ffn, prefix: 24 }],
    ["192.0.2.77/24", { family: "IPv4", lo: 0xc0000200n, hi: 0xc00002ffn, prefix: 24 }],
    ["192.0.2.10-192.0.2.20", { family: "IPv4", lo: 0xc000020an, hi: 0xc0000214n }],
    ["192.0.2.10 - 192.0.2.20", { family: "IPv4", lo: 0xc000020an, hi: 0xc0000214n }],
    ["192.0.2.5", { family: "IPv4", lo: 0xc0000205n, hi: 0xc0000205n }],
    [
      "2001:db8::/126",
      { family: "IPv6", lo: 0x20010db8n << 96n, hi: (0x20010db8n << 96n) + 3n, prefix: 126 },
    ],
    [
      "2001:db8::1-2001:db8::3",
      { family: "IPv6", lo: (0x20010db8n << 96n) + 1n, hi: (0x20010db8n << 96n) + 3n },
    ],
    ["0.0.0.0/0", { family: "IPv4", lo: 0n, hi: 0xffffffffn, prefix: 0 }],
  ])("%s", (input, out) => {
    expect(parseEntry(input)).toEqual(out);
  });

  it.each([
    "192.0.2.0/33",
    "192.0.2.0/",
    "192.0.2.0/024",
    "192.0.2.0/-1",
    "192.0.2.0/24/1",
    "2001:db8::/129",
    "192.0.2.20-192.0.2.10",
    "192.0.2.1-2001:db8::1",
    "192.0.2.1-",
    "192.0.2.1-192.0.2.2-192.0.2.3",
    "bogus",
    "",
  ])("rejects %j", (input) => {
    expect(parseEntry(input)).toBeUndefined();
  });
});

describe("interval arithmetic", () => {
  const iv = (lo: number, hi: number): Interval => ({ lo: BigInt(lo), hi: BigInt(hi) });
  const arbList = fc
    .array(fc.tuple(fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 8 })), {
      maxLength: 6,
    })
    .map((xs) => xs.map(([lo, len]) => iv(lo, lo + len)));
  const members = (list: Interval[]) => {
    const s = new Set<number>();
    for (const x of list) for (let v = Number(x.lo); v <= Number(x.hi); v++) s.add(v);
    return s;
  };

  it("normalize merges overlapping and adjacent intervals", () => {
    expect(normalize([iv(5, 6), iv(1, 2), iv(3, 4), iv(10, 12), iv(11, 20)])).toEqual([
      iv(1, 6),
      iv(10, 20),
    ]);
  });

  it("normalize, subtract and intersects agree with sets", () => {
    fc.assert(
      fc.property(arbList, arbList, (a, b) => {
        const na = normalize(a);
        const nb = normalize(b);
        expect(members(na)).toEqual(members(a));
        for (let i = 1; i < na.length; i++) expect(na[i]!.lo > na[i - 1]!.hi + 1n).toBe(true);
        const diff = members(subtract(na, nb));
        const sb = members(b);
        expect(diff).toEqual(new Set([...members(a)].filter((v) => !sb.has(v))));
        expect(intersects(na, nb)).toBe([...members(a)].some((v) => sb.has(v)));
      }),
    );
  });

  it("countBuggy matches a count by enumeration", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 5000 }),
        fc.integer({ min: 0, max: 2000 }),
        (lo, len) => {
          let n = 0n;
          for (let v = lo; v <= lo + len; v++) if (isBuggyIPv4(BigInt(v))) n++;
          expect(countBuggy(BigInt(lo), BigInt(lo + len))).toBe(n);
        },
      ),
    );
  });
});

describe("RunSet", () => {
  it("behaves like a Set under random adds and deletes", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 40 })), { maxLength: 200 }),
        (ops) => {
          const rs = new RunSet();
          const model = new Set<number>();
          for (const [add, v] of ops) {
            if (add) expect(rs.add(BigInt(v))).toBe(!model.has(v));
            else expect(rs.delete(BigInt(v))).toBe(model.has(v));
            if (add) model.add(v);
            else model.delete(v);
          }
          expect(rs.size).toBe(model.size);
          expect([...rs.values()].map(Number)).toEqual([...model].sort((x, y) => x - y));
          for (let v = 0; v <= 41; v++) expect(rs.has(BigInt(v))).toBe(model.has(v));
        },
      ),
    );
  });

  it("keeps consecutive values in one run", () => {
    const rs = new RunSet();
    for (let v = 0n; v < 1000n; v++) rs.add(v);
    expect(rs.runs).toBe(1);
    expect(rs.runEnd(500n)).toBe(999n);
    rs.delete(500n);
    expect(rs.runs).toBe(2);
  });
});
