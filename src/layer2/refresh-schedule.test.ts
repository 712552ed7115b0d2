import { describe, expect, it } from "vitest";
import { firstDue, RefreshSchedule } from "./refresh-schedule.ts";

/** Runs the schedule on a fake clock as the announcer's timer does: wake at nextAt, take. */
function run(s: RefreshSchedule, from: number, until: number): Array<[number, string]> {
  const sent: Array<[number, string]> = [];
  let now = from;
  for (;;) {
    const at = s.nextAt(now);
    if (at === undefined || at > until) return sent;
    now = Math.max(now, at);
    for (const key of s.take(now)) sent.push([now, key]);
  }
}

describe("firstDue", () => {
  it("falls within the next interval, after now, at the key's own phase", () => {
    for (const now of [0, 1, 29_999, 1_000_000]) {
      const at = firstDue("eth0 192.0.2.1", 30_000, now);
      expect(at).toBeGreaterThan(now);
      expect(at).toBeLessThanOrEqual(now + 30_000);
      // The phase is the key's: the same residue whatever the start.
      expect(at % 30_000).toBe(firstDue("eth0 192.0.2.1", 30_000, 0) % 30_000);
    }
  });
});

describe("RefreshSchedule", () => {
  it("refreshes a key once per interval and never before its first due time", () => {
    const s = new RefreshSchedule();
    s.set("eth0 192.0.2.1", 30_000, 0);
    const sent = run(s, 0, 300_000);
    expect(sent).toHaveLength(10);
    const times = sent.map(([t]) => t);
    expect(times[0]).toBeGreaterThan(0);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBe(30_000);
  });

  it("keeps the next time when set again with the same interval, re-plans on a new one, stops on undefined", () => {
    const s = new RefreshSchedule();
    const key = "eth0 192.0.2.2";
    s.set(key, 10_000, 0);
    const first = s.nextAt(0)!;
    s.set(key, 10_000, 5_000);
    expect(s.nextAt(0)).toBe(first);
    s.set(key, 60_000, 5_000);
    expect(s.intervalOf(key)).toBe(60_000);
    expect(s.nextAt(5_000)).toBe(firstDue(key, 60_000, 5_000));
    s.set(key, undefined, 6_000);
    expect(s.size).toBe(0);
    expect(s.nextAt(6_000)).toBeUndefined();
    expect(run(s, 6_000, 600_000)).toEqual([]);
  });

  it("spreads thousands of IPs over the interval instead of sending them at once", () => {
    const s = new RefreshSchedule({ ratePerSec: 10_000, burst: 10_000 });
    const keys = Array.from({ length: 3000 }, (_, i) => `eth0 10.${i >> 8}.${i & 255}.1`);
    for (const k of keys) s.set(k, 30_000, 0); // all announced in the same instant
    const sent = run(s, 0, 30_000);
    // Every IP once in its first interval...
    expect(new Set(sent.map(([, k]) => k)).size).toBe(3000);
    expect(sent).toHaveLength(3000);
    // ...and no second of it carries more than twice the even share (100 per second).
    const perSecond = new Map<number, number>();
    for (const [t] of sent)
      perSecond.set(Math.floor(t / 1000), (perSecond.get(Math.floor(t / 1000)) ?? 0) + 1);
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(200);
  });

  it("holds the node's refreshes to the budget, and delays rather than drops what exceeds it", () => {
    const s = new RefreshSchedule({ ratePerSec: 100, burst: 10 });
    const keys = Array.from({ length: 2000 }, (_, i) => `eth0 10.1.${i >> 8}.${i & 255}`);
    for (const k of keys) s.set(k, 5_000, 0);
    const sent = run(s, 0, 40_000);
    // Never more than burst + rate * elapsed in any one-second window.
    let j = 0;
    for (let i = 0; i < sent.length; i++) {
      while (sent[j]![0] <= sent[i]![0] - 1000) j++;
      expect(i - j + 1).toBeLessThanOrEqual(110);
    }
    // 2000 IPs at 100/s take 20 s: within 40 s every one has been refreshed.
    expect(new Set(sent.map(([, k]) => k)).size).toBe(2000);
  });

  it("does not catch up with a burst after falling behind (a stalled clock)", () => {
    const s = new RefreshSchedule();
    s.set("eth0 192.0.2.3", 1_000, 0);
    // Nothing taken for 60 intervals: one refresh, then the regular pace again.
    expect(s.take(60_500)).toEqual(["eth0 192.0.2.3"]);
    expect(s.take(60_500)).toEqual([]);
    expect(s.nextAt(60_500)).toBeGreaterThan(60_500);
    expect(s.nextAt(60_500)).toBeLessThanOrEqual(61_500);
  });

  it("refuses a budget that could never send", () => {
    expect(() => new RefreshSchedule({ ratePerSec: 0, burst: 1 })).toThrow(RangeError);
    expect(() => new RefreshSchedule({ ratePerSec: 1, burst: 0 })).toThrow(RangeError);
  });
});
