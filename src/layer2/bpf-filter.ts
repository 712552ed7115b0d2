/**
 * Classic BPF programs for the announcer's packet sockets, compiled from the set of IPs an
 * interface watches (the IPs it answers for plus the IPs it is probing). The kernel runs
 * the program on every frame before it is queued to the socket, so a flood of requests for
 * addresses this node does not own is dropped in the kernel and never wakes the speaker.
 *
 * What passes is exactly what the announcer can act on:
 *   ARP: frames whose target IP or sender IP is watched (requests to answer, claims and
 *        probes that reveal a conflict);
 *   NDP: neighbour solicitations and advertisements whose target is watched.
 * Everything else is dropped, including frames too short to hold those fields.
 *
 * Membership is a binary search over the sorted addresses (unsigned `jgt`), ending in
 * short runs of `jeq`: about log2(n) + 8 instructions per lookup. Every subtree is
 * position independent (jumps stay inside it, hits return at once), so no jump offset
 * depends on code elsewhere and 8-bit offsets that would overflow become `ja` hops.
 * Pure: no I/O; the socket installs the encoded program (SO_ATTACH_FILTER replaces the
 * previous one atomically).
 */
import { ipFamily, normalizeIp, parseIPv4, parseIPv6 } from "./codec.ts";

/** One classic BPF instruction (struct sock_filter). */
export interface BpfInstruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

// Opcodes (linux/filter.h, linux/bpf_common.h).
export const LD_W_ABS = 0x20; // BPF_LD | BPF_W | BPF_ABS
export const LD_H_ABS = 0x28; // BPF_LD | BPF_H | BPF_ABS
const LD_B_ABS = 0x30; // BPF_LD | BPF_B | BPF_ABS
const JA = 0x05; // BPF_JMP | BPF_JA
export const JEQ_K = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT_K = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const RET_K = 0x06; // BPF_RET | BPF_K
/**
 * SKF_NET_OFF: an absolute load at this offset plus n reads byte n of the network (IP)
 * header, wherever the socket's data starts (a UDP socket's filter sees the UDP header
 * at offset 0).
 */
export const NET_OFF = 0x1_0000_0000 - 0x10_0000;

/** The kernel refuses longer programs (BPF_MAXINSNS). */
export const BPF_MAX_INSTRUCTIONS = 4096;
/** Bytes of a frame handed to the socket when it passes (all of it, in practice). */
export const ACCEPT = 0x40000;
const LEAF = 8;

const ETHERTYPE_ARP = 0x0806;
const ETHERTYPE_IPV6 = 0x86dd;
const ICMPV6 = 58;
const NEIGHBOR_SOLICITATION = 135;
const NEIGHBOR_ADVERTISEMENT = 136;
// Offsets in the Ethernet frame.
const OFF_ETHERTYPE = 12;
const OFF_ARP_SENDER_IP = 28;
const OFF_ARP_TARGET_IP = 38;
const OFF_IPV6_NEXT_HEADER = 20;
const OFF_ICMPV6_TYPE = 54;
const OFF_NDP_TARGET = 62;

export const stmt = (code: number, k: number): BpfInstruction => ({ code, jt: 0, jf: 0, k });
export const jump = (code: number, k: number, jt: number, jf: number): BpfInstruction => ({
  code,
  jt,
  jf,
  k,
});
export const ret = (k: number) => stmt(RET_K, k);
export const ja = (offset: number) => stmt(JA, offset);

/**
 * Code that, with the accumulator A holding a key, runs `hit(key)` when A is one of `keys`
 * (sorted, distinct, unsigned 32-bit) and otherwise falls through past its last
 * instruction. Each `hit` block must end in a return.
 */
