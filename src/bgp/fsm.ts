// The BGP finite-state machine (RFC 4271 §8) for an active-only session: Idle → Connect →
// OpenSent → OpenConfirm → Established. There is no listener, so no Active state and no
// connection collision. A pure function from (state, event) to (state, actions); the
// session (session.ts) performs the actions with a socket and real timers.
import type { Capabilities, Family } from "./capabilities.ts";
import {
  asn16Of,
  BGP_VERSION,
  encodeKeepalive,
  encodeNotification,
  encodeOpen,
  type MessageKind,
  type OpenMessage,
} from "./messages.ts";
import {
  CEASE_ADMINISTRATIVE_SHUTDOWN,
  CEASE_BFD_DOWN,
  describeNotification,
  NOTIFICATION_CEASE,
  NOTIFICATION_FSM_ERROR,
  NOTIFICATION_HOLD_TIMER_EXPIRED,
  NOTIFICATION_OPEN_ERROR,
  type Notification,
  shutdownData,
} from "./notification.ts";
import type { ParseResult } from "./parser.ts";
import { connectTimeoutReason, holdExpiredReason, noOpenReason } from "./peer-config.ts";
import type { BgpPeerConfig, SessionState } from "./types.ts";

/** openWait (additive): with GTSM, how long OpenSent waits before saying why (noOpenReason). */
export type TimerName = "connectRetry" | "connect" | "hold" | "keepalive" | "openWait";
const TIMERS: readonly TimerName[] = ["connectRetry", "connect", "hold", "keepalive", "openWait"];

/** What was agreed in the OPEN exchange. */
export interface Negotiated {
  peerASN: number;
  peerRouterID: string;
  internal: boolean;
  /** Seconds; 0 = no hold timer and no keepalives. */
  holdTime: number;
  /** Seconds between our KEEPALIVEs; 0 = none. */
  keepaliveTime: number;
  fourOctet: boolean;
  routeRefresh: boolean;
  /** Families both sides announced. */
  families: Family[];
  /**
   * Additive: we offered graceful restart and the peer sent a Graceful Restart capability
   * (it can act as the RFC 4724 "receiving speaker" and keep our routes while we restart).
   */
  gracefulRestart?: boolean;
}

export interface FsmState {
  state: SessionState;
  /** Not started, or stopped: no reconnecting. */
  stopped: boolean;
  /** Failed attempts since the last Established: the back-off exponent. */
  failures: number;
  negotiated?: Negotiated;
  /** Additive: the session has been Established once; until then our OPEN sets the R bit. */
  establishedOnce?: boolean;
}

export const initialState: FsmState = { state: "Idle", stopped: true, failures: 0 };

export type FsmEvent =
  | { type: "start" }
  /**
   * `restarting` (additive): the speaker stops only to start again within the restart time.
   * An Established session with graceful restart negotiated then closes without a
   * NOTIFICATION, so that the router keeps its routes as stale (RFC 4724 §4.2); any other
   * session still gets the Cease.
   */
  | { type: "stop"; text?: string; restarting?: boolean }
  | { type: "tcpConnected" }
  | { type: "tcpFailed"; reason: string }
  | { type: "tcpClosed"; reason: string }
  | { type: "received"; message: ParseResult }
  | { type: "timer"; timer: TimerName }
  /** Additive: BFD declared the peer down; the session ends at once and reconnects. */
  | { type: "bfdDown"; reason: string };

export type FsmAction =
  | { type: "connect" }
  | { type: "send"; kind: MessageKind; bytes: Uint8Array; notification?: Notification }
  | { type: "close" }
  | { type: "arm"; timer: TimerName; ms: number }
  | { type: "disarm"; timer: TimerName }
  | { type: "state"; state: SessionState }
  /** Became Established: send the whole table and End-of-RIB. */
  | { type: "established" }
  /** The peer asked for a family again (ROUTE-REFRESH). */
  | { type: "resend"; family: Family }
  | { type: "error"; text: string }
  | { type: "notificationReceived"; notification: Notification }
  /** An UPDATE arrived: counted, never acted on. */
  | { type: "updateReceived" };

/** RFC 4271 §8: the hold timer while waiting for the OPEN ("large value", 4 minutes). */
export const OPEN_HOLD_MS = 240_000;

