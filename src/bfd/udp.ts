// The UDP edge of BFD (RFC 5881, single hop): one receive socket on port 3784 per local
// address, one transmit socket per session bound to that address and a source port in
// 49152–65535, TTL 255 on everything sent. It feeds received packets to the pure state
// machine (fsm.ts) and performs its actions with timers. The receive socket comes from the
// addon (ttl-socket.ts) because RFC 5881 §5 drops any packet not received with TTL 255,
// and node:dgram cannot read a datagram's TTL.
import { createSocket, type Socket } from "node:dgram";
import {
  type BfdAction,
  type BfdEvent,
  type BfdSession,
  type BfdSessionConfig,
  type BfdTimer,
  type BfdTimers,
  initialSession,
  step,
} from "./fsm.ts";
import {
  type BfdState,
  type DropReason,
  decodePacket,
  describeDiag,
  encodePacket,
  singleHopTtlOk,
} from "./packet.ts";
import { openTtlSocket, type TtlDatagram, type TtlSocket } from "./ttl-socket.ts";

export const BFD_PORT = 3784;
const SOURCE_PORT_MIN = 49152;
const SOURCE_PORT_MAX = 65535;

/** One BFD peer as a caller opens it. */
export interface BfdPeer extends BfdTimers {
  /** The caller's key (a BGPPeer's name): in every state change. */
  name: string;
  peerAddress: string;
  /** Our address on the link to the peer: packets are sent from it and received on it. */
  localAddress: string;
  passive?: boolean;
}

export interface BfdStateChange {
  name: string;
  from: BfdState;
  state: BfdState;
  diag: number;
  /** The diagnostic in words ("Control Detection Time Expired"). */
  reason: string;
  /** Wall-clock ms. */
  at: number;
}

export interface BfdCounters {
  name: string;
  state: BfdState;
  sent: number;
  received: number;
  /** Datagrams on port 3784 of this address dropped: TTL not 255, malformed, no session. */
  discarded: number;
}

export interface BfdEndpointOptions {
  onChange: (c: BfdStateChange) => void;
  /** A socket error or dropped datagrams, for the caller's log. */
  onProblem?: (text: string, fields: Record<string, unknown>) => void;
  /** Datagrams dropped before any session saw them, by reason, at most once a second. */
  onDrop?: (reason: DropReason, count: number) => void;
  random?: () => number;
}

interface Running {
  peer: BfdPeer;
  cfg: BfdSessionConfig;
  session: BfdSession;
  tx: Socket;
  timers: Map<BfdTimer, NodeJS.Timeout>;
  sent: number;
  received: number;
}

interface Receiver {
  socket: TtlSocket;
  discarded: number;
  /** Drops not reported yet, by reason, with the last one's details; one report a second. */
  unreported: Map<DropReason, { count: number; last: Record<string, unknown> }>;
  reportTimer: NodeJS.Timeout | undefined;
}

/** Binds a transmit socket to a random free source port in 49152–65535 (RFC 5881 §4). */
async function bindTx(localAddress: string, random: () => number): Promise<Socket> {
  const type = localAddress.includes(":") ? "udp6" : "udp4";
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 32; attempt++) {
    const port = SOURCE_PORT_MIN + Math.floor(random() * (SOURCE_PORT_MAX - SOURCE_PORT_MIN + 1));
    const socket = createSocket({ type });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once("error", reject);
        socket.bind({ address: localAddress, port, exclusive: true }, () => {
          socket.off("error", reject);
          resolve();
        });
      });
      socket.setTTL(255);
      return socket;
    } catch (err) {
      lastError = err as Error;
      socket.close();
      if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") break;
    }
  }
  throw new Error(`bfd: no source port on ${localAddress}: ${lastError?.message}`);
}

export class BfdEndpoint {
  readonly #opts: BfdEndpointOptions;
  readonly #random: () => number;
  readonly #sessions = new Map<string, Running>();
  readonly #byDiscriminator = new Map<number, Running>();
  readonly #receivers = new Map<string, Receiver>();

  constructor(opts: BfdEndpointOptions) {
    this.#opts = opts;
    this.#random = opts.random ?? Math.random;
  }

