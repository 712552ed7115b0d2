// The TCP edge of a BGP session: one active connection to a peer over node:net. It feeds
// received bytes to the parser and events to the pure FSM (fsm.ts), performs the FSM's
// actions with a socket and timers, and keeps the peer's copy of the routes equal to the
// desired set: differences go out as packed UPDATEs, the whole set again after every
// (re)connect and on ROUTE-REFRESH.
import { connect, type Socket } from "node:net";
import { encodePrefix } from "./attributes.ts";
import type { Family } from "./capabilities.ts";
import { type FsmAction, type FsmEvent, type FsmState, initialState, step } from "./fsm.ts";
import type { MessageKind } from "./messages.ts";
import { describeNotification, type Notification } from "./notification.ts";
import { MessageParser } from "./parser.ts";
import type {
  BgpPeerConfig,
  BgpRoute,
  BgpSessionOptions,
  NotificationInfo,
  SessionStatus,
  SessionTimers,
} from "./types.ts";
import {
  endOfRib,
  packAnnouncements,
  packWithdrawals,
  routeFingerprint,
  type UpdateContext,
} from "./update-packer.ts";

export type { BgpSessionOptions } from "./types.ts";

const KINDS: readonly MessageKind[] = [
  "open",
  "update",
  "notification",
  "keepalive",
  "routeRefresh",
];
const zeroCounts = (): Record<MessageKind, number> =>
  Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<MessageKind, number>;

/** How long a closing socket may take to flush its last NOTIFICATION before it is destroyed. */
const CLOSE_GRACE_MS = 1000;

export class BgpSession {
  readonly #cfg: BgpPeerConfig;
  readonly #log: BgpSessionOptions["log"];
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #timers: SessionTimers;
  #fsm: FsmState = initialState;
  #socket: Socket | undefined;
  #parser = new MessageParser();
  /** The last socket error, for the reason a connect failed or a connection closed. */
  #socketError: string | undefined;
  readonly #armed = new Map<string, unknown>();
  /** Sockets ended but not yet closed: stop() waits for them. */
  readonly #closing = new Set<Socket>();
  #closed: (() => void)[] = [];
  /** The desired routes by prefix, and what the peer has (prefix → attribute fingerprint). */
  #desired = new Map<string, BgpRoute>();
  readonly #advertised = new Map<string, string>();
  /** Prefixes that cannot go to this peer, with the reasons already logged. */
  readonly #ignored = new Map<string, Set<string>>();
  readonly #listeners = new Set<(s: SessionStatus) => void>();
  #status: SessionStatus;
  readonly #sent = zeroCounts();
  readonly #received = zeroCounts();

