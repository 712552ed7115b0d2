// The BGP backend: holds one session per peer the plan (bgp-plan.ts) selects for this node
// and gives each the routes the plan says. Sessions come from an injected factory (the real
// one is src/bgp's BgpSession; unit tests pass an in-memory fake). A peer that goes away is
// stopped with a Cease NOTIFICATION whose RFC 9003 text says why; a peer whose settings
// change is stopped the same way and started anew (BGP negotiates them only in OPEN). The
// new session of a changed peer starts only once the old one is closed, so that the router
// never sees two connections from this node at once (it would keep one of them).
// A peer with BFD settings also gets a BFD session (bgp-bfd.ts) from its session's local
// address; a BFD Down ends the BGP session at once. BFD settings are not part of the BGP
// config: changing a profile reopens the BFD session only.
import type { BfdState } from "../bfd/packet.ts";
import { redactPeerConfig } from "../bgp/peer-config.ts";
import type { BgpPeerConfig, BgpRoute, SessionStatus } from "../bgp/types.ts";
import type { Logger } from "../observability/log.ts";
import { type BfdRunnerFactory, type BfdSettings, BgpBfd, bfdPeerFor } from "./bgp-bfd.ts";

/** What the backend needs of a session (src/bgp/session.ts's BgpSession has it). */
export interface BgpSessionLike {
  start(): void;
  setRoutes(routes: readonly BgpRoute[]): void;
  status(): SessionStatus;
  onChange(fn: (s: SessionStatus) => void): () => void;
  stop(shutdownText?: string, opts?: { restarting?: boolean }): Promise<void>;
  /** BFD declared the peer down: end the session now. */
  bfdDown(reason: string): void;
}

export type BgpSessionFactory = (cfg: BgpPeerConfig) => BgpSessionLike;

export interface BgpBackendHooks {
  /** A session's status changed (state, routes sent, counters). */
  onStatus(status: SessionStatus, cfg: BgpPeerConfig): void;
  /** A peer's session was stopped for good (not replaced): its status objects can go. */
  onRemoved(peer: string): void;
  /** A peer's BFD state changed; undefined: no BFD session. */
  onBfd?(peer: string, state: BfdState | undefined): void;
}

/** The RFC 9003 texts ironlb sends when it ends a session on purpose. */
export const shutdownTexts = {
  removed: "ironlb: this node no longer peers with this router (BGPPeer deleted or deselected)",
  changed: "ironlb: BGPPeer settings changed, reconnecting",
  stopping: "ironlb: speaker shutting down",
} as const;

interface Entry {
  cfg: BgpPeerConfig;
  /** JSON of cfg: a changed config means a new session. */
  cfgKey: string;
  session: BgpSessionLike;
  unsubscribe: () => void;
  /** JSON of the routes last given, to skip identical calls. */
  routesKey: string;
  bfd?: BfdSettings;
}

export interface DesiredPeer {
  config: BgpPeerConfig;
  routes: readonly BgpRoute[];
  /** Run BFD with the peer (its BFDProfile's timers). */
  bfd?: BfdSettings;
}

export class BgpBackend {
  readonly #factory: BgpSessionFactory;
  readonly #hooks: BgpBackendHooks;
  readonly #log: Logger;
  readonly #sessions = new Map<string, Entry>();
  /** Peers whose previous session is closing: the next one starts after it. */
  readonly #closing = new Map<string, Promise<void>>();
  #stopped = false;
  readonly #bfd: BgpBfd | undefined;

