// The heartbeat socket's kernel filter (issue 16, "floods stay in the kernel"): a classic
// BPF program, compiled here from the sources peers published (address and port, as in
// their Leases), that the kernel runs on every datagram before it is queued to the socket.
// A datagram from any other source is dropped there: a LAN host flooding the heartbeat
// port neither wakes the speaker nor fills the socket's buffer, where real beats wait.
//
// A published source whose datagrams went over their budget of MAC checks (a flood with
// that peer's address as source, membership.ts) is "muted": from it, only datagrams that
// carry the incarnation of its last accepted beat pass (bytes 4..11 of the heartbeat, in
// the clear). A blind spoofer does not know it (a start time in ms times 1000 plus a random
// part), so the flood stays in the kernel while the peer's real beats still arrive. Classic
// BPF keeps no state, so rates are counted in the process and the program is swapped.
//
// Layout: the UDP source port is compared first (peers normally share one port), then the
// source address: IPv4 by a binary search over the addresses (bpf-filter.ts's lookup),
// IPv6 by the first 96 bits once per prefix shared by peers (one LAN: one prefix) and a
// binary search over the last 32. About 1.3 instructions per peer on one LAN, so the
// kernel's limit of 4096 holds thousands of peers; a program over it is refused here.
// Pure: the edge (heartbeat-gate.ts) installs the encoded program.

import {
  ACCEPT,
  BPF_MAX_INSTRUCTIONS,
  type BpfInstruction,
  distinctSorted,
  JEQ_K,
  ja,
  jump,
  LD_H_ABS,
  LD_W_ABS,
  lookup,
  NET_OFF,
  ret,
  stmt,
  words,
} from "../layer2/bpf-filter.ts";

/** A source the filter passes. */
export interface FilterSource {
  host: string;
  port: number;
  /** Muted: only datagrams carrying this incarnation pass (none, with null). */
  incarnation?: number | null;
}

// Offsets in what a UDP socket's filter sees: the UDP header at 0, the heartbeat at 8.
const UDP_SOURCE_PORT = 0;
const INCARNATION_HI = 8 + 4;
const INCARNATION_LO = 8 + 8;
// In the IP header (NET_OFF + n).
const IPV4_SOURCE = 12;
const IPV6_SOURCE = 8;

/** What a muted source's datagram must carry: its peer's current incarnation. */
function incarnationCheck(incarnation: number): BpfInstruction[] {
  const hi = Math.floor(incarnation / 0x1_0000_0000);
  const lo = incarnation >>> 0;
  return [
    stmt(LD_W_ABS, INCARNATION_HI),
    jump(JEQ_K, hi, 0, 3),
    stmt(LD_W_ABS, INCARNATION_LO),
    jump(JEQ_K, lo, 0, 1),
    ret(ACCEPT),
    ret(0),
  ];
}

/**
 * With A holding the last word searched: accept the open keys, check the muted ones'
 * incarnation, drop the rest. Ends in a return.
 */
function table(open: number[], muted: Map<number, number>): BpfInstruction[] {
  return [
    ...lookup(distinctSorted(open), ret(ACCEPT)),
    ...lookup(distinctSorted(muted.keys()), (k) => incarnationCheck(muted.get(k)!)),
    ret(0),
  ];
}

/**
 * `body` entered only when A equals `k`, else skipped (body ends in a return and leaves
 * A alone for what follows only when skipped). 32-bit hops: no 8-bit offset can overflow.
 */
function when(k: number, body: BpfInstruction[]): BpfInstruction[] {
  return [jump(JEQ_K, k, 1, 0), ja(body.length), ...body];
}

function addressWords(host: string): number[] | undefined {
  try {
    return words(host.toLowerCase());
  } catch {
    return undefined;
  }
}

/** Groups sources of one family into open keys and muted ones, per port and prefix. */
interface Group {
  open: number[];
  muted: Map<number, number>;
}

/**
 * The program for a heartbeat socket of `family`: passes datagrams whose source address
 * and port are one of `sources` (those of the other family are ignored), a muted source's
 * only with its incarnation. No sources: everything is dropped. Throws a RangeError when
 * the program would exceed the kernel's limit.
 */
export function heartbeatFilter(family: 4 | 6, sources: Iterable<FilterSource>): BpfInstruction[] {
  // port -> prefix (IPv6: first three words joined; IPv4: "") -> group
  const byPort = new Map<number, Map<string, Group>>();
  for (const s of sources) {
    // Spelled as Leases carry it; the kernel compares bytes. A host that is no address of
    // the API's grammar (an IPv4-mapped one, a name) can match no datagram of this socket.
    const w = addressWords(s.host);
    if (w === undefined || (w.length === 1 ? 4 : 6) !== family) continue;
    const prefix = w.slice(0, -1).join(",");
    const last = w[w.length - 1]!;
    const prefixes = byPort.get(s.port) ?? new Map<string, Group>();
    byPort.set(s.port, prefixes);
    const g = prefixes.get(prefix) ?? { open: [], muted: new Map<number, number>() };
    prefixes.set(prefix, g);
    if (s.incarnation === undefined) g.open.push(last);
    else if (s.incarnation !== null) g.muted.set(last, s.incarnation);
    // Muted with no incarnation known: nothing from it passes.
  }
  // A source both open and muted (two nodes publishing one address) stays open.
  for (const prefixes of byPort.values())
    for (const g of prefixes.values()) for (const k of g.open) g.muted.delete(k);

  const out: BpfInstruction[] = [stmt(LD_H_ABS, UDP_SOURCE_PORT)];
  for (const [port, prefixes] of [...byPort].sort((a, b) => a[0] - b[0])) {
    const body: BpfInstruction[] = [];
    for (const [prefix, g] of prefixes) {
      if (family === 4) {
        body.push(stmt(LD_W_ABS, NET_OFF + IPV4_SOURCE), ...table(g.open, g.muted));
        continue;
      }
      // IPv6: the last word searched, inside the checks of the three before it.
      let section: BpfInstruction[] = [
        stmt(LD_W_ABS, NET_OFF + IPV6_SOURCE + 12),
        ...table(g.open, g.muted),
      ];
      const head = prefix.split(",").map(Number);
      for (let i = 2; i >= 0; i--)
        section = [stmt(LD_W_ABS, NET_OFF + IPV6_SOURCE + 4 * i), ...when(head[i]!, section)];
      // A mismatch in this prefix falls through to the next one.
      body.push(...section);
    }
    body.push(ret(0));
    out.push(...when(port, body));
  }
  out.push(ret(0));
  if (out.length > BPF_MAX_INSTRUCTIONS)
    throw new RangeError(
      `the heartbeat filter for these peers needs ${out.length} instructions, the kernel takes ${BPF_MAX_INSTRUCTIONS}`,
    );
  return out;
}
