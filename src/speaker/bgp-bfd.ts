// BFD beside the BGP sessions: which BFD session a peer needs (a pure function, table-tested)
// and the small edge that opens and closes them on one BfdRunner (src/bfd, a worker thread),
// started only when the first peer asks for BFD. A BFD session runs from the BGP session's
// local address (the peer's sourceAddress, else the address of its TCP connection), so it
// opens once the first connection has told which address that is. Its Up -> Down ends the
// BGP session at once (BgpSession.bfdDown); the state goes to the caller for the status.
import type { BFDProfileSpec } from "../api/bfdprofile.ts";
import type { BfdState } from "../bfd/packet.ts";
import type { BfdPeer, BfdStateChange } from "../bfd/udp.ts";
import type { BgpPeerConfig } from "../bgp/types.ts";
import type { Logger } from "../observability/log.ts";

/** What BgpBfd needs of src/bfd's BfdRunner (tests pass an in-memory one). */
export interface BfdRunnerLike {
  open(peer: BfdPeer): Promise<void>;
  close(name: string): Promise<void>;
  onChange(fn: (c: BfdStateChange) => void): () => void;
  stop(): Promise<void>;
}

export type BfdRunnerFactory = () => BfdRunnerLike;

/** A peer's BFD settings, from its BFDProfile. */
export interface BfdSettings {
  profile: string;
  desiredMinTxMs: number;
  requiredMinRxMs: number;
  detectMultiplier: number;
  passive: boolean;
}

/** A BFDProfile's spec in the BFD state machine's terms. */
export function bfdSettings(profile: string, spec: BFDProfileSpec): BfdSettings {
  return {
    profile,
    desiredMinTxMs: spec.transmitInterval,
    requiredMinRxMs: spec.receiveInterval,
    detectMultiplier: spec.detectMultiplier,
    passive: spec.passiveMode,
  };
}

/**
 * A BGPPeer's bfdProfile resolved: its settings, or why BFD cannot run (the peer's BGP
 * session runs without it meanwhile). `profiles` is undefined when the cluster has no
 * BFDProfile CRD.
 */
export function resolveBfd(
  profile: string | undefined,
  profiles: ReadonlyMap<string, BFDProfileSpec> | undefined,
): { settings?: BfdSettings; error?: string } {
  if (profile === undefined || profile === "") return {};
  if (profiles === undefined)
    return {
      error: `bfdProfile "${profile}" is set but the cluster has no BFDProfile CRD (apply this release's CRDs from config/crd, then restart the speakers)`,
    };
  const spec = profiles.get(profile);
  if (spec === undefined) return { error: `BFDProfile "${profile}" not found` };
  return { settings: bfdSettings(profile, spec) };
}

/**
 * The BFD session a peer needs: none without settings or before the local address is known
 * (sourceAddress wins over the address the last TCP connection used).
 */
export function bfdPeerFor(
  name: string,
  cfg: BgpPeerConfig,
  settings: BfdSettings | undefined,
  connectedFrom: string | undefined,
): BfdPeer | undefined {
  if (settings === undefined) return undefined;
  const localAddress = cfg.sourceAddress ?? connectedFrom;
  if (localAddress === undefined) return undefined;
  return {
    name,
    peerAddress: cfg.peerAddress,
    localAddress,
    desiredMinTxMs: settings.desiredMinTxMs,
    requiredMinRxMs: settings.requiredMinRxMs,
    detectMultiplier: settings.detectMultiplier,
    ...(settings.passive ? { passive: true } : {}),
  };
}

export interface BgpBfdHooks {
  /** A peer's BFD state changed; undefined: no BFD session (closed or not yet open). */
  onState(peer: string, state: BfdState | undefined): void;
  /** The peer's BFD session went from Up to Down: end its BGP session now. */
  onDown(peer: string, reason: string): void;
}

/** One BFD session per peer that wants one, on a runner started on first use. */
export class BgpBfd {
  readonly #makeRunner: BfdRunnerFactory;
  readonly #hooks: BgpBfdHooks;
  readonly #log: Logger;
  #runner: BfdRunnerLike | undefined;
  /** Peer name -> JSON of the BfdPeer open now. */
  readonly #open = new Map<string, string>();
  /** Opens and closes run one after another, so that a reopen follows its close. */
  #queue: Promise<void> = Promise.resolve();

  constructor(makeRunner: BfdRunnerFactory, hooks: BgpBfdHooks, log: Logger) {
    this.#makeRunner = makeRunner;
    this.#hooks = hooks;
    this.#log = log;
  }

  /** Makes the peer's BFD session the one `want` says (undefined: none). */
  set(name: string, want: BfdPeer | undefined): void {
    const key = want === undefined ? undefined : JSON.stringify(want);
    const was = this.#open.get(name);
    if (key === was) return;
    if (was !== undefined) {
      this.#open.delete(name);
      this.#enqueue(name, (r) => r.close(name), "close");
      this.#hooks.onState(name, undefined);
    }
    if (want === undefined || key === undefined) return;
    this.#open.set(name, key);
    this.#log.info(
      {
        peer: name,
        peerAddress: want.peerAddress,
        localAddress: want.localAddress,
        txMs: want.desiredMinTxMs,
        rxMs: want.requiredMinRxMs,
        multiplier: want.detectMultiplier,
      },
      "BFD session opening",
    );
    this.#enqueue(name, (r) => r.open(want), "open");
    this.#hooks.onState(name, "Down");
  }

  /** Closes every session and stops the runner (if it was ever started). */
  async stop(): Promise<void> {
    for (const name of [...this.#open.keys()]) this.set(name, undefined);
    await this.#queue;
    await this.#runner?.stop();
  }

  #enqueue(name: string, op: (r: BfdRunnerLike) => Promise<void>, what: string): void {
    const r = this.#ensureRunner();
    this.#queue = this.#queue
      .then(() => op(r))
      .catch((err: unknown) => {
        this.#log.warn({ peer: name, err: (err as Error).message }, `BFD session ${what} failed`);
      });
  }

  #ensureRunner(): BfdRunnerLike {
    if (this.#runner === undefined) {
      this.#runner = this.#makeRunner();
      this.#runner.onChange((c) => this.#change(c));
    }
    return this.#runner;
  }

  #change(c: BfdStateChange): void {
    // A change of a session closed meanwhile (AdminDown after close) is not news.
    if (!this.#open.has(c.name)) return;
    this.#hooks.onState(c.name, c.state);
    if (c.from === "Up" && c.state === "Down") this.#hooks.onDown(c.name, c.reason);
  }
}
