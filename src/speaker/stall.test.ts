import { describe, expect, it } from "vitest";
import { HeartbeatTracker } from "./heartbeat.ts";
import { StallClock } from "./stall.ts";

describe("StallClock", () => {
  it("ticks on time: the awake clock is the clock", () => {
    const c = new StallClock(0, { tickMs: 20, toleranceMs: 30 });
    for (let t = 20; t <= 1000; t += 20) expect(c.tick(t)).toBe(0);
    expect(c.awake(1000)).toBe(1000);
    expect(c.lostMs).toBe(0);
  });

  it("jitter within the tolerance is not a stall", () => {
    const c = new StallClock(0, { tickMs: 20, toleranceMs: 30 });
    expect(c.tick(45)).toBe(0);
    expect(c.awake(45)).toBe(45);
  });

  it("a 1 s stall is taken off the awake clock, even before the late tick runs", () => {
    const c = new StallClock(0, { tickMs: 20, toleranceMs: 30 });
    c.tick(20);
    // Resumed at 1020: another timer asks first.
    expect(c.awake(1020)).toBe(70);
    expect(c.tick(1020)).toBe(950);
    expect(c.awake(1020)).toBe(70);
    expect(c.awake(1040)).toBe(90);
    expect(c.lastStallMs).toBe(950);
  });

  it("is overdue while a stall is unrecorded, and not once its tick has run", () => {
    const c = new StallClock(0, { tickMs: 20, toleranceMs: 30 });
    c.tick(20);
    expect(c.overdue(60)).toBe(false); // late by less than the tolerance: jitter
    expect(c.overdue(1020)).toBe(true);
    c.tick(1020);
    expect(c.overdue(1020)).toBe(false);
  });

  it("with a tracker on the awake clock, our own stall does not kill a peer", () => {
    const c = new StallClock(0, { tickMs: 20, toleranceMs: 30 });
    const t = new HeartbeatTracker({ deadAfterMs: 350, wallClock: () => 0 });
    t.receive({ node: "b", incarnation: 1, seq: 1, sentAtMs: 0, leaving: false }, c.awake(0));
    c.tick(20);
    // Stopped for 2 s: on the plain clock b is long dead, on the awake clock it is not.
    expect(t.isAlive("b", 2020)).toBe(false);
    expect(t.isAlive("b", c.awake(2020))).toBe(true);
    // Really silent afterwards: dead after 350 ms of our awake time.
    for (let now = 2040; now <= 2400; now += 20) c.tick(now);
    expect(t.isAlive("b", c.awake(2400))).toBe(false);
  });
});
