import pino from "pino";
import { describe, expect, it } from "vitest";
import type { BfdState } from "../bfd/packet.ts";
import type { BfdPeer, BfdStateChange } from "../bfd/udp.ts";
import type { BgpPeerConfig, BgpRoute, SessionStatus } from "../bgp/types.ts";
import { BgpBackend, type BgpSessionLike, type DesiredPeer, shutdownTexts } from "./bgp-backend.ts";
import type { BfdRunnerLike, BfdSettings } from "./bgp-bfd.ts";

/** An in-memory session: records what the backend asks of it. */
class FakeSession implements BgpSessionLike {
  readonly cfg: BgpPeerConfig;
  readonly log: string[];
  started = false;
  stopped?: string;
  routes: readonly BgpRoute[] = [];
  setRoutesCalls = 0;
  #listeners = new Set<(s: SessionStatus) => void>();
  #state: SessionStatus["state"] = "Idle";
  localAddress?: string;
  bfdDowns: string[] = [];
  /** Resolves the pending stop(); until then the socket counts as open. */
  release?: () => void;
  readonly holdStop: boolean;

  constructor(cfg: BgpPeerConfig, log: string[], holdStop: boolean) {
    this.cfg = cfg;
    this.log = log;
    this.holdStop = holdStop;
  }
  start(): void {
    this.started = true;
    this.log.push(`start ${this.cfg.name} hold=${this.cfg.holdTime}`);
  }
  setRoutes(routes: readonly BgpRoute[]): void {
    this.routes = routes;
    this.setRoutesCalls++;
  }
  status(): SessionStatus {
    return {
      peer: this.cfg.name,
      state: this.#state,
      since: 0,
      prefixesSent: this.#state === "Established" ? this.routes.length : 0,
      flaps: 0,
      messagesSent: {},
      messagesReceived: {},
      ...(this.localAddress ? { localAddress: this.localAddress } : {}),
    };
  }
  bfdDown(reason: string): void {
    this.bfdDowns.push(reason);
  }
  onChange(fn: (s: SessionStatus) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }
  become(state: SessionStatus["state"]): void {
    this.#state = state;
    for (const fn of this.#listeners) fn(this.status());
  }
  stop(text?: string, opts: { restarting?: boolean } = {}): Promise<void> {
    this.stopped = text;
    this.log.push(`stop ${this.cfg.name}: ${text}${opts.restarting ? " (restarting)" : ""}`);
    if (!this.holdStop) return Promise.resolve();
    return new Promise((r) => {
      this.release = () => {
        this.log.push(`closed ${this.cfg.name}`);
        r();
      };
    });
  }
}

const cfg = (name: string, extra: Partial<BgpPeerConfig> = {}): BgpPeerConfig => ({
  name,
  myASN: 64512,
  peerASN: 64500,
  peerAddress: "192.0.2.1",
  peerPort: 179,
  holdTime: 90,
  keepaliveTime: 30,
  connectTime: 10,
  routerID: "192.0.2.11",
  ...extra,
});
const route = (prefix: string): BgpRoute => ({ prefix, communities: [], largeCommunities: [] });
const want = (...peers: Array<[BgpPeerConfig, string[]]>) =>
  new Map<string, DesiredPeer>(
    peers.map(([c, r]) => [c.name, { config: c, routes: r.map(route) }]),
  );

function harness(holdStop = false) {
  const log: string[] = [];
  const sessions: FakeSession[] = [];
  const statuses: string[] = [];
  const removed: string[] = [];
  const backend = new BgpBackend(
    (c) => {
      const s = new FakeSession(c, log, holdStop);
      sessions.push(s);
      return s;
    },
    {
      onStatus: (s) => statuses.push(`${s.peer} ${s.state}`),
      onRemoved: (p) => removed.push(p),
    },
    pino({ level: "silent" }),
  );
  return { backend, log, sessions, statuses, removed };
}

const flush = () => new Promise((r) => setImmediate(r));

describe("BgpBackend", () => {
  it("starts one session per peer and gives it its routes", () => {
    const h = harness();
    h.backend.apply(want([cfg("a"), ["198.51.100.1/32"]], [cfg("b"), []]));
    expect(h.log).toEqual(["start a hold=90", "start b hold=90"]);
    expect(h.sessions.map((s) => s.routes.map((r) => r.prefix))).toEqual([["198.51.100.1/32"], []]);
    expect(h.statuses).toEqual(["a Idle", "b Idle"]);
  });

  it("passes changed routes on, and identical ones not again", () => {
    const h = harness();
    h.backend.apply(want([cfg("a"), ["198.51.100.1/32"]]));
    h.backend.apply(want([cfg("a"), ["198.51.100.1/32"]]));
    expect(h.sessions[0]!.setRoutesCalls).toBe(1);
    h.backend.apply(want([cfg("a"), ["198.51.100.1/32", "198.51.100.2/32"]]));
    h.backend.apply(want([cfg("a"), []]));
    expect(h.sessions[0]!.setRoutesCalls).toBe(3);
    expect(h.sessions[0]!.routes).toEqual([]);
    expect(h.sessions).toHaveLength(1);
  });

  it("stops a peer that goes away with a shutdown text, then reports it removed", async () => {
    const h = harness();
    h.backend.apply(want([cfg("a"), []], [cfg("b"), []]));
    h.backend.apply(want([cfg("a"), []]));
    expect(h.sessions[1]!.stopped).toBe(shutdownTexts.removed);
    await flush();
    expect(h.removed).toEqual(["b"]);
    expect(h.backend.statuses().map((s) => s.peer)).toEqual(["a"]);
  });

  it("replaces the session of a changed peer, starting the new one after the old one closed", async () => {
    const h = harness(true);
    h.backend.apply(want([cfg("a"), ["198.51.100.1/32"]]));
    h.backend.apply(want([cfg("a", { holdTime: 9, keepaliveTime: 3 }), ["198.51.100.1/32"]]));
    expect(h.log).toEqual(["start a hold=90", `stop a: ${shutdownTexts.changed}`]);
    // The new session has its routes already, and starts once the old socket is closed.
    expect(h.sessions[1]!.routes.map((r) => r.prefix)).toEqual(["198.51.100.1/32"]);
    h.sessions[0]!.release!();
    await flush();
    expect(h.log).toEqual([
      "start a hold=90",
      `stop a: ${shutdownTexts.changed}`,
      "closed a",
      "start a hold=9",
    ]);
    expect(h.removed).toEqual([]);
  });

  it("reports status changes of current sessions only", () => {
    const h = harness(true);
    h.backend.apply(want([cfg("a"), []]));
    h.sessions[0]!.become("Established");
    h.backend.apply(want([cfg("a", { peerPort: 1179 }), []]));
    h.sessions[0]!.become("Idle"); // the old session, on its way out
    expect(h.statuses).toEqual(["a Idle", "a Established"]);
  });

  it("does not report a peer removed when it came back before the old session closed", async () => {
    const h = harness(true);
    h.backend.apply(want([cfg("a"), []]));
    h.backend.apply(want());
    h.backend.apply(want([cfg("a"), []]));
    h.sessions[0]!.release!();
    await flush();
    expect(h.removed).toEqual([]);
    expect(h.log.at(-1)).toBe("start a hold=90");
  });

  it("stops everything on stopAll and starts nothing after", async () => {
    const h = harness();
    h.backend.apply(want([cfg("a"), []], [cfg("b"), []]));
    await h.backend.stopAll();
    expect(h.sessions.map((s) => s.stopped)).toEqual([
      shutdownTexts.stopping,
      shutdownTexts.stopping,
    ]);
    h.backend.apply(want([cfg("c"), []]));
    expect(h.sessions).toHaveLength(2);
  });

  it("passes a restart on to every session on stopAll (each decides by its graceful restart)", async () => {
    const h = harness();
    h.backend.apply(want([cfg("a"), []]));
    await h.backend.stopAll(undefined, { restarting: true });
    expect(h.log.at(-1)).toBe(`stop a: ${shutdownTexts.stopping} (restarting)`);
  });
});

/** An in-memory BFD runner: records opens and closes; `emit` plays a state change. */
class FakeRunner implements BfdRunnerLike {
  readonly ops: string[] = [];
  readonly #listeners = new Set<(c: BfdStateChange) => void>();
  async open(peer: BfdPeer): Promise<void> {
    this.ops.push(
      `open ${peer.name} ${peer.localAddress}->${peer.peerAddress} ${peer.desiredMinTxMs}x${peer.detectMultiplier}`,
    );
  }
  async close(name: string): Promise<void> {
    this.ops.push(`close ${name}`);
  }
  onChange(fn: (c: BfdStateChange) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }
  async stop(): Promise<void> {
    this.ops.push("stop");
  }
  emit(name: string, from: BfdState, state: BfdState): void {
    for (const fn of this.#listeners)
      fn({ name, from, state, diag: 1, reason: "Control Detection Time Expired", at: 0 });
  }
}

const fast: BfdSettings = {
  profile: "fast",
  desiredMinTxMs: 100,
  requiredMinRxMs: 100,
  detectMultiplier: 3,
  passive: false,
};

function bfdHarness() {
  const sessions: FakeSession[] = [];
  const bfdStates: string[] = [];
  let runners = 0;
  const runner = new FakeRunner();
  const backend = new BgpBackend(
    (c) => {
      const s = new FakeSession(c, [], false);
      sessions.push(s);
      return s;
    },
    {
      onStatus: () => {},
      onRemoved: () => {},
      onBfd: (p, st) => bfdStates.push(`${p} ${st ?? "none"}`),
    },
    pino({ level: "silent" }),
    () => {
      runners++;
      return runner;
    },
  );
  return { backend, sessions, bfdStates, runner, runners: () => runners };
}

describe("BgpBackend with BFD", () => {
  it("starts no BFD runner while no peer asks for BFD", async () => {
    const h = bfdHarness();
    h.backend.apply(want([cfg("a"), []]));
    h.sessions[0]!.localAddress = "192.0.2.11";
    h.sessions[0]!.become("Established");
    await h.backend.stopAll();
    expect(h.runners()).toBe(0);
  });

  it("opens BFD from the session's local address once connected, and a Down ends the session", async () => {
    const h = bfdHarness();
    const desired = new Map<string, DesiredPeer>([
      ["a", { config: cfg("a"), routes: [], bfd: fast }],
    ]);
    h.backend.apply(desired);
    // No local address yet: nothing to open from.
    expect(h.runners()).toBe(0);
    h.sessions[0]!.localAddress = "192.0.2.11";
    h.sessions[0]!.become("OpenSent");
    await flush();
    expect(h.runner.ops).toEqual(["open a 192.0.2.11->192.0.2.1 100x3"]);
    h.runner.emit("a", "Down", "Up");
    expect(h.sessions[0]!.bfdDowns).toEqual([]);
    h.runner.emit("a", "Up", "Down");
    expect(h.sessions[0]!.bfdDowns).toEqual(["Control Detection Time Expired"]);
    expect(h.bfdStates).toEqual(["a Down", "a Up", "a Down"]);
    // The same settings again: no reopen.
    h.backend.apply(desired);
    h.sessions[0]!.become("Established");
    await flush();
    expect(h.runner.ops).toHaveLength(1);
    expect(h.runners()).toBe(1);
  });

  it("uses sourceAddress at once, reopens BFD only on a profile change, closes it when BFD is dropped", async () => {
    const h = bfdHarness();
    const c = cfg("a", { sourceAddress: "192.0.2.12" });
    h.backend.apply(new Map([["a", { config: c, routes: [], bfd: fast }]]));
    h.backend.apply(
      new Map([["a", { config: c, routes: [], bfd: { ...fast, detectMultiplier: 5 } }]]),
    );
    h.backend.apply(new Map([["a", { config: c, routes: [] }]]));
    await flush();
    expect(h.sessions).toHaveLength(1);
    expect(h.runner.ops).toEqual([
      "open a 192.0.2.12->192.0.2.1 100x3",
      "close a",
      "open a 192.0.2.12->192.0.2.1 100x5",
      "close a",
    ]);
    expect(h.bfdStates.at(-1)).toBe("a none");
  });

  it("closes BFD with a removed peer, ignores its late changes, and stops the runner on stopAll", async () => {
    const h = bfdHarness();
    const c = cfg("a", { sourceAddress: "192.0.2.12" });
    h.backend.apply(new Map([["a", { config: c, routes: [], bfd: fast }]]));
    h.backend.apply(new Map());
    h.runner.emit("a", "Up", "Down");
    expect(h.sessions[0]!.bfdDowns).toEqual([]);
    h.backend.apply(
      new Map([
        ["b", { config: cfg("b", { sourceAddress: "192.0.2.12" }), routes: [], bfd: fast }],
      ]),
    );
    await h.backend.stopAll();
    expect(h.runner.ops).toEqual([
      "open a 192.0.2.12->192.0.2.1 100x3",
      "close a",
      "open b 192.0.2.12->192.0.2.1 100x3",
      "close b",
      "stop",
    ]);
  });
});
