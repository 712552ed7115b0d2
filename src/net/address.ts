// IP addresses as text and as numbers: the one grammar every part of ironlb uses. It is the
// grammar of Kubernetes CEL `isIP()` (Go's net/netip plus two refusals: no IPv6 zone, no
// IPv4-mapped IPv6 address), so an address the apiserver accepts in a pool is accepted
// everywhere else and the other way round. Pure: imports nothing.

export type IPFamily = "IPv4" | "IPv6";

/** An address: its family and its value as an unsigned integer (32 or 128 bits). */
export interface IP {
  family: IPFamily;
  value: bigint;
}

/** The number of bits in an address of the family. */
export function bitsOf(family: IPFamily): number {
  return family === "IPv4" ? 32 : 128;
}

// netip refuses leading zeros ("010" means octal to some parsers, so one text would name
// two addresses).
const DECIMAL_OCTET = /^(0|[1-9][0-9]{0,2})$/;
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIPv4Value(text: string): bigint | undefined {
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

function parseIPv6Value(text: string): bigint | undefined {
  // A zone ("%eth0") fails the group syntax below, as CEL refuses zones.
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const elided = halves.length === 2;
  const groupsOf = (h: string): string[] => (h === "" ? [] : h.split(":"));
  // An embedded IPv4 part (two groups' worth) may only stand at the very end of the text.
  const wordsOf = (groups: string[], mayEndDotted: boolean): number[] | undefined => {
    const out: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i] as string;
      if (mayEndDotted && i === groups.length - 1 && g.includes(".")) {
        const v4 = parseIPv4Value(g);
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
      } else if (HEX_GROUP.test(g)) {
        out.push(Number.parseInt(g, 16));
      } else {
        return undefined;
      }
    }
    return out;
  };
  const head = wordsOf(groupsOf(halves[0] as string), !elided);
  const tail = elided ? wordsOf(groupsOf(halves[1] as string), true) : [];
  if (head === undefined || tail === undefined) return undefined;
  const n = head.length + tail.length;
  // "::" stands for at least one group of zeros; without it all eight must be there.
  if (elided ? n > 7 : n !== 8) return undefined;
  let value = 0n;
  for (const w of [...head, ...new Array<number>(8 - n).fill(0), ...tail]) {
    value = (value << 16n) | BigInt(w);
  }
  return value;
}

/** True for ::ffff:0:0/96, which the Kubernetes libraries refuse in every spelling. */
export function isIPv4Mapped(ip: IP): boolean {
  return ip.family === "IPv6" && ip.value >> 32n === 0xffffn;
}

/**
 * Parses an address exactly as Kubernetes CEL `ip()` does; undefined where `isIP()` is
 * false. No surrounding spaces, no zone, no IPv4-mapped IPv6, no leading zeros in IPv4.
 */
export function parseIP(text: string): IP | undefined {
  if (typeof text !== "string") return undefined;
  // Like netip: the first '.' or ':' decides the family.
  const m = /[.:]/.exec(text);
  if (m === null) return undefined;
  if (m[0] === ".") {
    const v4 = parseIPv4Value(text);
    return v4 === undefined ? undefined : { family: "IPv4", value: v4 };
  }
  const v6 = parseIPv6Value(text);
  if (v6 === undefined) return undefined;
  const ip: IP = { family: "IPv6", value: v6 };
  return isIPv4Mapped(ip) ? undefined : ip;
}

function formatIPv4Octets(a: number, b: number, c: number, d: number): string {
  return `${a}.${b}.${c}.${d}`;
}

/** RFC 5952 text of eight 16-bit groups: lowercase, longest zero run (first of equals) as "::". */
function formatIPv6Groups(groups: number[]): string {
  // RFC 5952 section 5 (and netip): IPv4-mapped addresses keep a dotted tail.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const hi = groups[6] as number;
    const lo = groups[7] as number;
    return `::ffff:${formatIPv4Octets(hi >> 8, hi & 0xff, lo >> 8, lo & 0xff)}`;
  }
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
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLen).join(":")}`;
}

/** Canonical text: dotted quad for IPv4, RFC 5952 for IPv6 (what Go's netip prints). */
export function formatIP(ip: IP): string {
  const v = ip.value;
  if (ip.family === "IPv4") {
    return formatIPv4Octets(
      Number((v >> 24n) & 0xffn),
      Number((v >> 16n) & 0xffn),
      Number((v >> 8n) & 0xffn),
      Number(v & 0xffn),
    );
  }
  const groups: number[] = [];
  for (let shift = 112n; shift >= 0n; shift -= 16n) groups.push(Number((v >> shift) & 0xffffn));
  return formatIPv6Groups(groups);
}

/** Canonical text of an address given as text, or undefined when it is not one. */
export function canonicalIP(text: string): string | undefined {
  const ip = parseIP(text);
  return ip === undefined ? undefined : formatIP(ip);
}

/**
 * Canonical text of the 4 (IPv4) or 16 (IPv6) bytes at `offset`, in network order. Works
 * on the bytes directly: packet decoders call it for every frame.
 */
export function formatIPBytes(bytes: Uint8Array, offset: number, family: IPFamily): string {
  if (family === "IPv4") {
    return formatIPv4Octets(
      bytes[offset] ?? 0,
      bytes[offset + 1] ?? 0,
      bytes[offset + 2] ?? 0,
      bytes[offset + 3] ?? 0,
    );
  }
  const groups: number[] = [];
  for (let i = 0; i < 8; i++) {
    groups.push(((bytes[offset + 2 * i] ?? 0) << 8) | (bytes[offset + 2 * i + 1] ?? 0));
  }
  return formatIPv6Groups(groups);
}

/** The address in network byte order (4 or 16 bytes). */
export function ipToBytes(ip: IP): Uint8Array {
  const n = bitsOf(ip.family) / 8;
  const out = new Uint8Array(n);
  let v = ip.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** The address stored in network byte order at `offset` (4 bytes for IPv4, 16 for IPv6). */
export function ipFromBytes(bytes: Uint8Array, offset: number, family: IPFamily): IP {
  let value = 0n;
  const n = bitsOf(family) / 8;
  for (let i = 0; i < n; i++) value = (value << 8n) | BigInt(bytes[offset + i] ?? 0);
  return { family, value };
}

/** An inclusive range of addresses of one family. */
export interface IPRange {
  family: IPFamily;
  first: bigint;
  last: bigint;
}

const V4 = (a: number, b: number, c: number, d: number): bigint =>
  (BigInt(a) << 24n) | (BigInt(b) << 16n) | (BigInt(c) << 8n) | BigInt(d);
const V6_TOP = (top16: number): bigint => BigInt(top16) << 112n;

/**
 * Blocks no load-balancer IP should come from: a pool that holds some is legal but almost
 * certainly a mistake (RFC 6890: loopback 127/8 and ::1; multicast 224/4 and ff00::/8).
 */
export const specialRanges: Readonly<Record<"loopback" | "multicast", readonly IPRange[]>> = {
  loopback: [
    { family: "IPv4", first: V4(127, 0, 0, 0), last: V4(127, 255, 255, 255) },
    { family: "IPv6", first: 1n, last: 1n },
  ],
  multicast: [
    { family: "IPv4", first: V4(224, 0, 0, 0), last: V4(239, 255, 255, 255) },
    { family: "IPv6", first: V6_TOP(0xff00), last: (1n << 128n) - 1n },
  ],
};

/** True for 0.0.0.0 and ::, which mean "any address" to a socket and can never be a Service's IP. */
export function isUnspecified(ip: IP): boolean {
  return ip.value === 0n;
}
