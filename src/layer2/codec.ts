/**
 * Pure encoders and decoders for the frames a speaker sends and receives: Ethernet II, ARP
 * for IPv4 over Ethernet, and the two ICMPv6 neighbour discovery messages (RFC 4861) inside
 * IPv6. No I/O. Decoders return `undefined` for anything truncated, malformed or outside
 * what ironlb handles, and never throw. Encoders throw a TypeError on invalid input
 * addresses (a programming error, not a network event).
 *
 * Addresses cross this API as strings: MACs as lowercase `aa:bb:cc:dd:ee:ff`, IPv4 in
 * dotted quad, IPv6 in RFC 5952 canonical form (what the decoders produce).
 */
import { canonicalIP, formatIPBytes, type IPFamily, ipToBytes, parseIP } from "../net/address.ts";

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

export const ICMPV6_NEXT_HEADER = 58;
export const ICMPV6_NEIGHBOR_SOLICITATION = 135;
export const ICMPV6_NEIGHBOR_ADVERTISEMENT = 136;

export const BROADCAST_MAC = "ff:ff:ff:ff:ff:ff";
export const ZERO_MAC = "00:00:00:00:00:00";
export const ALL_NODES_IPV6 = "ff02::1";

/** Ethernet frames shorter than this (without FCS) are padded, as a NIC would. */
export const MIN_FRAME_LENGTH = 60;
const ETH_HEADER_LENGTH = 14;
const ARP_LENGTH = 28;
const IPV6_HEADER_LENGTH = 40;

// ---- MAC -------------------------------------------------------------------------------

/** Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff` (any case) into 6 bytes. */
export function parseMac(text: string): Buffer | undefined {
  if (typeof text !== "string") return undefined;
  const parts = text.split(/[:-]/);
  if (parts.length !== 6) return undefined;
  const out = Buffer.alloc(6);
  for (let i = 0; i < 6; i++) {
    const p = parts[i]!;
    if (!/^[0-9a-fA-F]{1,2}$/.test(p)) return undefined;
    out[i] = Number.parseInt(p, 16);
  }
  return out;
}

/** Formats 6 bytes at `offset` as lowercase `aa:bb:cc:dd:ee:ff`. */
export function formatMac(bytes: Uint8Array, offset = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push((bytes[offset + i] ?? 0).toString(16).padStart(2, "0"));
  return parts.join(":");
}

function macBytes(text: string, what: string): Buffer {
  const b = parseMac(text);
  if (b === undefined) throw new TypeError(`${what} is not a MAC address: ${String(text)}`);
  return b;
}

// ---- IPv4 / IPv6 -------------------------------------------------------------------------

// The text forms are src/net's grammar (the one the API validates pools with), so an IP
// the speaker is handed always parses here, and decoded addresses print the same way.

function parseFamily(text: string, family: IPFamily): Buffer | undefined {
  const ip = parseIP(text);
  return ip === undefined || ip.family !== family ? undefined : Buffer.from(ipToBytes(ip));
}

/** Parses a dotted-quad IPv4 address (no leading zeros, no shorthand) into 4 bytes. */
export function parseIPv4(text: string): Buffer | undefined {
  return parseFamily(text, "IPv4");
}

/** Formats 4 bytes at `offset` as a dotted quad. */
export function formatIPv4(bytes: Uint8Array, offset = 0): string {
  return formatIPBytes(bytes, offset, "IPv4");
}

/**
 * Parses an IPv6 address in any RFC 4291 text form (incl. `::` and an embedded IPv4 tail)
 * into 16 bytes; like the API, refuses zones and IPv4-mapped addresses.
 */
export function parseIPv6(text: string): Buffer | undefined {
  return parseFamily(text, "IPv6");
}

/** Formats 16 bytes at `offset` in RFC 5952 canonical form (longest zero run as `::`). */
export function formatIPv6(bytes: Uint8Array, offset = 0): string {
  return formatIPBytes(bytes, offset, "IPv6");
}

/** IP family of a textual address, or undefined when it is neither. */
export function ipFamily(text: string): 4 | 6 | undefined {
  const ip = parseIP(text);
  return ip === undefined ? undefined : ip.family === "IPv4" ? 4 : 6;
}

