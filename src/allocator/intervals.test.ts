import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  countBuggy,
  type Interval,
  intersects,
  isBuggyIPv4,
  normalize,
  subtract,
} from "./intervals.ts";
import { RunSet } from "./runset.ts";

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
