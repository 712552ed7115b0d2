// The BFD session state machine (RFC 5880 §6.2, §6.8; single hop, asynchronous mode, no
// echo, no authentication): AdminDown / Down / Init / Up, timers negotiated with the peer,
// slow transmission (>= 1 s) while not Up, Poll/Final when our timers change, detection.
// A pure function from (state, event) to (state, actions); the edge (udp.ts) performs the
// actions with a UDP socket and real timers.
import {
  type BfdPacket,
  type BfdState,
  DIAG_ADMIN_DOWN,
  DIAG_DETECTION_TIME_EXPIRED,
  DIAG_NEIGHBOR_SIGNALED_DOWN,
  DIAG_NONE,
} from "./packet.ts";

/** The timers of a session as a user configures them (MetalLB's BFDProfile: milliseconds). */
export interface BfdTimers {
  /** How often we would like to send when Up. */
  desiredMinTxMs: number;
  /** How often we can receive: the peer sends no faster. */
  requiredMinRxMs: number;
  /** Packets missed before the peer declares us down (and we it). */
  detectMultiplier: number;
}

export interface BfdSessionConfig extends BfdTimers {
  /** bfd.LocalDiscr: nonzero, unique among this system's sessions. */
  localDiscriminator: number;
  /** Send nothing until the peer has spoken (RFC 5880 §6.1 passive role). */
  passive?: boolean;
}

export interface BfdSession {
  state: BfdState;
  /** bfd.LocalDiag: why the session last left Up (or was stopped). */
  diag: number;
  timers: BfdTimers;
  remoteDiscr: number;
  remoteState: BfdState;
  /** µs; RFC 5880's initial value is 1. 0 = the peer wants no periodic packets. */
  remoteMinRxUs: number;
  /** µs; the peer's last Desired Min TX, 0 until it spoke. */
  remoteDesiredMinTxUs: number;
  remoteDetectMult: number;
  /** A Poll Sequence runs: periodic packets carry P until a Final arrives. */
  pollActive: boolean;
  /** µs: the Desired Min TX our transmit interval uses (an increase waits for the Final). */
  txInUseUs: number;
  /** The periodic transmit timer is armed. */
  txArmed: boolean;
}

export type BfdTimer = "tx" | "detect";

export type BfdEvent =
  | { type: "start" }
  | { type: "stop" }
  | { type: "received"; packet: BfdPacket }
  | { type: "timer"; timer: BfdTimer }
  | { type: "configure"; timers: BfdTimers };

export type BfdAction =
  | { type: "send"; packet: BfdPacket }
  | { type: "arm"; timer: BfdTimer; ms: number }
  | { type: "disarm"; timer: BfdTimer }
  | { type: "state"; from: BfdState; to: BfdState; diag: number };

/** RFC 5880 §6.8.3: while not Up, Desired Min TX is at least one second. */
export const SLOW_TX_US = 1_000_000;

export function initialSession(cfg: BfdSessionConfig): BfdSession {
  const timers = {
    desiredMinTxMs: cfg.desiredMinTxMs,
    requiredMinRxMs: cfg.requiredMinRxMs,
    detectMultiplier: cfg.detectMultiplier,
  };
  return {
    state: "AdminDown",
    diag: DIAG_NONE,
    timers,
    remoteDiscr: 0,
    remoteState: "Down",
    remoteMinRxUs: 1,
    remoteDesiredMinTxUs: 0,
    remoteDetectMult: 0,
    pollActive: false,
    txInUseUs: advertisedTxUs("AdminDown", timers),
    txArmed: false,
  };
}

/** The Desired Min TX we announce: the configured one when Up, else at least 1 s. */
export function advertisedTxUs(state: BfdState, t: BfdTimers): number {
  const us = t.desiredMinTxMs * 1000;
  return state === "Up" ? us : Math.max(us, SLOW_TX_US);
}

/** µs between our periodic packets (before jitter): max(our Desired Min TX, their Required Min RX). */
export function txIntervalUs(s: BfdSession): number {
  return Math.max(s.txInUseUs, s.remoteMinRxUs);
}

/** µs without a packet before the peer is down: their mult × max(our min RX, their min TX). */
export function detectionTimeUs(s: BfdSession): number {
  return s.remoteDetectMult * Math.max(s.timers.requiredMinRxMs * 1000, s.remoteDesiredMinTxUs);
}