  constructor(cfg: BgpPeerConfig, opts: BgpSessionOptions) {
    this.#cfg = cfg;
    this.#log = opts.log.child({ peer: cfg.name });
    this.#now = opts.now ?? Date.now;
    this.#random = opts.random ?? Math.random;
    this.#timers = opts.timers ?? {
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
    };
    this.#status = {
      peer: cfg.name,
      state: "Idle",
      since: this.#now(),
      prefixesSent: 0,
      flaps: 0,
      messagesSent: this.#sent,
      messagesReceived: this.#received,
    };
  }

  /** Connects out (active only, never listens); reconnects with jittered back-off. */
  start(): void {
    this.#run({ type: "start" });
  }

  /**
   * The whole desired set; diffed against what the peer has and sent when Established. A
   * prefix of the other family than the session's is ignored (counted, logged once).
   */
  setRoutes(routes: readonly BgpRoute[]): void {
    const desired = new Map<string, BgpRoute>();
    for (const r of routes) desired.set(r.prefix, r);
    this.#desired = desired;
    // Forget prefixes no longer wanted, so that the log-once memory stays as large as the set.
    for (const p of this.#ignored.keys()) if (!desired.has(p)) this.#ignored.delete(p);
    if (this.#fsm.state === "Established") this.#sync(false);
  }

  status(): SessionStatus {
    return {
      ...this.#status,
      messagesSent: { ...this.#sent },
      messagesReceived: { ...this.#received },
    };
  }

  /** Called on every state change and after routes were sent; returns an unsubscribe. */
  onChange(fn: (s: SessionStatus) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /**
   * Sends a Cease NOTIFICATION (Administrative Shutdown, RFC 9003 text when given), closes
   * the socket, stops reconnecting. Resolves when the socket is closed.
   */
  stop(shutdownText?: string): Promise<void> {
    this.#run({ type: "stop", text: shutdownText });
    if (this.#closing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#closed.push(resolve));
  }

  #run(ev: FsmEvent): void {
    const r = step(this.#cfg, this.#fsm, ev, this.#random());
    this.#fsm = r.state;
    for (const a of r.actions) this.#perform(a);
  }

  #perform(a: FsmAction): void {
    switch (a.type) {
      case "connect":
        this.#connect();
        return;
      case "send":
        this.#send(a.kind, a.bytes);
        if (a.notification !== undefined) this.#noteNotification("sent", a.notification);
        return;
      case "close":
        this.#close();
        return;
      case "arm":
        this.#disarm(a.timer);
        this.#armed.set(
          a.timer,
          this.#timers.setTimeout(() => {
            this.#armed.delete(a.timer);
            this.#run({ type: "timer", timer: a.timer });
          }, a.ms),
        );
        return;
      case "disarm":
        this.#disarm(a.timer);
        return;
      case "state":
        this.#setState(a.state);
        return;
      case "established":
        this.#sync(true);
        return;
      case "resend":
        this.#log.info({ family: a.family }, "bgp route refresh: resending");
        for (const [p] of this.#advertised) {
          if (encodePrefix(p)?.family === a.family) this.#advertised.delete(p);
        }
        this.#sync(false);
        return;
      case "error":
        this.#status.lastError = a.text;
        this.#log.warn({ reason: a.text, state: this.#fsm.state }, "bgp session error");
        return;
      case "notificationReceived":
        this.#noteNotification("received", a.notification);
        return;
      case "updateReceived":
        return;
    }
  }

  #disarm(timer: string): void {
    const h = this.#armed.get(timer);
    if (h === undefined) return;
    this.#timers.clearTimeout(h);
    this.#armed.delete(timer);
  }

  #connect(): void {
    const cfg = this.#cfg;
    this.#parser = new MessageParser();
    this.#socketError = undefined;
    const sock = connect({
      host: cfg.peerAddress,
      port: cfg.peerPort,
      ...(cfg.sourceAddress === undefined ? {} : { localAddress: cfg.sourceAddress }),
    });
    this.#socket = sock;
    sock.setNoDelay(true);
    const current = () => this.#socket === sock;
    sock.on("connect", () => {
      if (!current()) return;
      this.#log.debug({ local: sock.localAddress }, "bgp tcp connected");
      this.#run({ type: "tcpConnected" });
    });
    sock.on("data", (chunk: Buffer) => {
      if (!current()) return;
      for (const m of this.#parser.push(chunk)) {
        if (m.type !== "error") this.#received[m.type]++;
        this.#run({ type: "received", message: m });
        if (!current()) return;
      }
    });
    sock.on("error", (err: Error) => {
      this.#socketError = err.message;
    });
    sock.on("close", () => {
      this.#closing.delete(sock);
      if (current()) {
        this.#socket = undefined;
        const reason = this.#socketError ?? "the peer closed the connection";
        this.#run(
          this.#fsm.state === "Connect"
            ? { type: "tcpFailed", reason: `connect failed: ${reason}` }
            : { type: "tcpClosed", reason },
        );
      }
      this.#settleStop();
    });
  }

  #settleStop(): void {
    if (this.#closing.size > 0 || this.#socket !== undefined) return;
    const waiting = this.#closed;
    this.#closed = [];
    for (const resolve of waiting) resolve();
  }

  #send(kind: MessageKind, bytes: Uint8Array): void {
    const sock = this.#socket;
    if (sock === undefined || sock.destroyed || sock.writableEnded) return;
    sock.write(bytes);
    this.#sent[kind]++;
  }

  /** Ends the socket after what was written (a NOTIFICATION) is flushed. */
  #close(): void {
    const sock = this.#socket;
    this.#socket = undefined;
    if (sock === undefined || sock.destroyed) return;
    this.#closing.add(sock);
    // A connection still being set up has nothing to flush.
    if (sock.connecting) {
      sock.destroy();
      return;
    }
    sock.end();
    const t = setTimeout(() => sock.destroy(), CLOSE_GRACE_MS);
    t.unref();
    sock.once("close", () => clearTimeout(t));
  }

  #noteNotification(direction: NotificationInfo["direction"], n: Notification): void {
    const info: NotificationInfo = {
      direction,
      code: n.code,
      subcode: n.subcode,
      text: describeNotification(n),
      at: this.#now(),
    };
    this.#status.lastNotification = info;
    this.#log.warn(
      { direction, code: n.code, subcode: n.subcode, text: info.text },
      `bgp notification ${direction}`,
    );
  }

  #setState(state: SessionStatus["state"]): void {
    const from = this.#status.state;
    if (from === state) return;
    const s = this.#status;
    s.state = state;
    s.since = this.#now();
    if (from === "Established") {
      s.flaps++;
      this.#advertised.clear();
      s.prefixesSent = 0;
      s.negotiatedHoldTime = undefined;
      s.families = undefined;
    }
    if (state === "Established") {
      const n = this.#fsm.negotiated;
      s.establishedAt = s.since;
      s.negotiatedHoldTime = n?.holdTime;
      s.families = n?.families;
    }
    this.#log.info(
      {
        from,
        to: state,
        ...(state === "Established" ? { peerASN: this.#fsm.negotiated?.peerASN } : {}),
      },
      "bgp session state",
    );
    this.#emit();
  }

  #emit(): void {
    const s = this.status();
    for (const fn of this.#listeners) fn(s);
  }

  #context(): UpdateContext | undefined {
    const n = this.#fsm.negotiated;
    const local = this.#socket?.localAddress?.replace(/^::ffff:(?=\d+\.)/, "");
    if (n === undefined || local === undefined) return undefined;
    const family: Family = local.includes(":") ? "ipv6-unicast" : "ipv4-unicast";
    return {
      myASN: this.#cfg.myASN,
      internal: n.internal,
      fourOctet: n.fourOctet,
      nextHops: { [family]: [local] },
    };
  }

  /** Sends what the peer lacks and withdraws what it should no longer have. */
  #sync(initial: boolean): void {
    const ctx = this.#context();
    const families = this.#fsm.negotiated?.families ?? [];
    if (ctx === undefined) return;
    let updates = 0;
    let announced = 0;
    let withdrawn = 0;
    for (const family of families) {
      const gone = [...this.#advertised.keys()].filter(
        (p) => !this.#desired.has(p) && encodePrefix(p)?.family === family,
      );
      for (const m of packWithdrawals(family, gone)) {
        this.#send("update", m);
        updates++;
      }
      for (const p of gone) this.#advertised.delete(p);
      withdrawn += gone.length;
      const changed = [...this.#desired.values()].filter(
        (r) =>
          encodePrefix(r.prefix)?.family === family &&
          this.#advertised.get(r.prefix) !== routeFingerprint(r, ctx),
      );
      const packed = packAnnouncements(family, changed, ctx);
      for (const m of packed.messages) {
        this.#send("update", m);
        updates++;
      }
      const skipped = new Set(packed.skipped.map((s) => s.prefix));
      for (const s of packed.skipped) this.#ignore(s.prefix, s.reason);
      for (const r of changed) {
        if (!skipped.has(r.prefix)) this.#advertised.set(r.prefix, routeFingerprint(r, ctx));
      }
      announced += changed.length - skipped.size;
      if (initial) {
        this.#send("update", endOfRib(family));
        updates++;
      }
    }
    for (const r of this.#desired.values()) {
      const f = encodePrefix(r.prefix)?.family;
      if (f === undefined) this.#ignore(r.prefix, "not a prefix");
      else if (!families.includes(f)) this.#ignore(r.prefix, `the session does not carry ${f}`);
    }
    this.#status.prefixesSent = this.#advertised.size;
    this.#status.prefixesIgnored = [...this.#desired.keys()].filter(
      (p) => !this.#advertised.has(p),
    ).length;
    if (updates > 0) {
      this.#log.info({ announced, withdrawn, updates, initial }, "bgp routes sent");
    }
    this.#emit();
  }

  /** Logs a prefix that cannot go to this peer, once per prefix and reason. */
  #ignore(prefix: string, reason: string): void {
    let reasons = this.#ignored.get(prefix);
    if (reasons === undefined) {
      reasons = new Set();
      this.#ignored.set(prefix, reasons);
    }
    if (reasons.has(reason)) return;
    reasons.add(reason);
    this.#log.warn({ prefix, reason }, "bgp prefix not advertised");
  }
}
