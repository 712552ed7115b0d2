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
