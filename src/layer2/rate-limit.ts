/**
 * Token buckets, one per requester, for the announcer's replies: a host flooding requests
 * for an owned IP gets a few replies per second, everyone else is answered as before. Pure
 * (the caller passes the time), and bounded: at most `maxTracked` requesters are
 * remembered, the least recently seen one is forgotten first.
 */

export interface Bucket {
  /** Tokens left (fractional while refilling). */
  tokens: number;
  /** When `tokens` was computed, ms on the caller's monotonic clock. */
  at: number;
}

export interface BucketLimits {
  /** Tokens added per second. */
  ratePerSec: number;
  /** Most tokens a bucket holds: the burst a quiet requester may send at once. */
  burst: number;
}

/**
 * Takes one token from `bucket` (undefined: a requester never seen, whose bucket is full)
 * at time `now`. Returns whether the request may be answered and the bucket afterwards.
 * A clock that goes backwards refills nothing.
 */
export function takeToken(
  bucket: Bucket | undefined,
  now: number,
  limits: BucketLimits,
): { allowed: boolean; bucket: Bucket } {
  const start = bucket ?? { tokens: limits.burst, at: now };
  const elapsed = Math.max(0, now - start.at);
  const tokens = Math.min(limits.burst, start.tokens + (elapsed / 1000) * limits.ratePerSec);
  if (tokens >= 1) return { allowed: true, bucket: { tokens: tokens - 1, at: now } };
  return { allowed: false, bucket: { tokens, at: now } };
}

export interface RequesterLimiterOptions extends BucketLimits {
  /** Requesters remembered at most (memory bound under a flood of forged senders). */
  maxTracked: number;
}

/** Default: a host resolving an IP sends a handful of requests; 20/s is far above that. */
export const DEFAULT_REPLY_LIMITS: RequesterLimiterOptions = {
  ratePerSec: 20,
  burst: 20,
  maxTracked: 8192,
};

/** One bucket per requester key, in a Map kept in least-recently-seen order. */
export class RequesterLimiter {
  readonly #buckets = new Map<string, Bucket>();
  readonly #opts: RequesterLimiterOptions;

  constructor(options: RequesterLimiterOptions = DEFAULT_REPLY_LIMITS) {
    if (!(options.ratePerSec > 0) || !(options.burst >= 1) || !(options.maxTracked >= 1)) {
      throw new RangeError("rate limits need ratePerSec > 0, burst >= 1 and maxTracked >= 1");
    }
    this.#opts = options;
  }

  /** Whether `key` may be answered at `now` (ms); counts the request either way. */
  allow(key: string, now: number): boolean {
    const old = this.#buckets.get(key);
    const { allowed, bucket } = takeToken(old, now, this.#opts);
    if (old !== undefined)
      this.#buckets.delete(key); // re-insert: most recently seen last
    else if (this.#buckets.size >= this.#opts.maxTracked) {
      const oldest = this.#buckets.keys().next().value;
      if (oldest !== undefined) this.#buckets.delete(oldest);
    }
    this.#buckets.set(key, bucket);
    return allowed;
  }

  /** Requesters currently remembered. */
  get size(): number {
    return this.#buckets.size;
  }
}
