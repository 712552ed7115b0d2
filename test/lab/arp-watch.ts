// Runs inside the lab's client namespace: watches who answers ARP for some IPs and what the
// client kernel's neighbour entries say, until SIGTERM, then prints one JSON line.
//   arp-watch.ts IFNAME SENDER_IP INTERVAL_MS IP...
// Every INTERVAL_MS it broadcasts one ARP request per IP (ironlb's own codec and packet
// socket) and attributes the replies that arrive before the next round to that round; every
// 50 ms it reads `ip -j neigh` for the IPs. Per IP it reports the rounds' answering MACs as
// a timeline of changes, and the neighbour entry's MACs as another.
import { execFile } from "node:child_process";
import { ARP_REPLY, arpRequest, decodeArpFrame } from "../../src/arp/codec.ts";
import { PacketSocket } from "../../src/arp/packet-socket.ts";

const [ifname, senderIp, intervalArg, ...ips] = process.argv.slice(2);
if (!ifname || !senderIp || !intervalArg || ips.length === 0) {
  console.error("usage: arp-watch.ts IFNAME SENDER_IP INTERVAL_MS IP...");
  process.exit(2);
}
const interval = Number(intervalArg);
const sock = PacketSocket.open(ifname, "arp");
const t0 = performance.now();
const wall0 = Date.now();
const now = () => Math.round(performance.now() - t0);

/** One entry per round: t, and the MACs that answered per IP. */
const rounds: { t: number; macs: Map<string, Set<string>> }[] = [];
/** Neighbour timeline per IP: [t, mac or ""] on every change. */
const neigh = new Map<string, [number, string][]>(ips.map((ip) => [ip, []]));

sock.onFrame((frame) => {
  const f = decodeArpFrame(frame);
  if (f?.arp.op !== ARP_REPLY) return;
  const r = rounds[rounds.length - 1];
  if (!r || !ips.includes(f.arp.senderIp)) return;
  const set = r.macs.get(f.arp.senderIp) ?? new Set();
  set.add(f.arp.senderMac);
  r.macs.set(f.arp.senderIp, set);
});

const ask = setInterval(() => {
  rounds.push({ t: now(), macs: new Map() });
  for (const ip of ips) {
    try {
      sock.send(arpRequest(sock.mac, senderIp, ip));
    } catch {
      // a full socket buffer loses one round for this IP
    }
  }
}, interval);

let reading = false;
const look = setInterval(() => {
  if (reading) return;
  reading = true;
  execFile("ip", ["-j", "neigh", "show", "dev", ifname], (err, out) => {
    reading = false;
    if (err) return;
    const t = now();
    const entries = JSON.parse(out || "[]") as { dst: string; lladdr?: string }[];
    for (const ip of ips) {
      const mac = entries.find((e) => e.dst === ip)?.lladdr?.toLowerCase() ?? "";
      const list = neigh.get(ip)!;
      if (list.length === 0 || list[list.length - 1]![1] !== mac) list.push([t, mac]);
    }
  });
}, 50);

// The watch covers what follows once the first round has been answered or timed out.
setTimeout(() => console.log("ready"), 3 * interval);

process.on("SIGTERM", () => {
  clearInterval(ask);
  clearInterval(look);
  // The last round may still be collecting replies: drop it.
  const done = rounds.slice(0, -1);
  const answers: Record<string, [number, string[]][]> = {};
  for (const ip of ips) {
    const list: [number, string[]][] = [];
    for (const r of done) {
      const macs = [...(r.macs.get(ip) ?? [])].sort();
      const last = list[list.length - 1];
      if (!last || last[1].join() !== macs.join()) list.push([r.t, macs]);
    }
    answers[ip] = list;
  }
  console.log(
    JSON.stringify({
      intervalMs: interval,
      wallStartMs: wall0,
      endMs: done[done.length - 1]?.t ?? 0,
      answers,
      neighbour: Object.fromEntries(neigh),
    }),
  );
  sock.close();
  process.exit(0);
});
