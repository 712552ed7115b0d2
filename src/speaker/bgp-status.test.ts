import type { KubernetesObject } from "@kubernetes/client-node";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { bgpSessionStateName } from "../api/bgpsessionstate.ts";
import type { BgpPeerConfig, SessionStatus } from "../bgp/types.ts";
import type { KubeClient } from "../k8s/client.ts";
import { ApiError } from "../k8s/client.ts";
import type { EventRecorder } from "../k8s/events.ts";
import {
  BGP_SESSION_STATES_PATH,
  BgpStatus,
  type SessionStateObject,
  sessionStateStatus,
} from "./bgp-status.ts";
import { speakerMetrics } from "./metrics.ts";

const NODE = "n1";
const cfg = (extra: Partial<BgpPeerConfig> = {}): BgpPeerConfig => ({
  name: "tor",
  myASN: 64512,
  peerASN: 64500,
  peerAddress: "192.0.2.1",
  peerPort: 179,
  holdTime: 9,
  keepaliveTime: 3,
  connectTime: 2,
  routerID: "192.0.2.11",
  ...extra,
});
const status = (extra: Partial<SessionStatus> = {}): SessionStatus => ({
  peer: "tor",
  state: "Connect",
  since: Date.UTC(2026, 11, 7, 10, 0, 0),
  prefixesSent: 0,
  flaps: 0,
  messagesSent: {},
  messagesReceived: {},
  ...extra,
});

function harness(objects: SessionStateObject[] = []) {
  const calls: string[] = [];
  const bodies: Array<{ status: Record<string, unknown> }> = [];
  const stored = new Set<string>();
  const api = {
    mergePatch: async (path: string, body: { status: { state: string } }) => {
      calls.push(`patch ${path.split("/").at(-1)} ${body.status.state}`);
      bodies.push(body);
      if (!stored.has(path)) throw new ApiError(404, {}, "not found");
    },
    create: async (
      path: string,
      body: { metadata: { name: string }; status: { state: string } },
    ) => {
      calls.push(`create ${body.metadata.name} ${body.status.state}`);
      stored.add(`${path}/${body.metadata.name}`);
    },
    delete: async (path: string) => {
      calls.push(`delete ${path.split("/").at(-1)}`);
    },
  } as unknown as KubeClient;
  const events: string[] = [];
  const recorder = {
    emit: async (_t: unknown, type: string, reason: string, message: string) => {
      events.push(`${type} ${reason}: ${message}`);
    },
  } as unknown as EventRecorder;
  const metrics = speakerMetrics();
  const peerObj: KubernetesObject = { metadata: { name: "tor", uid: "u1" } };
  const s = new BgpStatus(api, recorder, metrics, pino({ level: "silent" }), {
    node: NODE,
    peerObject: (n) => (n === "tor" ? peerObj : undefined),
    ownObjects: () => objects,
  });
  return { s, calls, bodies, events, metrics };
}

const name = bgpSessionStateName(NODE, "tor");
const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

describe("sessionStateStatus", () => {
  it("says the state, times in RFC 3339, the last error and NOTIFICATION", () => {
    expect(
      sessionStateStatus(
        NODE,
        cfg(),
        status({
          state: "Idle",
          establishedAt: Date.UTC(2026, 11, 7, 9, 0, 0),
          lastError: "connect failed: ECONNREFUSED",
          lastNotification: {
            direction: "received",
            code: 6,
            subcode: 2,
            text: "Cease/Administrative Shutdown: maintenance",
            at: 1,
          },
          flaps: 2,
        }),
      ),
    ).toEqual({
      node: NODE,
      peer: "tor",
      peerAddress: "192.0.2.1",
      state: "Idle",
      since: "2026-12-07T10:00:00Z",
      establishedAt: "2026-12-07T09:00:00Z",
      lastError: "connect failed: ECONNREFUSED",
      lastNotification: "received 6/2 Cease/Administrative Shutdown: maintenance",
      prefixesSent: 0,
      flaps: 2,
    });
  });

  it("cuts texts to the CRD's 1024 characters", () => {
    const st = sessionStateStatus(NODE, cfg(), status({ lastError: "x".repeat(5000) }));
    expect(st.lastError?.length).toBe(1024);
  });
});

