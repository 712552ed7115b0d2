// Runs inside the lab's client namespace: records every gratuitous ARP frame (sender IP =
// target IP) for some IPs that reaches the client's interface, until SIGTERM, then prints
// one JSON line: [{ t, ip, mac, op }], t in ms since the watch began (monotonic clock).
//   gratuitous-watch.ts IFNAME IP...
// Passive: it sends nothing, so it cannot make a speaker send anything either.
import { decodeArpFrame } from "../../src/layer2/codec.ts";
import { PacketSocket } from "../../src/layer2/packet-socket.ts";

const [ifname, ...ips] = process.argv.slice(2);
if (!ifname || ips.length === 0) {
  console.error("usage: gratuitous-watch.ts IFNAME IP...");
  process.exit(2);
}
const sock = PacketSocket.open(ifname, "arp");
const t0 = performance.now();
const seen: { t: number; ip: string; mac: string; op: number }[] = [];
sock.onFrame((frame) => {
  const f = decodeArpFrame(frame);
  if (f === undefined || f.arp.senderIp !== f.arp.targetIp) return;
  if (!ips.includes(f.arp.senderIp)) return;
  seen.push({
    t: Math.round(performance.now() - t0),
    ip: f.arp.senderIp,
    mac: f.arp.senderMac,
    op: f.arp.op,
  });
});
process.stdout.write("ready\n");
process.on("SIGTERM", () => {
  sock.close();
  process.stdout.write(`${JSON.stringify(seen)}\n`);
  process.exit(0);
});