  /** Starts a session (Down, slow TX); resolves once its sockets are bound. */
  async open(peer: BfdPeer): Promise<void> {
    if (this.#sessions.has(peer.name)) throw new Error(`bfd: session ${peer.name} is open`);
    await this.#receiver(peer.localAddress);
    const tx = await bindTx(peer.localAddress, this.#random);
    tx.on("error", (err) => this.#problem("bfd send error", { peer: peer.name, err: err.message }));
    let disc = 0;
    while (disc === 0 || this.#byDiscriminator.has(disc)) {
      disc = Math.floor(this.#random() * 0xffffffff) >>> 0;
    }
    const cfg: BfdSessionConfig = {
      localDiscriminator: disc,
      desiredMinTxMs: peer.desiredMinTxMs,
      requiredMinRxMs: peer.requiredMinRxMs,
      detectMultiplier: peer.detectMultiplier,
      ...(peer.passive ? { passive: true } : {}),
    };
    const r: Running = {
      peer,
      cfg,
      session: initialSession(cfg),
      tx,
      timers: new Map(),
      sent: 0,
      received: 0,
    };
    this.#sessions.set(peer.name, r);
    this.#byDiscriminator.set(disc, r);
    this.#run(r, { type: "start" });
  }

  /** Sends AdminDown and closes the session's socket (and the receiver when it was the last). */
  async close(name: string): Promise<void> {
    const r = this.#sessions.get(name);
    if (r === undefined) return;
    this.#run(r, { type: "stop" });
    for (const t of r.timers.values()) clearTimeout(t);
    this.#sessions.delete(name);
    this.#byDiscriminator.delete(r.cfg.localDiscriminator);
    await new Promise<void>((resolve) => r.tx.close(() => resolve()));
    const local = r.peer.localAddress;
    if (![...this.#sessions.values()].some((s) => s.peer.localAddress === local)) {
      const rx = this.#receivers.get(local);
      this.#receivers.delete(local);
      if (rx !== undefined) {
        clearTimeout(rx.reportTimer);
        this.#report(rx, local);
        rx.socket.close();
      }
    }
  }

  async closeAll(): Promise<void> {
    for (const name of [...this.#sessions.keys()]) await this.close(name);
  }

  counters(): BfdCounters[] {
    return [...this.#sessions.values()].map((r) => ({
      name: r.peer.name,
      state: r.session.state,
      sent: r.sent,
      received: r.received,
      discarded: this.#receivers.get(r.peer.localAddress)?.discarded ?? 0,
    }));
  }

  async #receiver(localAddress: string): Promise<Receiver> {
    const existing = this.#receivers.get(localAddress);
    if (existing !== undefined) return existing;
    const rx: Receiver = {
      socket: { close() {} },
      discarded: 0,
      unreported: new Map(),
      reportTimer: undefined,
    };
    try {
      rx.socket = openTtlSocket(
        localAddress,
        BFD_PORT,
        (d) => this.#onDatagram(rx, localAddress, d),
        (err) => this.#problem("bfd receive error", { local: localAddress, err: err.message }),
      );
    } catch (err) {
      throw new Error(
        `bfd: cannot receive on ${localAddress}:${BFD_PORT}: ${(err as Error).message}`,
      );
    }
    this.#receivers.set(localAddress, rx);
    return rx;
  }

  #onDatagram(rx: Receiver, local: string, d: TtlDatagram): void {
    const from = d.from;
    // RFC 5881 §5: only what was sent on the link itself (TTL 255) counts, before anything
    // else is looked at: a forwarded packet must not even reach the codec.
    if (!singleHopTtlOk(d.ttl)) {
      this.#drop(rx, local, "ttl", { from, ttl: d.ttl });
      return;
    }
    const decoded = decodePacket(d.data);
    if ("error" in decoded) {
      this.#drop(rx, local, "malformed", { from, error: decoded.error });
      return;
    }
    const p = decoded.packet;
    // RFC 5880 §6.8.6: by Your Discriminator, else (single hop) by the source address.
    const r =
      p.yourDiscriminator !== 0
        ? this.#byDiscriminator.get(p.yourDiscriminator)
        : [...this.#sessions.values()].find(
            (s) => s.peer.localAddress === local && s.peer.peerAddress === from,
          );
    if (r === undefined || r.peer.peerAddress !== from) {
      this.#drop(rx, local, "no-session", { from, yourDiscriminator: p.yourDiscriminator });
      return;
    }
    r.received++;
    this.#run(r, { type: "received", packet: p });
  }

  /** Counts a drop; crafted or foreign datagrams must not flood the log: a report a second. */
  #drop(rx: Receiver, local: string, reason: DropReason, last: Record<string, unknown>): void {
    rx.discarded++;
    const u = rx.unreported.get(reason) ?? { count: 0, last };
    u.count++;
    u.last = last;
    rx.unreported.set(reason, u);
    if (rx.reportTimer === undefined) {
      rx.reportTimer = setTimeout(() => {
        rx.reportTimer = undefined;
        this.#report(rx, local);
      }, 1000);
      rx.reportTimer.unref();
    }
  }

  #report(rx: Receiver, local: string): void {
    for (const [reason, u] of rx.unreported) {
      this.#opts.onDrop?.(reason, u.count);
      this.#problem("bfd packets dropped", { local, reason, count: u.count, ...u.last });
    }
    rx.unreported.clear();
  }

  #run(r: Running, ev: BfdEvent): void {
    const out = step(r.cfg, r.session, ev, this.#random());
    r.session = out.state;
    for (const a of out.actions) this.#perform(r, a);
  }

  #perform(r: Running, a: BfdAction): void {
    switch (a.type) {
      case "send":
        r.tx.send(encodePacket(a.packet), BFD_PORT, r.peer.peerAddress);
        r.sent++;
        return;
      case "arm": {
        clearTimeout(r.timers.get(a.timer));
        const t = setTimeout(() => {
          r.timers.delete(a.timer);
          if (this.#sessions.get(r.peer.name) === r)
            this.#run(r, { type: "timer", timer: a.timer });
        }, a.ms);
        r.timers.set(a.timer, t);
        return;
      }
      case "disarm":
        clearTimeout(r.timers.get(a.timer));
        r.timers.delete(a.timer);
        return;
      case "state":
        this.#opts.onChange({
          name: r.peer.name,
          from: a.from,
          state: a.to,
          diag: a.diag,
          reason: describeDiag(a.diag),
          at: Date.now(),
        });
        return;
    }
  }

  #problem(text: string, fields: Record<string, unknown>): void {
    this.#opts.onProblem?.(text, fields);
  }
}