/** Canonical text of an IPv4 or IPv6 address (so that map keys compare equal). */
export function normalizeIp(text: string): string | undefined {
  return canonicalIP(text);
}

function v4Bytes(text: string, what: string): Buffer {
  const b = parseIPv4(text);
  if (b === undefined) throw new TypeError(`${what} is not an IPv4 address: ${String(text)}`);
  return b;
}

function v6Bytes(text: string, what: string): Buffer {
  const b = parseIPv6(text);
  if (b === undefined) throw new TypeError(`${what} is not an IPv6 address: ${String(text)}`);
  return b;
}

/** Solicited-node multicast address (ff02::1:ffXX:XXXX) for an IPv6 address. */
export function solicitedNodeMulticast(ip: string): string {
  const b = v6Bytes(ip, "ip");
  const out = Buffer.from([0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, b[13]!, b[14]!, b[15]!]);
  return formatIPv6(out);
}

/** Ethernet multicast MAC (33:33 + low 32 bits, RFC 2464) for an IPv6 multicast address. */
export function ipv6MulticastMac(ip: string): string {
  const b = v6Bytes(ip, "ip");
  return formatMac(Buffer.from([0x33, 0x33, b[12]!, b[13]!, b[14]!, b[15]!]));
}

// ---- Ethernet ------------------------------------------------------------------------------

export interface EthernetHeader {
  dst: string;
  src: string;
  etherType: number;
}

export interface EthernetFrame extends EthernetHeader {
  payload: Buffer;
}

/** Builds an Ethernet II frame, zero-padded to the 60-byte minimum. */
export function encodeEthernet(header: EthernetHeader, payload: Uint8Array): Buffer {
  const len = Math.max(ETH_HEADER_LENGTH + payload.length, MIN_FRAME_LENGTH);
  const out = Buffer.alloc(len);
  macBytes(header.dst, "dst").copy(out, 0);
  macBytes(header.src, "src").copy(out, 6);
  out.writeUInt16BE(header.etherType & 0xffff, 12);
  out.set(payload, ETH_HEADER_LENGTH);
  return out;
}

/** Splits an Ethernet II frame; the payload still includes any padding. */
export function decodeEthernet(frame: Uint8Array): EthernetFrame | undefined {
  if (!(frame instanceof Uint8Array) || frame.length < ETH_HEADER_LENGTH) return undefined;
  const buf = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
  const etherType = buf.readUInt16BE(12);
  // Values below 0x0600 are 802.3 lengths, not EtherTypes.
  if (etherType < 0x0600) return undefined;
  return {
    dst: formatMac(buf, 0),
    src: formatMac(buf, 6),
    etherType,
    payload: buf.subarray(ETH_HEADER_LENGTH),
  };
}

// ---- ARP -----------------------------------------------------------------------------------

export interface ArpPacket {
  op: typeof ARP_REQUEST | typeof ARP_REPLY;
  senderMac: string;
  senderIp: string;
  targetMac: string;
  targetIp: string;
}

export interface ArpFrame {
  eth: EthernetHeader;
  arp: ArpPacket;
}

/** Encodes the 28-byte ARP body (Ethernet / IPv4). */
export function encodeArp(p: ArpPacket): Buffer {
  const out = Buffer.alloc(ARP_LENGTH);
  out.writeUInt16BE(1, 0); // hardware type Ethernet
  out.writeUInt16BE(ETHERTYPE_IPV4, 2);
  out[4] = 6;
  out[5] = 4;
  out.writeUInt16BE(p.op, 6);
  macBytes(p.senderMac, "senderMac").copy(out, 8);
  v4Bytes(p.senderIp, "senderIp").copy(out, 14);
  macBytes(p.targetMac, "targetMac").copy(out, 18);
  v4Bytes(p.targetIp, "targetIp").copy(out, 24);
  return out;
}