  /** `bfd` makes the BFD runner, on first use; without it no peer gets BFD. */
  constructor(
    factory: BgpSessionFactory,
    hooks: BgpBackendHooks,
    log: Logger,
    bfd?: BfdRunnerFactory,
  ) {
    this.#factory = factory;
    this.#hooks = hooks;
    this.#log = log;
    this.#bfd =
      bfd === undefined
        ? undefined
        : new BgpBfd(
            bfd,
            {
              onState: (peer, state) => this.#hooks.onBfd?.(peer, state),
              onDown: (peer, reason) => {
                const e = this.#sessions.get(peer);
                if (e === undefined) return;
                this.#log.warn(
                  { peer, peerAddress: e.cfg.peerAddress, reason },
                  "BFD declared the peer down: ending the BGP session",
                );
                e.session.bfdDown(reason);
              },
            },
            log,
          );
  }

  /** Makes the sessions and their routes what `desired` says (peer name -> config, routes). */
  apply(desired: ReadonlyMap<string, DesiredPeer>): void {
    if (this.#stopped) return;
    for (const [name, e] of this.#sessions) {
      if (desired.has(name)) continue;
      this.#log.info({ peer: name, peerAddress: e.cfg.peerAddress }, "BGP session removed");
      this.#retire(name, e, shutdownTexts.removed).then(() => {
        if (!this.#sessions.has(name)) this.#hooks.onRemoved(name);
      });
    }
    for (const [name, want] of desired) {
      const cfgKey = JSON.stringify(want.config);
      let e = this.#sessions.get(name);
      if (e !== undefined && e.cfgKey !== cfgKey) {
        this.#log.info(
          { peer: name, was: redactPeerConfig(e.cfg), now: redactPeerConfig(want.config) },
          "BGPPeer settings changed: new session",
        );
        void this.#retire(name, e, shutdownTexts.changed);
        e = undefined;
      }
      if (e === undefined) e = this.#open(name, want.config, cfgKey);
      e.bfd = want.bfd;
      this.#syncBfd(name, e);
      const routesKey = JSON.stringify(want.routes);
      if (routesKey !== e.routesKey) {
        e.routesKey = routesKey;
        e.session.setRoutes(want.routes);
      }
    }
  }

  /** The status of every session, sorted by peer name. */
  statuses(): SessionStatus[] {
    return [...this.#sessions.keys()].sort().map((n) => this.#sessions.get(n)!.session.status());
  }

  /** The config a peer's session runs with, if it has one. */
  configOf(peer: string): BgpPeerConfig | undefined {
    return this.#sessions.get(peer)?.cfg;
  }

  /**
   * Ends every session (Cease with `text`), and starts no more. `restarting`: the speaker
   * restarts within the restart time; sessions with graceful restart negotiated close
   * without a Cease and the routers keep their routes (shutdown-intent.ts decides).
   */
  async stopAll(
    text: string = shutdownTexts.stopping,
    opts: { restarting?: boolean } = {},
  ): Promise<void> {
    this.#stopped = true;
    const all = [...this.#sessions].map(([name, e]) => this.#retire(name, e, text, opts));
    await Promise.all([...all, ...this.#closing.values(), this.#bfd?.stop()]);
  }

  #open(name: string, cfg: BgpPeerConfig, cfgKey: string): Entry {
    const session = this.#factory(cfg);
    const e: Entry = {
      cfg,
      cfgKey,
      session,
      routesKey: "",
      unsubscribe: () => {},
    };
    e.unsubscribe = session.onChange((s) => {
      if (this.#sessions.get(name) !== e) return;
      this.#syncBfd(name, e);
      this.#hooks.onStatus(s, cfg);
    });
    this.#sessions.set(name, e);
    const start = () => {
      if (this.#sessions.get(name) !== e || this.#stopped) return;
      this.#log.info(
        { peer: name, peerAddress: cfg.peerAddress, peerASN: cfg.peerASN, myASN: cfg.myASN },
        "BGP session starting",
      );
      session.start();
      this.#hooks.onStatus(session.status(), cfg);
    };
    const closing = this.#closing.get(name);
    if (closing) void closing.then(start);
    else start();
    return e;
  }

  /** Opens, moves or closes the peer's BFD session to match its settings and address. */
  #syncBfd(name: string, e: Entry): void {
    if (this.#bfd === undefined || this.#stopped) return;
    const current = this.#sessions.get(name) === e;
    const local = current ? e.session.status().localAddress : undefined;
    this.#bfd.set(name, current ? bfdPeerFor(name, e.cfg, e.bfd, local) : undefined);
  }

  /** Stops a session and forgets it; resolves when its socket is closed. */
  #retire(
    name: string,
    e: Entry,
    text: string,
    opts: { restarting?: boolean } = {},
  ): Promise<void> {
    if (this.#sessions.get(name) === e) {
      this.#sessions.delete(name);
      this.#syncBfd(name, e);
    }
    e.unsubscribe();
    if (opts.restarting && e.session.status().gracefulRestart)
      this.#log.info(
        { peer: name },
        "BGP session closed without a Cease: the router keeps this node's routes (graceful restart) until the speaker is back",
      );
    const done = e.session.stop(text, opts).catch((err: unknown) => {
      this.#log.warn({ peer: name, err: (err as Error).message }, "BGP session stop failed");
    });
    const prev = this.#closing.get(name);
    const all = (prev ? Promise.all([prev, done]) : done).then(() => {
      if (this.#closing.get(name) === all) this.#closing.delete(name);
    });
    this.#closing.set(name, all);
    return all;
  }
}
