// Heartbeat floods from a LAN host (issue 16): Ethernet frames carrying UDP datagrams shaped
// like a speaker's heartbeats, with any source address (spoofing a peer's), sent by trafgen
// (netsniff-ng) from a namespace at full speed. Used by the e2e test and bench part hbflood.
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export const TRAFGEN = "/usr/sbin/trafgen";

const macBytes = (mac: string) => Buffer.from(mac.split(":").map((x) => Number.parseInt(x, 16)));
const ip4 = (s: string) => Buffer.from(s.split(".").map(Number));

/**
 * An Ethernet/IPv4/UDP frame from `srcMac` to `dstMac`, `srcIp`:`srcPort` to
 * `dstIp`:`dstPort`, carrying a datagram shaped like a heartbeat of node `name` (magic,
 * version, flags, name length and total length right; incarnation and seq from now, as a
 * blind forger would guess them) whose MAC is garbage: what passes every check but the
 * source and the MAC. UDP checksum 0 (none, allowed over IPv4).
 */
export function heartbeatFrame(o: {
  dstMac: string;
  srcMac: string;
  srcIp: string;
  dstIp: string;
  srcPort: number;
  dstPort: number;
  name: string;
}): Buffer {
  const nameBytes = Buffer.from(o.name);
  const payload = Buffer.alloc(29 + nameBytes.length + 32);
  payload[0] = 0x49;
  payload[1] = 0x4c;
  payload[2] = 1;
  payload.writeBigUInt64BE(BigInt(Date.now()) * 1000n, 4);
  payload.writeBigUInt64BE(1n, 12);
  payload.writeBigUInt64BE(BigInt(Date.now()), 20);
  payload[28] = nameBytes.length;
  nameBytes.copy(payload, 29);
  payload.fill(0xa5, 29 + nameBytes.length);
  const ipHdr = Buffer.alloc(20);
  ipHdr[0] = 0x45;
  ipHdr.writeUInt16BE(20 + 8 + payload.length, 2);
  ipHdr[8] = 64; // TTL
  ipHdr[9] = 17; // UDP
  ip4(o.srcIp).copy(ipHdr, 12);
  ip4(o.dstIp).copy(ipHdr, 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ipHdr.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  ipHdr.writeUInt16BE(~sum & 0xffff, 10);
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(o.srcPort, 0);
  udp.writeUInt16BE(o.dstPort, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const eth = Buffer.alloc(14);
  macBytes(o.dstMac).copy(eth, 0);
  macBytes(o.srcMac).copy(eth, 6);
  eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([eth, ipHdr, udp, payload]);
}

/**
 * Sends `frame` from namespace `ns`'s `ifname` for `seconds`, repeated by trafgen as fast as
 * it goes (or `rate` frames/s): a packet mmap ring, one CPU, no sysctl or IRQ changes
 * (--no-sock-mem --notouch-irq). `cfgDir` holds its configuration file.
 */
export async function trafgenFlood(
  ns: string,
  frame: Uint8Array,
  seconds: number,
  cfgDir: string,
  o: { ifname?: string; rate?: number } = {},
): Promise<void> {
  const cfg = join(cfgDir, `flood-${process.pid}-${Date.now()}.cfg`);
  writeFileSync(
    cfg,
    `{ ${[...frame].map((b) => `0x${b.toString(16).padStart(2, "0")}`).join(", ")} }\n`,
  );
  const args = [
    "-o",
    o.ifname ?? "eth0",
    "-i",
    cfg,
    "-P",
    "1",
    "--no-sock-mem",
    "--notouch-irq",
    "-C",
  ];
  if (o.rate) args.push("-b", `${o.rate}pps`);
  await new Promise<void>((resolve, reject) => {
    const p = spawn(
      "ip",
      ["netns", "exec", ns, "timeout", "-s", "INT", `${seconds}s`, TRAFGEN, ...args],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let err = "";
    p.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    p.on("error", reject);
    // timeout exits 124 when it had to stop trafgen (the normal end here).
    p.on("exit", (code) =>
      code === 0 || code === 124
        ? resolve()
        : reject(new Error(`trafgen exited ${code}: ${err.slice(-500)}`)),
    );
  });
}
