// UPDATE path attributes (RFC 4271 §4.3, §5) and NLRI prefixes: ORIGIN, AS_PATH (RFC 6793
// 2- or 4-octet, AS4_PATH towards a 2-octet peer), NEXT_HOP, LOCAL_PREF, COMMUNITIES
// (RFC 1997), MP_REACH/MP_UNREACH (RFC 4760, IPv6 next hop per RFC 2545) and
// LARGE_COMMUNITY (RFC 8092). Pure.

import { ipToBytes, parseIP } from "../net/address.ts";
import { parseCIDR } from "../net/cidr.ts";
import { AFI_IPV4, AFI_IPV6, type Family, SAFI_UNICAST } from "./capabilities.ts";
import { AS_TRANS } from "./messages.ts";

export const ATTR_ORIGIN = 1;
export const ATTR_AS_PATH = 2;
export const ATTR_NEXT_HOP = 3;
export const ATTR_LOCAL_PREF = 5;
export const ATTR_COMMUNITIES = 8;
export const ATTR_MP_REACH = 14;
export const ATTR_MP_UNREACH = 15;
export const ATTR_AS4_PATH = 17;
export const ATTR_LARGE_COMMUNITY = 32;

const FLAG_OPTIONAL = 0x80;
const FLAG_TRANSITIVE = 0x40;
const FLAG_EXTENDED = 0x10;
const WELL_KNOWN = FLAG_TRANSITIVE;
const OPTIONAL_TRANSITIVE = FLAG_OPTIONAL | FLAG_TRANSITIVE;
const AS_SEQUENCE = 2;

/** A prefix as NLRI: its family and the length-prefixed bytes (RFC 4271 §4.3). */
export interface Nlri {
  family: Family;
  bytes: Uint8Array;
}

/** The NLRI encoding of "203.0.113.10/32" etc., or undefined for a text that is no prefix. */
export function encodePrefix(prefix: string): Nlri | undefined {
  const cidr = parseCIDR(prefix);
  if (cidr === undefined) return undefined;
  const addr = ipToBytes(cidr.ip);
  const n = Math.ceil(cidr.prefix / 8);
  const bytes = new Uint8Array(1 + n);
  bytes[0] = cidr.prefix;
  bytes.set(addr.subarray(0, n), 1);
  // Host bits past the prefix length must be zero on the wire.
  if (cidr.prefix % 8 !== 0) bytes[n] = (bytes[n] ?? 0) & (0xff << (8 - (cidr.prefix % 8)));
  return { family: cidr.ip.family === "IPv4" ? "ipv4-unicast" : "ipv6-unicast", bytes };
}

/** One attribute: flags, type, 1- or 2-byte length (extended when the value exceeds 255). */
export function encodeAttribute(flags: number, type: number, value: Uint8Array): Uint8Array {
  const ext = value.length > 255;
  const head = ext ? 4 : 3;
  const out = new Uint8Array(head + value.length);
  out[0] = ext ? flags | FLAG_EXTENDED : flags & ~FLAG_EXTENDED;
  out[1] = type;
  if (ext) {
    out[2] = value.length >> 8;
    out[3] = value.length & 0xff;
  } else {
    out[2] = value.length;
  }
  out.set(value, head);
  return out;
}

