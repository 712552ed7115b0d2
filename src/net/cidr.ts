// CIDRs ("198.51.100.0/24", "2001:db8::/64") in the grammar of Kubernetes CEL `isCIDR()`
// (Go's netip.ParsePrefix, refusing IPv4-mapped IPv6). Pure.
import { bitsOf, formatIP, type IP, type IPFamily, type IPRange, parseIP } from "./address.ts";

export interface CIDR {
  /** The address as written (host bits may be set: `cidr()` allows them, `masked()` clears them). */
  ip: IP;
  prefix: number;
}

/** Parses a CIDR as CEL `cidr()` does (host bits allowed); undefined where `isCIDR()` is false. */
export function parseCIDR(text: string): CIDR | undefined {
  if (typeof text !== "string") return undefined;
  const slash = text.lastIndexOf("/");
  if (slash < 0) return undefined;
  const ip = parseIP(text.slice(0, slash));
  if (ip === undefined) return undefined;
  // netip takes a decimal without sign or leading zero.
  const p = text.slice(slash + 1);
  if (!/^(0|[1-9][0-9]*)$/.test(p)) return undefined;
  const prefix = Number(p);
  if (prefix > bitsOf(ip.family)) return undefined;
  return { ip, prefix };
}

/** The mask of the host part of a prefix (all ones for /0 of the family). */
export function hostMask(family: IPFamily, prefix: number): bigint {
  return (1n << BigInt(bitsOf(family) - prefix)) - 1n;
}

/** True when the address has no bits set past the prefix (CEL: `cidr(s) == cidr(s).masked()`). */
export function isMasked(cidr: CIDR): boolean {
  return (cidr.ip.value & hostMask(cidr.ip.family, cidr.prefix)) === 0n;
}

/** The addresses a CIDR covers (host bits ignored). */
export function cidrRange(cidr: CIDR): IPRange {
  const mask = hostMask(cidr.ip.family, cidr.prefix);
  const first = cidr.ip.value & ~mask;
  return { family: cidr.ip.family, first, last: first | mask };
}

/** Text of a CIDR as written by `formatIP` ("2001:db8::/64"). */
export function formatCIDR(cidr: CIDR): string {
  return `${formatIP(cidr.ip)}/${cidr.prefix}`;
}

/** True when `ip` lies inside `cidr`. */
export function cidrContains(cidr: CIDR, ip: IP): boolean {
  if (cidr.ip.family !== ip.family) return false;
  const r = cidrRange(cidr);
  return r.first <= ip.value && ip.value <= r.last;
}
