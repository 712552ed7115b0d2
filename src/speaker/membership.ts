// Which speakers are alive. Leases say who the speakers are (a new speaker learns its
// peers and their heartbeat addresses from them); UDP heartbeats between speakers say who
// is alive now: a peer heard over UDP is alive exactly while its heartbeats arrive, so a
// crash is noticed in a few hundred milliseconds, and an API server outage (no Lease can
// be renewed anywhere) changes nothing on the LAN. A peer never heard over UDP (UDP
// blocked, heartbeats off) is alive while its Lease is.
//
// Silence is judged on the "awake clock" (stall.ts): time this process could not run (a
// SIGSTOP, CPU starvation) is not a peer's silence. A silent peer is first suspected and
// declared dead only if still silent at the next check, which runs after the event loop
// has read the heartbeats already waiting in the socket. A speaker that starts, comes back
// from a stall longer than the dead time, or hears peers again after hearing none, is
// "settling" until it has heard from (or timed out) every peer the Leases say is alive.
//
// Trust: a beat counts only if it comes from the address and port its node published in
// its Lease (the socket is bound to that address, so a speaker's beats leave from there);
// datagrams from any other source are dropped in the kernel by the socket's filter
// (heartbeat-gate.ts; here, before the MAC, where none could be installed), so a LAN host
// can neither make the speaker hash every datagram it sends nor wake it for them. A beat that claims to be this node
// was forged with the shared key: it is logged as a Warning and refuted (heartbeat.ts,
// HeartbeatSender).
//
// Floods: a LAN host may flood the heartbeat port with datagrams whose source is a peer's
// address. The peer's real beats are then lost here (refused by its budget of MAC checks
// or dropped by the kernel at the full socket), and its silence is ours, not its own: a
// peer silent while this node lost datagrams is judged by its Lease, and beats that
// continue what the peer last sent have a budget of their own (heartbeat-overload.ts).
// A source over its budget is muted in the kernel to its node's current incarnation.
import { randomInt } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { lookup as dnsLookup, type LookupOneOptions } from "node:dns";
import { isIP } from "node:net";
import type { V1Lease } from "@kubernetes/client-node";
import { leasesPath, SPEAKER_LEASE_LABEL } from "../api/vocabulary.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus, timestamp } from "../k8s/errors.ts";
import { Informer } from "../k8s/informer.ts";
import { microTime } from "../k8s/leader-election.ts";
import type { Logger } from "../observability/log.ts";
import { hasQuorum, type MembershipView } from "./decision.ts";
import {
  decodeHeartbeat,
  type Heartbeat,
  HeartbeatSender,
  HeartbeatTracker,
  heartbeatSigner,
  peekHeartbeat,
  peekPaired,
} from "./heartbeat.ts";
import { recvBufferBytes } from "./heartbeat-buffer.ts";
import { HeartbeatGate } from "./heartbeat-gate.ts";
import { beatLane, judgeSilence, SourceBudgets } from "./heartbeat-overload.ts";
import { HEARTBEAT_KEY_ANNOTATION, HeartbeatPairing } from "./heartbeat-pairing.ts";
import { LINKS_ANNOTATION } from "./links.ts";
import { BufferDrops } from "./socket-drops.ts";
import { StallClock } from "./stall.ts";

/** Label on speaker Leases, so that speakers watch only each other's. */
/** Annotation on a speaker Lease: where its UDP heartbeats come from and go to. */
export const HEARTBEAT_ADDR_ANNOTATION = "ironlb.dev/heartbeat-address";

export interface MembershipOptions {
  node: string;
  namespace: string;
  leaseDurationMs: number;
  renewIntervalMs: number;
  /** UDP heartbeats: address peers should send to (this node's IP), port (0 = off), keys. */
  heartbeat?: {
    address: string;
    port: number;
    /** Read for every datagram: a key rotation takes effect without a restart. */
    keys: () => HeartbeatKeys;
    intervalMs: number;
    deadAfterMs: number;
  };
}

/** The key beats are sent with, and the keys accepted (it and, during a rotation, others). */
export interface HeartbeatKeys {
  send: Uint8Array;
  accept: readonly Uint8Array[];
}

/** Why a datagram on the heartbeat port did not count (see onDroppedBeat). */
export type DropReason =
  | "unknown-source"
  | "wrong-source"
  /** Not MACed with the pair key although its node publishes a key (heartbeat-pairing.ts). */
  | "unpaired"
  | "undecodable"
  | "clock-skew"
  | "future-incarnation"
  | "stale"
  | "rate-limited";

/** Drops are logged at most once per reason in this window, with their count. */
const DROP_LOG_WINDOW_MS = 10_000;
/**
 * The kernel's drop counter of the heartbeat socket is read at every check while a peer is
 * silent, and at least this often otherwise: reading /proc/net/udp costs tens of µs (more
 * on a node with many UDP sockets), and a baseline this old at a peer's last beat only errs
 * towards doubting its silence.
 */
const DROPS_READ_MS = 1000;

interface Peer {
  /**
   * When the Lease was last seen renewed, on the monotonic clock (performance.now()): how
   * long a Lease has been silent is elapsed time, which a wall-clock step must not stretch
   * (a dead peer kept "live" after a backward step) or shrink (live peers and this node
   * declared dead after a forward one).
   */
  seenAt: number;
  renewTime: string;
  durationMs: number;
  heartbeatAddr?: { host: string; port: number };
  /** Its `ironlb.dev/links` annotation (links.ts), when it publishes one. */
  links?: string;
  /** Its heartbeat public key (heartbeat-pairing.ts), when it publishes one. */
  publicKey?: string;
}

