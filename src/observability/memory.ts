// Giving memory back after a burst. V8 keeps the heap it grew during a burst (a cold start
// assigns thousands of IPs) and returns it only when later collections find it unused,
// which an idle process rarely runs: one full collection once the burst is over gives the
// pages back at once (bench/RESULTS.md). Needs node's --expose-gc (the image passes it);
// without it this does nothing.
import type { Logger } from "./log.ts";

/** Runs a full collection when the process was started with --expose-gc; logs what it freed. */
export function collectAfterBurst(log: Logger, what: string): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== "function") return;
  const before = process.memoryUsage();
  const t0 = performance.now();
  gc();
  const after = process.memoryUsage();
  const mib = (n: number) => Math.round(n / 2 ** 20);
  log.info(
    {
      after: what,
      ms: Math.round(performance.now() - t0),
      rssMiB: [mib(before.rss), mib(after.rss)],
      heapUsedMiB: [mib(before.heapUsed), mib(after.heapUsed)],
    },
    "full garbage collection after a burst",
  );
}
