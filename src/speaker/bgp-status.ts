// What a user reads about this node's BGP sessions: one BGPSessionState object per peer
// (created or updated when the session's status changes, at most once a second per peer,
// deleted when the peer no longer applies to this node), an Event on the BGPPeer when a
// session comes up or goes down, and the metrics (state, flaps, messages by type,
// NOTIFICATIONs by code, prefixes advertised).
import type { KubernetesObject } from "@kubernetes/client-node";
import type { BGPSessionState, BGPSessionStateStatus } from "../api/bgpsessionstate.ts";
import { bgpSessionStateName, sessionStates } from "../api/bgpsessionstate.ts";
import { group, version } from "../api/group.ts";
import { PATHS } from "../api/vocabulary.ts";
import type { BfdState } from "../bfd/packet.ts";
import type { BgpPeerConfig, NotificationInfo, SessionStatus } from "../bgp/types.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus } from "../k8s/errors.ts";
import type { EventRecorder, EventTarget } from "../k8s/events.ts";
import type { Logger } from "../observability/log.ts";
import type { SpeakerMetrics } from "./metrics.ts";

export const BGP_SESSION_STATES_PATH = PATHS.bgpSessionStates;
/** A session's object is written at most this often (state changes included), ms. */
const WRITE_INTERVAL_MS = 1000;
const RETRY_MAX_MS = 30_000;

export type SessionStateObject = BGPSessionState & KubernetesObject;

/** The text of a NOTIFICATION for status and Events: "received 6/2 Cease/...: text". */
export function describeNotification(n: NotificationInfo): string {
  return `${n.direction} ${n.code}/${n.subcode}${n.text ? ` ${n.text}` : ""}`;
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d+Z$/, "Z");
const cut = (s: string) => (s.length <= 1024 ? s : `${s.slice(0, 1021)}...`);

/** A peer's BFD side: its session's state, or why it has none. */
export interface BfdStatus {
  state?: BfdState;
  error?: string;
}

/** The BGPSessionState status for a session's status (pure). */
export function sessionStateStatus(
  node: string,
  cfg: BgpPeerConfig,
  s: SessionStatus,
  bfd: BfdStatus = {},
): BGPSessionStateStatus {
  const out: BGPSessionStateStatus = {
    node,
    peer: s.peer,
    peerAddress: cfg.peerAddress,
    state: s.state,
    since: iso(s.since),
    prefixesSent: s.prefixesSent,
    flaps: s.flaps,
  };
  if (s.establishedAt !== undefined) out.establishedAt = iso(s.establishedAt);
  if (s.lastError) out.lastError = cut(s.lastError);
  if (s.lastNotification) out.lastNotification = cut(describeNotification(s.lastNotification));
  if (bfd.state !== undefined) out.bfdState = bfd.state;
  if (bfd.error) out.bfdError = cut(bfd.error);
  if (cfg.gracefulRestartTime !== undefined && s.gracefulRestart !== undefined)
    out.gracefulRestart = s.gracefulRestart ? "Negotiated" : "Unsupported";
  return out;
}

interface Writer {
  want?: BGPSessionStateStatus;
  wantKey?: string;
  writtenKey?: string;
  lastWrite: number;
  failures: number;
  timer?: NodeJS.Timeout;
  inFlight: boolean;
  /** The write under way: a delete waits for it (else the write would recreate the object). */
  pending?: Promise<void>;
}

export interface BgpStatusOptions {
  node: string;
  /** The BGPPeer object of a peer name (for Event targets); undefined when gone. */
  peerObject: (name: string) => KubernetesObject | undefined;
  /** This node's BGPSessionState objects as the informer shows them. */
  ownObjects: () => readonly SessionStateObject[];
}