export function lookup(
  keys: readonly number[],
  hit: ((key: number) => BpfInstruction[]) | BpfInstruction,
): BpfInstruction[] {
  if (keys.length === 0) return [];
  if (keys.length <= LEAF && typeof hit !== "function") {
    // One shared return for every key of the leaf.
    const out = keys.map((k, i) => jump(JEQ_K, k, keys.length - i, 0));
    return [...out, ja(1), hit];
  }
  if (keys.length <= LEAF && typeof hit === "function") {
    const blocks = keys.map(hit);
    const out: BpfInstruction[] = [];
    // Short form: jeq straight to each block, when every offset fits in 8 bits.
    let before = 0;
    let fits = true;
    for (let i = 0; i < keys.length; i++) {
      if (keys.length - 1 - i + 1 + before > 255) fits = false;
      before += blocks[i]!.length;
    }
    if (fits) {
      before = 0;
      for (let i = 0; i < keys.length; i++) {
        out.push(jump(JEQ_K, keys[i]!, keys.length - 1 - i + 1 + before, 0));
        before += blocks[i]!.length;
      }
      out.push(ja(before)); // miss: past every block
      for (const b of blocks) out.push(...b);
      return out;
    }
    // Long form: each key tests and hops with a 32-bit ja.
    for (let i = 0; i < keys.length; i++) {
      const b = blocks[i]!;
      out.push(jump(JEQ_K, keys[i]!, 1, 0), ja(b.length), ...b);
    }
    return out;
  }
  const m = keys.length >> 1;
  const left = lookup(keys.slice(0, m), hit);
  const right = lookup(keys.slice(m), hit);
  const pivot = keys[m - 1]!;
  const skipLeft = left.length + 1; // the left subtree and its closing ja
  const head =
    skipLeft <= 255 ? [jump(JGT_K, pivot, skipLeft, 0)] : [jump(JGT_K, pivot, 0, 1), ja(skipLeft)];
  return [...head, ...left, ja(right.length), ...right];
}

/** The 32-bit words of an address in network order: one for IPv4, four for IPv6. */
export function words(ip: string): number[] {
  const b = parseIPv4(ip) ?? parseIPv6(ip);
  if (b === undefined) throw new TypeError(`not an IP address: ${String(ip)}`);
  const out: number[] = [];
  for (let i = 0; i < b.length; i += 4) out.push(b.readUInt32BE(i));
  return out;
}

export function distinctSorted(xs: Iterable<number>): number[] {
  return [...new Set(xs)].sort((a, b) => a - b);
}

/** Normalised addresses of one family; throws on anything that is not an IP. */
function addresses(ips: Iterable<string>, family: 4 | 6): string[] {
  const out = new Set<string>();
  for (const ip of ips) {
    const n = normalizeIp(ip);
    if (n === undefined) throw new TypeError(`not an IP address: ${String(ip)}`);
    if (ipFamily(n) === family) out.add(n);
  }
  return [...out];
}

/**
 * The ARP socket's program: passes ARP frames whose target or sender IPv4 address is in
 * `watched` (IPv6 entries are ignored). An empty set drops everything.
 */
export function arpFilter(watched: Iterable<string>): BpfInstruction[] {
  const keys = distinctSorted(addresses(watched, 4).map((ip) => words(ip)[0]!));
  if (keys.length === 0) return [ret(0)];
  const table = lookup(keys, ret(ACCEPT));
  return [
    stmt(LD_H_ABS, OFF_ETHERTYPE),
    jump(JEQ_K, ETHERTYPE_ARP, 1, 0),
    ret(0),
    stmt(LD_W_ABS, OFF_ARP_TARGET_IP),
    ...table,
    stmt(LD_W_ABS, OFF_ARP_SENDER_IP),
    ...table,
    ret(0),
  ];
}

/**
 * The NDP socket's program: passes ICMPv6 neighbour solicitations and advertisements (no
 * extension headers) whose target address is in `watched` (IPv4 entries are ignored).
 * The search runs on the target's last word; each hit compares the other three.
 */