/**
 * With ttlSecurityHops, OpenSent waits this long (the configured hold time, 90 s when it is
 * 0) for the router's OPEN before the status says a GTSM mismatch is the likely cause; the
 * session itself still waits OPEN_HOLD_MS, as RFC 4271 says.
 */
export function openWaitSeconds(cfg: BgpPeerConfig): number {
  return cfg.holdTime > 0 ? cfg.holdTime : 90;
}
const RETRY_BASE_MS = 1000;
const RETRY_CAP_MS = 30_000;

/** Jittered exponential back-off: [d/2, d) with d = 1 s · 2^failures, at most 30 s. */
export function retryDelayMs(failures: number, random: number): number {
  const d = Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** Math.min(failures, 16));
  return Math.round(d * (0.5 + 0.5 * Math.min(Math.max(random, 0), 1)));
}

/** The family the session's transport (peer address) carries. */
export function sessionFamily(cfg: BgpPeerConfig): Family {
  return cfg.peerAddress.includes(":") ? "ipv6-unicast" : "ipv4-unicast";
}

/**
 * Our OPEN. `restarting` (the R bit of RFC 4724 §3) is set until the session first reaches
 * Established: a new session object is a speaker that just started (process start, or a
 * peer whose settings changed), and the RFC asks a restarted speaker to set it so that the
 * router does not hold back its own routes waiting for our End-of-RIB. Later reconnects of
 * the same session leave it clear: the speaker did not restart, only the TCP session did.
 */
export function ourOpen(cfg: BgpPeerConfig, restarting = false): OpenMessage {
  const capabilities: Capabilities = {
    families: [sessionFamily(cfg)],
    routeRefresh: true,
    endOfRibAware: true,
    fourOctetAS: cfg.myASN,
  };
  if (cfg.gracefulRestartTime !== undefined) {
    // F (forwarding state preserved) is true for our routes: the data path for a Service IP
    // is kube-proxy's (ipMode VIP) or the speaker's nftables table (ipMode Proxy), both
    // kernel state that outlives the speaker process; the restarted speaker's Forwarder
    // replaces the table in one transaction (src/dataplane/forwarder.ts). The N bit of
    // RFC 8538 is never offered: a hold-timer expiry or BFD Down must drop a dead node fast.
    capabilities.gracefulRestart = {
      restarting,
      restartTime: cfg.gracefulRestartTime,
      families: [{ family: sessionFamily(cfg), forwardingPreserved: true }],
    };
  }
  return {
    version: BGP_VERSION,
    asn16: asn16Of(cfg.myASN),
    holdTime: cfg.holdTime,
    routerID: cfg.routerID,
    capabilities,
  };
}

/** The peer's OPEN checked against the configuration: what was agreed, or the error to send. */
export function negotiate(
  cfg: BgpPeerConfig,
  open: OpenMessage,
): Negotiated | { error: Notification; reason: string } {
  const openError = (subcode: number, reason: string) => ({
    error: { code: NOTIFICATION_OPEN_ERROR, subcode, data: new Uint8Array(0) },
    reason,
  });
  const peerASN = open.capabilities.fourOctetAS ?? open.asn16;
  const internal = peerASN === cfg.myASN;
  if (cfg.dynamicASN === "internal" && !internal) {
    return openError(2, `peer AS ${peerASN}, expected an internal peer (AS ${cfg.myASN})`);
  }
  if (cfg.dynamicASN === "external" && internal) {
    return openError(2, `peer AS ${peerASN}, expected an external peer (not AS ${cfg.myASN})`);
  }
  if (cfg.dynamicASN === undefined && peerASN !== cfg.peerASN) {
    return openError(2, `peer AS ${peerASN}, expected AS ${cfg.peerASN}`);
  }
  if (open.holdTime === 1 || open.holdTime === 2) {
    return openError(6, `peer hold time ${open.holdTime} s (must be 0 or at least 3)`);
  }
  if (internal && open.routerID === cfg.routerID) {
    return openError(3, `internal peer has our BGP Identifier ${cfg.routerID}`);
  }
  const holdTime = Math.min(cfg.holdTime, open.holdTime);
  const keepaliveTime =
    holdTime === 0
      ? 0
      : Math.max(
          1,
          Math.min(cfg.keepaliveTime > 0 ? cfg.keepaliveTime : holdTime, Math.floor(holdTime / 3)),
        );
  const ours = ourOpen(cfg).capabilities.families;
  return {
    peerASN,
    peerRouterID: open.routerID,
    internal,
    holdTime,
    keepaliveTime,
    fourOctet: open.capabilities.fourOctetAS !== undefined,
    routeRefresh: open.capabilities.routeRefresh,
    families: ours.filter((f) => open.capabilities.families.includes(f)),
    gracefulRestart:
      cfg.gracefulRestartTime !== undefined && open.capabilities.gracefulRestart !== undefined,
  };
}

