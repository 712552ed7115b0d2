// Link state from rtnetlink datagrams (RTM_NEWLINK / RTM_DELLINK), as the NETLINK_ROUTE
// socket of the native addon delivers them (packet-socket.ts: LinkMonitor). Pure: bytes in,
// link states out, so that malformed or truncated datagrams are tested without a kernel.

/** rtnetlink message types (linux/rtnetlink.h); others (done, errors) are skipped. */
const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
/** Attributes of a link (linux/if_link.h). */
const IFLA_IFNAME = 3;
const IFLA_OPERSTATE = 16;
/** Interface flags (linux/if.h). */
export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;
export const IFF_LOWER_UP = 0x10000;
/** RFC 2863 operational states (IF_OPER_*). */
export const IF_OPER_UNKNOWN = 0;
export const IF_OPER_DOWN = 2;
export const IF_OPER_LOWERLAYERDOWN = 5;
export const IF_OPER_UP = 6;

const NLMSG_HDRLEN = 16;
const IFINFOMSG_LEN = 16;

/** One link as a message describes it. */
export interface LinkState {
  index: number;
  /** Absent when the message carried no IFLA_IFNAME. */
  name?: string;
  flags: number;
  /** IF_OPER_*; IF_OPER_UNKNOWN when absent. */
  operstate: number;
  /** RTM_DELLINK: the link is gone. */
  deleted: boolean;
}

/**
 * Whether a link can carry traffic now: administratively up and operationally up. Virtual
 * links that do not report an operational state ("unknown") count as up when running,
 * as /sys/class/net/<name>/operstate readers do.
 */
export function linkUsable(l: Pick<LinkState, "flags" | "operstate" | "deleted">): boolean {
  if (l.deleted || (l.flags & IFF_UP) === 0) return false;
  if (l.operstate === IF_OPER_UP) return true;
  return l.operstate === IF_OPER_UNKNOWN && (l.flags & IFF_RUNNING) !== 0;
}

const align4 = (n: number) => (n + 3) & ~3;

/**
 * Calls `each` with the type, offset and length of every whole message in one datagram; a
 * truncated or malformed message ends the datagram. Netlink headers are in host order.
 */
function forEachMessage(
  dv: DataView,
  le: boolean,
  each: (type: number, off: number, len: number) => void,
): void {
  let off = 0;
  while (off + NLMSG_HDRLEN <= dv.byteLength) {
    const len = dv.getUint32(off, le);
    if (len < NLMSG_HDRLEN || off + len > dv.byteLength) break;
    each(dv.getUint16(off + 4, le), off, len);
    off += align4(len);
  }
}

/** Calls `each` with the type (without NLA_F_* bits) and data of every attribute in [a, end). */
function forEachAttribute(
  buf: Uint8Array,
  dv: DataView,
  le: boolean,
  a: number,
  end: number,
  each: (type: number, data: Uint8Array) => void,
): void {
  while (a + 4 <= end) {
    const alen = dv.getUint16(a, le);
    if (alen < 4 || a + alen > end) break;
    each(dv.getUint16(a + 2, le) & 0x3fff, buf.subarray(a + 4, a + alen));
    a += align4(alen);
  }
}

/**
 * Decodes every link message in one datagram; other messages (done, errors) are skipped
 * and a truncated or malformed message ends the datagram. `littleEndian`: the host's order
 * (netlink headers are in host byte order).
 */
export function decodeLinkMessages(buf: Uint8Array, littleEndian: boolean): LinkState[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: LinkState[] = [];
  forEachMessage(dv, littleEndian, (type, off, len) => {
    if ((type !== RTM_NEWLINK && type !== RTM_DELLINK) || len < NLMSG_HDRLEN + IFINFOMSG_LEN)
      return;
    const body = off + NLMSG_HDRLEN;
    const link: LinkState = {
      index: dv.getInt32(body + 4, littleEndian),
      flags: dv.getUint32(body + 8, littleEndian),
      operstate: IF_OPER_UNKNOWN,
      deleted: type === RTM_DELLINK,
    };
    forEachAttribute(buf, dv, littleEndian, body + IFINFOMSG_LEN, off + len, (atype, data) => {
      if (atype === IFLA_IFNAME) {
        const nul = data.indexOf(0);
        link.name = new TextDecoder().decode(nul >= 0 ? data.subarray(0, nul) : data);
      } else if (atype === IFLA_OPERSTATE && data.byteLength >= 1) {
        link.operstate = data[0]!;
      }
    });
    out.push(link);
  });
  return out;
}

/** Interface name -> usable, after applying `changes` to `current` (a new map). */
export function applyLinkChanges(
  current: ReadonlyMap<number, { name: string; usable: boolean }>,
  changes: readonly LinkState[],
): Map<number, { name: string; usable: boolean }> {
  const next = new Map(current);
  for (const c of changes) {
    if (c.deleted) {
      next.delete(c.index);
      continue;
    }
    const name = c.name ?? current.get(c.index)?.name;
    if (name === undefined) continue;
    next.set(c.index, { name, usable: linkUsable(c) });
  }
  return next;
}

const RTM_NEWNEIGH = 28;
const RTM_DELNEIGH = 29;
const NDA_DST = 1;
const NDA_LLADDR = 2;
const NDMSG_LEN = 12;
/** The rtnetlink multicast group of neighbour changes (linux/rtnetlink.h). */
export const RTMGRP_NEIGH = 4;

/** One neighbour entry as a message describes it (IPv4 entries only). */
export interface NeighbourChange {
  ifindex: number;
  ip: string;
  /** "aa:bb:cc:dd:ee:ff", or "" when the entry has no link-layer address (incomplete). */
  mac: string;
  /** NUD_* bits. */
  state: number;
  deleted: boolean;
}

/** Decodes the IPv4 neighbour messages of one datagram (RTMGRP_NEIGH). */
export function decodeNeighbourMessages(buf: Uint8Array, littleEndian: boolean): NeighbourChange[] {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: NeighbourChange[] = [];
  forEachMessage(dv, littleEndian, (type, off, len) => {
    if ((type !== RTM_NEWNEIGH && type !== RTM_DELNEIGH) || len < NLMSG_HDRLEN + NDMSG_LEN) return;
    const body = off + NLMSG_HDRLEN;
    let ip = "";
    let mac = "";
    forEachAttribute(buf, dv, littleEndian, body + NDMSG_LEN, off + len, (atype, data) => {
      if (atype === NDA_DST && data.byteLength === 4) ip = [...data].join(".");
      else if (atype === NDA_LLADDR && data.byteLength === 6)
        mac = [...data].map((b) => b.toString(16).padStart(2, "0")).join(":");
    });
    if (dv.getUint8(body) !== 2 || ip === "") return; // AF_INET only
    out.push({
      ifindex: dv.getInt32(body + 4, littleEndian),
      ip,
      mac: type === RTM_DELNEIGH ? "" : mac,
      state: dv.getUint16(body + 8, littleEndian),
      deleted: type === RTM_DELNEIGH,
    });
  });
  return out;
}