/** Why a speaker (re)joins: its view of who is alive and who announces what is stale. */
export type RejoinReason = "stall" | "isolation" | "link";

/** Period of the stall clock's tick, ms. */
const STALL_TICK_MS = 20;

/** Tracks live speakers; calls `onChange` when the live set may have changed. */
export class Membership {
  readonly #api: KubeClient;
  readonly #path: string;
  readonly #o: MembershipOptions;
  readonly #log: Logger;
  readonly #leases: Informer<V1Lease>;
  readonly #peers = new Map<string, Peer>();
  readonly #tracker: HeartbeatTracker | undefined;
  /**
   * Peers accept only increasing incarnations (older ones are replays), so a restarted
   * speaker must count up: the start time does, the random part breaks same-ms ties.
   */
  readonly #sender: HeartbeatSender;
  /** This run's heartbeat key pair: beats to and from peers that publish one use pair keys. */
  readonly #pairing = new HeartbeatPairing();
  /** Peers whose published key is unusable, each said once. */
  readonly #badKeySaid = new Set<string>();
  /** Published heartbeat source ("host port") → node, from the Leases. */
  readonly #sources = new Map<string, string>();
  /** Per keyed peer, the keys its beats are checked with (#pairKeysOf). */
  readonly #acceptKeys = new Map<
    string,
    { accept: readonly Uint8Array[]; peerKey: string | undefined; keys: readonly Uint8Array[] }
  >();
  /** Drops per reason since each reason was last logged, and when that was. */
  readonly #drops = new Map<DropReason, { count: number; loggedAt: number }>();
  /** Budgets of MAC checks per source and lane (performance clock). */
  #budgets: SourceBudgets | undefined;
  /**
   * Datagrams this node lost: dropped by the kernel at the full socket (as last read; any
   * source) and refused unread by a budget (per source); and both when each peer's last
   * beat was accepted.
   */
  #kernelDrops = 0;
  #kernelDropsAtBind: number | undefined;
  readonly #refusedFrom = new Map<string, number>();
  readonly #lostAtBeat = new Map<string, { kernel: number; refused: number }>();
  /** Peers now judged by their Lease because their silence may be ours. */
  readonly #doubted = new Set<string>();
  #dropsLoggedAt = -Infinity;
  #dropsReadAt = -Infinity;
  #dropsUnlogged = 0;
  /** When a forgery in our name was last logged, and last answered with a beat. */
  #forgeryLoggedAt = -Infinity;
  #refutedAt = -Infinity;
  #socket: Socket | undefined;
  /** The socket's kernel filter: only published sources pass (heartbeat-gate.ts). */
  #gate: HeartbeatGate | undefined;
  /** Datagrams per source refused as unpaired: past this budget, the source is muted. */
  #unpaired: SourceBudgets | undefined;
  #bufferDrops: BufferDrops | undefined;
  /** The receive buffer last asked for (SO_RCVBUF); a shortfall is said once. */
  #recvBufferAsked = 0;
  #recvBufferCapSaid = false;
  #renewTimer: NodeJS.Timeout | undefined;
  #beatTimer: NodeJS.Timeout | undefined;
  /** performance.now() of our last successful renewal. */
  #lastRenewOk = Number.NEGATIVE_INFINITY;
  /** The live set onChange was last called for (compared as sets: no sort per check). */
  #lastLive = new Set<string>();
  /** How many peers the tracker had heard of at the last check: a newly heard one may count. */
  #judgedKnown = 0;
  #stopped = false;
  readonly #clock: StallClock;
  /** The renewTime we last wrote, and when our informer showed it (it is live then). */
  #renewWritten = "";
  #ownSeenAt = Number.NEGATIVE_INFINITY;
  #stallTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  /** Heard peers silent at the last check (suspected) and those declared dead. */
  readonly #suspects = new Set<string>();
  readonly #dead = new Set<string>();
  /** Settling: since when (awake clock), and which peers have been heard since. */
  #settleFrom: number | undefined;
  readonly #heardSince = new Set<string>();
  #settleTimer: NodeJS.Timeout | undefined;
  /** Every peer we had heard is dead: we may be the one cut off. */
  #isolated = false;
  onChange: () => void = () => {};
  /** Called when this speaker rejoins after a long stall or an isolation. */
  onRejoin: (reason: RejoinReason, stalledMs: number) => void = () => {};
  /** Called for every datagram on the heartbeat port that did not count (for a metric). */
  onDroppedBeat: (reason: DropReason) => void = () => {};
  /** Called with the datagrams the kernel dropped at the heartbeat socket since last told. */
  onSocketDrops: (count: number) => void = () => {};
  /** Called when a silent peer is judged by its Lease, since this node lost datagrams. */
  onDoubted: (peer: string) => void = () => {};
  /**
   * This node's `ironlb.dev/links` value, read at every renewal (so that an address added
   * or removed is published within a renew interval); undefined publishes none.
   */
  publishLinks: () => string | undefined = () => undefined;