/** Decodes an ARP body; only Ethernet/IPv4 requests and replies are accepted. */
export function decodeArp(body: Uint8Array): ArpPacket | undefined {
  if (!(body instanceof Uint8Array) || body.length < ARP_LENGTH) return undefined;
  const b = Buffer.from(body.buffer, body.byteOffset, body.length);
  if (b.readUInt16BE(0) !== 1 || b.readUInt16BE(2) !== ETHERTYPE_IPV4) return undefined;
  if (b[4] !== 6 || b[5] !== 4) return undefined;
  const op = b.readUInt16BE(6);
  if (op !== ARP_REQUEST && op !== ARP_REPLY) return undefined;
  return {
    op,
    senderMac: formatMac(b, 8),
    senderIp: formatIPv4(b, 14),
    targetMac: formatMac(b, 18),
    targetIp: formatIPv4(b, 24),
  };
}

/** Encodes a full ARP frame. The Ethernet source defaults to the ARP sender MAC. */
export function encodeArpFrame(arp: ArpPacket, ethDst: string, ethSrc = arp.senderMac): Buffer {
  return encodeEthernet({ dst: ethDst, src: ethSrc, etherType: ETHERTYPE_ARP }, encodeArp(arp));
}

/** Decodes a full Ethernet frame carrying ARP, or undefined. */
export function decodeArpFrame(frame: Uint8Array): ArpFrame | undefined {
  const eth = decodeEthernet(frame);
  if (eth === undefined || eth.etherType !== ETHERTYPE_ARP) return undefined;
  const arp = decodeArp(eth.payload);
  if (arp === undefined) return undefined;
  return { eth: { dst: eth.dst, src: eth.src, etherType: eth.etherType }, arp };
}

/** Broadcast "who has targetIp, tell senderIp". */
export function arpRequest(senderMac: string, senderIp: string, targetIp: string): Buffer {
  return encodeArpFrame(
    { op: ARP_REQUEST, senderMac, senderIp, targetMac: ZERO_MAC, targetIp },
    BROADCAST_MAC,
  );
}

/** Unicast reply "senderIp is at senderMac" to the requester. */
export function arpReply(
  senderMac: string,
  senderIp: string,
  targetMac: string,
  targetIp: string,
): Buffer {
  return encodeArpFrame({ op: ARP_REPLY, senderMac, senderIp, targetMac, targetIp }, targetMac);
}

/**
 * Gratuitous ARP, request form (sender IP = target IP, target MAC zero, broadcast). This is
 * also the RFC 5227 "ARP announcement".
 */
export function gratuitousArpRequest(mac: string, ip: string): Buffer {
  return encodeArpFrame(
    { op: ARP_REQUEST, senderMac: mac, senderIp: ip, targetMac: ZERO_MAC, targetIp: ip },
    BROADCAST_MAC,
  );
}

/**
 * Gratuitous ARP, reply form (broadcast). The target MAC repeats the sender MAC because
 * Linux only treats a reply as gratuitous when the two are equal.
 */
export function gratuitousArpReply(mac: string, ip: string): Buffer {
  return encodeArpFrame(
    { op: ARP_REPLY, senderMac: mac, senderIp: ip, targetMac: mac, targetIp: ip },
    BROADCAST_MAC,
  );
}

/** RFC 5227 probe: request with sender IP 0.0.0.0, so that no cache learns from it. */
export function arpProbe(mac: string, ip: string): Buffer {
  return encodeArpFrame(
    { op: ARP_REQUEST, senderMac: mac, senderIp: "0.0.0.0", targetMac: ZERO_MAC, targetIp: ip },
    BROADCAST_MAC,
  );
}

// ---- IPv6 neighbour discovery ---------------------------------------------------------------

export interface Ipv6Header {
  src: string;
  dst: string;
  hopLimit: number;
}

export interface NeighborSolicitation {
  type: "solicitation";
  target: string;
  /** Source link-layer address option, if present. */
  sourceMac?: string;
}

export interface NeighborAdvertisement {
  type: "advertisement";
  target: string;
  router: boolean;
  solicited: boolean;
  override: boolean;
  /** Target link-layer address option, if present. */
  targetMac?: string;
}

export interface NdpFrame {
  eth: EthernetHeader;
  ip: Ipv6Header;
  message: NeighborSolicitation | NeighborAdvertisement;
}

const OPT_SOURCE_LLA = 1;
const OPT_TARGET_LLA = 2;