export function ndpFilter(watched: Iterable<string>): BpfInstruction[] {
  const byLast = new Map<number, Array<[number, number, number]>>();
  for (const ip of addresses(watched, 6)) {
    const [a = 0, b = 0, c = 0, d = 0] = words(ip);
    const group = byLast.get(d) ?? [];
    group.push([a, b, c]);
    byLast.set(d, group);
  }
  if (byLast.size === 0) return [ret(0)];
  const fullCompare = (last: number): BpfInstruction[] => {
    const out: BpfInstruction[] = [];
    for (const words of byLast.get(last)!) {
      // Each candidate: three loads and compares; a mismatch skips to the next candidate.
      const block: BpfInstruction[] = [];
      for (let i = 0; i < 3; i++) {
        block.push(stmt(LD_W_ABS, OFF_NDP_TARGET + 4 * i));
        block.push(jump(JEQ_K, words[i]!, 0, 0)); // jf patched below
      }
      block.push(ret(ACCEPT));
      for (let i = 0; i < 3; i++) {
        const at = 2 * i + 1;
        block[at]!.jf = block.length - at - 1;
      }
      out.push(...block);
    }
    out.push(ret(0));
    return out;
  };
  const table = lookup(distinctSorted(byLast.keys()), fullCompare);
  return [
    stmt(LD_H_ABS, OFF_ETHERTYPE),
    jump(JEQ_K, ETHERTYPE_IPV6, 1, 0),
    ret(0),
    stmt(LD_B_ABS, OFF_IPV6_NEXT_HEADER),
    jump(JEQ_K, ICMPV6, 1, 0),
    ret(0),
    stmt(LD_B_ABS, OFF_ICMPV6_TYPE),
    jump(JEQ_K, NEIGHBOR_SOLICITATION, 2, 0),
    jump(JEQ_K, NEIGHBOR_ADVERTISEMENT, 1, 0),
    ret(0),
    stmt(LD_W_ABS, OFF_NDP_TARGET + 12),
    ...table,
    ret(0),
  ];
}

/** Program for a socket kind. */
export function socketFilter(kind: "arp" | "ndp", watched: Iterable<string>): BpfInstruction[] {
  return kind === "arp" ? arpFilter(watched) : ndpFilter(watched);
}

/**
 * Encodes a program as the kernel's struct sock_filter array (host byte order). Throws
 * when it is empty or longer than the kernel accepts.
 */
export function encodeFilter(program: readonly BpfInstruction[], littleEndian = true): Buffer {
  if (program.length === 0 || program.length > BPF_MAX_INSTRUCTIONS) {
    throw new RangeError(
      `a socket filter has 1..${BPF_MAX_INSTRUCTIONS} instructions, this one ${program.length}`,
    );
  }
  const buf = Buffer.alloc(program.length * 8);
  program.forEach((ins, i) => {
    const o = i * 8;
    if (littleEndian) {
      buf.writeUInt16LE(ins.code, o);
      buf.writeUInt32LE(ins.k >>> 0, o + 4);
    } else {
      buf.writeUInt16BE(ins.code, o);
      buf.writeUInt32BE(ins.k >>> 0, o + 4);
    }
    buf.writeUInt8(ins.jt, o + 2);
    buf.writeUInt8(ins.jf, o + 3);
  });
  return buf;
}

// ---- an interpreter, for the tests: runs a program over a frame the way the kernel does --

/**
 * Runs `program` over `frame` with the kernel's semantics for the instructions above:
 * returns the number of bytes to keep (0 = drop). A load past the end of the frame
 * drops it. Throws on an instruction it does not know or a jump out of the program.
 * `network`, when given, is what loads at NET_OFF + n read (the IP packet of a datagram).
 */
export function runFilter(
  program: readonly BpfInstruction[],
  frame: Uint8Array,
  network?: Uint8Array,
): number {
  let a = 0;
  let pc = 0;
  const load = (k: number, size: 1 | 2 | 4): number | undefined => {
    let bytes = frame;
    let at = k >>> 0;
    if (at >= NET_OFF) {
      if (network === undefined) return undefined;
      bytes = network;
      at -= NET_OFF;
    }
    if (at + size > bytes.length) return undefined;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return size === 4 ? view.getUint32(at) : size === 2 ? view.getUint16(at) : view.getUint8(at);
  };
  for (let steps = 0; steps <= program.length; steps++) {
    const ins = program[pc];
    if (ins === undefined) throw new Error(`jump out of the program at ${pc}`);
    pc++;
    switch (ins.code) {
      case LD_W_ABS:
      case LD_H_ABS:
      case LD_B_ABS: {
        const v = load(ins.k, ins.code === LD_W_ABS ? 4 : ins.code === LD_H_ABS ? 2 : 1);
        if (v === undefined) return 0;
        a = v;
        break;
      }
      case JA:
        pc += ins.k;
        break;
      case JEQ_K:
        pc += a === ins.k >>> 0 ? ins.jt : ins.jf;
        break;
      case JGT_K:
        pc += a > ins.k >>> 0 ? ins.jt : ins.jf;
        break;
      case RET_K:
        return ins.k;
      default:
        throw new Error(`unknown opcode 0x${ins.code.toString(16)}`);
    }
  }
  throw new Error("the program did not return (classic BPF only jumps forward)");
}