/** RFC 5880 §6.8.7 jitter: 75–100 % of the interval, 75–90 % with a detect multiplier of 1. */
export function jitteredMs(intervalUs: number, detectMult: number, random: number): number {
  const r = Math.min(Math.max(random, 0), 1);
  const share = detectMult === 1 ? 0.75 + 0.15 * r : 0.75 + 0.25 * r;
  return (intervalUs * share) / 1000;
}

function transmitting(cfg: BfdSessionConfig, s: BfdSession): boolean {
  if (s.state === "AdminDown" || s.remoteMinRxUs === 0) return false;
  return !cfg.passive || s.remoteDiscr !== 0;
}

export function packetOf(
  cfg: BfdSessionConfig,
  s: BfdSession,
  flags: { poll?: boolean; final?: boolean } = {},
): BfdPacket {
  return {
    diag: s.diag,
    state: s.state,
    poll: flags.poll ?? false,
    final: flags.final ?? false,
    controlPlaneIndependent: false,
    demand: false,
    detectMult: s.timers.detectMultiplier,
    myDiscriminator: cfg.localDiscriminator,
    yourDiscriminator: s.remoteDiscr,
    desiredMinTxUs: advertisedTxUs(s.state, s.timers),
    requiredMinRxUs: s.timers.requiredMinRxMs * 1000,
    requiredMinEchoRxUs: 0,
  };
}

type Step = { state: BfdSession; actions: BfdAction[] };

/**
 * Our announced timers changed (a state change to or from Up, or a new configuration):
 * start a Poll Sequence if there is a peer to answer it; an increase of the Desired Min TX
 * while Up takes effect only at the Final (§6.8.3), everything else at once.
 */
function timersChanged(s: BfdSession, before: { txUs: number; rxUs: number }): BfdSession {
  const txUs = advertisedTxUs(s.state, s.timers);
  const rxUs = s.timers.requiredMinRxMs * 1000;
  if (txUs === before.txUs && rxUs === before.rxUs) return s;
  const holdOld = s.state === "Up" && txUs > s.txInUseUs;
  return {
    ...s,
    pollActive: s.pollActive || s.remoteDiscr !== 0,
    txInUseUs: holdOld ? s.txInUseUs : txUs,
  };
}

/** Sends now and (re)arms the periodic timer, or stops it when nothing may be sent. */
function transmitNow(cfg: BfdSessionConfig, s: BfdSession, random: number, final: boolean): Step {
  if (!transmitting(cfg, s)) {
    const actions: BfdAction[] = s.txArmed ? [{ type: "disarm", timer: "tx" }] : [];
    // A Final is owed even when periodic packets are not (passive, or a peer at rx 0).
    if (final && s.state !== "AdminDown") {
      actions.push({ type: "send", packet: packetOf(cfg, s, { final: true }) });
    }
    return { state: { ...s, txArmed: false }, actions };
  }
  return {
    state: { ...s, txArmed: true },
    actions: [
      {
        type: "send",
        packet: packetOf(cfg, s, final ? { final: true } : { poll: s.pollActive }),
      },
      {
        type: "arm",
        timer: "tx",
        ms: jitteredMs(txIntervalUs(s), s.timers.detectMultiplier, random),
      },
    ],
  };
}

function changeState(
  cfg: BfdSessionConfig,
  s: BfdSession,
  to: BfdState,
  diag: number,
  random: number,
  final: boolean,
): Step {
  const before = { txUs: advertisedTxUs(s.state, s.timers), rxUs: s.timers.requiredMinRxMs * 1000 };
  const moved = timersChanged({ ...s, state: to, diag }, before);
  // The transmit timer is rescheduled at once: a session kept at its 1 s "not Up" rate after
  // coming Up is declared down by a fast peer (bgp-facts §5.6).
  const r = transmitNow(cfg, moved, random, final);
  r.actions.unshift({ type: "state", from: s.state, to, diag });
  return r;
}

