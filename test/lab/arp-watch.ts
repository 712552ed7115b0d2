// Runs inside the lab's client namespace: watches who answers ARP for some IPs and what the
// client kernel's neighbour entries say, until SIGTERM, then prints one JSON line.
//   arp-watch.ts IFNAME SENDER_IP INTERVAL_MS READY_ROUNDS IP...
// Every INTERVAL_MS it broadcasts one ARP request per IP (ironlb's own codec and packet
// socket) and attributes the replies that arrive before the next round to that round. It
// prints "ready" once READY_ROUNDS rounds are out and answered or timed out.
//
// Two things keep the watcher from changing what it measures:
//   - The speakers rate-limit replies per requester (MAC and IP: 20/s, rate-limit.ts). At
//     50 requests/s from one MAC most rounds went unanswered, which hid two-answerer rounds
//     and starved the client kernel's own requests (same MAC). Each round asks from another
//     of ROTATION locally administered MACs (the bridge learns them on the client's port and
//     delivers the unicast replies there; the packet socket sees them, the kernel ignores
//     frames for other MACs), so every requester stays far below the limit. SENDER_IP must
//     be an address no host holds (Lab.watcherIP): kernels that know the sender IP would
//     learn the rotating MACs for it.
//   - Times are when things happened, not when they were looked at: a round's answer is
//     stamped with the arrival of its first reply, a neighbour entry's change with the
//     arrival of the kernel's netlink event (RTMGRP_NEIGH, read in this process), not a
//     50 ms poll.
// Per IP it reports the rounds' answering MACs as a timeline of changes, and the neighbour
// entry's MACs as another.
import { execFile } from "node:child_process";
import { ARP_REPLY, arpRequest, decodeArpFrame } from "../../src/layer2/codec.ts";
import { PacketSocket } from "../../src/layer2/packet-socket.ts";
import { watchNeighbours } from "../support/packet-tools.ts";

const [ifname, senderIp, intervalArg, readyArg, ...ips] = process.argv.slice(2);
if (!ifname || !senderIp || !intervalArg || !readyArg || ips.length === 0) {
  console.error("usage: arp-watch.ts IFNAME SENDER_IP INTERVAL_MS READY_ROUNDS IP...");
  process.exit(2);
}
const interval = Number(intervalArg);
const readyRounds = Math.max(1, Number(readyArg));
const sock = PacketSocket.open(ifname, "arp");
const t0 = performance.now();
const wall0 = Date.now();
const now = () => Math.round(performance.now() - t0);

/** Requester MACs, one per round in turn: 02:1b:<pid>:<i>, locally administered. */
const ROTATION = 8;
const requesters = Array.from({ length: ROTATION }, (_, i) => {
  const p = process.pid & 0xffffff;
  return [0x02, 0x1b, (p >> 16) & 0xff, (p >> 8) & 0xff, p & 0xff, i]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join(":");
});
const ours = new Set([sock.mac, ...requesters]);

/** One entry per round: t, and per IP the MACs that answered and the first reply's time. */
const rounds: { t: number; macs: Map<string, Set<string>>; first: Map<string, number> }[] = [];
/** Neighbour timeline per IP: [t, mac or ""] on every change. */
const neigh = new Map<string, [number, string][]>(ips.map((ip) => [ip, []]));

sock.onFrame((frame) => {
  const f = decodeArpFrame(frame);
  if (f?.arp.op !== ARP_REPLY || !ours.has(f.arp.targetMac)) return;
  const r = rounds[rounds.length - 1];
  if (!r || !ips.includes(f.arp.senderIp)) return;
  const set = r.macs.get(f.arp.senderIp) ?? new Set();
  set.add(f.arp.senderMac);
  r.macs.set(f.arp.senderIp, set);
  if (!r.first.has(f.arp.senderIp)) r.first.set(f.arp.senderIp, now());
});

const ask = setInterval(() => {
  const mac = requesters[rounds.length % ROTATION]!;
  rounds.push({ t: now(), macs: new Map(), first: new Map() });
  for (const ip of ips) {
    try {
      sock.send(arpRequest(mac, senderIp, ip));
    } catch {
      // a full socket buffer loses one round for this IP
    }
  }
  // The rounds before the last one are complete: enough of them make the watch ready.
  if (rounds.length === readyRounds + 1) console.log("ready");
}, interval);

function setNeigh(ip: string, mac: string, t: number): void {
  const list = neigh.get(ip);
  if (!list) return;
  if (list.length === 0 || list[list.length - 1]![1] !== mac) list.push([t, mac]);
}

// Neighbour changes as the kernel reports them, in this process's own event loop (a
// separate `ip monitor` could lag behind the ARP socket on a busy host).
const ifindex = sock.ifindex;
const changed = new Set<string>();
const neighbours = watchNeighbours((c) => {
  if (c.ifindex !== ifindex || !neigh.has(c.ip)) return;
  changed.add(c.ip);
  setNeigh(c.ip, c.mac, now());
});
// The entries before the first event: read once (an event that arrived first wins).
execFile("ip", ["-j", "neigh", "show", "dev", ifname], (err, out) => {
  if (err) return;
  const entries = JSON.parse(out || "[]") as { dst: string; lladdr?: string }[];
  for (const ip of ips) {
    if (changed.has(ip)) continue;
    const mac = entries.find((e) => e.dst === ip)?.lladdr?.toLowerCase() ?? "";
    neigh.get(ip)!.unshift([0, mac]);
  }
});

process.on("SIGTERM", () => {
  clearInterval(ask);
  neighbours.close();
  // The last round may still be collecting replies: drop it.
  const done = rounds.slice(0, -1);
  const answers: Record<string, [number, string[]][]> = {};
  for (const ip of ips) {
    const list: [number, string[]][] = [];
    for (const r of done) {
      const macs = [...(r.macs.get(ip) ?? [])].sort();
      const last = list[list.length - 1];
      if (!last || last[1].join() !== macs.join()) list.push([r.first.get(ip) ?? r.t, macs]);
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
