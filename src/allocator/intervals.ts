// Interval arithmetic on bigint addresses. Addresses are numbers so that a /48 costs no
// more than a /32: nothing here ever enumerates a range. (Parsing and formatting are
// src/net's.)

/** An inclusive range of addresses of one family. */
export interface Interval {
  lo: bigint;
  hi: bigint;
}

/** Sorts intervals and merges those that overlap or touch. */
export function normalize(list: Interval[]): Interval[] {
  const sorted = [...list].sort((x, y) => (x.lo < y.lo ? -1 : x.lo > y.lo ? 1 : 0));
  const out: Interval[] = [];
  for (const iv of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && iv.lo <= last.hi + 1n) {
      if (iv.hi > last.hi) last.hi = iv.hi;
    } else {
      out.push({ lo: iv.lo, hi: iv.hi });
    }
  }
  return out;
}

/** `a` minus `b`; both normalized, result normalized. */
export function subtract(a: Interval[], b: Interval[]): Interval[] {
  const out: Interval[] = [];
  let j = 0;
  for (const iv of a) {
    let lo = iv.lo;
    const hi = iv.hi;
    while (j < b.length && (b[j] as Interval).hi < lo) j++;
    let k = j;
    while (lo <= hi && k < b.length && (b[k] as Interval).lo <= hi) {
      const cut = b[k] as Interval;
      if (cut.lo > lo) out.push({ lo, hi: cut.lo - 1n });
      lo = cut.hi + 1n;
      k++;
    }
    if (lo <= hi) out.push({ lo, hi });
  }
  return out;
}

/** True when two normalized interval lists share an address. */
export function intersects(a: Interval[], b: Interval[]): boolean {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i] as Interval;
    const y = b[j] as Interval;
    if (x.hi < y.lo) i++;
    else if (y.hi < x.lo) j++;
    else return true;
  }
  return false;
}

/** Index of the interval of a normalized list that contains `v`, or -1. */
export function indexContaining(list: Interval[], v: bigint): number {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const iv = list[mid] as Interval;
    if (v < iv.lo) hi = mid - 1;
    else if (v > iv.hi) lo = mid + 1;
    else return mid;
  }
  return -1;
}

/** Index of the first interval whose end is at or after `v` (list.length if none). */
export function indexAtOrAfter(list: Interval[], v: bigint): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((list[mid] as Interval).hi < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** True for IPv4 values ending in .0 or .255, which avoidBuggyIPs skips. */
export function isBuggyIPv4(value: bigint): boolean {
  const last = value & 0xffn;
  return last === 0n || last === 0xffn;
}

// Count of values v in [0, n] with v mod 256 in {0, 255}.
function buggyUpTo(n: bigint): bigint {
  if (n < 0n) return 0n;
  const whole = (n + 1n) / 256n;
  const rest = (n + 1n) % 256n;
  return 2n * whole + (rest >= 1n ? 1n : 0n);
}

/** How many IPv4 values in [lo, hi] end in .0 or .255, computed without enumerating. */
export function countBuggy(lo: bigint, hi: bigint): bigint {
  return buggyUpTo(hi) - buggyUpTo(lo - 1n);
}
