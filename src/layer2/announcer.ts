/**
 * Layer-2 announcer: answers ARP requests and IPv6 neighbour solicitations for the IPs this
 * node owns, on the interfaces it announces them on and nowhere else; sends gratuitous
 * bursts on takeover, and periodic ones where asked (refreshEvery); probes for conflicts (RFC 5227 for IPv4, DAD-style for IPv6).
 *
 * One process may hold several interfaces; every frame is handled in the context of the
 * interface it arrived on. Nothing a peer sends can make it throw: malformed frames are
 * counted and dropped.
 */
import { EventEmitter } from "node:events";
import { socketFilter } from "./bpf-filter.ts";
import {
  ALL_NODES_IPV6,
  ARP_REQUEST,
  type ArpFrame,
  arpProbe,
  arpReply,
  decodeArpFrame,
  decodeNdpFrame,
  gratuitousArpReply,
  gratuitousArpRequest,
  ipFamily,
  ipv6MulticastMac,
  type NdpFrame,
  neighborAdvertisement,
  neighborSolicitation,
  normalizeIp,
  unsolicitedNeighborAdvertisement,
} from "./codec.ts";
import type { FrameSocket, PacketSocketKind } from "./packet-socket.ts";
import { PACKET_OTHERHOST, PacketSocket } from "./packet-socket.ts";
import {
  type BucketLimits,
  DEFAULT_REPLY_LIMITS,
  RequesterLimiter,
  type RequesterLimiterOptions,
} from "./rate-limit.ts";
import { DEFAULT_REFRESH_LIMITS, RefreshSchedule } from "./refresh-schedule.ts";

/** Counters for metrics; plain numbers, monotonically increasing. */
export interface AnnouncerCounters {
  /**
   * Well-formed ARP requests and neighbour solicitations seen on announcing interfaces.
   * With the kernel filter on, only those for IPs the interface answers for or probes.
   */
  requestsReceived: number;
  /** ARP replies and solicited neighbour advertisements sent for owned IPs. */
  repliesSent: number;
  /** Requests for owned IPs left unanswered because their requester exceeded its rate. */
  repliesRateLimited: number;
  /** Gratuitous ARP frames and unsolicited neighbour advertisements sent. */
  gratuitousSent: number;
  /** Another MAC seen claiming, using or probing an owned or probed IP. */
  conflicts: number;
  /** Frames that failed to decode (truncated, malformed, unsupported). */
  malformedFrames: number;
  /** Sends the kernel refused (interface down, queue full, ...). */
  sendErrors: number;
}

export type AnnouncerCounterName = keyof AnnouncerCounters;

export interface ConflictEvent {
  ip: string;
  ifname: string;
  /** MAC of the other host. */
  mac: string;
  /** "owned": someone else uses an IP we announce; "probe": found while probing. */
  during: "owned" | "probe";
}

export interface AnnouncerOptions {
  /** Opens a socket for an interface on demand; default PacketSocket.open. */
  openSocket?: (ifname: string, kind: PacketSocketKind) => FrameSocket;
  /** Offsets of the gratuitous burst after announce(), ms. Default [0, 250, 1000, 2000]. */
  burstScheduleMs?: readonly number[];
  /** Called on every counter increment, e.g. to feed the speaker's metrics. */
  onCount?: (name: AnnouncerCounterName, ifname: string) => void;
  /**
   * Answer another host's claim on an owned IP with one gratuitous round (RFC 5227 defence).
   * Off by default: which node owns an IP is the speaker's election's call, and two nodes
   * defending against each other during a failover would make clients flap.
   */
  defend?: boolean;
  /** Minimum time between two defensive announcements for one IP (RFC 5227 DEFEND_INTERVAL). */
  defendIntervalMs?: number;
  /**
   * Install a kernel filter (bpf-filter.ts) on every socket that supports it, attached
   * ones included, so that only frames about watched IPs reach this process. Default true.
   */
  kernelFilter?: boolean;
  /**
   * Replies per requester (sender MAC and requested IP): a token bucket each, or false for
   * no limit. Default DEFAULT_REPLY_LIMITS (burst 20, 20/s).
   */
  replyLimits?: RequesterLimiterOptions | false;
  /** Monotonic clock in ms for the rate limits, reply holds and defence; default performance.now. */
  now?: () => number;
  /**
   * Called before each received frame is handled. The speaker notices a stall of its own
   * here (Membership.noticeStall): frames queued while it was stopped reach this class
   * before its stall timer runs, and must be judged as stale (holdReplies).
   */
  beforeFrame?: () => void;
  /**
   * Budget of the periodic gratuitous rounds (refreshEvery), one per IP and interface, for
   * the whole announcer. Default DEFAULT_REFRESH_LIMITS (500/s, burst 100).
   */
  refreshLimits?: BucketLimits;
}

