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
  /** Bumped on every change, so that heap items of an older version are skipped. */
  gen: number;
}

interface HeapItem {
  key: string;
  dueAt: number;
  gen: number;
}

const before = (a: HeapItem, b: HeapItem) =>
  a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.key < b.key);

/** A binary min-heap by due time: thousands of IPs cost O(log n) per refresh, not a scan. */
class Heap {
  items: HeapItem[] = [];
  push(x: HeapItem): void {
    const a = this.items;
    a.push(x);
    for (let i = a.length - 1; i > 0; ) {
      const up = (i - 1) >> 1;
      if (!before(a[i]!, a[up]!)) break;
      [a[i], a[up]] = [a[up]!, a[i]!];
      i = up;
    }
  }
  peek(): HeapItem | undefined {
    return this.items[0];
  }
  pop(): HeapItem | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    a[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && before(a[l]!, a[m]!)) m = l;
      if (r < a.length && before(a[r]!, a[m]!)) m = r;
      if (m === i) break;
      [a[i], a[m]] = [a[m]!, a[i]!];
      i = m;
    }
    return top;
  }
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
  #heap = new Heap();
  #gen = 0;
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
      this.delete(key);
      return;
    }
    if (this.#entries.get(key)?.intervalMs === intervalMs) return;
    this.#plan(key, intervalMs, firstDue(key, intervalMs, now));
  }

  delete(key: string): void {
    this.#entries.delete(key);
    // Stale heap items are skipped when they surface; rebuild before they dominate.
    if (this.#heap.items.length > 2 * this.#entries.size + 64) {
      this.#heap = new Heap();
      for (const [k, e] of this.#entries) this.#heap.push({ key: k, dueAt: e.dueAt, gen: e.gen });
    }
  }

  /** Forgets every key. */
  clear(): void {
    this.#entries.clear();
    this.#heap = new Heap();
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
    const out: string[] = [];
    for (let top = this.#top(); top !== undefined && top.dueAt <= now; top = this.#top()) {
      const { allowed, bucket } = takeToken(this.#bucket, now, this.#limits);
      this.#bucket = bucket;
      if (!allowed) break;
      this.#heap.pop();
      out.push(top.key);
      const e = this.#entries.get(top.key)!;
      const next = e.dueAt + e.intervalMs;
      this.#plan(top.key, e.intervalMs, next > now ? next : firstDue(top.key, e.intervalMs, now));
    }
    return out;
  }

  /**
   * When `take` has something to return next: the earliest due time, or, while keys are
   * overdue for lack of budget, when the next token arrives. Undefined with no keys.
   */
  nextAt(now: number): number | undefined {
    const earliest = this.#top()?.dueAt;
    if (earliest === undefined || earliest > now) return earliest;
    const tokens = this.#bucket
      ? this.#bucket.tokens + (Math.max(0, now - this.#bucket.at) / 1000) * this.#limits.ratePerSec
      : this.#limits.burst;
    if (tokens >= 1) return now;
    return now + Math.ceil(((1 - tokens) * 1000) / this.#limits.ratePerSec);
  }

  #plan(key: string, intervalMs: number, dueAt: number): void {
    const gen = ++this.#gen;
    this.#entries.set(key, { intervalMs, dueAt, gen });
    this.#heap.push({ key, dueAt, gen });
  }

  /** The earliest live heap item, dropping stale ones on the way. */
  #top(): HeapItem | undefined {
    for (let top = this.#heap.peek(); top !== undefined; top = this.#heap.peek()) {
      if (this.#entries.get(top.key)?.gen === top.gen) return top;
      this.#heap.pop();
    }
    return undefined;
  }
}
