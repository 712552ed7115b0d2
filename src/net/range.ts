// Ranges ("198.51.100.10-198.51.100.20") and the entries of an IPAddressPool's
// `spec.addresses` (a CIDR without host bits, or a range of one family whose start is not
// after its end): exactly what the CRD's CEL rules accept. Pure.
import { formatIP, type IP, type IPFamily, type IPRange, parseIP } from "./address.ts";
import { cidrRange, isMasked, parseCIDR } from "./cidr.ts";

/**
 * Splits "start-end" into its two addresses, as the CRD rule does: exactly one '-' and an
 * address (CEL `isIP`) on each side. Families and order are not checked here.
 */
export function parseRangeEnds(text: string): { start: IP; end: IP } | undefined {
  if (typeof text !== "string") return undefined;
  const i = text.indexOf("-");
  if (i < 0 || i !== text.lastIndexOf("-")) return undefined;
  const start = parseIP(text.slice(0, i));
  const end = parseIP(text.slice(i + 1));
  return start === undefined || end === undefined ? undefined : { start, end };
}

/** Parses "start-end" of one family with start <= end; undefined otherwise. */
export function parseRange(text: string): IPRange | undefined {
  const ends = parseRangeEnds(text);
  if (ends === undefined) return undefined;
  const { start, end } = ends;
  if (start.family !== end.family || start.value > end.value) return undefined;
  return { family: start.family, first: start.value, last: end.value };
}

/** Text of a range: "first-last" in canonical form. */
export function formatRange(r: IPRange): string {
  const a = formatIP({ family: r.family, value: r.first });
  const b = formatIP({ family: r.family, value: r.last });
  return `${a}-${b}`;
}

/** One valid `spec.addresses` entry, as the inclusive interval it stands for. */
export interface AddressEntry extends IPRange {
  kind: "cidr" | "range";
  family: IPFamily;
  /** Prefix length, for CIDRs only. */
  prefix?: number;
}

/**
 * Parses one pool entry with exactly the CRD's rules; undefined where the apiserver would
 * refuse it. (src/api/addresses.ts says why, in the CRD's words.)
 */
export function parseAddressEntry(text: string): AddressEntry | undefined {
  const cidr = parseCIDR(text);
  if (cidr !== undefined) {
    if (!isMasked(cidr)) return undefined;
    return { kind: "cidr", ...cidrRange(cidr), prefix: cidr.prefix };
  }
  const range = parseRange(text);
  return range === undefined ? undefined : { kind: "range", ...range };
}
