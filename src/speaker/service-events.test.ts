import { describe, expect, it } from "vitest";
import { ServicesWithIPs } from "./service-events.ts";

describe("ServicesWithIPs", () => {
  // Each row: the events of one Service in order, as [hasIPs after it], and whether each matters.
  const rows: [string, boolean[], boolean[]][] = [
    ["created without an IP, then edited without one", [false, false], [false, false]],
    ["created, then assigned (the status write matters)", [false, true], [false, true]],
    ["assigned, then edited (an annotation, a port)", [true, true], [true, true]],
    ["assigned, then its IP removed (the removal matters)", [true, false], [true, true]],
    ["its IP removed, then edited without one", [true, false, false], [true, true, false]],
    ["deleted while holding an IP (a deletion has no IP after it)", [true, false], [true, true]],
  ];
  it.each(rows)("%s", (_, events, matters) => {
    const s = new ServicesWithIPs();
    expect(events.map((hasIPs) => s.seen("shop/web", hasIPs))).toEqual(matters);
  });

  it("keeps Services apart", () => {
    const s = new ServicesWithIPs();
    expect(s.seen("shop/a", true)).toBe(true);
    expect(s.seen("shop/b", false)).toBe(false);
    expect(s.seen("shop/a", false)).toBe(true);
  });
});
