// This process's own scheduling delay, so that "a peer was silent" can be told from "I was
// not running" (SIGSTOP, CPU starvation, a long GC pause). A timer ticks every `tickMs`;
// whenever it fires later than `tickMs + toleranceMs`, the excess is time this process was
// stalled. The "awake clock" is the monotonic clock minus all such excess: silence measured
// on it is silence that happened while we were able to listen. Pure: the clock comes in.

export interface StallClockOptions {
  tickMs: number;
  /** Lateness that is normal scheduling jitter, not a stall. */
  toleranceMs: number;
  /**
   * Stalls up to this long are CPU pressure (recentStallMs); longer ones are events (a
   * SIGSTOP, a frozen VM) that say nothing about how slow the next seconds will be.
   */
  maxPressureMs?: number;
}

export class StallClock {
  readonly tickMs: number;
  readonly toleranceMs: number;
  readonly maxPressureMs: number;
  #last: number;
  #lost = 0;
  #lastStallMs = 0;
  #peak = 0;
  #peakAt = 0;

  constructor(now: number, o: StallClockOptions) {
    this.tickMs = o.tickMs;
    this.toleranceMs = o.toleranceMs;
    this.maxPressureMs = o.maxPressureMs ?? Number.POSITIVE_INFINITY;
    this.#last = now;
  }

  /** Time since the last tick beyond what a tick may take: a stall still being noticed. */
  #pending(now: number): number {
    return Math.max(0, now - this.#last - this.tickMs - this.toleranceMs);
  }

  /** Whether the tick is late at `now`: a stall is in progress or just ended, unrecorded. */
  overdue(now: number): boolean {
    return this.#pending(now) > 0;
  }

  /** Records a tick at `now`; returns the stall it reveals (0 when on time). */
  tick(now: number): number {
    const stall = this.#pending(now);
    this.#lost += stall;
    this.#last = now;
    if (stall > 0) {
      this.#lastStallMs = stall;
      if (stall <= this.maxPressureMs && stall >= this.recentStallMs(now)) {
        this.#peak = stall;
        this.#peakAt = now;
      }
    }
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

  /**
   * The longest recent stall at `now`, fading by 1 ms per 30 ms of time (a 1 s stall is
   * forgotten after 30 s): how much CPU pressure this process is under.
   */
  recentStallMs(now: number): number {
    const pending = this.#pending(now);
    return Math.max(
      pending <= this.maxPressureMs ? pending : 0,
      this.#peak - (now - this.#peakAt) / 30,
    );
  }
}