interface InterfaceState {
  ifname: string;
  arp?: FrameSocket;
  ndp?: FrameSocket;
  /** Sockets we opened ourselves and therefore close when idle. */
  owned: Set<FrameSocket>;
  unsubscribe: Array<() => void>;
  /** owned IP -> pending burst timers */
  ips: Map<string, Set<ReturnType<typeof setTimeout>>>;
  lastDefence: Map<string, number>;
  probes: Set<PendingProbe>;
  /** The watched set each socket's kernel filter was last built from, per kind. */
  filtered: { arp?: string; ndp?: string };
}

interface PendingProbe {
  ip: string;
  resolve: (mac: string | null) => void;
  reject: (err: Error) => void;
  timers: Set<ReturnType<typeof setTimeout>>;
}

const DEFAULT_BURST = [0, 250, 1000, 2000] as const;

/** Least time between two wakes of the periodic gratuitous timer. */
const REFRESH_WAKE_GAP_MS = 50;

/**
 * Events: "conflict" (ConflictEvent), "error" (err: Error, ifname: string) for send or
 * receive failures. Errors are only emitted when someone listens, so an unobserved send
 * failure never crashes the process.
 */
export class Announcer extends EventEmitter {
  readonly #ifaces = new Map<string, InterfaceState>();
  readonly #openSocket: (ifname: string, kind: PacketSocketKind) => FrameSocket;
  readonly #burst: readonly number[];
  readonly #onCount: ((name: AnnouncerCounterName, ifname: string) => void) | undefined;
  readonly #defend: boolean;
  readonly #defendIntervalMs: number;
  readonly #kernelFilter: boolean;
  readonly #limiter: RequesterLimiter | undefined;
  readonly #now: () => number;
  readonly #counters: AnnouncerCounters = {
    requestsReceived: 0,
    repliesSent: 0,
    repliesRateLimited: 0,
    gratuitousSent: 0,
    conflicts: 0,
    malformedFrames: 0,
    sendErrors: 0,
  };
  #closed = false;
  /**
   * Requests are not answered before this time (the monotonic `now`), see holdReplies: on
   * the wall clock, a backward step (NTP, after the very stall that set the hold) would
   * silence every IP of this node for as long as the step.
   */
  #repliesHeldUntil = 0;
  readonly #beforeFrame: (() => void) | undefined;
  /** Periodic gratuitous rounds, keyed `${ifname} ${ip}`, and the one timer that sends them. */
  readonly #refresh: RefreshSchedule;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshAt: number | undefined;
  #refreshWokeAt = Number.NEGATIVE_INFINITY;

  constructor(options: AnnouncerOptions = {}) {
    super();
    this.#openSocket = options.openSocket ?? ((ifname, kind) => PacketSocket.open(ifname, kind));
    this.#burst = options.burstScheduleMs ?? DEFAULT_BURST;
    this.#onCount = options.onCount;
    this.#defend = options.defend ?? false;
    this.#defendIntervalMs = options.defendIntervalMs ?? 10_000;
    this.#kernelFilter = options.kernelFilter ?? true;
    const limits = options.replyLimits ?? DEFAULT_REPLY_LIMITS;
    this.#limiter = limits === false ? undefined : new RequesterLimiter(limits);
    this.#now = options.now ?? (() => performance.now());
    this.#beforeFrame = options.beforeFrame;
    this.#refresh = new RefreshSchedule(options.refreshLimits ?? DEFAULT_REFRESH_LIMITS);
  }

  /** Snapshot of the counters. */
  get counters(): AnnouncerCounters {
    return { ...this.#counters };
  }

  /**
   * Uses the given sockets for `ifname` instead of opening its own. The caller keeps
   * ownership: the announcer never closes them.
   */
  attach(ifname: string, sockets: { arp?: FrameSocket; ndp?: FrameSocket }): void {
    this.#assertOpen();
    const st = this.#iface(ifname);
    if (sockets.arp !== undefined) this.#setSocket(st, "arp", sockets.arp, false);
    if (sockets.ndp !== undefined) this.#setSocket(st, "ndp", sockets.ndp, false);
  }

  /**
   * Starts answering for `ip` on `ifname` and sends a gratuitous burst. Returns false (and
   * sends nothing) when it was already announced there.
   */
  announce(ip: string, ifname: string): boolean {
    this.#assertOpen();
    const norm = this.#normalize(ip);
    const st = this.#iface(ifname);
    this.#ensureSocket(st, ipFamily(norm) === 4 ? "arp" : "ndp");
    if (st.ips.has(norm)) return false;
    st.ips.set(norm, new Set());
    this.#refreshFilters(st);
    this.#scheduleBurst(st, norm);
    return true;
  }

  /** Sends the gratuitous burst again for an IP already announced on `ifname`. */
  reannounce(ip: string, ifname: string): void {
    const norm = this.#normalize(ip);
    const st = this.#ifaces.get(ifname);
    if (st === undefined || !st.ips.has(norm)) {
      throw new Error(`${norm} is not announced on ${ifname}`);
    }
    this.#cancelBurst(st, norm);
    this.#scheduleBurst(st, norm);
  }

  /**
   * Sends one gratuitous round for `ip` on `ifname` every `intervalMs` (undefined: stop),
   * spread with the other IPs' over the interval and within the refresh budget. The IP must
   * be announced there; withdrawing it stops its refreshes. Setting the same interval again
   * keeps the pace.
   */
  refreshEvery(ip: string, ifname: string, intervalMs: number | undefined): void {
    const norm = this.#normalize(ip);
    if (intervalMs !== undefined && !this.#ifaces.get(ifname)?.ips.has(norm)) {
      throw new Error(`${norm} is not announced on ${ifname}`);
    }
    this.#refresh.set(`${ifname} ${norm}`, intervalMs, this.#now());
    this.#armRefresh();
  }

  /**
   * Answers no request for the next `ms`. After this process was stalled, the requests
   * waiting in its sockets are stale: their senders have asked again, maybe another node
   * answered them, and a late answer would pull clients back to a node that may no longer
   * own the IP. Gratuitous bursts (reannounce) are not held.
   */
  holdReplies(ms: number): void {
    this.#repliesHeldUntil = this.#now() + ms;
  }

  /**
   * Cancels every pending frame of the gratuitous bursts; the IPs stay announced. After a
   * stall, the timers of bursts scheduled before it fire at once, and would tell every
   * host that this node owns IPs that peers may have taken over meanwhile. The owner sends
   * a new burst (reannounce) once it knows an IP is still its own.
   */
  cancelBursts(): void {
    for (const st of this.#ifaces.values())
      for (const ip of st.ips.keys()) this.#cancelBurst(st, ip);
    // Periodic rounds too: overdue after the stall, they would all fire at once. The owner
    // sets them again (refreshEvery) with its next evaluation.
    this.#refresh.clear();
    this.#armRefresh();
  }

  /** Stops answering for `ip` on `ifname` (or everywhere) and cancels its pending burst. */
  withdraw(ip: string, ifname?: string): void {
    const norm = normalizeIp(ip);
    if (norm === undefined) return;
    for (const st of this.#ifaces.values()) {
      if (ifname !== undefined && st.ifname !== ifname) continue;
      if (!st.ips.has(norm)) continue;
      this.#cancelBurst(st, norm);
      st.ips.delete(norm);
      st.lastDefence.delete(norm);
      this.#refresh.delete(`${st.ifname} ${norm}`);
      this.#refreshFilters(st);
      this.#releaseIfIdle(st);
    }
  }

  /** IPs currently announced, per interface. */
  announced(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const st of this.#ifaces.values()) {
      if (st.ips.size > 0) out.set(st.ifname, [...st.ips.keys()]);
    }
    return out;
  }

  /** True if `ip` is announced on `ifname` (or on any interface). */
  isAnnounced(ip: string, ifname?: string): boolean {
    const norm = normalizeIp(ip);
    if (norm === undefined) return false;
    for (const st of this.#ifaces.values()) {
      if ((ifname === undefined || st.ifname === ifname) && st.ips.has(norm)) return true;
    }
    return false;
  }

  /**
   * Checks whether another host on `ifname` uses `ip`: sends up to three probes spread over
   * `timeoutMs` (RFC 5227 ARP probes with sender 0.0.0.0; for IPv6 duplicate address
   * detection solicitations) and resolves with the first other MAC that answers, announces,
   * uses or probes for the IP, or null after `timeoutMs`. Rejects if the announcer closes.
   */
  probe(ip: string, ifname: string, timeoutMs: number): Promise<string | null> {
    this.#assertOpen();
    const norm = this.#normalize(ip);
    const st = this.#iface(ifname);
    const kind = ipFamily(norm) === 4 ? "arp" : "ndp";
    const sock = this.#ensureSocket(st, kind);
    return new Promise<string | null>((resolve, reject) => {
      const probe: PendingProbe = {
        ip: norm,
        timers: new Set(),
        resolve: (mac) => {
          finish();
          resolve(mac);
        },
        reject: (err) => {
          finish();
          reject(err);
        },
      };
      const finish = () => {
        for (const t of probe.timers) clearTimeout(t);
        probe.timers.clear();
        st.probes.delete(probe);
        this.#refreshFilters(st);
        this.#releaseIfIdle(st);
      };
      st.probes.add(probe);
      this.#refreshFilters(st);
      const send = () => {
        const frame =
          kind === "arp"
            ? arpProbe(sock.mac, norm)
            : neighborSolicitation({ srcMac: sock.mac, srcIp: "::", target: norm });
        this.#send(st, sock, frame);
      };
      const timeout = Math.max(0, timeoutMs);
      for (const at of [0, timeout / 3, (2 * timeout) / 3]) {
        if (at === 0) send();
        else probe.timers.add(setTimeout(send, at));
        if (timeout === 0) break;
      }
      probe.timers.add(setTimeout(() => probe.resolve(null), timeout));
    });
  }

  /** Withdraws everything, cancels timers, rejects pending probes, closes owned sockets. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const st of this.#ifaces.values()) {
      for (const ip of [...st.ips.keys()]) this.#cancelBurst(st, ip);
      st.ips.clear();
      for (const p of [...st.probes]) p.reject(new Error("announcer closed"));
      this.#detach(st, true);
    }
    this.#ifaces.clear();
    this.#refresh.clear();
    this.#armRefresh();
  }

  // ---- internals -------------------------------------------------------------------------

  #assertOpen(): void {
    if (this.#closed) throw new Error("announcer is closed");
  }

  #normalize(ip: string): string {
    const norm = normalizeIp(ip);
    if (norm === undefined) throw new TypeError(`not an IP address: ${String(ip)}`);
    return norm;
  }

  #count(name: AnnouncerCounterName, ifname: string): void {
    this.#counters[name]++;
    try {
      this.#onCount?.(name, ifname);
    } catch {
      // A metrics callback must not break packet handling.
    }
  }

  #iface(ifname: string): InterfaceState {
    let st = this.#ifaces.get(ifname);
    if (st === undefined) {
      st = {
        ifname,
        owned: new Set(),
        unsubscribe: [],
        ips: new Map(),
        lastDefence: new Map(),
        probes: new Set(),
        filtered: {},
      };
      this.#ifaces.set(ifname, st);
    }
    return st;
  }

  #ensureSocket(st: InterfaceState, kind: PacketSocketKind): FrameSocket {
    const existing = st[kind];
    if (existing !== undefined) return existing;
    const sock = this.#openSocket(st.ifname, kind);
    this.#setSocket(st, kind, sock, true);
    return sock;
  }

  #setSocket(st: InterfaceState, kind: PacketSocketKind, sock: FrameSocket, owned: boolean): void {
    const old = st[kind];
    if (old === sock) return;
    if (old !== undefined && st.owned.has(old)) {
      st.owned.delete(old);
      old.close();
    } else if (old !== undefined && st.filtered[kind] !== undefined) {
      try {
        old.setFilter?.(null); // an attached socket goes back to its owner unfiltered
      } catch {
        // closed by its owner already
      }
    }
    st[kind] = sock;
    if (owned) st.owned.add(sock);
    const handler =
      kind === "arp"
        ? (f: Buffer, t: number) =>
            this.#safe(st, () => {
              this.#beforeFrame?.();
              this.#onArp(st, sock, f, t);
            })
        : (f: Buffer, t: number) =>
            this.#safe(st, () => {
              this.#beforeFrame?.();
              this.#onNdp(st, sock, f, t);
            });
    st.unsubscribe.push(sock.onFrame(handler));
    if (sock instanceof EventEmitter) {
      const onError = (err: Error) => this.#emitError(err, st.ifname);
      sock.on("error", onError);
      st.unsubscribe.push(() => sock.off("error", onError));
    }
    delete st.filtered[kind];
    this.#refreshFilters(st);
  }

  /**
   * Rebuilds each socket's kernel filter from the IPs it must hear about (answered and
   * probed), when that set changed. The swap is atomic in the kernel; frames already
   * queued under the previous filter are still checked here. A program the kernel refuses
   * (more IPs than 4,096 instructions hold) falls back to the socket's default filter:
   * correct, only slower.
   */
  #refreshFilters(st: InterfaceState): void {
    if (!this.#kernelFilter) return;
    for (const kind of ["arp", "ndp"] as const) {
      const sock = st[kind];
      if (sock?.setFilter === undefined) continue;
      const family = kind === "arp" ? 4 : 6;
      const watched = new Set<string>();
      for (const ip of st.ips.keys()) if (ipFamily(ip) === family) watched.add(ip);
      for (const p of st.probes) if (ipFamily(p.ip) === family) watched.add(p.ip);
      const key = [...watched].sort().join(",");
      if (st.filtered[kind] === key) continue;
      try {
        sock.setFilter(socketFilter(kind, watched));
        st.filtered[kind] = key;
      } catch (err) {
        st.filtered[kind] = key;
        try {
          sock.setFilter(null);
        } catch {
          // the socket is gone; its error reaches us through the receive path
        }
        this.#emitError(
          new Error(
            `kernel filter for ${watched.size} IPs on ${st.ifname} refused, receiving all ${kind.toUpperCase()} frames instead: ${(err as Error).message}`,
          ),
          st.ifname,
        );
      }
    }
  }

  /** Drops sockets we opened once an interface has nothing to answer for. */
  #releaseIfIdle(st: InterfaceState): void {
    if (st.ips.size > 0 || st.probes.size > 0) return;
    if (st.owned.size === 0) return;
    if (
      (st.arp !== undefined && !st.owned.has(st.arp)) ||
      (st.ndp !== undefined && !st.owned.has(st.ndp))
    ) {
      return; // attached sockets: keep the subscription, the caller manages them
    }
    this.#detach(st, true);
    this.#ifaces.delete(st.ifname);
  }

  #detach(st: InterfaceState, closeOwned: boolean): void {
    for (const u of st.unsubscribe) u();
    st.unsubscribe = [];
    // Attached sockets go back to their owner as they came: without our filter.
    for (const kind of ["arp", "ndp"] as const) {
      const sock = st[kind];
      if (sock === undefined || st.owned.has(sock) || st.filtered[kind] === undefined) continue;
      try {
        sock.setFilter?.(null);
      } catch {
        // closed by its owner already
      }
    }
    st.filtered = {};
    if (closeOwned) {
      for (const s of st.owned) {
        try {
          s.close();
        } catch (err) {
          this.#emitError(err as Error, st.ifname);
        }
      }
      st.owned.clear();
    }
    delete st.arp;
    delete st.ndp;
  }

  #scheduleBurst(st: InterfaceState, ip: string): void {
    const timers = st.ips.get(ip);
    if (timers === undefined) return;
    for (const at of this.#burst) {
      // The first frame goes out now, in the same turn that starts the answering: a client
      // must not learn our MAC from an answer before the gratuitous frame tells every host.
      if (at <= 0) {
        this.#sendGratuitous(st, ip);
        continue;
      }
      const fire = () => {
        timers.delete(t);
        if (st.ips.get(ip) === timers) this.#sendGratuitous(st, ip);
      };
      const t = setTimeout(fire, at);
      // The sockets keep a speaker alive; a pending burst alone should not.
      t.unref();
      timers.add(t);
    }
  }

  /** One timer for all periodic rounds, set to the schedule's next time. */
  #armRefresh(): void {
    const now = this.#now();
    const at = this.#refresh.nextAt(now);
    if (at === this.#refreshAt && (at === undefined || this.#refreshTimer !== undefined)) return;
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    this.#refreshAt = at;
    if (at === undefined) return;
    // Wakes at least REFRESH_WAKE_GAP_MS apart, each sending all that is due: phases are
    // spread to the millisecond, and one timer per IP would cost more than the frames.
    const delay = Math.max(0, at - now, this.#refreshWokeAt + REFRESH_WAKE_GAP_MS - now);
    this.#refreshTimer = setTimeout(() => this.#onRefresh(), delay);
    // The sockets keep a speaker alive; a pending refresh alone should not.
    this.#refreshTimer.unref();
  }

  #onRefresh(): void {
    this.#refreshTimer = undefined;
    this.#refreshAt = undefined;
    if (this.#closed) return;
    this.#refreshWokeAt = this.#now();
    for (const key of this.#refresh.take(this.#now())) {
      const space = key.indexOf(" ");
      const st = this.#ifaces.get(key.slice(0, space));
      const ip = key.slice(space + 1);
      if (st?.ips.has(ip)) this.#sendGratuitous(st, ip);
      else this.#refresh.delete(key);
    }
    this.#armRefresh();
  }

  #cancelBurst(st: InterfaceState, ip: string): void {
    const timers = st.ips.get(ip);
    if (timers === undefined) return;
    for (const t of timers) clearTimeout(t);
    timers.clear();
  }

  #sendGratuitous(st: InterfaceState, ip: string): void {
    if (ipFamily(ip) === 4) {
      const sock = st.arp;
      if (sock === undefined) return;
      // Both forms: Linux updates existing entries from either, some other stacks only
      // honour one of them.
      if (this.#send(st, sock, gratuitousArpRequest(sock.mac, ip))) {
        this.#count("gratuitousSent", st.ifname);
      }
      if (this.#send(st, sock, gratuitousArpReply(sock.mac, ip))) {
        this.#count("gratuitousSent", st.ifname);
      }
    } else {
      const sock = st.ndp;
      if (sock === undefined) return;
      if (this.#send(st, sock, unsolicitedNeighborAdvertisement(sock.mac, ip))) {
        this.#count("gratuitousSent", st.ifname);
      }
    }
  }

  #send(st: InterfaceState, sock: FrameSocket, frame: Buffer): boolean {
    try {
      sock.send(frame);
      return true;
    } catch (err) {
      this.#count("sendErrors", st.ifname);
      this.#emitError(err as Error, st.ifname);
      return false;
    }
  }

  #emitError(err: Error, ifname: string): void {
    if (this.listenerCount("error") > 0) this.emit("error", err, ifname);
  }

  #safe(st: InterfaceState, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      // Decoders do not throw, so this is a bug of ours; keep serving the other frames.
      this.#emitError(err as Error, st.ifname);
    }
  }

  #conflict(st: InterfaceState, ip: string, mac: string, during: "owned" | "probe"): void {
    this.#count("conflicts", st.ifname);
    const ev: ConflictEvent = { ip, ifname: st.ifname, mac, during };
    this.emit("conflict", ev);
  }

  /** Resolves the probes for `ip` on this interface with the other host's MAC. */
  #probeHit(st: InterfaceState, ip: string, mac: string): boolean {
    let hit = false;
    for (const p of [...st.probes]) {
      if (p.ip !== ip) continue;
      hit = true;
      this.#conflict(st, ip, mac, "probe");
      p.resolve(mac);
    }
    return hit;
  }

  /** Someone else claims an IP we announce: count it and defend at most once per interval. */
  #ownedClaimed(st: InterfaceState, ip: string, mac: string): void {
    this.#conflict(st, ip, mac, "owned");
    if (!this.#defend) return;
    const now = this.#now();
    const last = st.lastDefence.get(ip);
    if (last !== undefined && now - last < this.#defendIntervalMs) return;
    st.lastDefence.set(ip, now);
    this.#sendGratuitous(st, ip);
  }

  /** Per-requester token bucket: a flooding host gets a few replies, others all of theirs. */
  #allowReply(st: InterfaceState, requesterMac: string, ip: string): boolean {
    if (this.#limiter === undefined) return true;
    if (this.#limiter.allow(`${requesterMac} ${ip}`, this.#now())) return true;
    this.#count("repliesRateLimited", st.ifname);
    return false;
  }

  #onArp(st: InterfaceState, sock: FrameSocket, frame: Buffer, pktType: number): void {
    if (st.arp !== sock) return;
    const decoded: ArpFrame | undefined = decodeArpFrame(frame);
    if (decoded === undefined) {
      this.#count("malformedFrames", st.ifname);
      return;
    }
    const { eth, arp } = decoded;
    const mine = sock.mac;
    if (eth.src === mine || arp.senderMac === mine) return;

    // Another host using or probing an IP we are probing for.
    let probed = false;
    if (st.probes.size > 0) {
      if (arp.senderIp !== "0.0.0.0") probed = this.#probeHit(st, arp.senderIp, arp.senderMac);
      else if (arp.op === ARP_REQUEST) this.#probeHit(st, arp.targetIp, arp.senderMac);
    }

    if (arp.senderIp !== "0.0.0.0" && st.ips.has(arp.senderIp)) {
      if (probed) return;
      this.#ownedClaimed(st, arp.senderIp, arp.senderMac);
      return;
    }

    if (arp.op !== ARP_REQUEST) return;
    // Unicast requests meant for another host only reach us in promiscuous mode.
    if (pktType === PACKET_OTHERHOST) return;
    this.#count("requestsReceived", st.ifname);
    if (!st.ips.has(arp.targetIp)) return;
    if (this.#now() < this.#repliesHeldUntil) return;
    if (!this.#allowReply(st, arp.senderMac, arp.targetIp)) return;
    // Probes (sender 0.0.0.0) are answered too, so that the prober sees the conflict.
    const reply = arpReply(mine, arp.targetIp, arp.senderMac, arp.senderIp);
    if (this.#send(st, sock, reply)) this.#count("repliesSent", st.ifname);
  }

  #onNdp(st: InterfaceState, sock: FrameSocket, frame: Buffer, pktType: number): void {
    if (st.ndp !== sock) return;
    const decoded: NdpFrame | undefined = decodeNdpFrame(frame);
    if (decoded === undefined) {
      this.#count("malformedFrames", st.ifname);
      return;
    }
    const { eth, ip, message } = decoded;
    const mine = sock.mac;
    if (eth.src === mine) return;
    const target = message.target;

    if (message.type === "advertisement") {
      const mac = message.targetMac ?? eth.src;
      if (mac === mine) return;
      if (!this.#probeHit(st, target, mac) && st.ips.has(target)) {
        this.#ownedClaimed(st, target, mac);
      }
      return;
    }

    if (pktType === PACKET_OTHERHOST) return;
    const dad = ip.src === "::";
    if (dad) this.#probeHit(st, target, eth.src);
    this.#count("requestsReceived", st.ifname);
    if (!st.ips.has(target)) return;
    if (this.#now() < this.#repliesHeldUntil) return;
    if (!this.#allowReply(st, eth.src, target)) return;
    if (dad) {
      // RFC 4861 7.2.4: answer a DAD probe to all-nodes, unsolicited, so the prober backs off.
      this.#conflict(st, target, eth.src, "owned");
      const na = neighborAdvertisement({
        srcMac: mine,
        srcIp: target,
        target,
        dstIp: ALL_NODES_IPV6,
        dstMac: ipv6MulticastMac(ALL_NODES_IPV6),
        override: true,
      });
      if (this.#send(st, sock, na)) this.#count("repliesSent", st.ifname);
      return;
    }
    const na = neighborAdvertisement({
      srcMac: mine,
      srcIp: target,
      target,
      dstIp: ip.src,
      dstMac: message.sourceMac ?? eth.src,
      solicited: true,
      override: true,
    });
    if (this.#send(st, sock, na)) this.#count("repliesSent", st.ifname);
  }
}
