// Optional fast heartbeats between speakers over UDP: the wire format and a pure tracker.
//
// Leases detect a dead speaker in seconds; these datagrams (every 100 ms by default) let
// the survivors take over in well under a second. For a peer heard over UDP they decide
// liveness on their own, in both directions: such a peer stays alive while its beats
// arrive even if its Lease has expired (an API server outage changes nothing on the LAN),
// and is dead once they stop even if its Lease is fresh (unless this node lost datagrams
// at its own full socket meanwhile: then the silence may be ours, and the Lease is asked,
// heartbeat-overload.ts). Lost datagrams therefore cost at most a spurious takeover; the
// MAC keeps strangers on the LAN from forging beats at all.
//
// Wire format, version 1 (big-endian, 61 + name bytes, at most 316):
//   0   2  magic "IL" (0x49 0x4c)
//   2   1  version (1)
//   3   1  flags: bit 0 = leaving; bit 1 = paired (the MAC key is the pair key of sender
//            and receiver, heartbeat-pairing.ts, not the shared secret); others zero
//   4   8  incarnation (unsigned, safe integer; start time in ms x 1000 + tie-breaker)
//   12  8  seq (unsigned, safe integer)
//   20  8  sentAtMs (unsigned, safe integer; sender's wall clock)
//   28  1  length n of the node name (1..253, a Kubernetes node name)
//   29  n  node name, UTF-8
//   29+n 32 HMAC-SHA256 with the shared secret (or the pair key) over bytes 0 .. 29+n
// The MAC covers everything before it; nothing is parsed beyond the header until it checks.

import { timingSafeEqual } from "node:crypto";
import { heartbeatMac } from "./heartbeat-mac.ts";

/** One heartbeat. */
export interface Heartbeat {
  /** The sender's node name. */
  node: string;
  /**
   * Identifies one run of the sender's process; must grow across restarts, so that a
   * tracker tells a restart from a replay: the process start time in ms times 1000, plus
   * a tie-breaker below 1000. Receivers refuse one that lies ahead of their clock by more
   * than MAX_CLOCK_SKEW_MS.
   */
  incarnation: number;
  /** Grows by at least one with every beat of an incarnation. */
  seq: number;
  /** Sender's wall clock when sent, in ms since the epoch. */
  sentAtMs: number;
  /** The sender is shutting down cleanly: consider it dead now. */
  leaving: boolean;
}

export const HEARTBEAT_VERSION = 1;
/** Datagrams above this size are rejected before any work is done. */
export const HEARTBEAT_MAX_BYTES = 512;
const MAGIC_0 = 0x49;
const MAGIC_1 = 0x4c;
const HEADER_BYTES = 29;
const MAC_BYTES = 32;
const MAX_NAME_BYTES = 253;
const FLAG_LEAVING = 0x01;
const FLAG_PAIRED = 0x02;
const TWO_POW_32 = 0x1_0000_0000;

/** Shared secret: raw bytes, or a string used as its UTF-8 bytes. */
export type HeartbeatSecret = string | Uint8Array;

function mac(secret: HeartbeatSecret, bytes: Uint8Array): Buffer {
  return heartbeatMac(secret, bytes);
}

function checkSecret(secret: HeartbeatSecret): void {
  if (secret.length === 0) throw new RangeError("heartbeat secret must not be empty");
}

function writeU64(view: DataView, offset: number, value: number, field: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`heartbeat ${field} must be a non-negative safe integer, got ${value}`);
  }
  view.setUint32(offset, Math.floor(value / TWO_POW_32));
  view.setUint32(offset + 4, value >>> 0);
}

function readU32(b: Uint8Array, o: number): number {
  return b[o]! * 0x100_0000 + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!);
}

/**
 * Reads a u64 that must be a safe integer (high word below 2^21); undefined otherwise.
 * From the bytes, without a DataView: this runs for every datagram.
 */
