import { describe, expect, it } from "vitest";
import { WorkQueue } from "./workqueue.ts";

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

describe("WorkQueue", () => {
  it("never runs one key twice at once, and reruns a key added while it ran", async () => {
    const log: string[] = [];
    let running = 0;
    let maxSameKey = 0;
    const q = new WorkQueue(
      async (key) => {
        running++;
        maxSameKey = Math.max(maxSameKey, running);
        log.push(key);
        await tick(5);
        running--;
      },
      4,
      () => {},
    );
    q.start();
    q.add("a");
    await tick(1);
    q.add("a"); // while running: must run again afterwards
    q.add("a"); // coalesced with the previous add
    await q.idle();
    expect(log).toEqual(["a", "a"]);
    expect(maxSameKey).toBe(1);
  });

  it("holds work until started and respects the concurrency bound", async () => {
    let active = 0;
    let peak = 0;
    const done: string[] = [];
    const q = new WorkQueue(
      async (key) => {
        active++;
        peak = Math.max(peak, active);
        await tick(2);
        active--;
        done.push(key);
      },
      3,
      () => {},
    );
    for (let i = 0; i < 10; i++) q.add(`k${i}`);
    await tick(5);
    expect(done).toEqual([]);
    q.start();
    await q.idle();
    expect(done).toHaveLength(10);
    expect(peak).toBe(3);
  });

  it("retries failures with growing backoff and reports the errors", async () => {
    const errors: string[] = [];
    const times: number[] = [];
    const q = new WorkQueue(
      async () => {
        times.push(Date.now());
        if (times.length < 3) throw new Error("boom");
      },
      1,
      (key, err) => {
        errors.push(`${key}:${(err as Error).message}`);
        q.retry(key);
      },
    );
    q.start();
    q.add("x");
    await tick(600);
    expect(times).toHaveLength(3);
    expect(errors).toEqual(["x:boom", "x:boom"]);
    // 100 ms then 200 ms
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(90);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(190);
  });
});
