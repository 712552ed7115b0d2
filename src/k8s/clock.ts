// Time for the API edge: a monotonic clock (a wall-clock jump must not expire a lease or
// trip a silence timeout) and timers, both injectable so tests can drive them.

/** A cancellable timer handle; opaque to callers. */
export type TimerHandle = { unref?(): unknown } | number | undefined;

export interface Clock {
  /** Milliseconds on a monotonic clock (not the wall clock). */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

/** The process's monotonic clock and Node's timers. */
export const monotonicClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout | undefined),
};

/** Lets a timer not keep the process alive (when the handle supports it). */
export function unref(h: TimerHandle): TimerHandle {
  if (typeof h === "object") h?.unref?.();
  return h;
}