function readU64(b: Uint8Array, offset: number): number | undefined {
  const hi = readU32(b, offset);
  if (hi >= 0x20_0000) return undefined;
  return hi * TWO_POW_32 + readU32(b, offset + 4);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encodes and authenticates a heartbeat; `paired` says that `secret` is the pair key of
 * sender and receiver. Throws RangeError on a beat that cannot be encoded (empty or
 * over-long name, negative or non-integer numbers) or an empty secret.
 */
export function encodeHeartbeat(
  beat: Heartbeat,
  secret: HeartbeatSecret,
  paired = false,
): Uint8Array {
  checkSecret(secret);
  return heartbeatSigner(beat)(secret, paired);
}

/**
 * Encodes a heartbeat once for many receivers: the returned function MACs a copy of it with
 * one receiver's key (each datagram is a buffer of its own: a send may still hold the last
 * one). Sending one beat to N peers with pair keys then encodes the beat once, not N times.
 * Throws as encodeHeartbeat does; the signer throws on an empty secret.
 */
export function heartbeatSigner(
  beat: Heartbeat,
): (secret: HeartbeatSecret, paired?: boolean) => Uint8Array {
  const name = encoder.encode(beat.node);
  if (name.length === 0 || name.length > MAX_NAME_BYTES) {
    throw new RangeError(`heartbeat node name must be 1..${MAX_NAME_BYTES} bytes`);
  }
  const body = new Uint8Array(HEADER_BYTES + name.length);
  const view = new DataView(body.buffer);
  body[0] = MAGIC_0;
  body[1] = MAGIC_1;
  body[2] = HEARTBEAT_VERSION;
  body[3] = beat.leaving ? FLAG_LEAVING : 0;
  writeU64(view, 4, beat.incarnation, "incarnation");
  writeU64(view, 12, beat.seq, "seq");
  writeU64(view, 20, beat.sentAtMs, "sentAtMs");
  body[28] = name.length;
  body.set(name, HEADER_BYTES);
  return (secret, paired = false) => {
    checkSecret(secret);
    const out = new Uint8Array(body.length + MAC_BYTES);
    out.set(body);
    if (paired) out[3] = body[3]! | FLAG_PAIRED;
    out.set(mac(secret, out.subarray(0, body.length)), body.length);
    return out;
  };
}

export type DecodeError =
  | "oversized"
  | "truncated"
  | "bad-magic"
  | "wrong-version"
  | "bad-length"
  | "bad-mac"
  | "bad-flags"
  | "bad-number"
  | "bad-name";

export type DecodeResult =
  | { ok: true; beat: Heartbeat; paired: boolean }
  | { ok: false; error: DecodeError };

const NO_KEYS: readonly HeartbeatSecret[] = [];

function fail(error: DecodeError): DecodeResult {
  return { ok: false, error };
}

/**
 * Decodes and verifies a datagram. Never throws: anything that is not a well-formed
 * version-1 heartbeat authenticated with `secret` (or, during a key rotation, with one of
 * several keys) yields `{ ok: false, error }`.
 */
export function decodeHeartbeat(
  bytes: Uint8Array,
  secret: HeartbeatSecret | readonly HeartbeatSecret[],
): DecodeResult {
  // Checked per datagram: nothing is allocated for the keys.
  const many = Array.isArray(secret);
  const keys = many ? (secret as readonly HeartbeatSecret[]) : NO_KEYS;
  const single = many ? undefined : (secret as HeartbeatSecret);
  if (single !== undefined ? single.length === 0 : !keys.some((k) => k.length > 0))
    return fail("bad-mac");
  if (bytes.length > HEARTBEAT_MAX_BYTES) return fail("oversized");
  if (bytes.length < HEADER_BYTES + MAC_BYTES) return fail("truncated");
  if (bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1) return fail("bad-magic");
  if (bytes[2] !== HEARTBEAT_VERSION) return fail("wrong-version");
  const nameLength = bytes[28]!;
  const signedLength = HEADER_BYTES + nameLength;
  if (bytes.length < signedLength + MAC_BYTES) return fail("truncated");
  if (bytes.length !== signedLength + MAC_BYTES) return fail("bad-length");

  const given = bytes.subarray(signedLength, signedLength + MAC_BYTES);
  const signed = bytes.subarray(0, signedLength);
  let authentic = single !== undefined && timingSafeEqual(mac(single, signed), given);
  for (let i = 0; !authentic && i < keys.length; i++)
    authentic = keys[i]!.length > 0 && timingSafeEqual(mac(keys[i]!, signed), given);
  if (!authentic) return fail("bad-mac");

  const flags = bytes[3]!;
  if ((flags & ~(FLAG_LEAVING | FLAG_PAIRED)) !== 0) return fail("bad-flags");
  const incarnation = readU64(bytes, 4);
  const seq = readU64(bytes, 12);
  const sentAtMs = readU64(bytes, 20);
  if (incarnation === undefined || seq === undefined || sentAtMs === undefined) {
    return fail("bad-number");
  }
  if (nameLength === 0 || nameLength > MAX_NAME_BYTES) return fail("bad-name");
  let node: string;
  try {
    node = decoder.decode(bytes.subarray(HEADER_BYTES, signedLength));
  } catch {
    return fail("bad-name");
  }
  return {
    ok: true,
    beat: { node, incarnation, seq, sentAtMs, leaving: (flags & FLAG_LEAVING) !== 0 },
    paired: (flags & FLAG_PAIRED) !== 0,
  };
}

/**
 * The incarnation and seq a datagram claims, read without checking its MAC, or undefined if
 * it is not shaped like a version-1 beat. Unauthenticated: only for choosing which budget
 * pays for the MAC check (heartbeat-overload.ts), never for a decision about a peer.
 */
export function peekHeartbeat(bytes: Uint8Array): { incarnation: number; seq: number } | undefined {
  if (bytes.length > HEARTBEAT_MAX_BYTES || bytes.length < HEADER_BYTES + MAC_BYTES)
    return undefined;
  if (bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1 || bytes[2] !== HEARTBEAT_VERSION) {
    return undefined;
  }
  const incarnation = readU64(bytes, 4);
  const seq = readU64(bytes, 12);
  return incarnation === undefined || seq === undefined ? undefined : { incarnation, seq };
}

/**
 * Whether a datagram claims to be MACed with a pair key, read without checking anything:
 * only to refuse, before the MAC, a beat from a node that publishes a key and yet does not
 * use it (a holder of the shared secret speaking in its name).
 */
export function peekPaired(bytes: Uint8Array): boolean {
  return bytes.length > 3 && (bytes[3]! & FLAG_PAIRED) !== 0;
}

/** Default sending interval. */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 100;
/**
 * Default silence after which a node is dead: three missed beats plus half an interval,
 * so that a beat delayed by scheduling jitter right at the third interval is not a death.
 */
export const DEFAULT_HEARTBEAT_DEAD_AFTER_MS = 3.5 * DEFAULT_HEARTBEAT_INTERVAL_MS;

/**
 * How far a beat's clock may be from the receiver's: `sentAtMs` must lie within this of
 * the receiver's wall clock, and the incarnation (a start time) no further ahead. Large
 * enough for clocks that are merely NTP-synchronised, or a little off; small enough that a
 * recorded beat cannot be replayed for long, and that a forged far-future incarnation (which
 * would make every real beat of its node look stale) is refused. A peer whose clock is
 * further off is judged by its Lease alone, and a Warning says why.
 */
export const MAX_CLOCK_SKEW_MS = 2 * 60_000;

export interface HeartbeatTrackerOptions {
  /** Silence (receiver's clock) after which a node counts as dead. Default 350 ms. */
  deadAfterMs?: number;
  /**
   * Beats whose `sentAtMs` differs from the receiver's wall clock by more than this, or
   * whose incarnation starts further ahead of it, are refused (also from a node not heard
   * before: this bounds replays of recorded beats). Default MAX_CLOCK_SKEW_MS.
   */
  maxClockSkewMs?: number;
  /** The receiver's wall clock, ms since the epoch (injected for tests). Default Date.now. */
  wallClock?: () => number;
  /**
   * Upper bound of the adaptive dead time. A peer whose heartbeats have recently come with
   * long gaps (it, or this process, is starved of CPU) is given three times its recent longest
   * gap before it counts as dead, up to this; a crash in calm times is still noticed after
   * `deadAfterMs`. Default 3000 ms; 0 turns adaptation off.
   */
  maxDeadAfterMs?: number;
}

/** Why a beat is refused by the receiver's wall clock `wallMs`, if it is. */
export function offClock(
  beat: Heartbeat,
  wallMs: number,
  maxSkewMs = MAX_CLOCK_SKEW_MS,
): "clock-skew" | "future-incarnation" | undefined {
  if (Math.abs(beat.sentAtMs - wallMs) > maxSkewMs) return "clock-skew";
  if (incarnationStartMs(beat.incarnation) > wallMs + maxSkewMs) return "future-incarnation";
  return undefined;
}

/** The start time in ms an incarnation stands for (see Heartbeat.incarnation). */
export function incarnationStartMs(incarnation: number): number {
  return Math.floor(incarnation / 1000);
}

/** An incarnation for a process started at `startMs`, above `atLeast` if given. */
export function newIncarnation(startMs: number, tieBreaker: number, atLeast = -1): number {
  return Math.max(Math.floor(startMs) * 1000 + (tieBreaker % 1000), atLeast + 1);
}

/** How fast a long gap is forgotten: ms of peak per ms of time (1 s fades in 30 s). */
const GAP_DECAY = 1 / 30;

export type ReceiveOutcome =
  /** Recorded; the node is alive (or, for a leaving beat, dead from now). */
  | "accepted"
  /** Same incarnation and a seq not above the last accepted one: dropped. */
  | "replay"
  /** An older incarnation than the one already seen: dropped. */
  | "stale-incarnation"
  /** `sentAtMs` too far from the receiver's wall clock: dropped. */
  | "clock-skew"
  /** An incarnation that starts in the future, beyond the allowed skew: dropped. */
  | "future-incarnation"
  /** The incarnation already said it was leaving: dropped (only a restart revives it). */
  | "after-leaving";

interface PeerState {
  incarnation: number;
  seq: number;
  sentAtMs: number;
  lastSeenMs: number;
  leaving: boolean;
  /** Longest recent gap between two beats, and when it was seen (decays with GAP_DECAY). */
  gapPeakMs: number;
  gapPeakAt: number;
}

function decayed(peak: number, at: number, now: number): number {
  return Math.max(0, peak - (now - at) * GAP_DECAY);
}

/**
 * Tracks which peers' heartbeats are live. Pure state: time comes in as `nowMs` (the
 * receiver's monotonic-ish clock, e.g. performance.now() or Date.now(), used
 * consistently) and from the injected wall clock (to judge the beats' own timestamps), and
 * nothing runs on its own.
 */
export class HeartbeatTracker {
  readonly deadAfterMs: number;
  readonly maxClockSkewMs: number;
  readonly maxDeadAfterMs: number;
  readonly #wallClock: () => number;
  readonly #peers = new Map<string, PeerState>();

  constructor(options: HeartbeatTrackerOptions = {}) {
    this.deadAfterMs = options.deadAfterMs ?? DEFAULT_HEARTBEAT_DEAD_AFTER_MS;
    this.maxClockSkewMs = options.maxClockSkewMs ?? MAX_CLOCK_SKEW_MS;
    this.maxDeadAfterMs = Math.max(this.deadAfterMs, options.maxDeadAfterMs ?? 3000);
    this.#wallClock = options.wallClock ?? Date.now;
    if (!(this.deadAfterMs > 0)) throw new RangeError("deadAfterMs must be positive");
    if (!(this.maxClockSkewMs >= 0)) throw new RangeError("maxClockSkewMs must not be negative");
  }

  /**
   * Records a decoded beat received at `nowMs`. A beat must be recent on the receiver's wall
   * clock, and its incarnation must not start in the future. A higher incarnation than known
   * is a restart and resets the sequence; within an incarnation seq must strictly grow, and
   * nothing follows a leaving beat. One exception: a node that is dead here (it left, or
   * fell silent) comes back with any beat sent later than the last one accepted, so that a
   * forged leaving or far-ahead beat cannot keep a live node dead for longer than the
   * allowed skew, nor one restarted meanwhile for its whole run.
   */
  receive(beat: Heartbeat, nowMs: number): ReceiveOutcome {
    const off = offClock(beat, this.#wallClock(), this.maxClockSkewMs);
    if (off !== undefined) return off;
    const known = this.#peers.get(beat.node);
    if (known !== undefined) {
      let refused: ReceiveOutcome | undefined;
      if (beat.incarnation < known.incarnation) refused = "stale-incarnation";
      else if (beat.incarnation === known.incarnation) {
        if (beat.seq <= known.seq) refused = "replay";
        else if (known.leaving) refused = "after-leaving";
      }
      if (
        refused !== undefined &&
        (this.isAlive(beat.node, nowMs) || beat.sentAtMs <= known.sentAtMs)
      ) {
        return refused;
      }
    }
    let gapPeakMs = 0;
    let gapPeakAt = nowMs;
    if (known !== undefined && beat.incarnation === known.incarnation) {
      const old = decayed(known.gapPeakMs, known.gapPeakAt, nowMs);
      const gap = nowMs - known.lastSeenMs;
      // A gap longer than the deadline was a death (and a return), not jitter: it must not
      // slow down noticing the next one.
      if (gap > old && gap <= this.deadlineMs(beat.node, nowMs)) gapPeakMs = gap;
      else {
        gapPeakMs = known.gapPeakMs;
        gapPeakAt = known.gapPeakAt;
      }
    }
    if (known) {
      // Updated in place: one object per peer, not one per beat.
      known.incarnation = beat.incarnation;
      known.seq = beat.seq;
      known.sentAtMs = beat.sentAtMs;
      known.lastSeenMs = nowMs;
      known.leaving = beat.leaving;
      known.gapPeakMs = gapPeakMs;
      known.gapPeakAt = gapPeakAt;
    } else
      this.#peers.set(beat.node, {
        incarnation: beat.incarnation,
        seq: beat.seq,
        sentAtMs: beat.sentAtMs,
        lastSeenMs: nowMs,
        leaving: beat.leaving,
        gapPeakMs,
        gapPeakAt,
      });
    return "accepted";
  }

  /**
   * How long `node` may be silent at `nowMs` before it counts as dead: `deadAfterMs`, or
   * three times the longest recent gap of its beats or of our own stalls (`pressureMs`, the
   * receiver's recent longest stall), whichever is longer, up to `maxDeadAfterMs`.
   */
  deadlineMs(node: string, nowMs: number, pressureMs = 0): number {
    const peer = this.#peers.get(node);
    const peak = peer ? decayed(peer.gapPeakMs, peer.gapPeakAt, nowMs) : 0;
    return Math.max(
      this.deadAfterMs,
      // Stalls under CPU starvation come in bursts that grow: three times the worst recent
      // one (measured: 300 ms stalls were followed by a 940 ms one under a 2-CPU hog).
      Math.min(this.maxDeadAfterMs, 3 * Math.max(peak, pressureMs)),
    );
  }

  /** Whether `node` sent an accepted, non-leaving beat within its deadline of `nowMs`. */
  isAlive(node: string, nowMs: number, pressureMs = 0): boolean {
    const peer = this.#peers.get(node);
    return (
      peer !== undefined &&
      !peer.leaving &&
      nowMs - peer.lastSeenMs <= this.deadlineMs(node, nowMs, pressureMs)
    );
  }

  /** The incarnation and seq of `node`'s last accepted beat, if any. */
  last(node: string): { incarnation: number; seq: number } | undefined {
    const peer = this.#peers.get(node);
    return peer && { incarnation: peer.incarnation, seq: peer.seq };
  }

  /** Nodes currently alive, sorted. */
  alive(nowMs: number, pressureMs = 0): string[] {
    return [...this.#peers.keys()].filter((n) => this.isAlive(n, nowMs, pressureMs)).sort();
  }

  /** Nodes heard from at some point that are now dead (timed out or left), sorted. */
  dead(nowMs: number, pressureMs = 0): string[] {
    return [...this.#peers.keys()].filter((n) => !this.isAlive(n, nowMs, pressureMs)).sort();
  }

  /** Every node heard from, sorted. */
  known(): string[] {
    return [...this.#peers.keys()].sort();
  }

  /** Every node heard from, in no particular order (no copy, no sort: for per-tick loops). */
  nodes(): IterableIterator<string> {
    return this.#peers.keys();
  }

  /** How many nodes have been heard from. */
  get size(): number {
    return this.#peers.size;
  }

  /** Whether `node` has been heard from. */
  has(node: string): boolean {
    return this.#peers.has(node);
  }

  /** Whether any node is alive at `nowMs` (alive().length > 0, without building the list). */
  anyAlive(nowMs: number, pressureMs = 0): boolean {
    for (const n of this.#peers.keys()) if (this.isAlive(n, nowMs, pressureMs)) return true;
    return false;
  }

  /** Forgets a node (e.g. its Node object was deleted). */
  forget(node: string): void {
    this.#peers.delete(node);
  }

  /**
   * Forgets nodes silent for longer than `olderThanMs`, so that a long-lived process does
   * not keep every node it ever saw. A forgotten node's next beat is accepted afresh.
   */
  prune(nowMs: number, olderThanMs: number): void {
    for (const [node, peer] of this.#peers) {
      if (nowMs - peer.lastSeenMs > olderThanMs) this.#peers.delete(node);
    }
  }
}

/**
 * This node's own side: the beats it sends, and its answer to authenticated beats that
 * claim to come from it. Such a beat was forged by another holder of the shared key (or is
 * an echo of one of ours). A forged beat that peers may prefer to ours (a later
 * incarnation, a higher seq, or `leaving`) leaves this node dead or stale to them, since
 * what they accept next must outrank it. So the node moves to an incarnation above the
 * forged one: peers accept that as a restart as soon as their clock allows it, at once
 * unless the forger chose the very edge of the allowed skew (then one ms later). Pure:
 * time comes in as arguments.
 */
export class HeartbeatSender {
  readonly node: string;
  #incarnation: number;
  #seq = 0;
  #left = false;

  /** `tieBreaker` (0..999, random) tells apart two starts in the same ms. */
  constructor(node: string, startMs: number, tieBreaker: number) {
    this.node = node;
    this.#incarnation = newIncarnation(startMs, tieBreaker);
  }

  get incarnation(): number {
    return this.#incarnation;
  }

  get seq(): number {
    return this.#seq;
  }

  /** The next beat, sent at wall clock `wallMs`. */
  next(wallMs: number, leaving = false): Heartbeat {
    if (leaving) this.#left = true;
    return {
      node: this.node,
      incarnation: this.#incarnation,
      seq: ++this.#seq,
      sentAtMs: Math.floor(wallMs),
      leaving,
    };
  }

  /**
   * An authenticated beat naming this node arrived at wall clock `wallMs`. "echo": one of
   * ours (or one peers refuse anyway: outside the time window, or an older incarnation
   * that cannot outrank our next beat); "refuted": forged, and this node moved to a new
   * incarnation above it; the caller should log it and send a beat at once.
   */
  heard(beat: Heartbeat, wallMs: number, tieBreaker: number): "echo" | "refuted" {
    if (offClock(beat, wallMs) !== undefined) return "echo";
    if (beat.incarnation < this.#incarnation) return "echo";
    if (
      beat.incarnation === this.#incarnation &&
      beat.seq <= this.#seq &&
      (!beat.leaving || this.#left)
    ) {
      return "echo";
    }
    this.#incarnation = newIncarnation(wallMs, tieBreaker, beat.incarnation);
    return "refuted";
  }
}
