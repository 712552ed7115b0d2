// The TCP edge of a BGP session: one active connection to a peer over node:net. It feeds
// received bytes to the parser and events to the pure FSM (fsm.ts), performs the FSM's
// actions with a socket and timers, and keeps the peer's copy of the routes equal to the
// desired set: differences go out as packed UPDATEs, the whole set again after every
// (re)connect and on ROUTE-REFRESH.
import { connect, type Socket } from "node:net";
import type { Logger } from "pino";
import { formatIP, parseIP } from "../net/address.ts";
import { forgetFamily, planSync, type SyncPlan } from "./adj-rib-out.ts";
import { type FsmAction, type FsmEvent, type FsmState, initialState, step } from "./fsm.ts";
import type { MessageKind } from "./messages.ts";
import { describeNotification, type Notification } from "./notification.ts";
import { MessageParser } from "./parser.ts";
import { peerConfigProblems } from "./peer-config.ts";
import { addonSocket } from "./tcp-socket.ts";
import type { BgpPeerConfig, BgpRoute, NotificationInfo, SessionStatus } from "./types.ts";
import type { UpdateContext } from "./update-packer.ts";

/** Options of a BgpSession. */
export interface BgpSessionOptions {
  log: Logger;
  /** Injected for tests; defaults to Date.now / real timers. */
  now?: () => number;
  /** Additive: the reconnect jitter's source in [0, 1); defaults to Math.random. */
  random?: () => number;
  /** Additive: timer functions for tests; default to the global setTimeout/clearTimeout. */
  timers?: SessionTimers;
}

