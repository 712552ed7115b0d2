// How many datagrams the kernel dropped at one UDP socket (its receive buffer was full),
// from /proc/net/udp or /proc/net/udp6: the "drops" column, per socket, readable without
// privileges, in the reader's network namespace. Node's dgram sockets do not expose
// SO_RXQ_OVFL, and this needs no native code. The heartbeat socket is bound to one address
// and port, which names its line.

import { readFileSync } from "node:fs";
import { endianness } from "node:os";

/**
 * An address as /proc/net/udp{,6} prints it: each 32-bit word of the address, in network
 * order, printed as the host reads it (%08X), so byte-swapped on a little-endian host.
 * Undefined for something that is not an IPv4 or IPv6 address.
 */
export function procNetAddress(
  address: string,
  littleEndian = endianness() === "LE",
): string | undefined {
  const bytes = addressBytes(address);
  if (bytes === undefined) return undefined;
  let out = "";
  for (let i = 0; i < bytes.length; i += 4) {
    const word = bytes.slice(i, i + 4);
    if (littleEndian) word.reverse();
    out += word.map((b) => b.toString(16).padStart(2, "0")).join("");
  }
  return out.toUpperCase();
}

function addressBytes(address: string): number[] | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) {
    const parts = address.split(".").map(Number);
    return parts.every((p) => p <= 255) ? parts : undefined;
  }
  if (!address.includes(":")) return undefined;
  let host: string;
  try {
    // The URL parser canonicalises (and validates) IPv6, embedded IPv4 included.
    host = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return undefined;
  }
  const [head = "", tail] = host.split("::");
  const groups = (s: string) => (s === "" ? [] : s.split(":"));
  const left = groups(head);
  const right = tail === undefined ? [] : groups(tail);
  const words = [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  if (words.length !== 8) return undefined;
  return words.flatMap((w) => {
    const v = Number.parseInt(w, 16);
    return [v >> 8, v & 0xff];
  });
}

/**
 * The drops counter of the socket bound to `address`:`port` in the text of
 * /proc/net/udp (IPv4) or /proc/net/udp6 (IPv6), or undefined if no line is that socket.
 */
export function socketDrops(
  procText: string,
  address: string,
  port: number,
  littleEndian = endianness() === "LE",
): number | undefined {
  const hex = procNetAddress(address, littleEndian);
  if (hex === undefined) return undefined;
  const local = `${hex}:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  for (const line of procText.split("\n")) {
    const f = line.trim().split(/\s+/);
    // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
    if (f.length < 13 || f[1] !== local) continue;
    const drops = Number(f[12]);
    return Number.isSafeInteger(drops) && drops >= 0 ? drops : undefined;
  }
  return undefined;
}

/**
 * Reads the kernel's drop count of this process's UDP socket bound to `address`:`port`;
 * undefined if it cannot be read (no procfs, no such socket).
 */
export function readSocketDrops(address: string, port: number): number | undefined {
  let text: string;
  try {
    text = readFileSync(address.includes(":") ? "/proc/net/udp6" : "/proc/net/udp", "utf8");
  } catch {
    return undefined;
  }
  return socketDrops(text, address, port);
}

/**
 * The kernel's count of UDP datagrams dropped at full receive buffers in this network
 * namespace (all sockets): RcvbufErrors in /proc/net/snmp (IPv4) or Udp6RcvbufErrors in
 * /proc/net/snmp6 (IPv6), from their text; undefined when absent.
 */
export function rcvbufErrors(snmpText: string, family: 4 | 6): number | undefined {
  if (family === 6) {
    const m = /^Udp6RcvbufErrors\s+(\d+)\s*$/m.exec(snmpText);
    return m ? Number(m[1]) : undefined;
  }
  const [head, values] = snmpText.split("\n").filter((l) => l.startsWith("Udp:"));
  if (head === undefined || values === undefined) return undefined;
  const at = head.trim().split(/\s+/).indexOf("RcvbufErrors");
  const v = Number(values.trim().split(/\s+/)[at]);
  return at > 0 && Number.isSafeInteger(v) ? v : undefined;
}

/**
 * Datagrams the kernel dropped at the socket bound to `address`:`port` because its buffer
 * was full, counted from the first read. The socket's own counter also counts what its
 * filter dropped (heartbeat-filter.ts: a flood from strangers, which costs no beat), and
 * the namespace's RcvbufErrors counts only full buffers but of every socket: each read
 * adds the smaller of the two growths, which is at least this socket's full-buffer drops
 * and overcounts only when a filtered flood and another socket's overflow coincide.
 */
export class BufferDrops {
  readonly #address: string;
  readonly #port: number;
  #socket: number | undefined;
  #namespace: number | undefined;
  #total = 0;

  constructor(address: string, port: number) {
    this.#address = address;
    this.#port = port;
  }

  /** The count so far (0 at the first read); undefined when the socket's line cannot be read. */
  read(): number | undefined {
    const socket = readSocketDrops(this.#address, this.#port);
    if (socket === undefined) return undefined;
    const ns = readRcvbufErrors(this.#address.includes(":") ? 6 : 4);
    if (this.#socket !== undefined) {
      const own = Math.max(0, socket - this.#socket);
      // No namespace counter: the socket's own, filter drops included (errs on the safe side).
      const full =
        ns === undefined || this.#namespace === undefined ? own : Math.max(0, ns - this.#namespace);
      this.#total += Math.min(own, full);
    }
    this.#socket = socket;
    this.#namespace = ns;
    return this.#total;
  }
}

function readRcvbufErrors(family: 4 | 6): number | undefined {
  try {
    return rcvbufErrors(
      readFileSync(family === 6 ? "/proc/net/snmp6" : "/proc/net/snmp", "utf8"),
      family,
    );
  } catch {
    return undefined;
  }
}
