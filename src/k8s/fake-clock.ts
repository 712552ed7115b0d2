// A manual clock for unit tests of the API edge: time moves only when a test says so.
import type { Clock, TimerHandle } from "./clock.ts";

interface Pending {
  id: number;
  at: number;
  fn: () => void;
}

export class FakeClock implements Clock {
  #now = 0;
  #next = 1;
  #timers: Pending[] = [];

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = this.#next++;
    this.#timers.push({ id, at: this.#now + Math.max(0, ms), fn });
    return id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.#timers = this.#timers.filter((t) => t.id !== handle);
  }

  /** Timers not yet run, as delays from now (sorted). */
  pending(): number[] {
    return this.#timers.map((t) => t.at - this.#now).sort((a, b) => a - b);
  }

  /** Moves time forward without running timers: a stalled event loop. */
  stall(ms: number): void {
    this.#now += ms;
  }

  /** Moves time forward, running every timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      const due = this.#timers
        .filter((t) => t.at <= end)
        .sort((a, b) => a.at - b.at || a.id - b.id);
      const t = due[0];
      if (!t) break;
      this.#timers = this.#timers.filter((x) => x !== t);
      this.#now = t.at;
      t.fn();
    }
    this.#now = end;
  }
}

/** A FakeClock whose timers fire `earlyMs` before they are due, as real timers can. */
export class EarlyFakeClock extends FakeClock {
  readonly #earlyMs: number;
  constructor(earlyMs: number) {
    super();
    this.#earlyMs = earlyMs;
  }
  override setTimeout(fn: () => void, ms: number) {
    return super.setTimeout(fn, ms > this.#earlyMs ? ms - this.#earlyMs : ms);
  }
}
