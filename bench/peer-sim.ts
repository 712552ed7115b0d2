// The peer simulator (issue 20): one process that plays N speakers against real ones. It runs
// inside a network namespace the bench made (bench/peers-main.ts), where each simulated peer
// has an address of its own (IPv4 or IPv6), and does for each peer what a speaker's membership does
// (src/speaker/membership.ts): a UDP socket bound to its published address and port, an
// authenticated beat to every real speaker every interval (the project's codec and key
// files), and a Lease in the apiserver renewed every renew interval with the annotations a
// real speaker publishes (heartbeat address, links). Beats from the real speakers are read
// and counted, not verified: the simulated peers decide nothing.
//
// With `paired` (the default of bench/peers-main.ts), each simulated peer publishes an X25519
// key on its Lease as a speaker does (heartbeat-pairing.ts) and MACs its beats to each real
// speaker with their pair key, so that the real speaker pays what it pays in a cluster of
// speakers: a pair key per peer, one MAC per peer per interval for its own beats.
//
// The beats of the N peers are spread over the interval (each peer has its own phase, as
// independent processes would), not sent in one burst per interval. Peers do not beat each
// other: that N² traffic never reaches a real speaker.
//
// Faults, one JSON command per stdin line; each is answered by one JSON line on stdout:
//   {"op":"kill","peer":P}            stops beating and renewing (a crash): answered with
//                                     {"op":"killed","peer":P,"at":<Date.now()>}
//   {"op":"revive","peer":P}          a restart: a new incarnation, beats and renewals resume
//   {"op":"stall","peer":P,"ms":M}    no beat and no renewal for M ms, then the same
//                                     incarnation goes on (a SIGSTOP, a GC pause)
//   {"op":"flap","peer":P,"ms":M,"times":K}  K stalls of M ms with M ms of beats between
//   {"op":"stats"}                    datagrams sent and received so far, renewals, errors
//   {"op":"exit"}                     leaves: every live peer sends a leaving beat
//   peer-sim.ts CONFIG_JSON_FILE
import { randomInt } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { leasesPath, SPEAKER_LEASE_LABEL } from "../src/api/vocabulary.ts";
import { KubeClient } from "../src/k8s/client.ts";
import { httpStatus } from "../src/k8s/errors.ts";
import { microTime } from "../src/k8s/leader-election.ts";
import { encodeHeartbeat, HeartbeatSender } from "../src/speaker/heartbeat.ts";
import { readHeartbeatKeys } from "../src/speaker/heartbeat-keys.ts";
import { HEARTBEAT_KEY_ANNOTATION, HeartbeatPairing } from "../src/speaker/heartbeat-pairing.ts";
import { formatLinks, LINKS_ANNOTATION } from "../src/speaker/links.ts";
import { HEARTBEAT_ADDR_ANNOTATION, Membership } from "../src/speaker/membership.ts";

export interface PeerSimConfig {
  /** Kubeconfig valid inside the namespace (the lab's node kubeconfig). */
  kubeconfig: string;
  /** Namespace of the speaker Leases. */
  namespace: string;
  /** The speakers' heartbeat key file (its .next/.previous are read as a speaker does). */
  secretFile: string;
  /** Heartbeat port, the same for every speaker. */
  port: number;
  /** Simulated peers: node name, address (bound in this namespace), its subnet's prefix length. */
  peers: { name: string; address: string; bits: number }[];
  /** The real speakers' heartbeat addresses. */
  targets: string[];
  /** Interface name the peers publish in their links annotation. */
  ifname: string;
  intervalMs: number;
  leaseDurationS: number;
  renewMs: number;
  /** Publish a key per peer and MAC beats with pair keys, as speakers do. */
  paired?: boolean;
}

interface SimPeer {
  name: string;
  address: string;
  links: string;
  socket: Socket;
  sender: HeartbeatSender;
  /** Its key pair, when `paired`. */
  pairing?: HeartbeatPairing;
  /** Beats and renewals stop while false (dead) or until `quietUntil` (stalled). */
  alive: boolean;
  quietUntil: number;
  /** Slot in the interval at which it beats, ms. */
  phase: number;
  nextBeat: number;
  nextRenew: number;
}