/** The timer functions a BgpSession uses. */
export interface SessionTimers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

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
  #advertised = new Map<string, string>();
  /** Prefixes that cannot go to this peer, with the reasons already logged. */
  readonly #ignored = new Map<string, Set<string>>();
  readonly #listeners = new Set<(s: SessionStatus) => void>();
  #status: SessionStatus;
  readonly #sent = zeroCounts();
  readonly #received = zeroCounts();
  readonly #problems: string[];
  /**
   * No setRoutes yet: the desired set is unknown, not empty. The initial table and its
   * End-of-RIB wait for it, because a router in graceful restart treats End-of-RIB as "the
   * table is complete" and drops every stale route not sent before it.
   */
  #routesGiven = false;
  /** Established before the first setRoutes: the initial table is still owed. */
  #initialPending = false;

  constructor(cfg: BgpPeerConfig, opts: BgpSessionOptions) {
    this.#cfg = cfg;
    this.#problems = peerConfigProblems(cfg);
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

  /**
   * Connects out (active only, never listens); reconnects with jittered back-off. A config
   * that fails peerConfigProblems never connects: its problems are the status's lastError.
   */
  start(): void {
    if (this.#problems.length > 0) {
      this.#status.lastError = `invalid peer configuration: ${this.#problems.join("; ")}`;
      this.#log.error({ problems: this.#problems }, "bgp peer configuration refused");
      this.#emit();
      return;
    }
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
    this.#routesGiven = true;
    if (this.#fsm.state === "Established") {
      const initial = this.#initialPending;
      this.#initialPending = false;
      this.#sync(initial);
    }
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
   * the socket, stops reconnecting. Resolves when the socket is closed. `restarting`: the
   * speaker comes back within the restart time; a session with graceful restart negotiated
   * closes without the Cease, so that the router keeps its routes (fsm.ts, "stop").
   */
  stop(shutdownText?: string, opts: { restarting?: boolean } = {}): Promise<void> {
    this.#run({ type: "stop", text: shutdownText, restarting: opts.restarting === true });
    if (this.#closing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#closed.push(resolve));
  }

  /**
   * Additive: BFD declared the peer down (its packets stopped). Ends the session at once
   * with a Cease (BFD Down, RFC 9384) instead of waiting for the hold timer, and reconnects
   * with the usual back-off; a session not yet talking just drops its connection attempt.
   */
  bfdDown(reason: string): void {
    this.#run({ type: "bfdDown", reason });
  }

  #run(ev: FsmEvent): void {
    try {
      const r = step(this.#cfg, this.#fsm, ev, this.#random());
      this.#fsm = r.state;
      for (const a of r.actions) this.#perform(a);
    } catch (err) {
      // A bug here must cost one session a reconnect, never the speaker process: dropping
      // the connection makes the FSM go through Idle and back-off as for any lost peer.
      const text = `internal error: ${(err as Error).message}`;
      this.#status.lastError = text;
      this.#log.error({ err: (err as Error).stack, event: ev.type }, "bgp session internal error");
      this.#socket?.destroy();
    }
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
        if (this.#routesGiven) this.#sync(true);
        else this.#initialPending = true;
        return;
      case "resend":
        this.#log.info({ family: a.family }, "bgp route refresh: resending");
        this.#advertised = forgetFamily(this.#advertised, a.family);
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
    let sock: Socket;
    if (cfg.password === undefined && cfg.ttlSecurityHops === undefined) {
      sock = connect({
        host: cfg.peerAddress,
        port: cfg.peerPort,
        ...(cfg.sourceAddress === undefined ? {} : { localAddress: cfg.sourceAddress }),
      });
    } else {
      // TCP-MD5 and GTSM: the key and TTLs must be on the socket before the SYN (tcp-socket.ts).
      try {
        sock = addonSocket({
          peerAddress: cfg.peerAddress,
          ...(cfg.password === undefined ? {} : { password: cfg.password }),
          ...(cfg.sourceAddress === undefined ? {} : { sourceAddress: cfg.sourceAddress }),
          ...(cfg.ttlSecurityHops === undefined ? {} : { ttlSecurityHops: cfg.ttlSecurityHops }),
        });
      } catch (err) {
        const what = cfg.password === undefined ? "GTSM" : "TCP-MD5";
        this.#socketFailed(`cannot create the ${what} socket: ${(err as Error).message}`);
        return;
      }
      sock.connect(cfg.peerPort, cfg.peerAddress);
    }
    this.#socket = sock;
    sock.setNoDelay(true);
    const current = () => this.#socket === sock;
    sock.on("connect", () => {
      if (!current()) return;
      this.#log.debug({ local: sock.localAddress }, "bgp tcp connected");
      const local = parseIP(sock.localAddress?.replace(/^::ffff:(?=\d+\.)/, "") ?? "");
      if (local !== undefined) this.#status.localAddress = formatIP(local);
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

  /**
   * A connect attempt that failed before any socket existed: reported like a refused
   * connection (back-off, status), once the current FSM step has finished.
   */
  #socketFailed(reason: string): void {
    this.#log.warn({ reason }, "bgp connect failed");
    setImmediate(() => {
      if (this.#socket === undefined && this.#fsm.state === "Connect")
        this.#run({ type: "tcpFailed", reason: `connect failed: ${reason}` });
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
      this.#initialPending = false;
      this.#advertised.clear();
      s.prefixesSent = 0;
      s.negotiatedHoldTime = undefined;
      s.families = undefined;
      s.gracefulRestart = undefined;
    }
    if (state === "Established") {
      const n = this.#fsm.negotiated;
      s.establishedAt = s.since;
      s.negotiatedHoldTime = n?.holdTime;
      s.families = n?.families;
      s.gracefulRestart = n?.gracefulRestart;
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
    if (n === undefined) return undefined;
    // The next hop is the session's own address (a zone-scoped link-local one cannot be: its
    // routes are then reported as not advertised, never sent with a wrong next hop).
    const local = parseIP(this.#socket?.localAddress?.replace(/^::ffff:(?=\d+\.)/, "") ?? "");
    const nextHops: UpdateContext["nextHops"] = {};
    if (local !== undefined) {
      nextHops[local.family === "IPv4" ? "ipv4-unicast" : "ipv6-unicast"] = [formatIP(local)];
    }
    return { myASN: this.#cfg.myASN, internal: n.internal, fourOctet: n.fourOctet, nextHops };
  }

  /** Sends what the peer lacks and withdraws what it should no longer have. */
  #sync(initial: boolean): void {
    const ctx = this.#context();
    const n = this.#fsm.negotiated;
    if (ctx === undefined || n === undefined) return;
    const plan = planSync(this.#desired, this.#advertised, n.families, ctx, initial);
    for (const m of plan.messages) this.#send("update", m);
    this.#advertised = plan.advertised;
    this.#ignore(plan.ignored);
    this.#status.prefixesSent = this.#advertised.size;
    this.#status.prefixesIgnored = new Set(plan.ignored.map((i) => i.prefix)).size;
    if (plan.messages.length > 0) {
      this.#log.info(
        {
          announced: plan.announced,
          withdrawn: plan.withdrawn,
          updates: plan.messages.length,
          initial,
        },
        "bgp routes sent",
      );
    }
    this.#emit();
  }

  /**
   * Logs the prefixes that cannot go to this peer, once per prefix and reason: one line per
   * reason with a count and a few examples (a dual-stack cluster has a whole family of them).
   */
  #ignore(ignored: SyncPlan["ignored"]): void {
    const fresh = new Map<string, string[]>();
    // A family the session does not carry is expected with one session per family (a
    // dual-stack Service): info, not a warning on every new Service. The status still counts
    // the prefixes (prefixesIgnored).
    const otherFamily = new Set<string>();
    for (const { prefix, reason, otherFamily: other } of ignored) {
      if (other) otherFamily.add(reason);
      let reasons = this.#ignored.get(prefix);
      if (reasons === undefined) {
        reasons = new Set();
        this.#ignored.set(prefix, reasons);
      }
      if (reasons.has(reason)) continue;
      reasons.add(reason);
      const list = fresh.get(reason) ?? [];
      list.push(prefix);
      fresh.set(reason, list);
    }
    for (const [reason, prefixes] of fresh) {
      const line = { reason, count: prefixes.length, prefixes: prefixes.slice(0, 5) };
      if (otherFamily.has(reason)) this.#log.info(line, "bgp prefixes not advertised");
      else this.#log.warn(line, "bgp prefixes not advertised");
    }
  }
}
