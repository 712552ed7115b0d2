/**
 * When to send the periodic gratuitous ARP / unsolicited NA of each announced IP (the
 * L2Advertisement's `gratuitousInterval`), so that switches and hosts keep a quiet IP's MAC
 * in their tables. Pure: the caller passes the time and sends what `take` returns.
 *
 * Thousands of IPs must not all go out at once: each key (an interface and an IP) gets a
 * fixed phase within its interval, from a hash of the key, so that refreshes spread over the
 * interval whenever the IPs were announced. On top of that, one token bucket (rate-limit.ts)
 * bounds the refreshes per second of the whole node; a refresh over the budget waits for the
 * next token rather than being dropped.
 */
import { type Bucket, type BucketLimits, takeToken } from "./rate-limit.ts";

/** Default budget: refresh rounds (one per IP and interface) per second, for the whole node. */
export const DEFAULT_REFRESH_LIMITS: BucketLimits = { ratePerSec: 500, burst: 100 };

interface Entry {
  intervalMs: number;
  dueAt: number;
}

/** FNV-1a over the key's UTF-16 units: cheap, stable across processes, spreads well enough. */
function hash(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The first time after `now` (strictly) at which `key`'s phase within `intervalMs` falls. */
export function firstDue(key: string, intervalMs: number, now: number): number {
  const phase = hash(key) % intervalMs;
  const into = (((now - phase) % intervalMs) + intervalMs) % intervalMs;
  return now + (intervalMs - into);
}

export class RefreshSchedule {
  readonly #entries = new Map<string, Entry>();
  readonly #limits: BucketLimits;
  #bucket: Bucket | undefined;

  constructor(limits: BucketLimits = DEFAULT_REFRESH_LIMITS) {
    if (!(limits.ratePerSec > 0) || !(limits.burst >= 1)) {
      throw new RangeError("refresh limits need ratePerSec > 0 and burst >= 1");
    }
    this.#limits = limits;
  }

  /**
   * Refreshes `key` every `intervalMs` from now on (undefined: never). Setting the interval
   * it already has keeps its next time, so that the caller may set every key on every pass.
   */
  set(key: string, intervalMs: number | undefined, now: number): void {
    if (intervalMs === undefined || !(intervalMs > 0)) {
      this.#entries.delete(key);
      return;
    }
    if (this.#entries.get(key)?.intervalMs === intervalMs) return;
    this.#entries.set(key, { intervalMs, dueAt: firstDue(key, intervalMs, now) });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  /** Forgets every key. */
  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The interval `key` is refreshed at, if any. */
  intervalOf(key: string): number | undefined {
    return this.#entries.get(key)?.intervalMs;
  }

  /**
   * The keys to refresh now, most overdue first, as many as the budget allows. Each one
   * taken is due again one interval after its last due time (or after now, when it fell a
   * whole interval behind: a late refresh is not followed by a catch-up flurry).
   */
  take(now: number): string[] {
    const due = [...this.#entries].filter(([, e]) => e.dueAt <= now);
    due.sort((a, b) => a[1].dueAt - b[1].dueAt || (a[0] < b[0] ? -1 : 1));
    const out: string[] = [];
    for (const [key, e] of due) {
      const { allowed, bucket } = takeToken(this.#bucket, now, this.#limits);
      this.#bucket = bucket;
      if (!allowed) break;
      out.push(key);
      const next = e.dueAt + e.intervalMs;
      e.dueAt = next > now ? next : firstDue(key, e.intervalMs, now);
    }
    return out;
  }

  /**
   * When `take` has something to return next: the earliest due time, or, while keys are
   * overdue for lack of budget, when the next token arrives. Undefined with no keys.
   */
  nextAt(now: number): number | undefined {
    let earliest: number | undefined;
    for (const e of this.#entries.values())
      if (earliest === undefined || e.dueAt < earliest) earliest = e.dueAt;
    if (earliest === undefined || earliest > now) return earliest;
    const tokens = this.#bucket
      ? this.#bucket.tokens + (Math.max(0, now - this.#bucket.at) / 1000) * this.#limits.ratePerSec
      : this.#limits.burst;
    if (tokens >= 1) return now;
    return now + Math.ceil(((1 - tokens) * 1000) / this.#limits.ratePerSec);
  }
}