/** ICMPv6 checksum over the IPv6 pseudo-header and the message (checksum field as given). */
export function icmpv6Checksum(src: Uint8Array, dst: Uint8Array, message: Uint8Array): number {
  let sum = 0;
  const add16 = (bytes: Uint8Array, len: number) => {
    for (let i = 0; i < len; i += 2) {
      sum += ((bytes[i] ?? 0) << 8) | (i + 1 < len ? (bytes[i + 1] ?? 0) : 0);
    }
  };
  add16(src, 16);
  add16(dst, 16);
  sum += (message.length >>> 16) & 0xffff;
  sum += message.length & 0xffff;
  sum += ICMPV6_NEXT_HEADER;
  add16(message, message.length);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function isMulticast6(b: Uint8Array): boolean {
  return b[0] === 0xff;
}

function isUnspecified6(b: Uint8Array): boolean {
  for (let i = 0; i < 16; i++) if (b[i] !== 0) return false;
  return true;
}

function encodeNdp(
  ethSrc: string,
  ethDst: string,
  src: string,
  dst: string,
  type: number,
  flags: number,
  target: string,
  option: { type: number; mac: string } | undefined,
): Buffer {
  const srcB = v6Bytes(src, "src");
  const dstB = v6Bytes(dst, "dst");
  const msgLen = 24 + (option === undefined ? 0 : 8);
  const msg = Buffer.alloc(msgLen);
  msg[0] = type;
  msg[1] = 0;
  msg[4] = flags;
  v6Bytes(target, "target").copy(msg, 8);
  if (option !== undefined) {
    msg[24] = option.type;
    msg[25] = 1; // length in units of 8 bytes
    macBytes(option.mac, "link-layer address").copy(msg, 26);
  }
  msg.writeUInt16BE(icmpv6Checksum(srcB, dstB, msg), 2);
  const ip = Buffer.alloc(IPV6_HEADER_LENGTH + msgLen);
  ip.writeUInt32BE(0x60000000, 0);
  ip.writeUInt16BE(msgLen, 4);
  ip[6] = ICMPV6_NEXT_HEADER;
  ip[7] = 255; // RFC 4861 requires hop limit 255 so that off-link senders are rejected
  srcB.copy(ip, 8);
  dstB.copy(ip, 24);
  msg.copy(ip, IPV6_HEADER_LENGTH);
  return encodeEthernet({ dst: ethDst, src: ethSrc, etherType: ETHERTYPE_IPV6 }, ip);
}

export interface SolicitationOptions {
  srcMac: string;
  /** Source IP; `::` makes it a duplicate address detection probe (no source MAC option). */
  srcIp: string;
  target: string;
  /** Defaults to the target's solicited-node multicast address. */
  dstIp?: string;
  /** Defaults to the multicast MAC of dstIp (or the unicast MAC you give). */
  dstMac?: string;
}

/** Neighbour solicitation frame (RFC 4861 4.3). */
export function neighborSolicitation(o: SolicitationOptions): Buffer {
  const dstIp = o.dstIp ?? solicitedNodeMulticast(o.target);
  const dstMac = o.dstMac ?? ipv6MulticastMac(dstIp);
  const dad = isUnspecified6(v6Bytes(o.srcIp, "srcIp"));
  return encodeNdp(
    o.srcMac,
    dstMac,
    o.srcIp,
    dstIp,
    ICMPV6_NEIGHBOR_SOLICITATION,
    0,
    o.target,
    dad ? undefined : { type: OPT_SOURCE_LLA, mac: o.srcMac },
  );
}

export interface AdvertisementOptions {
  srcMac: string;
  srcIp: string;
  target: string;
  dstIp: string;
  dstMac: string;
  router?: boolean;
  solicited?: boolean;
  override?: boolean;
}

/** Neighbour advertisement frame (RFC 4861 4.4) with the target link-layer address option. */
export function neighborAdvertisement(o: AdvertisementOptions): Buffer {
  const flags = (o.router ? 0x80 : 0) | (o.solicited ? 0x40 : 0) | (o.override ? 0x20 : 0);
  return encodeNdp(
    o.srcMac,
    o.dstMac,
    o.srcIp,
    o.dstIp,
    ICMPV6_NEIGHBOR_ADVERTISEMENT,
    flags,
    o.target,
    { type: OPT_TARGET_LLA, mac: o.srcMac },
  );
}

/** Unsolicited advertisement with the override flag to all-nodes (the IPv6 gratuitous ARP). */
export function unsolicitedNeighborAdvertisement(mac: string, ip: string): Buffer {
  return neighborAdvertisement({
    srcMac: mac,
    srcIp: ip,
    target: ip,
    dstIp: ALL_NODES_IPV6,
    dstMac: ipv6MulticastMac(ALL_NODES_IPV6),
    override: true,
  });
}

/**
 * Decodes an Ethernet frame carrying an ICMPv6 neighbour solicitation or advertisement,
 * validated as RFC 4861 7.1.1/7.1.2 ask (hop limit 255, code 0, checksum, option lengths,
 * non-multicast target, DAD rules). Extension headers are not supported.
 */
export function decodeNdpFrame(frame: Uint8Array): NdpFrame | undefined {
  const eth = decodeEthernet(frame);
  if (eth === undefined || eth.etherType !== ETHERTYPE_IPV6) return undefined;
  const p = eth.payload;
  if (p.length < IPV6_HEADER_LENGTH + 24) return undefined;
  if (p[0]! >> 4 !== 6) return undefined;
  if (p[6] !== ICMPV6_NEXT_HEADER) return undefined;
  const payloadLen = p.readUInt16BE(4);
  if (payloadLen < 24 || IPV6_HEADER_LENGTH + payloadLen > p.length) return undefined;
  const hopLimit = p[7]!;
  if (hopLimit !== 255) return undefined;
  const srcB = p.subarray(8, 24);
  const dstB = p.subarray(24, 40);
  const msg = p.subarray(IPV6_HEADER_LENGTH, IPV6_HEADER_LENGTH + payloadLen);
  const type = msg[0]!;
  if (type !== ICMPV6_NEIGHBOR_SOLICITATION && type !== ICMPV6_NEIGHBOR_ADVERTISEMENT) {
    return undefined;
  }
  if (msg[1] !== 0) return undefined;
  if (isMulticast6(srcB)) return undefined;
  if (icmpv6Checksum(srcB, dstB, msg) !== 0) return undefined;
  const targetB = msg.subarray(8, 24);
  if (isMulticast6(targetB)) return undefined;

  let sourceMac: string | undefined;
  let targetMac: string | undefined;
  for (let off = 24; off < msg.length; ) {
    if (off + 2 > msg.length) return undefined;
    const optLen = msg[off + 1]! * 8;
    if (optLen === 0 || off + optLen > msg.length) return undefined;
    const optType = msg[off]!;
    if (optLen >= 8 && (optType === OPT_SOURCE_LLA || optType === OPT_TARGET_LLA)) {
      const mac = formatMac(msg, off + 2);
      if (optType === OPT_SOURCE_LLA) sourceMac = mac;
      else targetMac = mac;
    }
    off += optLen;
  }

  const ip: Ipv6Header = { src: formatIPv6(srcB), dst: formatIPv6(dstB), hopLimit };
  const header = { dst: eth.dst, src: eth.src, etherType: eth.etherType };
  const target = formatIPv6(targetB);
  if (type === ICMPV6_NEIGHBOR_SOLICITATION) {
    if (isUnspecified6(srcB)) {
      // DAD probes go to a solicited-node group and carry no source link-layer address.
      if (sourceMac !== undefined) return undefined;
      if (!(dstB[0] === 0xff && dstB[1] === 0x02 && dstB[11] === 1 && dstB[12] === 0xff)) {
        return undefined;
      }
    }
    const message: NeighborSolicitation = { type: "solicitation", target };
    if (sourceMac !== undefined) message.sourceMac = sourceMac;
    return { eth: header, ip, message };
  }
  const flags = msg[4]!;
  const solicited = (flags & 0x40) !== 0;
  // A solicited advertisement to a multicast destination is invalid.
  if (solicited && isMulticast6(dstB)) return undefined;
  const message: NeighborAdvertisement = {
    type: "advertisement",
    target,
    router: (flags & 0x80) !== 0,
    solicited,
    override: (flags & 0x20) !== 0,
  };
  if (targetMac !== undefined) message.targetMac = targetMac;
  return { eth: header, ip, message };
}
