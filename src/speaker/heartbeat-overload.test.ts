import { describe, expect, it } from "vitest";
import {
  beatLane,
  judgeSilence,
  MAX_SEQ_STEP,
  type SilenceFacts,
  SOURCE_BURST,
  SourceBudgets,
} from "./heartbeat-overload.ts";

describe("beatLane: which budget pays for a datagram's MAC check", () => {
  const last = { incarnation: 1_700_000_000_000_123, seq: 500 };
  it.each([
    ["the next beat", last, { incarnation: last.incarnation, seq: 501 }, "continuing"],
    ["a few beats lost", last, { incarnation: last.incarnation, seq: 520 }, "continuing"],
    [
      "the edge of the step",
      last,
      { incarnation: last.incarnation, seq: 500 + MAX_SEQ_STEP },
      "continuing",
    ],
    ["beyond the step", last, { incarnation: last.incarnation, seq: 501 + MAX_SEQ_STEP }, "other"],
    ["a replay (same seq)", last, { incarnation: last.incarnation, seq: 500 }, "other"],
    ["an older seq", last, { incarnation: last.incarnation, seq: 3 }, "other"],
    // A blind spoofer's guess, or a real restart: both pay from the other budget.
    ["another incarnation", last, { incarnation: last.incarnation + 1, seq: 501 }, "other"],
    ["a peer not heard yet", undefined, { incarnation: 1, seq: 1 }, "other"],
    ["not shaped like a beat", last, undefined, "other"],
  ] as const)("%s → %s", (_what, l, claimed, lane) => {
    expect(beatLane(l, claimed)).toBe(lane);
  });
});

describe("judgeSilence: suspect before convicting when the silence may be ours", () => {
  const f = (o: Partial<SilenceFacts>): SilenceFacts => ({
    heard: false,
    suspected: false,
    dead: false,
    lostHere: false,
    leaseAlive: true,
    ...o,
  });
  it.each([
    ["heard", f({ heard: true }), "alive"],
    ["heard, even while this node loses datagrams", f({ heard: true, lostHere: true }), "alive"],
    ["silent once, nothing lost here", f({}), "suspect"],
    ["silent twice, nothing lost here: a real death", f({ suspected: true }), "dead"],
    ["silent, Lease gone, nothing lost here", f({ leaseAlive: false }), "suspect"],
    ["silent, our socket dropped datagrams, Lease current", f({ lostHere: true }), "doubted"],
    [
      "silent twice, our socket dropped datagrams, Lease current",
      f({ lostHere: true, suspected: true }),
      "doubted",
    ],
    [
      "silent, our socket dropped datagrams, Lease expired: a death during a flood",
      f({ lostHere: true, leaseAlive: false }),
      "suspect",
    ],
    [
      "silent twice, datagrams lost, Lease expired",
      f({ lostHere: true, leaseAlive: false, suspected: true }),
      "dead",
    ],
    ["dead and still silent", f({ dead: true, lostHere: true }), "dead"],
  ] as const)("%s → %s", (_what, facts, verdict) => {
    expect(judgeSilence(facts)).toBe(verdict);
  });
});

describe("SourceBudgets: MAC checks per source and lane", () => {
  it("a flood in one lane leaves the other lane's budget and other sources' untouched", () => {
    const b = new SourceBudgets(100); // 10 × the beat rate: 100/s, 0.1/ms
    let admitted = 0;
    for (let i = 0; i < 10_000; i++) if (b.admit("node-b", "other", i / 10)) admitted++;
    // 1 s of flood: the burst plus 100/s.
    expect(admitted).toBeGreaterThanOrEqual(SOURCE_BURST + 99);
    expect(admitted).toBeLessThanOrEqual(SOURCE_BURST + 101);
    expect(b.admit("node-b", "other", 1000)).toBe(false);
    expect(b.admit("node-b", "continuing", 1000)).toBe(true);
    expect(b.admit("node-c", "other", 1000)).toBe(true);
  });
  it("refills with time, up to the burst; forgotten sources start afresh", () => {
    const b = new SourceBudgets(100);
    for (let i = 0; i < SOURCE_BURST; i++) expect(b.admit("x", "continuing", 0)).toBe(true);
    expect(b.admit("x", "continuing", 0)).toBe(false);
    expect(b.admit("x", "continuing", 10)).toBe(true); // 0.1/ms
    expect(b.admit("x", "continuing", 10)).toBe(false);
    b.keepOnly((s) => s !== "x");
    expect(b.admit("x", "continuing", 10)).toBe(true);
  });
});
