// A client-side token bucket for API requests, as client-go's: `qps` tokens a second on
// average, up to `burst` at once. The API server protects itself (priority and fairness
// answers 429), but a component in a loop (a bug, two controllers fighting over one
// status) should not be the one that makes it do so; this caps what one process sends.
// Waiters are served in order: each takes the next token as it comes (a reservation may
// run the bucket below zero), so a steady stream never starves an earlier request.
import { type Clock, monotonicClock } from "./clock.ts";

export class TokenBucket {
  readonly qps: number;
  readonly burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #at: number;

  /** qps <= 0: no limit. */
  constructor(qps: number, burst: number, clock: Clock = monotonicClock) {
    this.qps = qps;
    this.burst = Math.max(1, burst);
    this.#clock = clock;
    this.#tokens = this.burst;
    this.#at = clock.now();
  }

  /**
   * Takes one token: resolves at once when one is there, else when its turn comes. An
   * aborted wait gives its token back and rejects with the signal's reason.
   */
  take(signal?: AbortSignal): Promise<void> {
    if (this.qps <= 0) return Promise.resolve();
    signal?.throwIfAborted();
    const now = this.#clock.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.qps) / 1000);
    this.#at = now;
    this.#tokens -= 1;
    if (this.#tokens >= 0) return Promise.resolve();
    const waitMs = (-this.#tokens * 1000) / this.qps;
    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        this.#clock.clearTimeout(timer);
        this.#tokens += 1;
        reject(signal?.reason);
      };
      const timer = this.#clock.setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, waitMs);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}