describe("sessionStateStatus with graceful restart", () => {
  it("says whether the router agreed, only for a peer that enables it", () => {
    const gr = { ...cfg(), gracefulRestartTime: 120 };
    expect(sessionStateStatus(NODE, gr, status({ gracefulRestart: true })).gracefulRestart).toBe(
      "Negotiated",
    );
    expect(sessionStateStatus(NODE, gr, status({ gracefulRestart: false })).gracefulRestart).toBe(
      "Unsupported",
    );
    // Not Established (nothing negotiated yet), or not enabled: nothing to say.
    expect(sessionStateStatus(NODE, gr, status())).not.toHaveProperty("gracefulRestart");
    expect(sessionStateStatus(NODE, cfg(), status({ gracefulRestart: false }))).not.toHaveProperty(
      "gracefulRestart",
    );
  });
});

describe("sessionStateStatus with BFD", () => {
  it("adds bfdState and bfdError only when there is something to say", () => {
    expect(sessionStateStatus(NODE, cfg(), status())).not.toHaveProperty("bfdState");
    expect(
      sessionStateStatus(NODE, cfg(), status(), { state: "Up", error: "no profile" }),
    ).toMatchObject({ bfdState: "Up", bfdError: "no profile" });
  });
});

describe("BgpStatus", () => {
  beforeEach(() =>
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance", "Date"] }),
  );
  afterEach(() => vi.useRealTimers());

  it("creates the object, then writes changes at most once a second (the latest one)", async () => {
    const h = harness();
    const c = cfg();
    h.s.onStatus(status({ state: "Connect" }), c);
    await flush();
    expect(h.calls).toEqual([`patch ${name} Connect`, `create ${name} Connect`]);
    h.s.onStatus(status({ state: "OpenSent" }), c);
    h.s.onStatus(status({ state: "Established" }), c);
    await flush();
    expect(h.calls).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.calls.slice(2)).toEqual([`patch ${name} Established`]);
    // Nothing changed: no write.
    h.s.onStatus(status({ state: "Established" }), c);
    await vi.advanceTimersByTimeAsync(2000);
    expect(h.calls).toHaveLength(3);
  });

  it("emits an Event on the BGPPeer when the session comes up and when it goes down", () => {
    const h = harness();
    const c = cfg();
    h.s.onStatus(status({ state: "Connect" }), c);
    h.s.onStatus(status({ state: "Established", negotiatedHoldTime: 9 }), c);
    h.s.onStatus(
      status({
        state: "Idle",
        flaps: 1,
        lastNotification: { direction: "received", code: 6, subcode: 2, text: "Cease", at: 5 },
      }),
      c,
    );
    expect(h.events).toEqual([
      "Normal SessionEstablished: Node n1 established its BGP session with 192.0.2.1 (hold time 9s)",
      "Warning SessionDown: Node n1 lost its BGP session with 192.0.2.1: NOTIFICATION received 6/2 Cease",
    ]);
  });

  it("counts flaps, messages and NOTIFICATIONs as deltas, from zero again for a new session", async () => {
    const h = harness();
    const m = h.metrics;
    const a = cfg();
    h.s.onStatus(status({ state: "Established", messagesSent: { open: 1, keepalive: 2 } }), a);
    h.s.onStatus(
      status({
        state: "Idle",
        flaps: 1,
        messagesSent: { open: 1, keepalive: 5 },
        lastNotification: {
          direction: "sent",
          code: 4,
          subcode: 0,
          text: "Hold Timer Expired",
          at: 7,
        },
      }),
      a,
    );
    // The same NOTIFICATION seen again is not counted again.
    h.s.onStatus(
      status({
        state: "Connect",
        flaps: 1,
        messagesSent: { open: 1, keepalive: 5 },
        lastNotification: {
          direction: "sent",
          code: 4,
          subcode: 0,
          text: "Hold Timer Expired",
          at: 7,
        },
      }),
      a,
    );
    expect(m.bgpFlaps.get({ peer: "tor" })).toBe(1);
    expect(m.bgpMessages.get({ peer: "tor", direction: "sent", type: "keepalive" })).toBe(5);
    expect(m.bgpNotifications.get({ peer: "tor", direction: "sent", code: 4, subcode: 0 })).toBe(1);
    expect(m.bgpSessionState.get({ peer: "tor", state: "Connect" })).toBe(1);
    expect(m.bgpSessionState.get({ peer: "tor", state: "Established" })).toBe(0);
    // Settings changed: a new session whose counters start at zero adds to the series.
    const b = cfg({ holdTime: 30 });
    h.s.onStatus(
      status({ state: "Established", messagesSent: { open: 1, keepalive: 1 }, prefixesSent: 3 }),
      b,
    );
    expect(m.bgpMessages.get({ peer: "tor", direction: "sent", type: "keepalive" })).toBe(6);
    expect(m.bgpSessionUp.get({ peer: "tor" })).toBe(1);
    expect(m.bgpPrefixes.get({ peer: "tor" })).toBe(3);
  });

  it("deletes the object and the gauges of a removed peer", async () => {
    const h = harness();
    h.s.onStatus(status({ state: "Established", prefixesSent: 2 }), cfg());
    h.s.onRemoved("tor");
    await flush();
    expect(h.calls.at(-1)).toBe(`delete ${name}`);
    expect(await h.metrics.registry.metrics()).not.toContain(
      'ironlb_speaker_bgp_prefixes_advertised{peer="tor"}',
    );
  });

  it("deletes this node's objects of peers it has no session with, and keeps the current ones", async () => {
    const obj = (n: string, peer: string): SessionStateObject => ({
      apiVersion: "ironlb.dev/v1beta1",
      kind: "BGPSessionState",
      metadata: { name: n },
      status: { node: NODE, peer, state: "Idle" },
    });
    const h = harness([obj(name, "tor"), obj(bgpSessionStateName(NODE, "gone"), "gone")]);
    h.s.deleteStale(new Set(["tor"]));
    await flush();
    expect(h.calls).toEqual([`delete ${bgpSessionStateName(NODE, "gone")}`]);
    expect(BGP_SESSION_STATES_PATH).toBe("/apis/ironlb.dev/v1beta1/bgpsessionstates");
  });

  it("writes the BFD state and a missing profile into the status, and counts BFD Downs", async () => {
    const h = harness();
    const c = cfg();
    h.s.onStatus(status({ state: "Established" }), c);
    h.s.onBfd("tor", "Down");
    h.s.onBfd("tor", "Up");
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.bodies.at(-1)?.status).toMatchObject({ state: "Established", bfdState: "Up" });
    expect(h.metrics.bfdSessionUp.get({ peer: "tor" })).toBe(1);
    h.s.onBfd("tor", "Down");
    h.s.onBfd("tor", "Init");
    h.s.onBfd("tor", "Up");
    h.s.onBfd("tor", "Down");
    expect(h.metrics.bfdSessionUp.get({ peer: "tor" })).toBe(0);
    expect(h.metrics.bfdDowns.get({ peer: "tor" })).toBe(2);
    h.s.onBfd("tor", undefined);
    h.s.setBfdError("tor", 'BFDProfile "fast" not found');
    await vi.advanceTimersByTimeAsync(1000);
    expect(h.events.at(-1)).toBe(
      'Warning BFDProfileNotFound: Node n1 runs its BGP session without BFD: BFDProfile "fast" not found',
    );
    const last = h.bodies.at(-1)?.status;
    expect(last).toMatchObject({ bfdError: 'BFDProfile "fast" not found' });
    // Merge patch: the BFD state is removed with an explicit null.
    expect(last).toMatchObject({ bfdState: null });
    const series: string[] = [];
    h.metrics.bfdSessionUp.render(series);
    expect(series.filter((l) => !l.startsWith("#"))).toEqual([]);
  });
});

describe("password Secret problems", () => {
  it("tells each new problem once as a Warning Event on the BGPPeer, again after a fix", () => {
    const h = harness();
    const why = "passwordSecret lb/bgp-md5: no such Secret";
    h.s.setPasswordError("tor", undefined);
    expect(h.events).toEqual([]);
    h.s.setPasswordError("tor", why);
    h.s.setPasswordError("tor", why);
    expect(h.events).toEqual([
      `Warning PasswordSecretUnusable: Node n1 does not connect to tor: ${why}`,
    ]);
    h.s.setPasswordError("tor", undefined);
    h.s.setPasswordError("tor", why);
    expect(h.events).toHaveLength(2);
    // A peer no longer on this node starts afresh.
    h.s.onRemoved("tor");
    h.s.setPasswordError("tor", why);
    expect(h.events).toHaveLength(3);
  });
});