function u32(n: number): number[] {
  const v = n >>> 0;
  return [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}

/** What the attributes of one group of prefixes depend on. */
export interface PathAttributes {
  /** The own AS for eBGP (one AS_SEQUENCE of it), undefined for iBGP (empty AS_PATH). */
  prependASN?: number;
  /** Whether both sides announced 4-octet AS support. */
  fourOctet: boolean;
  /** LOCAL_PREF, only ever set for internal peers. */
  localPref?: number;
  communities: readonly number[];
  largeCommunities: readonly (readonly [number, number, number])[];
}

/**
 * The attributes of a group in three runs, so that the packer can put NEXT_HOP (3) between
 * `head` and `mid` for IPv4 or MP_REACH (14) between `mid` and `tail` for IPv6 and keep
 * type order: head = ORIGIN, AS_PATH; mid = [LOCAL_PREF], [COMMUNITIES]; tail = [AS4_PATH],
 * [LARGE_COMMUNITY].
 */
export interface AttributeRuns {
  head: Uint8Array;
  mid: Uint8Array;
  tail: Uint8Array;
}

export function encodeCommonAttributes(a: PathAttributes): AttributeRuns {
  const before: Uint8Array[] = [encodeAttribute(WELL_KNOWN, ATTR_ORIGIN, Uint8Array.of(0))];
  const after: Uint8Array[] = [];
  let as4Path: Uint8Array | undefined;
  if (a.prependASN === undefined) {
    before.push(encodeAttribute(WELL_KNOWN, ATTR_AS_PATH, new Uint8Array(0)));
  } else if (a.fourOctet) {
    before.push(
      encodeAttribute(
        WELL_KNOWN,
        ATTR_AS_PATH,
        Uint8Array.from([AS_SEQUENCE, 1, ...u32(a.prependASN)]),
      ),
    );
  } else {
    const asn16 = a.prependASN > 0xffff ? AS_TRANS : a.prependASN;
    before.push(
      encodeAttribute(
        WELL_KNOWN,
        ATTR_AS_PATH,
        Uint8Array.from([AS_SEQUENCE, 1, asn16 >> 8, asn16 & 0xff]),
      ),
    );
    // RFC 6793 §4.2.2: the true path rides along for the 4-octet speakers behind the peer.
    if (a.prependASN > 0xffff) {
      as4Path = encodeAttribute(
        OPTIONAL_TRANSITIVE,
        ATTR_AS4_PATH,
        Uint8Array.from([AS_SEQUENCE, 1, ...u32(a.prependASN)]),
      );
    }
  }
  if (a.localPref !== undefined) {
    after.push(encodeAttribute(WELL_KNOWN, ATTR_LOCAL_PREF, Uint8Array.from(u32(a.localPref))));
  }
  if (a.communities.length > 0) {
    after.push(
      encodeAttribute(
        OPTIONAL_TRANSITIVE,
        ATTR_COMMUNITIES,
        Uint8Array.from(a.communities.flatMap(u32)),
      ),
    );
  }
  const tail: Uint8Array[] = [];
  if (as4Path !== undefined) tail.push(as4Path);
  if (a.largeCommunities.length > 0) {
    tail.push(
      encodeAttribute(
        OPTIONAL_TRANSITIVE,
        ATTR_LARGE_COMMUNITY,
        Uint8Array.from(
          a.largeCommunities.flatMap((l) => [...u32(l[0]), ...u32(l[1]), ...u32(l[2])]),
        ),
      ),
    );
  }
  return { head: concat(before), mid: concat(after), tail: concat(tail) };
}

/** The NEXT_HOP attribute for an IPv4 next hop. */
export function encodeNextHop(address: string): Uint8Array {
  const ip = parseIP(address);
  if (ip?.family !== "IPv4") throw new Error(`IPv4 next hop ${JSON.stringify(address)}`);
  return encodeAttribute(WELL_KNOWN, ATTR_NEXT_HOP, ipToBytes(ip));
}

/** MP_REACH_NLRI's value before its NLRI: AFI, SAFI, next hop(s) (RFC 2545), reserved. */
export function mpReachHead(family: Family, nextHops: readonly string[]): Uint8Array {
  const hops = nextHops.map((h) => {
    const ip = parseIP(h);
    if (ip === undefined) throw new Error(`next hop ${JSON.stringify(h)}`);
    return ipToBytes(ip);
  });
  const nh = concat(hops);
  const afi = family === "ipv4-unicast" ? AFI_IPV4 : AFI_IPV6;
  return Uint8Array.from([0, afi, SAFI_UNICAST, nh.length, ...nh, 0]);
}

export function encodeMpReach(head: Uint8Array, nlri: Uint8Array): Uint8Array {
  return encodeAttribute(FLAG_OPTIONAL, ATTR_MP_REACH, concat([head, nlri]));
}

export function encodeMpUnreach(family: Family, nlri: Uint8Array): Uint8Array {
  const afi = family === "ipv4-unicast" ? AFI_IPV4 : AFI_IPV6;
  return encodeAttribute(
    FLAG_OPTIONAL,
    ATTR_MP_UNREACH,
    concat([Uint8Array.of(0, afi, SAFI_UNICAST), nlri]),
  );
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