/** Ticks per interval: each peer beats in one of them. */
const SLOTS = 10;

async function main(): Promise<void> {
  const file = process.argv[2];
  if (!file) throw new Error("usage: peer-sim.ts CONFIG_JSON_FILE");
  const cfg = JSON.parse(readFileSync(file, "utf8")) as PeerSimConfig;
  const api = KubeClient.load(cfg.kubeconfig);
  const path = leasesPath(cfg.namespace);
  const counts = { sent: 0, received: 0, renewals: 0, renewErrors: 0, sendErrors: 0 };
  // Read as a speaker reads them; the file does not change during a run.
  const keys = readHeartbeatKeys(cfg.secretFile).keys;
  const out = (o: Record<string, unknown>): void => {
    process.stdout.write(`${JSON.stringify(o)}\n`);
  };

  const peers: SimPeer[] = [];
  const now = performance.now();
  for (const [i, p] of cfg.peers.entries()) {
    const socket = createSocket({ type: p.address.includes(":") ? "udp6" : "udp4" });
    socket.on("message", () => {
      counts.received++;
    });
    socket.on("error", () => {
      counts.sendErrors++;
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(cfg.port, p.address, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    const phase = Math.floor((i * cfg.intervalMs) / Math.max(1, cfg.peers.length));
    peers.push({
      name: p.name,
      address: p.address,
      links: formatLinks([{ name: cfg.ifname, cidrs: [`${p.address}/${p.bits}`] }]),
      socket,
      sender: new HeartbeatSender(p.name, Date.now(), randomInt(0, 1000)),
      ...(cfg.paired ? { pairing: new HeartbeatPairing() } : {}),
      alive: true,
      quietUntil: 0,
      phase,
      nextBeat: now + phase,
      // Renewals spread over the renew interval, like beats over theirs.
      nextRenew: now + (i * cfg.renewMs) / Math.max(1, cfg.peers.length),
    });
  }
  const byName = new Map(peers.map((p) => [p.name, p]));

  // The real speakers' published keys, by heartbeat address (read from their Leases).
  const targetKeys = new Map<string, string>();
  if (cfg.paired) {
    const leases = await api.get<{
      items: { metadata?: { annotations?: Record<string, string> } }[];
    }>(path, { labelSelector: SPEAKER_LEASE_LABEL });
    for (const l of leases.items) {
      const a = l.metadata?.annotations ?? {};
      const addr = /^\[?([^\]]+?)\]?:\d+$/.exec(a[HEARTBEAT_ADDR_ANNOTATION] ?? "")?.[1];
      const key = a[HEARTBEAT_KEY_ANNOTATION];
      if (addr && key) targetKeys.set(addr, key);
    }
    for (const t of cfg.targets)
      if (!targetKeys.has(t)) throw new Error(`no heartbeat key published for target ${t}`);
  }

  const beat = (p: SimPeer, leaving = false) => {
    const b = p.sender.next(Date.now(), leaving);
    let shared: Uint8Array | undefined;
    for (const t of cfg.targets) {
      const pair = p.pairing?.pairKey(targetKeys.get(t)!, keys.send);
      if (!pair) shared ??= encodeHeartbeat(b, keys.send);
      const msg = pair ? encodeHeartbeat(b, pair, true) : shared!;
      p.socket.send(msg, cfg.port, t);
      counts.sent++;
    }
  };

  // The body a speaker's membership renews its Lease with (Membership#renew).
  const renew = async (p: SimPeer): Promise<void> => {
    const name = Membership.leaseName(p.name);
    const body = {
      metadata: {
        name,
        namespace: cfg.namespace,
        labels: { [SPEAKER_LEASE_LABEL]: "true" },
        annotations: {
          [HEARTBEAT_ADDR_ANNOTATION]: p.address.includes(":")
            ? `[${p.address}]:${cfg.port}`
            : `${p.address}:${cfg.port}`,
          [LINKS_ANNOTATION]: p.links,
          ...(p.pairing ? { [HEARTBEAT_KEY_ANNOTATION]: p.pairing.publicKey } : {}),
        },
      },
      spec: {
        holderIdentity: p.name,
        leaseDurationSeconds: cfg.leaseDurationS,
        renewTime: microTime(Date.now()),
      },
    };
    try {
      try {
        await api.mergePatch(`${path}/${name}`, body);
      } catch (err) {
        if (httpStatus(err) !== 404) throw err;
        await api.create(path, body);
      }
      counts.renewals++;
    } catch {
      counts.renewErrors++;
    }
  };

  // Every Lease exists before the first beat, as with a speaker (it renews before beating).
  await Promise.all(peers.map((p) => renew(p)));

  const slotMs = cfg.intervalMs / SLOTS;
  const tick = setInterval(() => {
    const t = performance.now();
    for (const p of peers) {
      if (!p.alive || t < p.quietUntil) continue;
      if (t >= p.nextBeat) {
        beat(p);
        // Keep the phase: a late tick does not shift the peer's later beats.
        p.nextBeat += cfg.intervalMs * Math.max(1, Math.ceil((t - p.nextBeat) / cfg.intervalMs));
      }
      if (t >= p.nextRenew) {
        p.nextRenew += cfg.renewMs * Math.max(1, Math.ceil((t - p.nextRenew) / cfg.renewMs));
        void renew(p);
      }
    }
  }, slotMs);

  const quiet = (p: SimPeer, ms: number) => {
    p.quietUntil = performance.now() + ms;
  };

  const handle = async (line: string): Promise<void> => {
    let cmd: { op?: string; peer?: string; ms?: number; times?: number };
    try {
      cmd = JSON.parse(line);
    } catch {
      return out({ op: "error", error: `not JSON: ${line}` });
    }
    const p = cmd.peer === undefined ? undefined : byName.get(cmd.peer);
    if (cmd.peer !== undefined && !p)
      return out({ op: "error", error: `no simulated peer ${cmd.peer}` });
    switch (cmd.op) {
      case "kill":
        p!.alive = false;
        return out({ op: "killed", peer: p!.name, at: Date.now() });
      case "revive":
        p!.sender = new HeartbeatSender(p!.name, Date.now(), randomInt(0, 1000));
        p!.alive = true;
        p!.quietUntil = 0;
        p!.nextBeat = performance.now();
        p!.nextRenew = performance.now();
        return out({ op: "revived", peer: p!.name, at: Date.now() });
      case "stall":
        quiet(p!, cmd.ms ?? 1000);
        return out({ op: "stalled", peer: p!.name, at: Date.now() });
      case "flap": {
        const ms = cmd.ms ?? 500;
        for (let i = 0; i < (cmd.times ?? 3); i++) {
          quiet(p!, ms);
          await new Promise((r) => setTimeout(r, 2 * ms));
        }
        return out({ op: "flapped", peer: p!.name, at: Date.now() });
      }
      case "stats":
        return out({ op: "stats", ...counts, at: Date.now() });
      case "exit":
        clearInterval(tick);
        for (const q of peers) if (q.alive) beat(q, true);
        await new Promise((r) => setTimeout(r, 50));
        for (const q of peers) q.socket.close();
        out({ op: "exited" });
        process.exit(0);
        return;
      default:
        return out({ op: "error", error: `unknown op ${cmd.op}` });
    }
  };
  createInterface({ input: process.stdin }).on("line", (line) => void handle(line));
  process.stdin.on("end", () => process.exit(0));
  out({ op: "ready", peers: peers.length, at: Date.now() });
}

main().catch((err: unknown) => {
  process.stdout.write(`${JSON.stringify({ op: "error", error: String(err) })}\n`);
  process.exit(1);
});