export class BgpStatus {
  readonly #api: KubeClient;
  readonly #events: EventRecorder;
  readonly #metrics: SpeakerMetrics;
  readonly #log: Logger;
  readonly #o: BgpStatusOptions;
  readonly #writers = new Map<string, Writer>();
  /** Per peer, the last status seen of its current session (metrics deltas, Events). */
  readonly #last = new Map<string, { cfg: BgpPeerConfig; status: SessionStatus }>();
  readonly #deleting = new Set<string>();
  readonly #bfd = new Map<string, BfdStatus>();
  /** Per peer, why its TCP-MD5 password cannot be read (the session's lastError says it too). */
  readonly #passwordErrors = new Map<string, string>();
  #stopped = false;

  constructor(
    api: KubeClient,
    events: EventRecorder,
    metrics: SpeakerMetrics,
    log: Logger,
    opts: BgpStatusOptions,
  ) {
    this.#api = api;
    this.#events = events;
    this.#metrics = metrics;
    this.#log = log;
    this.#o = opts;
  }

  /** A session's status changed (BgpBackend's hook). */
  onStatus(s: SessionStatus, cfg: BgpPeerConfig): void {
    const prev = this.#last.get(s.peer);
    // A new session (the peer's settings changed) counts from zero.
    const base = prev?.cfg === cfg ? prev.status : undefined;
    this.#last.set(s.peer, { cfg, status: s });
    this.#countMetrics(s, base);
    this.#sayTransition(s, cfg, prev?.status);
    this.#want(s.peer, sessionStateStatus(this.#o.node, cfg, s, this.#bfd.get(s.peer)));
  }

  /** A peer's BFD state changed (undefined: no BFD session now). */
  onBfd(peer: string, state: BfdState | undefined): void {
    const was = this.#bfd.get(peer);
    if (was?.state === "Up" && state === "Down") this.#metrics.bfdDowns.inc({ peer });
    if (state === undefined) this.#metrics.bfdSessionUp.remove({ peer });
    else this.#metrics.bfdSessionUp.set({ peer }, state === "Up" ? 1 : 0);
    this.#setBfd(peer, { ...was, state });
  }

