// Address parsing, formatting and interval arithmetic on bigint. Addresses are numbers so
// that a /48 costs no more than a /32: nothing here ever enumerates a range.

import type { Family } from "./types.ts";

/** An IP address as a family plus its numeric value. */
export interface Addr {
  family: Family;
  value: bigint;
}

/** An inclusive range of addresses of one family. */
export interface Interval {
  lo: bigint;
  hi: bigint;
}

/** One parsed entry of a pool's `addresses`. */
export interface AddressEntry {
  family: Family;
  lo: bigint;
  hi: bigint;
  /** Prefix length for CIDR entries; undefined for ranges and single addresses. */
  prefix?: number;
}

/** The number of bits in an address of the family. */
export function bitsOf(family: Family): number {
  return family === "IPv4" ? 32 : 128;
}

const DECIMAL_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

/**
 * Parses a dotted-quad IPv4 address. Leading zeros are refused because some parsers read
 * them as octal, so the same string would mean two different addresses.
 */
export function parseIPv4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!DECIMAL_OCTET.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseHexGroups(text: string): number[] | undefined {
  if (text === "") return [];
  const groups: number[] = [];
  for (const g of text.split(":")) {
    if (!HEX_GROUP.test(g)) return undefined;
    groups.push(Number.parseInt(g, 16));
  }
  return groups;
}

/** Parses an IPv6 address in any RFC 4291 text form (compressed, full, or with a dotted IPv4 tail). */
export function parseIPv6(text: string): bigint | undefined {
  let s = text;
  const lastColon = s.lastIndexOf(":");
  if (lastColon < 0) return undefined;
  const tail = s.slice(lastColon + 1);
  if (tail.includes(".")) {
    // Rewrite the dotted tail as two hex groups so one parser handles both forms.
    const v4 = parseIPv4(tail);
    if (v4 === undefined) return undefined;
    s = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const halves = s.split("::");
  let groups: number[];
  if (halves.length === 1) {
    const all = parseHexGroups(s);
    if (all === undefined || all.length !== 8) return undefined;
    groups = all;
  } else if (halves.length === 2) {
    const left = parseHexGroups(halves[0] ?? "");
    const right = parseHexGroups(halves[1] ?? "");
    if (left === undefined || right === undefined) return undefined;
    // "::" stands for at least one zero group.
    const missing = 8 - left.length - right.length;
    if (missing < 1) return undefined;
    groups = [...left, ...new Array<number>(missing).fill(0), ...right];
  } else {
    return undefined;
  }
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

/** Parses an IPv4 or IPv6 address (surrounding whitespace allowed); undefined if invalid. */
export function parseIP(text: string): Addr | undefined {
  const s = text.trim();
  if (s.includes(":")) {
    const value = parseIPv6(s);
    return value === undefined ? undefined : { family: "IPv6", value };
  }
  const value = parseIPv4(s);
  return value === undefined ? undefined : { family: "IPv4", value };
}

function formatIPv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((shift) => ((value >> shift) & 0xffn).toString()).join(".");
}

/** Formats an IPv6 value as RFC 5952 text: lowercase, shortest, longest zero run as "::". */
function formatIPv6(value: bigint): string {
  // RFC 5952 section 5: IPv4-mapped addresses keep the dotted tail.
  if (value >> 32n === 0xffffn) return `::ffff:${formatIPv4(value & 0xffffffffn)}`;
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((value >> shift) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  // A single zero group is never compressed.
  if (bestLen < 2) return hex.join(":");
  const left = hex.slice(0, bestStart).join(":");
  const right = hex.slice(bestStart + bestLen).join(":");
  return `${left}::${right}`;
}

/** Canonical text of an address: dotted quad for IPv4, RFC 5952 for IPv6. */
export function formatAddr(addr: Addr): string {
  return addr.family === "IPv4" ? formatIPv4(addr.value) : formatIPv6(addr.value);
}

/** Canonical text of an address given as text, or undefined if it does not parse. */
export function canonicalIP(text: string): string | undefined {
  const a = parseIP(text);
  return a === undefined ? undefined : formatAddr(a);
}

/**
 * Parses one pool entry: a CIDR ("192.0.2.0/24"; host bits are cleared), a range
 * ("192.0.2.10-192.0.2.20", both ends of one family, start <= end) or a single address.
 */
export function parseEntry(text: string): AddressEntry | undefined {
  const s = text.trim();
  if (s.includes("/")) {
    const parts = s.split("/");
    if (parts.length !== 2) return undefined;
    const addr = parseIP(parts[0] ?? "");
    const prefixText = (parts[1] ?? "").trim();
    if (addr === undefined || !/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return undefined;
    const bits = bitsOf(addr.family);
    const prefix = Number(prefixText);
    if (prefix > bits) return undefined;
    const hostMask = (1n << BigInt(bits - prefix)) - 1n;
    const lo = addr.value & ~hostMask;
    return { family: addr.family, lo, hi: lo | hostMask, prefix };
  }
  if (s.includes("-")) {
    const parts = s.split("-");
    if (parts.length !== 2) return undefined;
    const a = parseIP(parts[0] ?? "");
    const b = parseIP(parts[1] ?? "");
    if (a === undefined || b === undefined || a.family !== b.family || a.value > b.value) {
      return undefined;
    }
    return { family: a.family, lo: a.value, hi: b.value };
  }
  const a = parseIP(s);
  return a === undefined ? undefined : { family: a.family, lo: a.value, hi: a.value };
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
