// This process's own scheduling delay, so that "a peer was silent" can be told from "I was
// not running" (SIGSTOP, CPU starvation, a long GC pause). A timer ticks every `tickMs`;
// whenever it fires later than `tickMs + toleranceMs`, the excess is time this process was
// stalled. The "awake clock" is the monotonic clock minus all such excess: silence measured
// on it is silence that happened while we were able to listen. Pure: the clock comes in.

export interface StallClockOptions {
  tickMs: number;
  /** Lateness that is normal scheduling jitter, not a stall. */
  toleranceMs: number;
}

export class StallClock {
  readonly tickMs: number;
  readonly toleranceMs: number;
  #last: number;
  #lost = 0;
  #lastStallMs = 0;

  constructor(now: number, o: StallClockOptions) {
    this.tickMs = o.tickMs;
    this.toleranceMs = o.toleranceMs;
    this.#last = now;
  }

  /** Time since the last tick beyond what a tick may take: a stall still being noticed. */
  #pending(now: number): number {
    return Math.max(0, now - this.#last - this.tickMs - this.toleranceMs);
  }

  /** Records a tick at `now`; returns the stall it reveals (0 when on time). */
  tick(now: number): number {
    const stall = this.#pending(now);
    this.#lost += stall;
    this.#last = now;
    if (stall > 0) this.#lastStallMs = stall;
    return stall;
  }

  /**
   * The awake clock at `now`: `now` minus every stall so far, including one in progress
   * whose tick has not run yet (after a stall, other timers may run before the tick).
   */
  awake(now: number): number {
    return now - this.#lost - this.#pending(now);
  }

  /** Total stalled time so far, ms. */
  get lostMs(): number {
    return this.#lost;
  }

  /** The last stall seen by tick(), ms. */
  get lastStallMs(): number {
    return this.#lastStallMs;
  }
}