  /**
   * Why a peer that asks for BFD has none (undefined: no problem). A new reason is logged
   * and told as a Warning Event on the BGPPeer.
   */
  setBfdError(peer: string, error: string | undefined): void {
    const was = this.#bfd.get(peer);
    if (was?.error === error) return;
    this.#setBfd(peer, { ...was, error });
    if (error === undefined) {
      if (was?.error !== undefined) this.#log.info({ peer }, "BFD problem resolved");
      return;
    }
    this.#log.warn({ peer, reason: error }, "BGPPeer runs without BFD");
    const obj = this.#o.peerObject(peer);
    if (!obj?.metadata?.name) return;
    void this.#events.emit(
      {
        apiVersion: `${group}/${version}`,
        kind: "BGPPeer",
        name: obj.metadata.name,
        uid: obj.metadata.uid,
      },
      "Warning",
      "BFDProfileNotFound",
      `Node ${this.#o.node} runs its BGP session without BFD: ${error}`,
    );
  }

  /**
   * Why a peer's passwordSecret cannot be used (undefined: no problem). The session itself
   * refuses to connect and shows the reason as its lastError; a new reason is logged and
   * told as a Warning Event on the BGPPeer, a resolved one logged.
   */
  setPasswordError(peer: string, error: string | undefined): void {
    const was = this.#passwordErrors.get(peer);
    if (was === error) return;
    if (error === undefined) {
      this.#passwordErrors.delete(peer);
      this.#log.info({ peer }, "BGP password Secret problem resolved");
      return;
    }
    this.#passwordErrors.set(peer, error);
    this.#log.warn({ peer, reason: error }, "BGPPeer not connecting: its password cannot be read");
    const obj = this.#o.peerObject(peer);
    if (!obj?.metadata?.name) return;
    void this.#events.emit(
      {
        apiVersion: `${group}/${version}`,
        kind: "BGPPeer",
        name: obj.metadata.name,
        uid: obj.metadata.uid,
      },
      "Warning",
      "PasswordSecretUnusable",
      `Node ${this.#o.node} does not connect to ${peer}: ${error}`,
    );
  }

  #setBfd(peer: string, b: BfdStatus): void {
    const clean: BfdStatus = {};
    if (b.state !== undefined) clean.state = b.state;
    if (b.error !== undefined) clean.error = b.error;
    this.#bfd.set(peer, clean);
    const last = this.#last.get(peer);
    if (last) this.#want(peer, sessionStateStatus(this.#o.node, last.cfg, last.status, clean));
  }

  /** A peer no longer applies to this node: its object and series go. */
  onRemoved(peer: string): void {
    this.#last.delete(peer);
    const w = this.#writers.get(peer);
    clearTimeout(w?.timer);
    this.#writers.delete(peer);
    for (const st of sessionStates) this.#metrics.bgpSessionState.remove({ peer, state: st });
    this.#metrics.bgpSessionUp.remove({ peer });
    this.#metrics.bgpPrefixes.remove({ peer });
    this.#metrics.bfdSessionUp.remove({ peer });
    this.#bfd.delete(peer);
    this.#passwordErrors.delete(peer);
    const name = bgpSessionStateName(this.#o.node, peer);
    void (w?.pending ?? Promise.resolve()).then(() => this.#delete(name));
  }

  /** Deletes this node's objects for peers it has no session with (after a restart). */
  deleteStale(current: ReadonlySet<string>): void {
    for (const o of this.#o.ownObjects()) {
      const peer = o.status?.peer;
      const name = o.metadata?.name;
      if (!name || (peer !== undefined && current.has(peer) && this.#expectedName(peer) === name))
        continue;
      void this.#delete(name);
    }
  }

  stop(): void {
    this.#stopped = true;
    for (const w of this.#writers.values()) clearTimeout(w.timer);
  }

  #expectedName(peer: string): string {
    return bgpSessionStateName(this.#o.node, peer);
  }

  #countMetrics(s: SessionStatus, base: SessionStatus | undefined): void {
    const m = this.#metrics;
    const peer = s.peer;
    for (const st of sessionStates)
      m.bgpSessionState.set({ peer, state: st }, st === s.state ? 1 : 0);
    m.bgpSessionUp.set({ peer }, s.state === "Established" ? 1 : 0);
    m.bgpPrefixes.set({ peer }, s.prefixesSent);
    const flaps = s.flaps - (base?.flaps ?? 0);
    if (flaps > 0) m.bgpFlaps.inc({ peer }, flaps);
    for (const [direction, now, before] of [
      ["sent", s.messagesSent, base?.messagesSent],
      ["received", s.messagesReceived, base?.messagesReceived],
    ] as const) {
      for (const [type, n] of Object.entries(now)) {
        const d = n - (before?.[type] ?? 0);
        if (d > 0) m.bgpMessages.inc({ peer, direction, type }, d);
      }
    }
    // Every NOTIFICATION ends the session (a state change, so a status), which makes the
    // last one enough to count them all.
    const n = s.lastNotification;
    const was = base?.lastNotification;
    if (
      n &&
      (was === undefined || was.at !== n.at || was.code !== n.code || was.direction !== n.direction)
    )
      m.bgpNotifications.inc({ peer, direction: n.direction, code: n.code, subcode: n.subcode });
  }

  /** Logs every state change; an Event on the BGPPeer when Established is reached or lost. */
  #sayTransition(s: SessionStatus, cfg: BgpPeerConfig, prev: SessionStatus | undefined): void {
    if (prev?.state === s.state) return;
    const fields = {
      peer: s.peer,
      peerAddress: cfg.peerAddress,
      state: s.state,
      was: prev?.state,
      ...(s.lastError ? { lastError: s.lastError } : {}),
      ...(s.lastNotification ? { lastNotification: describeNotification(s.lastNotification) } : {}),
    };
    if (s.state === "Established") this.#log.info(fields, "BGP session established");
    else if (prev?.state === "Established") this.#log.warn(fields, "BGP session down");
    else this.#log.info(fields, "BGP session state");
    const obj = this.#o.peerObject(s.peer);
    if (!obj?.metadata?.name) return;
    const target: EventTarget = {
      apiVersion: `${group}/${version}`,
      kind: "BGPPeer",
      name: obj.metadata.name,
      uid: obj.metadata.uid,
    };
    if (s.state === "Established") {
      void this.#events.emit(
        target,
        "Normal",
        "SessionEstablished",
        `Node ${this.#o.node} established its BGP session with ${cfg.peerAddress}${s.negotiatedHoldTime !== undefined ? ` (hold time ${s.negotiatedHoldTime}s)` : ""}`,
      );
    } else if (prev?.state === "Established") {
      const why = s.lastNotification
        ? `NOTIFICATION ${describeNotification(s.lastNotification)}`
        : (s.lastError ?? "no reason given");
      void this.#events.emit(
        target,
        "Warning",
        "SessionDown",
        `Node ${this.#o.node} lost its BGP session with ${cfg.peerAddress}: ${why}`,
      );
    }
  }

  #want(peer: string, status: BGPSessionStateStatus): void {
    const w = this.#writers.get(peer) ?? {
      lastWrite: Number.NEGATIVE_INFINITY,
      failures: 0,
      inFlight: false,
    };
    this.#writers.set(peer, w);
    w.want = status;
    w.wantKey = JSON.stringify(status);
    this.#flush(peer, w);
  }

  /** Writes the wanted status when it differs from the last written, rate-bounded. */
  #flush(peer: string, w: Writer): void {
    if (this.#stopped || w.inFlight || w.timer !== undefined || this.#writers.get(peer) !== w)
      return;
    if (w.wantKey === w.writtenKey || w.want === undefined) return;
    const backoff = w.failures === 0 ? 0 : Math.min(RETRY_MAX_MS, 500 * 2 ** (w.failures - 1));
    const wait = w.lastWrite + Math.max(WRITE_INTERVAL_MS, backoff) - performance.now();
    if (wait > 0) {
      w.timer = setTimeout(() => {
        w.timer = undefined;
        this.#flush(peer, w);
      }, wait);
      w.timer.unref();
      return;
    }
    const status = w.want;
    const key = w.wantKey;
    w.inFlight = true;
    w.lastWrite = performance.now();
    w.pending = this.#put(bgpSessionStateName(this.#o.node, peer), status).then(
      () => {
        w.inFlight = false;
        w.pending = undefined;
        w.failures = 0;
        w.writtenKey = key;
        this.#flush(peer, w);
      },
      (err: unknown) => {
        w.inFlight = false;
        w.pending = undefined;
        w.failures++;
        this.#log.warn(
          { peer, attempt: w.failures, err: describeError(err) },
          "could not write the BGP session state",
        );
        this.#flush(peer, w);
      },
    );
  }

  async #put(name: string, status: BGPSessionStateStatus): Promise<void> {
    try {
      // A merge patch keeps the fields it leaves out: BFD's go when BFD is off or fixed.
      const body = { status: { bfdState: null, bfdError: null, ...status } };
      await this.#api.mergePatch(`${BGP_SESSION_STATES_PATH}/${name}`, body);
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
      await this.#api.create(BGP_SESSION_STATES_PATH, {
        apiVersion: `${group}/${version}`,
        kind: "BGPSessionState",
        metadata: { name, labels: { "app.kubernetes.io/managed-by": "ironlb-speaker" } },
        status,
      });
    }
  }

  async #delete(name: string): Promise<void> {
    if (this.#deleting.has(name)) return;
    this.#deleting.add(name);
    try {
      await this.#api.delete(`${BGP_SESSION_STATES_PATH}/${name}`);
    } catch (err) {
      if (httpStatus(err) !== 404)
        this.#log.warn({ name, err: describeError(err) }, "could not delete a BGP session state");
    } finally {
      this.#deleting.delete(name);
    }
  }
}