function notify(n: Notification): FsmAction {
  return { type: "send", kind: "notification", bytes: encodeNotification(n), notification: n };
}

/** Leaves the session: optional NOTIFICATION, close, timers off, Idle, retry unless stopped. */
function down(
  s: FsmState,
  random: number,
  reason: string | undefined,
  notification?: Notification,
): { state: FsmState; actions: FsmAction[] } {
  const actions: FsmAction[] = [];
  if (reason !== undefined) actions.push({ type: "error", text: reason });
  if (notification !== undefined) actions.push(notify(notification));
  if (s.state !== "Idle") actions.push({ type: "close" });
  for (const t of TIMERS) actions.push({ type: "disarm", timer: t });
  actions.push({ type: "state", state: "Idle" });
  const once = s.establishedOnce ? { establishedOnce: true } : {};
  if (s.stopped)
    return { state: { state: "Idle", stopped: true, failures: s.failures, ...once }, actions };
  actions.push({ type: "arm", timer: "connectRetry", ms: retryDelayMs(s.failures, random) });
  return { state: { state: "Idle", stopped: false, failures: s.failures + 1, ...once }, actions };
}

function connect(cfg: BgpPeerConfig, s: FsmState): { state: FsmState; actions: FsmAction[] } {
  return {
    state: {
      state: "Connect",
      stopped: false,
      failures: s.failures,
      ...(s.establishedOnce ? { establishedOnce: true } : {}),
    },
    actions: [
      { type: "state", state: "Connect" },
      { type: "arm", timer: "connect", ms: cfg.connectTime * 1000 },
      { type: "connect" },
    ],
  };
}

const unexpectedSubcode: Partial<Record<SessionState, number>> = {
  OpenSent: 1,
  OpenConfirm: 2,
  Established: 3,
};

/** One transition. `random` in [0, 1) jitters the reconnect delay. */
export function step(
  cfg: BgpPeerConfig,
  s: FsmState,
  ev: FsmEvent,
  random: number,
): { state: FsmState; actions: FsmAction[] } {
  const same = { state: s, actions: [] as FsmAction[] };
  switch (ev.type) {
    case "start":
      if (!s.stopped) return same;
      return connect(cfg, { ...s, stopped: false, failures: 0 });
    case "stop": {
      const stopped = { ...s, stopped: true };
      if (ev.restarting && s.state === "Established" && s.negotiated?.gracefulRestart)
        return down(stopped, random, undefined);
      const talking =
        s.state === "OpenSent" || s.state === "OpenConfirm" || s.state === "Established";
      const cease: Notification = {
        code: NOTIFICATION_CEASE,
        subcode: CEASE_ADMINISTRATIVE_SHUTDOWN,
        data: ev.text === undefined ? new Uint8Array(0) : shutdownData(ev.text),
      };
      return down(stopped, random, undefined, talking ? cease : undefined);
    }
    case "tcpConnected":
      if (s.state !== "Connect") return same;
      return {
        state: { ...s, state: "OpenSent" },
        actions: [
          { type: "disarm", timer: "connect" },
          { type: "send", kind: "open", bytes: encodeOpen(ourOpen(cfg, !s.establishedOnce)) },
          { type: "arm", timer: "hold", ms: OPEN_HOLD_MS },
          ...(cfg.ttlSecurityHops === undefined
            ? []
            : [{ type: "arm", timer: "openWait", ms: openWaitSeconds(cfg) * 1000 } as const]),
          { type: "state", state: "OpenSent" },
        ],
      };
    case "tcpFailed":
      if (s.state !== "Connect") return same;
      return down(s, random, ev.reason);
    case "tcpClosed":
      if (s.state === "Idle") return same;
      return down(s, random, ev.reason);
    case "bfdDown": {
      if (s.state === "Idle") return same;
      const talking =
        s.state === "OpenSent" || s.state === "OpenConfirm" || s.state === "Established";
      const cease: Notification = {
        code: NOTIFICATION_CEASE,
        subcode: CEASE_BFD_DOWN,
        data: new Uint8Array(0),
      };
      return down(s, random, `BFD down: ${ev.reason}`, talking ? cease : undefined);
    }
    case "timer":
      return onTimer(cfg, s, ev.timer, random);
    case "received":
      return onMessage(cfg, s, ev.message, random);
  }
}

