// Parsing of IPAddressPool address entries ("198.51.100.0/24", "2001:db8::/64",
// "198.51.100.10-198.51.100.20"). The CRD checks the same entries with CEL (the Kubernetes
// `ip`/`cidr` libraries, which are Go's net/netip plus two extra refusals), so this parser
// follows netip's grammar on purpose: an entry the apiserver accepts is accepted here and
// the other way round, and both report the same messages.

export type IPFamily = "IPv4" | "IPv6";

/** A parsed address. `value` is the address as an unsigned integer (32 or 128 bits). */
export interface ParsedIP {
  family: IPFamily;
  value: bigint;
}

/** One entry of `spec.addresses`, as the inclusive interval [first, last] it stands for. */
export interface AddressEntry {
  kind: "cidr" | "range";
  family: IPFamily;
  first: bigint;
  last: bigint;
  /** Prefix length, for CIDRs only. */
  prefix?: number;
}

/** The messages shared with the CRD's CEL rules (config/crd/ironlb.dev_ipaddresspools.yaml). */
export const addressMessages = {
  shape:
    "each address must be a CIDR like 198.51.100.0/24 or 2001:db8::/64, or a range like 198.51.100.10-198.51.100.20",
  spaces: "an address must not contain spaces (write a range as 198.51.100.10-198.51.100.20)",
  prefix: "the prefix length after '/' must be a number from 0 to 32 for IPv4 or 0 to 128 for IPv6",
  hostBits: (entry: string) =>
    `host bits are set in ${entry}: a CIDR must start at its network address (like 198.51.100.0/24, not 198.51.100.5/24)`,
  mixed: "a range must not mix IPv4 and IPv6",
  order: "range start must not be after its end",
} as const;

const bits = (f: IPFamily): number => (f === "IPv4" ? 32 : 128);

function parseIPv4(s: string): bigint | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  let v = 0n;
  for (const p of parts) {
    // netip refuses leading zeros ("010" could mean octal elsewhere).
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parseIPv6(s: string): bigint | null {
  // Zones ("%eth0") fail the group syntax below, as the Kubernetes libraries refuse them.
  const halves = s.split("::");
  if (halves.length > 2) return null;
  const elided = halves.length === 2;
  const groupsOf = (h: string): string[] => (h === "" ? [] : h.split(":"));
  const head = groupsOf(halves[0]!);
  const tail = elided ? groupsOf(halves[1]!) : [];
  // An embedded IPv4 part (two groups' worth) may only stand at the very end of the text.
  const wordsOf = (groups: string[], mayEndDotted: boolean): number[] | null => {
    const out: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i]!;
      if (mayEndDotted && i === groups.length - 1 && g.includes(".")) {
        const v4 = parseIPv4(g);
        if (v4 === null) return null;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else if (/^[0-9a-fA-F]{1,4}$/.test(g)) {
        out.push(Number.parseInt(g, 16));
      } else {
        return null;
      }
    }
    return out;
  };
  const hw = wordsOf(head, !elided);
  const tw = wordsOf(tail, true);
  if (hw === null || tw === null) return null;
  const n = hw.length + tw.length;
  // "::" must stand for at least one group of zeros; without it all eight must be there.
  if (elided ? n > 7 : n !== 8) return null;
  let v = 0n;
  for (const w of [...hw, ...new Array<number>(8 - n).fill(0), ...tw]) v = (v << 16n) | BigInt(w);
  return v;
}

/** Parses an address as Kubernetes CEL `ip()` does; null when `isIP()` would be false. */
export function parseIP(s: string): ParsedIP | null {
  // Like netip: the first '.' or ':' decides the family.
  const m = /[.:]/.exec(s);
  if (m === null) return null;
  if (m[0] === ".") {
    const v = parseIPv4(s);
    return v === null ? null : { family: "IPv4", value: v };
  }
  const v6 = parseIPv6(s);
  if (v6 === null) return null;
  // IPv4-mapped IPv6 (::ffff:a.b.c.d in any spelling) is refused by the Kubernetes libraries.
  if (v6 >> 32n === 0xffffn) return null;
  return { family: "IPv6", value: v6 };
}

/** Parses a CIDR as Kubernetes CEL `cidr()` does (host bits allowed); null when `isCIDR()` would be false. */
export function parseCIDR(s: string): { ip: ParsedIP; prefix: number } | null {
  const slash = s.lastIndexOf("/");
  if (slash < 0) return null;
  const ip = parseIP(s.slice(0, slash));
  if (ip === null) return null;
  const p = s.slice(slash + 1);
  if (!/^(0|[1-9][0-9]*)$/.test(p)) return null;
  const prefix = Number(p);
  if (prefix > bits(ip.family)) return null;
  return { ip, prefix };
}

function hostMask(family: IPFamily, prefix: number): bigint {
  return (1n << BigInt(bits(family) - prefix)) - 1n;
}

/**
 * Checks one `spec.addresses` entry with exactly the rules of the CRD and returns every
 * message that the apiserver would report for it (empty when the entry is valid).
 */
export function addressEntryErrors(entry: string): string[] {
  const errors: string[] = [];
  const cidr = parseCIDR(entry);
  const parts = entry.split("-");
  const start = parts.length === 2 ? parseIP(parts[0]!) : null;
  const end = parts.length === 2 ? parseIP(parts[1]!) : null;
  const isRange = start !== null && end !== null;
  if (cidr === null && !isRange) errors.push(addressMessages.shape);
  if (entry.includes(" ")) errors.push(addressMessages.spaces);
  const slash = entry.lastIndexOf("/");
  if (slash >= 0 && parseIP(entry.slice(0, slash)) !== null && cidr === null) {
    errors.push(addressMessages.prefix);
  }
  if (cidr !== null) {
    const mask = hostMask(cidr.ip.family, cidr.prefix);
    if ((cidr.ip.value & mask) !== 0n) errors.push(addressMessages.hostBits(entry));
  }
  if (isRange) {
    if (start.family !== end.family) errors.push(addressMessages.mixed);
    else if (start.value > end.value) errors.push(addressMessages.order);
  }
  return errors;
}

/** Parses a valid entry into its interval; null when `addressEntryErrors` is not empty. */
export function parseAddressEntry(entry: string): AddressEntry | null {
  if (addressEntryErrors(entry).length > 0) return null;
  const cidr = parseCIDR(entry);
  if (cidr !== null) {
    const mask = hostMask(cidr.ip.family, cidr.prefix);
    return {
      kind: "cidr",
      family: cidr.ip.family,
      first: cidr.ip.value,
      last: cidr.ip.value | mask,
      prefix: cidr.prefix,
    };
  }
  const [a, b] = entry.split("-");
  const start = parseIP(a!)!;
  const end = parseIP(b!)!;
  return { kind: "range", family: start.family, first: start.value, last: end.value };
}
