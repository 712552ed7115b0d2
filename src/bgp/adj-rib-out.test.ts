import { describe, expect, it } from "vitest";
import { forgetFamily, planSync } from "./adj-rib-out.ts";
import type { BgpRoute } from "./types.ts";
import { endOfRib, type UpdateContext } from "./update-packer.ts";

const ctx: UpdateContext = {
  myASN: 64512,
  internal: false,
  fourOctet: true,
  nextHops: { "ipv4-unicast": ["192.0.2.11"], "ipv6-unicast": ["2001:db8::11"] },
};
const r = (prefix: string, communities: number[] = []): BgpRoute => ({
  prefix,
  communities,
  largeCommunities: [],
});
const desired = (...rs: BgpRoute[]) => new Map(rs.map((x) => [x.prefix, x]));

/** "W" for an UPDATE that withdraws (classic or MP_UNREACH with NLRI), "A" for one that announces, "EoR". */
function kinds(ms: Uint8Array[]): string[] {
  return ms.map((m) => {
    if (endOfRib("ipv4-unicast").every((b, i) => m[i] === b) && m.length === 23) return "EoR4";
    if (m.length === 29 && endOfRib("ipv6-unicast").every((b, i) => m[i] === b)) return "EoR6";
    const wl = (m[19]! << 8) | m[20]!;
    if (wl > 0) return "W";
    return m[24] === 15 ? "W" : "A"; // MP_UNREACH first: a withdrawal
  });
}

const v4 = ["ipv4-unicast"] as const;

describe("planSync", () => {
  it("sends the whole table and End-of-RIB first, and ignores the other family", () => {
    const p = planSync(
      desired(r("198.51.100.1/32"), r("198.51.100.2/32"), r("2001:db8::1/128")),
      new Map(),
      v4,
      ctx,
      true,
    );
    expect(kinds(p.messages)).toEqual(["A", "EoR4"]);
    expect([...p.advertised.keys()].sort()).toEqual(["198.51.100.1/32", "198.51.100.2/32"]);
    expect(p.announced).toBe(2);
    expect(p.ignored).toEqual([
      {
        prefix: "2001:db8::1/128",
        reason: "the session does not carry ipv6-unicast",
        otherFamily: true,
      },
    ]);
  });

  it("sends nothing when the peer already has the desired set", () => {
    const d = desired(r("198.51.100.1/32"));
    const first = planSync(d, new Map(), v4, ctx, false);
    const again = planSync(d, first.advertised, v4, ctx, false);
    expect(again.messages).toEqual([]);
    expect(again.advertised).toEqual(first.advertised);
  });

  it("withdraws what is gone before announcing what changed", () => {
    const first = planSync(
      desired(r("198.51.100.1/32"), r("198.51.100.2/32")),
      new Map(),
      v4,
      ctx,
      false,
    );
    const p = planSync(desired(r("198.51.100.1/32", [7])), first.advertised, v4, ctx, false);
    expect(kinds(p.messages)).toEqual(["W", "A"]);
    expect(p).toMatchObject({ announced: 1, withdrawn: 1 });
    expect([...p.advertised.keys()]).toEqual(["198.51.100.1/32"]);
  });

  it("withdraws IPv6 in MP_UNREACH and sends its own End-of-RIB", () => {
    const six = ["ipv6-unicast"] as const;
    const first = planSync(desired(r("2001:db8::1/128")), new Map(), six, ctx, true);
    expect(kinds(first.messages)).toEqual(["A", "EoR6"]);
    const p = planSync(desired(), first.advertised, six, ctx, false);
    expect(p.withdrawn).toBe(1);
    expect(p.messages).toHaveLength(1);
    expect(p.advertised.size).toBe(0);
  });

  it("resends a family whole after forgetFamily (ROUTE-REFRESH)", () => {
    const d = desired(r("198.51.100.1/32"), r("198.51.100.2/32"));
    const first = planSync(d, new Map(), v4, ctx, false);
    const p = planSync(d, forgetFamily(first.advertised, "ipv4-unicast"), v4, ctx, false);
    expect(p.announced).toBe(2);
    expect(kinds(p.messages)).toEqual(["A"]);
    expect(forgetFamily(first.advertised, "ipv6-unicast")).toEqual(first.advertised);
  });

  it("withdraws an advertised route whose new attributes no longer fit an UPDATE", () => {
    const first = planSync(desired(r("198.51.100.1/32")), new Map(), v4, ctx, false);
    const huge = r(
      "198.51.100.1/32",
      Array.from({ length: 1100 }, (_, i) => i),
    );
    const p = planSync(desired(huge), first.advertised, v4, ctx, false);
    expect(kinds(p.messages)).toEqual(["W"]);
    expect(p.advertised.size).toBe(0);
    expect(p.ignored[0]?.prefix).toBe("198.51.100.1/32");
  });

  it("reports a text that is no prefix", () => {
    const p = planSync(desired(r("not-a-prefix")), new Map(), v4, ctx, false);
    expect(p.messages).toEqual([]);
    expect(p.ignored).toEqual([{ prefix: "not-a-prefix", reason: "not a prefix" }]);
  });
});