  constructor(api: KubeClient, opts: MembershipOptions, log: Logger) {
    this.#api = api;
    this.#path = leasesPath(opts.namespace);
    this.#o = opts;
    this.#log = log;
    this.#sender = new HeartbeatSender(opts.node, Date.now(), randomInt(0, 1000));
    this.#clock = new StallClock(performance.now(), {
      tickMs: STALL_TICK_MS,
      toleranceMs: 30,
      maxPressureMs: opts.heartbeat?.deadAfterMs ?? 350,
    });
    if (opts.heartbeat && opts.heartbeat.port > 0) {
      this.#tracker = new HeartbeatTracker({ deadAfterMs: opts.heartbeat.deadAfterMs });
    }
    const onLease = (lease: V1Lease) => this.#leaseSeen(lease);
    this.#leases = new Informer<V1Lease>(
      api,
      this.#path,
      {
        add: onLease,
        update: onLease,
        delete: (lease) => {
          const node = lease.spec?.holderIdentity;
          if (node && this.#peers.delete(node)) {
            this.#indexSources();
            this.#changed();
          }
        },
      },
      log,
      { labelSelector: SPEAKER_LEASE_LABEL },
    );
  }

  /** The Lease name of a node's speaker. */
  static leaseName(node: string): string {
    return `ironlb-speaker-${node}`;
  }

  /** Creates this speaker's Lease, starts renewing, watching and heartbeating. */
  async start(): Promise<void> {
    this.#stallTimer = setInterval(() => this.#tick(), STALL_TICK_MS);
    this.#stallTimer.unref();
    this.#startSettling();
    if (this.#tracker && this.#o.heartbeat) await this.#startUdp(this.#o.heartbeat);
    await this.#renew();
    this.#renewTimer = setInterval(() => void this.#renew(), this.#o.renewIntervalMs);
    await this.#leases.start();
    await this.#leases.synced();
    if (this.#o.heartbeat && this.#tracker) {
      this.#beatTimer = setInterval(() => this.#beat(false), this.#o.heartbeat.intervalMs);
    }
  }

  /**
   * Whether this speaker may announce. With heartbeats, peers judge it by them, so it stays
   * in while they flow even when its Lease cannot be renewed (API server down). Without
   * heartbeats, or when none arrives from any peer, peers judge it by its Lease: then an
   * expired Lease means others have taken over, and it must stop.
   */
  selfHealthy(now = performance.now()): boolean {
    if (now - this.#lastRenewOk < this.#o.leaseDurationMs) return true;
    if (!this.#tracker) return false;
    const noPeer =
      this.#peers.size === 0 || (this.#peers.size === 1 && this.#peers.has(this.#o.node));
    return noPeer || this.#tracker.anyAlive(this.#awake(), this.#pressure());
  }

  /**
   * Nodes whose speaker is alive now (this node included while selfHealthy). A peer heard
   * over UDP is alive until a check has declared it dead (suspected, then still silent).
   */
  live(now = performance.now()): Set<string> {
    const out = new Set<string>();
    const tracker = this.#tracker;
    for (const [node, p] of this.#peers) {
      if (node === this.#o.node) continue;
      const alive = tracker?.has(node) ? !this.#dead.has(node) : this.#leaseAlive(p, now);
      if (alive) out.add(node);
    }
    if (this.selfHealthy(now)) out.add(this.#o.node);
    return out;
  }

  /** The membership part of the announcement snapshot (decision.ts). */
  view(now = performance.now()): MembershipView {
    const live = this.live(now);
    return {
      self: this.#o.node,
      live,
      settled: this.settled(),
      quorum: this.#quorum(now, live.size),
    };
  }

  /**
   * A strict majority of the members is live, and we are not cut off: having heard none
   * of several members, we are more likely the one isolated than the only survivor.
   */
  #quorum(now: number, live: number): boolean {
    const members = this.#members(now).size;
    return hasQuorum(members, live) && !(this.#isolated && members > 1);
  }

  /** Whether the view has settled since the last start or rejoin. */
  settled(): boolean {
    if (this.#settleFrom === undefined) return true;
    const hb = this.#o.heartbeat;
    if (!this.#tracker || !hb) return this.#settle();
    // Timed out: a peer not heard within the dead time of our awake time is dead anyway.
    const left = this.#settleFrom + hb.deadAfterMs + hb.intervalMs - this.#awake();
    if (left < 0) return this.#settle();
    // Every member (a peer whose Lease is current, or any peer with a Lease while our own
    // Lease watch is not known to be live) must have been heard since.
    const members = this.#members(performance.now());
    for (const [node, p] of this.#peers) {
      if (node === this.#o.node || !p.heartbeatAddr || !members.has(node)) continue;
      if (!this.#heardSince.has(node)) {
        // Nothing else may happen before the time-out: look again then.
        this.#settleTimer ??= setTimeout(() => {
          this.#settleTimer = undefined;
          this.onChange();
        }, left + 5).unref();
        return false;
      }
    }
    return this.#settle();
  }

  #settle(): true {
    if (this.#settleFrom !== undefined) {
      this.#settleFrom = undefined;
      this.#heardSince.clear();
      this.#log.info({ live: [...this.live()].sort() }, "membership settled");
      setImmediate(() => this.onChange());
    }
    return true;
  }

  /**
   * Speakers that count for the majority: this node and every peer with a Lease. A peer
   * whose Lease expired is gone, but only while our own Lease watch is live (it showed our
   * latest renewal recently): a watch cut off with us says nothing about the peers.
   */
  #members(now: number): Set<string> {
    const out = new Set([this.#o.node]);
    const apiFresh = now - this.#ownSeenAt < this.#o.leaseDurationMs;
    for (const [node, p] of this.#peers) {
      if (
        !apiFresh ||
        this.#leaseAlive(p, now) ||
        this.#tracker?.isAlive(node, this.#awake(), this.#pressure())
      )
        out.add(node);
    }
    return out;
  }

  #leaseAlive(p: Peer, now: number): boolean {
    return now - p.seenAt < p.durationMs;
  }

  #awake(): number {
    return this.#clock.awake(performance.now());
  }

  /** Our own recent longest stall: peers are likely starved alike, so wait longer. */
  #pressure(): number {
    return this.#clock.recentStallMs(performance.now());
  }

  /**
   * Runs the stall check now if its tick is overdue. After a stall, I/O that waited in our
   * sockets may be handled before the tick's timer runs; a caller about to act on such
   * input (answer an ARP request queued while we were stopped) calls this first, so that
   * a rejoin is under way before it acts.
   */
  noticeStall(): void {
    if (!this.#stopped && this.#clock.overdue(performance.now())) this.#tick();
  }

  /** The stall clock's tick: a late tick is a stall of our own. */
  #tick(): void {
    const stall = this.#clock.tick(performance.now());
    const hb = this.#o.heartbeat;
    if (stall <= 0 || !hb) return;
    // Tell peers at once that we run again; their view of us is what may have moved IPs.
    this.#beat(false);
    if (stall + hb.intervalMs < hb.deadAfterMs) {
      this.#log.debug({ stalledMs: Math.round(stall) }, "short stall");
      return;
    }
    this.#log.warn(
      { stalledMs: Math.round(stall) },
      "this speaker was stalled longer than peers wait: rejoining",
    );
    this.#rejoin("stall", stall);
  }

  /**
   * A LAN link of this node came back (its carrier was lost): peers may have declared us
   * dead meanwhile, even if the outage was too short for us to miss their heartbeats.
   */
  linkRejoin(): void {
    if (this.#stopped) return;
    this.#rejoin("link", 0);
  }

  #rejoin(reason: RejoinReason, stalledMs: number): void {
    // Cut off, our watch may hold the Lease changes behind TCP's retransmission backoff.
    if (reason !== "stall") this.#leases.reconnect();
    this.#startSettling();
    this.onRejoin(reason, stalledMs);
    this.onChange();
  }

  #startSettling(): void {
    this.#settleFrom = this.#awake();
    this.#heardSince.clear();
  }

  /**
   * Sends the leaving heartbeat now (peers drop this node at once and take its IPs over)
   * and stops renewing and beating. Synchronous, so that the caller can stop answering in
   * the same turn. Idempotent; stop() calls it.
   */
  leave(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#renewTimer);
    clearInterval(this.#beatTimer);
    clearInterval(this.#stallTimer);
    clearTimeout(this.#expiryTimer);
    clearTimeout(this.#settleTimer);
    this.#beat(true);
  }

  /** Says goodbye: a leaving heartbeat (others drop us at once) and deletes our Lease. */
  async stop(): Promise<void> {
    this.leave();
    await new Promise((r) => setTimeout(r, 20)); // let the leaving datagrams go out
    this.#socket?.close();
    await this.#leases.stop();
    try {
      await this.#api.delete(`${this.#path}/${Membership.leaseName(this.#o.node)}`);
    } catch (err) {
      if (httpStatus(err) !== 404)
        this.#log.warn({ err: describeError(err) }, "could not delete own lease");
    }
  }

  /** Re-evaluates the live set (O(peers)); calls onChange when it differs from the last. */
  #changed(): void {
    this.#armExpiry();
    const live = this.live();
    if (sameSet(live, this.#lastLive)) return;
    this.#lastLive = live;
    this.#log.info({ live: [...live].sort() }, "live speakers changed");
    this.onChange();
  }

  /**
   * Lease expiry makes no event: a timer at the next expiry of a Lease that decides
   * someone's liveness (a peer not heard over UDP, or our own) re-evaluates then.
   */
  #armExpiry(): void {
    if (this.#stopped) return;
    const now = performance.now();
    const tracker = this.#tracker;
    let next = this.#lastRenewOk + this.#o.leaseDurationMs;
    for (const [node, p] of this.#peers) {
      if (node === this.#o.node || tracker?.has(node)) continue;
      const at = p.seenAt + p.durationMs;
      if (at > now && at < next) next = at;
    }
    if (next <= now) return;
    clearTimeout(this.#expiryTimer);
    this.#expiryTimer = setTimeout(() => this.#changed(), next - now + 5);
    this.#expiryTimer.unref();
  }

  /**
   * Judges heard peers after the socket has been read (setImmediate runs after the poll
   * phase that delivers waiting datagrams): silent for the dead time on the awake clock
   * makes a suspect; a suspect still silent at the next check is dead. Runs every half
   * interval, so it is one pass over the heard peers, and re-evaluates the live set only
   * when a verdict, the heard set or this node's own health moved.
   */
  #judge(): void {
    if (!this.#tracker || this.#stopped) return;
    const now = this.#awake();
    const pressure = this.#pressure();
    const wall = performance.now();
    const tracker = this.#tracker;
    let silentUnjudged = false;
    for (const n of tracker.nodes())
      if (!this.#dead.has(n) && !tracker.isAlive(n, now, pressure)) {
        silentUnjudged = true;
        break;
      }
    if (wall - this.#dropsReadAt >= DROPS_READ_MS || silentUnjudged) {
      this.#dropsReadAt = wall;
      this.#readKernelDrops();
    }
    // A peer heard for the first time is judged by its beats from now on, not its Lease.
    let moved = tracker.size !== this.#judgedKnown;
    this.#judgedKnown = tracker.size;
    let peersKnown = 0;
    let allDead = true;
    for (const node of tracker.nodes()) {
      const peer = this.#peers.get(node);
      const heard = tracker.isAlive(node, now, pressure);
      // The common case, ~all peers at every check: heard, and nothing to undo.
      if (heard && !this.#suspects.has(node) && !this.#dead.has(node) && !this.#doubted.has(node)) {
        if (node !== this.#o.node && peer !== undefined) {
          peersKnown++;
          allDead = false;
        }
        continue;
      }
      const lost = this.#lostSinceBeat(node);
      const verdict = judgeSilence({
        heard,
        suspected: this.#suspects.has(node),
        dead: this.#dead.has(node),
        lostHere: lost > 0 || this.#gate?.isMuted(node) === true,
        leaseAlive: peer !== undefined && this.#leaseAlive(peer, wall),
      });
      if (verdict !== "doubted" && this.#doubted.delete(node)) {
        moved = true;
        if (verdict !== "alive")
          this.#log.info({ peer: node }, "peer's Lease expired while its beats were not heard");
      }
      if (verdict === "alive" || verdict === "doubted") {
        if (this.#suspects.delete(node)) moved = true;
        if (this.#dead.delete(node)) moved = true;
        if (verdict === "doubted" && !this.#doubted.has(node)) {
          moved = true;
          this.#doubted.add(node);
          this.onDoubted(node);
          this.#log.warn(
            { peer: node, lostDatagrams: lost },
            "peer silent while this node's heartbeat socket lost datagrams (a flood?): judging it by its Lease",
          );
        }
      } else if (verdict === "dead") {
        if (this.#suspects.delete(node)) this.#log.info({ peer: node }, "peer silent: dead");
        if (!this.#dead.has(node)) {
          moved = true;
          this.#dead.add(node);
        }
      } else if (!this.#suspects.has(node)) {
        moved = true;
        this.#suspects.add(node);
        this.#log.debug({ peer: node }, "peer silent: suspected");
      }
      if (node !== this.#o.node && peer !== undefined) {
        peersKnown++;
        if (!this.#dead.has(node)) allDead = false;
      }
    }
    if (!this.#isolated && peersKnown > 0 && allDead) {
      moved = true;
      this.#isolated = true;
      const known = [...tracker.nodes()].filter((n) => n !== this.#o.node && this.#peers.has(n));
      this.#log.warn({ peers: known.sort() }, "no peer heard: this node may be cut off");
    }
    // Our own health turns with the last peer's beats (selfHealthy) even when no verdict
    // did, e.g. a suspect heard again while our Lease cannot be renewed.
    if (moved || this.selfHealthy(wall) !== this.#lastLive.has(this.#o.node)) this.#changed();
  }

  #leaseSeen(lease: V1Lease): void {
    const node = lease.spec?.holderIdentity;
    if (!node) return;
    const renewTime = timestamp(lease.spec?.renewTime);
    if (node === this.#o.node && Date.parse(renewTime) === Date.parse(this.#renewWritten))
      this.#ownSeenAt = performance.now();
    const durationMs = (lease.spec?.leaseDurationSeconds ?? 15) * 1000;
    const prev = this.#peers.get(node);
    const now = performance.now();
    let seenAt = now;
    if (!prev) {
      // First sight: trust the holder's clock only to tell a stale Lease from a live one
      // (renewTime is the holder's wall clock: the one place where ours is compared).
      const age = Date.now() - Date.parse(renewTime);
      if (Number.isFinite(age) && age > durationMs) seenAt = now - durationMs;
    } else if (prev.renewTime === renewTime) {
      seenAt = prev.seenAt;
    }
    const addr = parseHostPort(lease.metadata?.annotations?.[HEARTBEAT_ADDR_ANNOTATION]);
    const links = lease.metadata?.annotations?.[LINKS_ANNOTATION];
    const publicKey = lease.metadata?.annotations?.[HEARTBEAT_KEY_ANNOTATION];
    this.#peers.set(node, {
      seenAt,
      renewTime,
      durationMs,
      ...(addr ? { heartbeatAddr: addr } : {}),
      ...(links !== undefined ? { links } : {}),
      ...(publicKey !== undefined ? { publicKey } : {}),
    });
    const next = this.#peers.get(node)!;
    const addrMoved =
      addr?.host !== prev?.heartbeatAddr?.host || addr?.port !== prev?.heartbeatAddr?.port;
    if (addrMoved) this.#indexSources();
    // A renewal that changes neither the peer's liveness nor what it publishes changes no
    // live set: re-evaluating it (O(peers)) for each of N peers' renewals would cost
    // O(N²) per renew interval. A later expiry needs no new timer: the armed one fires at
    // the earlier expiry, finds the peer renewed, and arms the next (#armExpiry).
    if (
      prev === undefined ||
      addrMoved ||
      prev.durationMs !== durationMs ||
      prev.links !== links ||
      prev.publicKey !== publicKey ||
      this.#leaseAlive(prev, now) !== this.#leaseAlive(next, now)
    )
      this.#changed();
  }

  /**
   * The public key `node` publishes, when it is usable: beats to and from it then use the
   * pair key. A key that is not one (a bug or tampering: a node's Lease is written by that
   * node alone) is said once; its beats cannot be checked, ours go under the shared secret.
   */
  #pairKeyOf(node: string): string | undefined {
    const key = this.#peers.get(node)?.publicKey;
    if (key === undefined) return undefined;
    const send = this.#o.heartbeat?.keys().send;
    if (send && this.#pairing.pairKey(key, send)) return key;
    if (!this.#badKeySaid.has(`${node}\0${key}`)) {
      this.#badKeySaid.add(`${node}\0${key}`);
      this.#log.warn(
        { peer: node, annotation: HEARTBEAT_KEY_ANNOTATION },
        "peer publishes an unusable heartbeat key: its beats cannot be checked and are dropped",
      );
    }
    return undefined;
  }

  /**
   * The keys a beat from `node` (which publishes a key) may be MACed with: its pair key
   * under each accepted key. Kept per node while its key and the accepted keys stay the
   * same objects (keys are re-read as new objects only when they change): this runs for
   * every datagram.
   */
  #pairKeysOf(node: string, accept: readonly Uint8Array[]): readonly Uint8Array[] {
    const peerKey = this.#pairKeyOf(node);
    const cached = this.#acceptKeys.get(node);
    if (cached && cached.accept === accept && cached.peerKey === peerKey) return cached.keys;
    const keys = accept.flatMap((k) => (peerKey && this.#pairing.pairKey(peerKey, k)) || []);
    this.#acceptKeys.set(node, { accept, peerKey, keys });
    return keys;
  }

  /**
   * The node whose published heartbeat source is `host` `port`. The kernel spells an IPv6
   * source as the published one was canonicalised (compressed, lower case), so the plain
   * spelling is tried first: canonicalising costs a URL parse, per datagram.
   */
  #sourceOf(host: string, port: number): string | undefined {
    return this.#sources.get(`${host} ${port}`) ?? this.#sources.get(sourceKey(host, port));
  }

  /** Node -> the `ironlb.dev/links` its Lease carries, for the nodes whose Lease has one. */
  publishedLinks(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [node, p] of this.#peers) if (p.links !== undefined) out.set(node, p.links);
    return out;
  }

  #publishedLinks(): string | undefined {
    try {
      return this.publishLinks();
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, "reading this node's interfaces failed");
      return undefined;
    }
  }

  async #renew(): Promise<void> {
    if (this.#stopped) return;
    const { node, namespace } = this.#o;
    const name = Membership.leaseName(node);
    const hb = this.#o.heartbeat;
    const links = this.#publishedLinks();
    const body = {
      metadata: {
        name,
        namespace,
        labels: { [SPEAKER_LEASE_LABEL]: "true" },
        annotations: {
          ...(hb && hb.port > 0
            ? {
                [HEARTBEAT_ADDR_ANNOTATION]: formatHostPort(hb.address, hb.port),
                [HEARTBEAT_KEY_ANNOTATION]: this.#pairing.publicKey,
              }
            : {}),
          ...(links !== undefined ? { [LINKS_ANNOTATION]: links } : {}),
        },
      },
      spec: {
        holderIdentity: node,
        leaseDurationSeconds: Math.max(1, Math.round(this.#o.leaseDurationMs / 1000)),
        renewTime: microTime(Date.now()),
      },
    };
    this.#renewWritten = body.spec.renewTime;
    try {
      try {
        // A merge patch needs no resourceVersion: this Lease has one writer, its own node.
        await this.#api.mergePatch(`${this.#path}/${name}`, body);
      } catch (err) {
        if (httpStatus(err) !== 404) throw err;
        await this.#api.create(this.#path, body);
      }
      const wasHealthy = this.selfHealthy();
      this.#lastRenewOk = performance.now();
      if (!wasHealthy) this.#changed();
    } catch (err) {
      this.#log.warn({ err: describeError(err) }, "renewing own lease failed");
      if (!this.selfHealthy()) this.#changed();
    }
  }

  async #startUdp(hb: NonNullable<MembershipOptions["heartbeat"]>): Promise<void> {
    const sock = createSocket({
      type: hb.address.includes(":") ? "udp6" : "udp4",
      lookup: addressLookup,
    });
    sock.on("message", (msg, rinfo) => {
      // Only a published address counts, and checking it costs a lookup, not a MAC.
      const from = this.#sourceOf(rinfo.address, rinfo.port);
      if (from === undefined) return this.#drop("unknown-source", { source: rinfo.address });
      // A node that publishes a key speaks only with pair keys: a beat under the shared
      // secret from its address comes from another holder of that secret. Refused before
      // it costs a MAC or its node's budget.
      const keyed = this.#peers.get(from)?.publicKey !== undefined;
      if (keyed && !peekPaired(msg)) {
        // Junk from a peer's source, however cheap here, is muted in the kernel past a budget.
        this.#unpaired ??= new SourceBudgets(hb.intervalMs);
        if (!this.#unpaired.admit(from, "other", performance.now()))
          this.#gate?.mute(from, this.#tracker!.last(from)?.incarnation);
        return this.#drop("unpaired", { source: from });
      }
      const lane = beatLane(this.#tracker!.last(from), peekHeartbeat(msg));
      this.#budgets ??= new SourceBudgets(hb.intervalMs);
      if (!this.#budgets.admit(from, lane, performance.now())) {
        this.#refusedFrom.set(from, (this.#refusedFrom.get(from) ?? 0) + 1);
        this.#gate?.mute(from, this.#tracker!.last(from)?.incarnation);
        return this.#drop("rate-limited", { source: from, lane });
      }
      const accept = hb.keys().accept;
      // An unusable published key leaves no key to check with: nothing from it counts.
      const r = decodeHeartbeat(msg, keyed ? this.#pairKeysOf(from, accept) : accept);
      if (!r.ok) return this.#drop("undecodable", { source: from, error: r.error });
      if (r.paired !== keyed) return this.#drop("unpaired", { source: from });
      if (r.beat.node === this.#o.node) return this.#heardSelf(r.beat, from);
      const node = r.beat.node;
      if (node !== from) return this.#drop("wrong-source", { source: from, claims: node });
      const outcome = this.#tracker!.receive(r.beat, this.#awake());
      if (outcome === "clock-skew" || outcome === "future-incarnation") {
        const ahead = outcome === "clock-skew" ? r.beat.sentAtMs : r.beat.incarnation / 1000;
        return this.#drop(outcome, { peer: node, skewMs: Math.round(ahead - Date.now()) });
      }
      if (outcome !== "accepted") return this.#drop("stale", { peer: node, outcome });
      // Updated in place: one object per peer, not one per beat.
      const lost = this.#lostAtBeat.get(node);
      if (lost) {
        lost.kernel = this.#kernelDrops;
        lost.refused = this.#refusedFrom.get(node) ?? 0;
      } else
        this.#lostAtBeat.set(node, {
          kernel: this.#kernelDrops,
          refused: this.#refusedFrom.get(node) ?? 0,
        });
      if (this.#doubted.delete(node)) this.#log.info({ peer: node }, "peer heard again");
      const wasDead = this.#dead.has(node);
      const heardBefore = this.#heardSince.size;
      this.#suspects.delete(node);
      if (r.beat.leaving) this.#dead.add(node);
      else {
        this.#dead.delete(node);
        if (this.#settleFrom !== undefined) this.#heardSince.add(node);
      }
      if (this.#isolated && !r.beat.leaving) {
        this.#isolated = false;
        this.#log.warn({ peer: node }, "hearing peers again: rejoining");
        this.#rejoin("isolation", 0);
        this.#heardSince.add(node);
      }
      if (r.beat.leaving || wasDead) this.#changed();
      // While settling, every newly heard member may be the last one awaited.
      else if (this.#settleFrom !== undefined && heardBefore !== this.#heardSince.size)
        this.onChange();
    });
    sock.on("error", (err) => this.#log.warn({ err: err.message }, "heartbeat socket error"));
    await new Promise<void>((resolve, reject) => {
      sock.once("error", reject);
      // Bound to the published address: our beats leave from it (peers check the source),
      // and datagrams to the node's other addresses never reach us.
      sock.bind(hb.port, hb.address, () => {
        sock.off("error", reject);
        resolve();
      });
    });
    this.#socket = sock;
    this.#gate = new HeartbeatGate({
      address: hb.address,
      port: sock.address().port,
      log: this.#log,
    });
    sock.on("close", () => this.#gate?.close());
    this.#indexSources();
    this.#bufferDrops = new BufferDrops(hb.address, sock.address().port);
    this.#kernelDropsAtBind = this.#bufferDrops.read();
    if (this.#kernelDropsAtBind === undefined)
      this.#log.warn(
        { address: hb.address, port: sock.address().port },
        "cannot read the heartbeat socket's drop counter from /proc/net: a flood that fills its buffer may make peers look dead",
      );
    // Silence is noticed by polling: a dead peer sends nothing that could trigger a check.
    const check = setInterval(
      () => setImmediate(() => this.#judge()),
      Math.max(20, Math.floor(hb.intervalMs / 2)),
    );
    check.unref();
    sock.on("close", () => clearInterval(check));
  }

  #beat(leaving: boolean): void {
    const hb = this.#o.heartbeat;
    if (!hb || !this.#socket) return;
    // Encoded once; MACed per peer with its pair key (or once with the shared secret).
    const sign = heartbeatSigner(this.#sender.next(Date.now(), leaving));
    const send = hb.keys().send;
    let shared: Uint8Array | undefined;
    for (const [node, p] of this.#peers) {
      if (node === this.#o.node || !p.heartbeatAddr) continue;
      const peerKey = this.#pairKeyOf(node);
      const pair = peerKey !== undefined ? this.#pairing.pairKey(peerKey, send) : undefined;
      let msg: Uint8Array;
      if (pair) msg = sign(pair, true);
      else {
        shared ??= sign(send);
        msg = shared;
      }
      this.#socket.send(msg, p.heartbeatAddr.port, p.heartbeatAddr.host);
    }
  }

  /**
   * An authenticated beat naming this node: one of ours come back, or forged by another
   * holder of the key. A forgery peers may prefer to our beats is refuted at once.
   */
  #heardSelf(beat: Heartbeat, from: string): void {
    const before = this.#sender.incarnation;
    if (this.#sender.heard(beat, Date.now(), randomInt(0, 1000)) === "echo") return;
    const now = performance.now();
    if (now - this.#forgeryLoggedAt >= DROP_LOG_WINDOW_MS) {
      this.#forgeryLoggedAt = now;
      this.#log.warn(
        {
          source: from,
          incarnation: beat.incarnation,
          seq: beat.seq,
          leaving: beat.leaving,
          ownIncarnation: before,
          newIncarnation: this.#sender.incarnation,
        },
        "a heartbeat forged in this node's name (another holder of the heartbeat key sent it): refuting with a new incarnation",
      );
    }
    // At most one extra beat per 20 ms however fast forgeries come: the regular ones follow,
    // with the incarnation above the latest forgery.
    if (now - this.#refutedAt >= 20 && !this.#stopped) {
      this.#refutedAt = now;
      this.#beat(false);
    }
  }

  /** Counts a dropped datagram; logs each reason at most once per window, with the count. */
  #drop(reason: DropReason, fields: Record<string, unknown>): void {
    this.onDroppedBeat(reason);
    const now = performance.now();
    let d = this.#drops.get(reason);
    if (!d) {
      d = { count: 0, loggedAt: -Infinity };
      this.#drops.set(reason, d);
    }
    d.count++;
    if (now - d.loggedAt < DROP_LOG_WINDOW_MS) return;
    const line = { reason, dropped: d.count, windowMs: DROP_LOG_WINDOW_MS, ...fields };
    // A peer with a wrong clock, or a forger, is something to fix; the rest is LAN noise.
    if (
      reason === "clock-skew" ||
      reason === "future-incarnation" ||
      reason === "wrong-source" ||
      reason === "rate-limited"
    )
      this.#log.warn(line, `heartbeats dropped: ${reason}`);
    else this.#log.debug(line, `heartbeats dropped: ${reason}`);
    d.count = 0;
    d.loggedAt = now;
  }

  /**
   * Datagrams that may have carried `node`'s beats and were lost here since its last
   * accepted one: dropped by the kernel (any source: it does not say which), or refused
   * unread from its source.
   */
  #lostSinceBeat(node: string): number {
    const at = this.#lostAtBeat.get(node) ?? { kernel: 0, refused: 0 };
    return this.#kernelDrops - at.kernel + (this.#refusedFrom.get(node) ?? 0) - at.refused;
  }

  /** Reads the kernel's drop counter of the heartbeat socket; reports and logs growth. */
  #readKernelDrops(): void {
    const base = this.#kernelDropsAtBind;
    const sock = this.#socket;
    if (base === undefined || !sock || !this.#o.heartbeat) return;
    try {
      sock.address();
    } catch {
      return; // closed
    }
    const total = this.#bufferDrops?.read();
    if (total === undefined || total - base <= this.#kernelDrops) return;
    const fresh = total - base - this.#kernelDrops;
    this.#kernelDrops = total - base;
    this.onSocketDrops(fresh);
    this.#dropsUnlogged += fresh;
    const now = performance.now();
    if (now - this.#dropsLoggedAt < DROP_LOG_WINDOW_MS) return;
    this.#log.warn(
      { dropped: this.#dropsUnlogged, windowMs: DROP_LOG_WINDOW_MS },
      "heartbeat socket full: the kernel dropped datagrams (a flood?)",
    );
    this.#dropsLoggedAt = now;
    this.#dropsUnlogged = 0;
  }

  /**
   * Grows the heartbeat socket's receive buffer to hold RECV_BUFFER_HOLD_MS of beats from
   * every peer that publishes an address (never shrinks it, never below the kernel's
   * default). SO_RCVBUF is capped by net.core.rmem_max; exceeding it takes SO_RCVBUFFORCE
   * and CAP_NET_ADMIN, which the speaker does not hold (the chart grants NET_RAW only, and
   * NET_ADMIN only for ipMode Proxy): the node's sysctl is the operator's to raise, and the
   * Warning says by how much.
   */
  #sizeRecvBuffer(): void {
    const sock = this.#socket;
    const hb = this.#o.heartbeat;
    if (!sock || !hb) return;
    let peers = 0;
    for (const [node, p] of this.#peers) if (node !== this.#o.node && p.heartbeatAddr) peers++;
    const want = recvBufferBytes(peers, hb.intervalMs);
    if (want <= this.#recvBufferAsked) return;
    try {
      // The kernel reports (and grants) twice what SO_RCVBUF asked, for its bookkeeping.
      if (want * 2 <= sock.getRecvBufferSize()) return;
      this.#recvBufferAsked = want;
      sock.setRecvBufferSize(want);
      const granted = sock.getRecvBufferSize();
      if (granted < want * 2 && !this.#recvBufferCapSaid) {
        this.#recvBufferCapSaid = true;
        this.#log.warn(
          { peers, wantedBytes: want * 2, grantedBytes: granted },
          "the kernel caps the heartbeat socket's receive buffer below what this many peers' beats need (net.core.rmem_max): a stall of this speaker may overflow it, and then failovers wait for the Lease",
        );
      } else this.#log.debug({ peers, bytes: granted }, "heartbeat socket receive buffer grown");
    } catch (err) {
      this.#log.warn(
        { err: describeError(err) },
        "could not size the heartbeat socket's receive buffer",
      );
    }
  }

  /** Rebuilds the source → node index from the peers' published addresses. */
  #indexSources(): void {
    this.#sources.clear();
    const published = new Map<string, { host: string; port: number }>();
    for (const [node, p] of this.#peers) {
      const a = p.heartbeatAddr;
      if (a) this.#sources.set(sourceKey(a.host, a.port), node);
      if (a) published.set(node, a);
    }
    this.#gate?.setPeers(published);
    this.#budgets?.keepOnly((node) => this.#peers.has(node));
    this.#unpaired?.keepOnly((node) => this.#peers.has(node));
    this.#sizeRecvBuffer();
    for (const m of [this.#lostAtBeat, this.#refusedFrom, this.#acceptKeys])
      for (const node of m.keys()) if (!this.#peers.has(node)) m.delete(node);
  }
}

/**
 * The heartbeat socket's name lookup: peers publish IP addresses, and dgram's default
 * (dns.lookup) answers an IP a tick later, one deferred callback per datagram sent (N per
 * interval). An IP is answered at once; anything else still goes to dns.lookup (dgram
 * passes the family, 4 or 6, as `options`, which dns.lookup takes as well).
 */
function addressLookup(
  host: string,
  options: LookupOneOptions,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const family = isIP(host);
  if (family !== 0) callback(null, host, family);
  else dnsLookup(host, options, callback);
}

/** A source address and port in one canonical spelling (IPv6 addresses compressed). */
function sourceKey(host: string, port: number): string {
  let h = host;
  if (h.includes(":")) {
    try {
      h = new URL(`http://[${h}]/`).hostname.slice(1, -1);
    } catch {
      // Not an address: it matches nothing.
    }
  }
  return `${h} ${port}`;
}

function sameSet(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

function parseHostPort(s: string | undefined): { host: string; port: number } | undefined {
  if (!s) return undefined;
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[2]);
  return port > 0 && port < 65536 ? { host: m[1]!, port } : undefined;
}
