import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { BfdRunner } from "./worker-client.ts";

// The runner's record of its caller's event loop: what makes a stall visible next to BFD
// (the e2e test shows BFD in its worker surviving one; this shows the stall is counted).
describe("BfdRunner's main-loop record", () => {
  let runner: BfdRunner | undefined;
  afterEach(async () => {
    await runner?.stop();
    runner = undefined;
  });

  it("counts a blocked second as a stall and keeps its length", async () => {
    runner = new BfdRunner({ log: pino({ level: "silent" }), inThread: true, stallWarnMs: 200 });
    // Let both records take their first sample: a stall at once would be the first delta.
    await new Promise((r) => setTimeout(r, 100));
    const before = runner.mainLoopLag().stalls;
    const until = Date.now() + 600;
    while (Date.now() < until) {
      // the caller's loop stalls, as a huge resync or CPU starvation would make it
    }
    // The record is taken once a second: poll it for up to 3 s.
    let lag = runner.mainLoopLag();
    for (let i = 0; i < 60 && lag.stalls <= before; i++) {
      await new Promise((r) => setTimeout(r, 50));
      lag = runner.mainLoopLag();
    }
    expect(lag.stalls).toBeGreaterThan(before);
    expect(lag.maxMs).toBeGreaterThanOrEqual(500);
  });
});
