import { describe, expect, it } from "vitest";
import { RequesterLimiter, takeToken } from "./rate-limit.ts";

const limits = { ratePerSec: 10, burst: 3 };

describe("takeToken", () => {
  it.each([
    ["a new requester starts with a full bucket", undefined, 0, true, 2],
    ["the last token is granted", { tokens: 1, at: 0 }, 0, true, 0],
    ["an empty bucket refuses", { tokens: 0, at: 0 }, 0, false, 0],
    ["an empty bucket refills at the rate (100 ms = 1 token)", { tokens: 0, at: 0 }, 100, true, 0],
    ["half a token is not enough", { tokens: 0, at: 0 }, 50, false, 0.5],
    ["refill stops at the burst", { tokens: 0, at: 0 }, 60_000, true, 2],
    ["a clock going backwards refills nothing", { tokens: 0.5, at: 1000 }, 500, false, 0.5],
  ])("%s", (_name, bucket, now, allowed, left) => {
    const r = takeToken(bucket, now, limits);
    expect(r.allowed).toBe(allowed);
    expect(r.bucket.tokens).toBeCloseTo(left, 9);
    expect(r.bucket.at).toBe(now);
  });
});

describe("RequesterLimiter", () => {
  it("limits a flooding requester to its burst, then to the rate, without touching others", () => {
    const l = new RequesterLimiter({ ...limits, maxTracked: 100 });
    let granted = 0;
    // 1,000 requests per second for 2 s from one requester.
    for (let t = 0; t < 2000; t++) if (l.allow("flooder", t)) granted++;
    expect(granted).toBe(3 + 20 - 1); // the burst, then 10/s for 2 s (the last token at 2000)
    expect(l.allow("quiet", 1999)).toBe(true);
  });

  it("forgets the least recently seen requester first when full", () => {
    const l = new RequesterLimiter({ ratePerSec: 1, burst: 1, maxTracked: 2 });
    expect(l.allow("a", 0)).toBe(true);
    expect(l.allow("b", 0)).toBe(true);
    expect(l.allow("a", 1)).toBe(false); // a is now the most recent
    expect(l.allow("c", 2)).toBe(true); // evicts b
    expect(l.size).toBe(2);
    expect(l.allow("a", 3)).toBe(false); // a was kept, still empty
    expect(l.allow("b", 4)).toBe(true); // b was forgotten: a full bucket again
  });

  it("refuses nonsensical limits", () => {
    expect(() => new RequesterLimiter({ ratePerSec: 0, burst: 1, maxTracked: 1 })).toThrow(
      RangeError,
    );
    expect(() => new RequesterLimiter({ ratePerSec: 1, burst: 0.5, maxTracked: 1 })).toThrow(
      RangeError,
    );
  });
});