/** One transition. `random` in [0, 1) jitters the transmit interval. */
export function step(cfg: BfdSessionConfig, s: BfdSession, ev: BfdEvent, random: number): Step {
  const same: Step = { state: s, actions: [] };
  switch (ev.type) {
    case "start":
      if (s.state !== "AdminDown") return same;
      return changeState(cfg, s, "Down", DIAG_NONE, random, false);
    case "stop": {
      if (s.state === "AdminDown") return same;
      const stopped: BfdSession = { ...s, state: "AdminDown", diag: DIAG_ADMIN_DOWN };
      const actions: BfdAction[] = [
        { type: "state", from: s.state, to: "AdminDown", diag: DIAG_ADMIN_DOWN },
        { type: "disarm", timer: "tx" },
        { type: "disarm", timer: "detect" },
      ];
      // One AdminDown packet tells the peer this is a deliberate stop, not a failure.
      if (s.remoteDiscr !== 0) actions.push({ type: "send", packet: packetOf(cfg, stopped) });
      return { state: { ...stopped, txArmed: false, pollActive: false }, actions };
    }
    case "configure": {
      const before = {
        txUs: advertisedTxUs(s.state, s.timers),
        rxUs: s.timers.requiredMinRxMs * 1000,
      };
      const t = ev.timers;
      const unchanged =
        t.desiredMinTxMs === s.timers.desiredMinTxMs &&
        t.requiredMinRxMs === s.timers.requiredMinRxMs &&
        t.detectMultiplier === s.timers.detectMultiplier;
      if (unchanged) return { state: s, actions: [] };
      const next = timersChanged({ ...s, timers: { ...t } }, before);
      if (s.state === "AdminDown") return { state: next, actions: [] };
      return transmitNow(cfg, next, random, false);
    }
    case "timer":
      if (ev.timer === "tx") {
        if (!s.txArmed) return same;
        return transmitNow(cfg, s, random, false);
      }
      return onDetectionExpired(cfg, s, random);
    case "received":
      return onPacket(cfg, s, ev.packet, random);
  }
}

function onDetectionExpired(cfg: BfdSessionConfig, s: BfdSession, random: number): Step {
  if (s.state === "AdminDown") return { state: s, actions: [] };
  // §6.8.1: the peer's discriminator is forgotten after a Detection Time of silence.
  const forgotten: BfdSession = {
    ...s,
    remoteDiscr: 0,
    remoteState: "Down",
    remoteDetectMult: 0,
    remoteDesiredMinTxUs: 0,
    pollActive: false,
  };
  if (s.state === "Init" || s.state === "Up") {
    return changeState(cfg, forgotten, "Down", DIAG_DETECTION_TIME_EXPIRED, random, false);
  }
  // Down already: a passive session goes quiet again.
  if (!transmitting(cfg, forgotten) && s.txArmed) {
    return { state: { ...forgotten, txArmed: false }, actions: [{ type: "disarm", timer: "tx" }] };
  }
  return { state: forgotten, actions: [] };
}

function nextState(local: BfdState, remote: BfdState): { to: BfdState; diag?: number } {
  if (remote === "AdminDown") {
    return local === "Down" ? { to: "Down" } : { to: "Down", diag: DIAG_NEIGHBOR_SIGNALED_DOWN };
  }
  if (local === "Down") {
    if (remote === "Down") return { to: "Init" };
    if (remote === "Init") return { to: "Up" };
  } else if (local === "Init") {
    if (remote === "Init" || remote === "Up") return { to: "Up" };
  } else if (local === "Up" && remote === "Down") {
    return { to: "Down", diag: DIAG_NEIGHBOR_SIGNALED_DOWN };
  }
  return { to: local };
}

function onPacket(cfg: BfdSessionConfig, s: BfdSession, p: BfdPacket, random: number): Step {
  if (s.state === "AdminDown") return { state: s, actions: [] };
  if (p.yourDiscriminator !== 0 && p.yourDiscriminator !== cfg.localDiscriminator) {
    return { state: s, actions: [] };
  }
  const intervalBefore = txIntervalUs(s);
  let next: BfdSession = {
    ...s,
    remoteDiscr: p.myDiscriminator,
    remoteState: p.state,
    remoteMinRxUs: p.requiredMinRxUs,
    remoteDesiredMinTxUs: p.desiredMinTxUs,
    remoteDetectMult: p.detectMult,
  };
  if (p.final && s.pollActive) {
    next = { ...next, pollActive: false, txInUseUs: advertisedTxUs(next.state, next.timers) };
  }
  const detect: BfdAction = { type: "arm", timer: "detect", ms: detectionTimeUs(next) / 1000 };
  const { to, diag } = nextState(s.state, p.state);
  if (to !== s.state) {
    const r = changeState(cfg, next, to, diag ?? DIAG_NONE, random, p.poll);
    r.actions.push(detect);
    return r;
  }
  // A Poll is answered at once; a peer heard for the first time (passive) or asking for a
  // different rate gets the periodic timer rescheduled now.
  if (p.poll || transmitting(cfg, next) !== next.txArmed || txIntervalUs(next) !== intervalBefore) {
    const r = transmitNow(cfg, next, random, p.poll);
    r.actions.push(detect);
    return r;
  }
  return { state: next, actions: [detect] };
}