function onTimer(
  cfg: BgpPeerConfig,
  s: FsmState,
  timer: TimerName,
  random: number,
): { state: FsmState; actions: FsmAction[] } {
  const same = { state: s, actions: [] as FsmAction[] };
  switch (timer) {
    case "connectRetry":
      return s.state === "Idle" && !s.stopped ? connect(cfg, s) : same;
    case "connect":
      return s.state === "Connect" ? down(s, random, connectTimeoutReason(cfg)) : same;
    case "hold":
      if (s.state === "Idle" || s.state === "Connect") return same;
      return down(s, random, holdExpiredReason(cfg), {
        code: NOTIFICATION_HOLD_TIMER_EXPIRED,
        subcode: 0,
        data: new Uint8Array(0),
      });
    case "openWait":
      if (s.state !== "OpenSent") return same;
      return {
        state: s,
        actions: [{ type: "error", text: noOpenReason(cfg, openWaitSeconds(cfg)) }],
      };
    case "keepalive": {
      const k = s.negotiated?.keepaliveTime ?? 0;
      if ((s.state !== "OpenConfirm" && s.state !== "Established") || k === 0) return same;
      return {
        state: s,
        actions: [
          { type: "send", kind: "keepalive", bytes: encodeKeepalive() },
          { type: "arm", timer: "keepalive", ms: k * 1000 },
        ],
      };
    }
  }
}

function restartHold(s: FsmState): FsmAction[] {
  const h = s.negotiated?.holdTime ?? 0;
  return h === 0 ? [] : [{ type: "arm", timer: "hold", ms: h * 1000 }];
}

function onMessage(
  cfg: BgpPeerConfig,
  s: FsmState,
  m: ParseResult,
  random: number,
): { state: FsmState; actions: FsmAction[] } {
  if (s.state === "Idle" || s.state === "Connect") return { state: s, actions: [] };
  if (m.type === "error") return down(s, random, m.error.reason, m.error.error);
  if (m.type === "notification") {
    const r = down(s, random, `peer sent ${describeNotification(m.notification)}`);
    r.actions.unshift({ type: "notificationReceived", notification: m.notification });
    return r;
  }
  const unexpected = () =>
    down(s, random, `unexpected ${m.type} in ${s.state}`, {
      code: NOTIFICATION_FSM_ERROR,
      subcode: unexpectedSubcode[s.state] ?? 0,
      data: new Uint8Array(0),
    });
  if (s.state === "OpenSent") {
    if (m.type !== "open") return unexpected();
    const n = negotiate(cfg, m.open);
    if ("error" in n) return down(s, random, n.reason, n.error);
    const next: FsmState = { ...s, state: "OpenConfirm", negotiated: n };
    const actions: FsmAction[] = [
      { type: "send", kind: "keepalive", bytes: encodeKeepalive() },
      ...(n.holdTime === 0 ? [{ type: "disarm", timer: "hold" } as const] : restartHold(next)),
      { type: "state", state: "OpenConfirm" },
    ];
    if (n.keepaliveTime > 0) {
      actions.push({ type: "arm", timer: "keepalive", ms: n.keepaliveTime * 1000 });
    }
    return { state: next, actions };
  }
  if (s.state === "OpenConfirm") {
    if (m.type !== "keepalive") return unexpected();
    return {
      state: { ...s, state: "Established", failures: 0, establishedOnce: true },
      actions: [
        ...restartHold(s),
        { type: "state", state: "Established" },
        { type: "established" },
      ],
    };
  }
  // Established
  if (m.type === "open") return unexpected();
  const actions = restartHold(s);
  if (m.type === "update") actions.push({ type: "updateReceived" });
  if (m.type === "routeRefresh" && m.family !== undefined) {
    if (s.negotiated?.families.includes(m.family))
      actions.push({ type: "resend", family: m.family });
  }
  return { state: s, actions };
}
