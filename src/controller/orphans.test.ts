import { describe, expect, it } from "vitest";
import { judgeOrphan, type OrphanFacts, type OrphanVerdict } from "./orphans.ts";

const pools = new Set(["blue", "green"]);
const base: OrphanFacts = {
  restore: { ok: false, reason: "IPNotInPool" },
  allocatedFrom: undefined,
  requestedPool: undefined,
  poolExists: (n) => pools.has(n),
};

describe("judgeOrphan", () => {
  const cases: [string, Partial<OrphanFacts>, OrphanVerdict][] = [
    ["a pool holds the IP again", { restore: { ok: true } }, "adopt"],
    ["no pool holds it, no pool named anywhere", {}, "hold"],
    ["its pool does not exist (not created yet, or deleted)", { allocatedFrom: "red" }, "hold"],
    ["its pool exists and no longer holds it (range edited)", { allocatedFrom: "blue" }, "release"],
    ["the Service asks for a pool that does not exist", { requestedPool: "red" }, "hold"],
    ["the Service asks for an existing pool", { requestedPool: "green" }, "release"],
    [
      "in a pool, but taken by another Service",
      { restore: { ok: false, reason: "IPInUse" } },
      "release",
    ],
    [
      "in a pool that refuses the Service",
      { restore: { ok: false, reason: "NoMatchingPool" }, allocatedFrom: "red" },
      "release",
    ],
  ];
  it.each(cases)("%s", (_name, facts, want) => {
    expect(judgeOrphan({ ...base, ...facts })).toBe(want);
  });
});
