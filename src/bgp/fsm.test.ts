import { describe, expect, it } from "vitest";
import {
  type FsmAction,
  type FsmEvent,
  type FsmState,
  initialState,
  negotiate,
  OPEN_HOLD_MS,
  ourOpen,
  retryDelayMs,
  step,
} from "./fsm.ts";
import { decodeNotification, decodeOpen, encodeOpen, type OpenMessage } from "./messages.ts";
import type { ParseResult } from "./parser.ts";
import type { BgpPeerConfig } from "./types.ts";

const cfg: BgpPeerConfig = {
  name: "r1",
  myASN: 4200000001,
  peerASN: 64500,
  peerAddress: "192.0.2.1",
  peerPort: 179,
  holdTime: 9,
  keepaliveTime: 30,
  connectTime: 5,
  routerID: "192.0.2.11",
};
const peerOpen = (o: Partial<OpenMessage> = {}): OpenMessage => ({
  version: 4,
  asn16: 64500,
  holdTime: 90,
  routerID: "192.0.2.1",
  capabilities: {
    families: ["ipv4-unicast", "ipv6-unicast"],
    routeRefresh: true,
    fourOctetAS: 64500,
  },
  ...o,
});
const received = (message: ParseResult): FsmEvent => ({ type: "received", message });

/** Runs events from `s`, returning the final state and all actions in a compact form. */
function run(events: FsmEvent[], s: FsmState = initialState, c = cfg, random = 0.5) {
  const actions: FsmAction[] = [];
  for (const e of events) {
    const r = step(c, s, e, random);
    s = r.state;
    actions.push(...r.actions);
  }
  return { state: s, actions, brief: actions.map(brief) };
}

function brief(a: FsmAction): string {
  switch (a.type) {
    case "send":
      if (a.notification)
        return `send notification ${a.notification.code}/${a.notification.subcode}`;
      return `send ${a.kind}`;
    case "arm":
      return `arm ${a.timer} ${a.ms}`;
    case "disarm":
      return `disarm ${a.timer}`;
    case "state":
      return `state ${a.state}`;
    case "resend":
      return `resend ${a.family}`;
    case "error":
      return "error";
    default:
      return a.type;
  }
}

const DOWN_TIMERS = [
  "disarm connectRetry",
  "disarm connect",
  "disarm hold",
  "disarm keepalive",
  "disarm openWait",
];
const toEstablished: FsmEvent[] = [
  { type: "start" },
  { type: "tcpConnected" },
  received({ type: "open", open: peerOpen() }),
  received({ type: "keepalive" }),
];
const established = run(toEstablished).state;
const openSent = run(toEstablished.slice(0, 2)).state;
const openConfirm = run(toEstablished.slice(0, 3)).state;

describe("FSM transitions (RFC 4271 §8, active only)", () => {
  it("connects, sends OPEN, answers the peer's OPEN with KEEPALIVE, becomes Established", () => {
    const r = run(toEstablished);
    expect(r.brief).toEqual([
      "state Connect",
      "arm connect 5000",
      "connect",
      "disarm connect",
      "send open",
      `arm hold ${OPEN_HOLD_MS}`,
      "state OpenSent",
      "send keepalive",
      "arm hold 9000",
      "state OpenConfirm",
      "arm keepalive 3000",
      "arm hold 9000",
      "state Established",
      "established",
    ]);
    expect(r.state.negotiated).toMatchObject({
      peerASN: 64500,
      holdTime: 9,
      keepaliveTime: 3,
      fourOctet: true,
      internal: false,
      families: ["ipv4-unicast"],
    });
  });

  it("sends our OPEN with AS_TRANS, the configured hold time and our family only", () => {
    const send = run(toEstablished.slice(0, 2)).actions.find((a) => a.type === "send");
    expect(send?.type === "send" && [...send.bytes]).toEqual([...encodeOpen(ourOpen(cfg))]);
    expect(ourOpen(cfg)).toMatchObject({ asn16: 23456, holdTime: 9 });
    expect(ourOpen({ ...cfg, peerAddress: "2001:db8::1" }).capabilities.families).toEqual([
      "ipv6-unicast",
    ]);
  });

  type Row = [string, FsmState, FsmEvent, string[], FsmState["state"]];
  const rows: Row[] = [
    [
      "Established: KEEPALIVE restarts the hold timer",
      established,
      received({ type: "keepalive" }),
      ["arm hold 9000"],
      "Established",
    ],
    [
      "Established: UPDATE is counted, restarts hold",
      established,
      received({ type: "update", length: 23 }),
      ["arm hold 9000", "updateReceived"],
      "Established",
    ],
    [
      "Established: ROUTE-REFRESH resends the family",
      established,
      received({ type: "routeRefresh", family: "ipv4-unicast" }),
      ["arm hold 9000", "resend ipv4-unicast"],
      "Established",
    ],
    [
      "Established: ROUTE-REFRESH for a family not carried is ignored",
      established,
      received({ type: "routeRefresh", family: "ipv6-unicast" }),
      ["arm hold 9000"],
      "Established",
    ],
    [
      "Established: keepalive timer sends KEEPALIVE",
      established,
      { type: "timer", timer: "keepalive" },
      ["send keepalive", "arm keepalive 3000"],
      "Established",
    ],
    [
      "Established: hold timer expiry sends 4/0",
      established,
      { type: "timer", timer: "hold" },
      [
        "error",
        "send notification 4/0",
        "close",
        ...DOWN_TIMERS,
        "state Idle",
        "arm connectRetry 750",
      ],
      "Idle",
    ],
    [
      "Established: OPEN is an FSM error 5/3",
      established,
      received({ type: "open", open: peerOpen() }),
      [
        "error",
        "send notification 5/3",
        "close",
        ...DOWN_TIMERS,
        "state Idle",
        "arm connectRetry 750",
      ],
      "Idle",
    ],
    [
      "Established: NOTIFICATION closes without answering",
      established,
      received({
        type: "notification",
        notification: { code: 6, subcode: 4, data: new Uint8Array(0) },
      }),
      [
        "notificationReceived",
        "error",
        "close",
        ...DOWN_TIMERS,
        "state Idle",
        "arm connectRetry 750",
      ],
      "Idle",
    ],
    [
      "Established: TCP closed",
      established,
      { type: "tcpClosed", reason: "reset" },
      ["error", "close", ...DOWN_TIMERS, "state Idle", "arm connectRetry 750"],
      "Idle",
    ],
    [
      "Established: malformed bytes send the parser's error",
      established,
      received({
        type: "error",
        error: { error: { code: 1, subcode: 1, data: new Uint8Array(0) }, reason: "marker" },
      }),
      [
        "error",
        "send notification 1/1",
        "close",
        ...DOWN_TIMERS,
        "state Idle",
        "arm connectRetry 750",
      ],
      "Idle",
    ],
    [
      "Established: stop sends Cease 6/2 and does not reconnect",
      established,
      { type: "stop", text: "bye" },
      ["send notification 6/2", "close", ...DOWN_TIMERS, "state Idle"],
      "Idle",
    ],
    [
      "OpenSent: KEEPALIVE is an FSM error 5/1",
      openSent,
      received({ type: "keepalive" }),
      [
        "error",
        "send notification 5/1",
        "close",
        ...DOWN_TIMERS,
        "state Idle",
        "arm connectRetry 750",
      ],
      "Idle",
    ],
    [
      "OpenSent: hold timer (4 min) expiry sends 4/0",
      openSent,
      { type: "timer", timer: "hold" },
      [
        "error",
        "send notification 4/0",
        "close",
        ...DOWN_TIMERS,
        "state Idle",
        "arm connectRetry 750",
      ],
      "Idle",
    ],
    [
      "OpenSent: keepalive timer does nothing",
      openSent,
      { type: "timer", timer: "keepalive" },
      [],
      "OpenSent",
    ],
    [
      "OpenConfirm: UPDATE is an FSM error 5/2",
      openConfirm,
      received({ type: "update", length: 23 }),
      [
        "error",
        "send notification 5/2",
        "close",
        ...DOWN_TIMERS,
        "state Idle",
        "arm connectRetry 750",
      ],
      "Idle",
    ],
    [
      "OpenConfirm: keepalive timer sends KEEPALIVE",
      openConfirm,
      { type: "timer", timer: "keepalive" },
      ["send keepalive", "arm keepalive 3000"],
      "OpenConfirm",
    ],
    [
      "Connect: TCP failure retries after back-off",
      run([{ type: "start" }]).state,
      { type: "tcpFailed", reason: "refused" },
      ["error", "close", ...DOWN_TIMERS, "state Idle", "arm connectRetry 750"],
      "Idle",
    ],
    [
      "Connect: connect timeout retries after back-off",
      run([{ type: "start" }]).state,
      { type: "timer", timer: "connect" },
      ["error", "close", ...DOWN_TIMERS, "state Idle", "arm connectRetry 750"],
      "Idle",
    ],
    [
      "Connect: stop closes without NOTIFICATION",
      run([{ type: "start" }]).state,
      { type: "stop" },
      ["close", ...DOWN_TIMERS, "state Idle"],
      "Idle",
    ],
    [
      "Idle (retrying): retry timer connects",
      run([{ type: "start" }, { type: "tcpFailed", reason: "x" }]).state,
      { type: "timer", timer: "connectRetry" },
      ["state Connect", "arm connect 5000", "connect"],
      "Connect",
    ],
    [
      "Idle (stopped): retry timer does nothing",
      initialState,
      { type: "timer", timer: "connectRetry" },
      [],
      "Idle",
    ],
    [
      "Idle (stopped): a late TCP close does nothing",
      initialState,
      { type: "tcpClosed", reason: "x" },
      [],
      "Idle",
    ],
    [
      "Idle (stopped): a late message does nothing",
      initialState,
      received({ type: "keepalive" }),
      [],
      "Idle",
    ],
    ["Established: start again does nothing", established, { type: "start" }, [], "Established"],
    [
      "Established: BFD down sends Cease 6/10 at once and reconnects",
      established,
      { type: "bfdDown", reason: "Control Detection Time Expired" },
      [
        "error",
        "send notification 6/10",
        "close",
        ...DOWN_TIMERS,
        "state Idle",
        "arm connectRetry 750",
      ],
      "Idle",
    ],
    [
      "Connect: BFD down drops the attempt and retries",
      run([{ type: "start" }]).state,
      { type: "bfdDown", reason: "x" },
      ["error", "close", ...DOWN_TIMERS, "state Idle", "arm connectRetry 750"],
      "Idle",
    ],
    ["Idle: BFD down does nothing", initialState, { type: "bfdDown", reason: "x" }, [], "Idle"],
  ];
  it.each(rows)("%s", (_, from, ev, actions, to) => {
    const r = run([ev], from);
    expect(r.brief).toEqual(actions);
    expect(r.state.state).toBe(to);
  });

  it("puts the RFC 9003 text into the Cease it sends on stop", () => {
    const send = run([{ type: "stop", text: "node drained" }], established).actions.find(
      (a) => a.type === "send",
    );
    if (send?.type !== "send") throw new Error("no NOTIFICATION sent");
    const n = decodeNotification(send.bytes.subarray(19));
    expect(n.code).toBe(6);
    expect(n.subcode).toBe(2);
    expect(new TextDecoder().decode(n.data.subarray(1))).toBe("node drained");
  });

  it("stops reconnecting after stop, and start again connects", () => {
    const stopped = run([{ type: "stop" }], established).state;
    expect(stopped.stopped).toBe(true);
    expect(run([{ type: "start" }], stopped).brief[0]).toBe("state Connect");
  });
});

describe("OPEN negotiation", () => {
  const err = (c: BgpPeerConfig, o: OpenMessage) => {
    const n = negotiate(c, o);
    return "error" in n ? `${n.error.code}/${n.error.subcode}` : "ok";
  };

  it.each([
    ["the configured peer AS", cfg, peerOpen(), "ok"],
    [
      "another peer AS",
      cfg,
      peerOpen({
        asn16: 64501,
        capabilities: { families: [], routeRefresh: false, fourOctetAS: 64501 },
      }),
      "2/2",
    ],
    [
      "a 2-octet peer whose AS matches",
      cfg,
      peerOpen({ capabilities: { families: ["ipv4-unicast"], routeRefresh: false } }),
      "ok",
    ],
    [
      "dynamic internal: same AS",
      { ...cfg, peerASN: 0, dynamicASN: "internal" as const },
      peerOpen({
        asn16: 23456,
        capabilities: { families: [], routeRefresh: false, fourOctetAS: 4200000001 },
      }),
      "ok",
    ],
    [
      "dynamic internal: other AS",
      { ...cfg, peerASN: 0, dynamicASN: "internal" as const },
      peerOpen(),
      "2/2",
    ],
    [
      "dynamic external: other AS",
      { ...cfg, peerASN: 0, dynamicASN: "external" as const },
      peerOpen(),
      "ok",
    ],
    [
      "dynamic external: same AS",
      { ...cfg, peerASN: 0, dynamicASN: "external" as const },
      peerOpen({
        asn16: 23456,
        capabilities: { families: [], routeRefresh: false, fourOctetAS: 4200000001 },
      }),
      "2/2",
    ],
    ["hold time 1", cfg, peerOpen({ holdTime: 1 }), "2/6"],
    ["hold time 2", cfg, peerOpen({ holdTime: 2 }), "2/6"],
    ["hold time 0", cfg, peerOpen({ holdTime: 0 }), "ok"],
    ["hold time 3", cfg, peerOpen({ holdTime: 3 }), "ok"],
    [
      "an internal peer with our identifier",
      { ...cfg, peerASN: 4200000001 },
      peerOpen({
        routerID: "192.0.2.11",
        capabilities: { families: [], routeRefresh: false, fourOctetAS: 4200000001 },
      }),
      "2/3",
    ],
  ])("%s → %s", (_, c, o, expected) => {
    expect(err(c, o)).toBe(expected);
  });

  it.each([
    [9, 90, 30, 9, 3],
    [90, 3, 30, 3, 1],
    [90, 90, 10, 90, 10],
    [0, 90, 30, 0, 0],
    [90, 0, 30, 0, 0],
    [4, 90, 30, 4, 1],
  ])("ours %i, theirs %i, keepalive %i → hold %i, keepalive %i", (ours, theirs, ka, hold, keep) => {
    const n = negotiate(
      { ...cfg, holdTime: ours, keepaliveTime: ka },
      peerOpen({ holdTime: theirs }),
    );
    expect(n).toMatchObject({ holdTime: hold, keepaliveTime: keep });
  });

  it("with hold 0 arms neither hold nor keepalive timers after the OPEN", () => {
    const r = run(toEstablished, initialState, { ...cfg, holdTime: 0 });
    expect(r.brief.filter((b) => b.startsWith("arm"))).toEqual([
      "arm connect 5000",
      `arm hold ${OPEN_HOLD_MS}`,
    ]);
    expect(r.brief).toContain("disarm hold");
  });
});

describe("reconnect back-off", () => {
  it("doubles from 1 s up to 30 s, jittered into [d/2, d]", () => {
    expect([0, 1, 2, 3, 4, 5, 6, 20].map((f) => retryDelayMs(f, 1))).toEqual([
      1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000,
    ]);
    expect(retryDelayMs(0, 0)).toBe(500);
    expect(retryDelayMs(3, 0.5)).toBe(6000);
  });

  it("grows with each failure and starts over after Established", () => {
    const delays = (s: FsmState, n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) {
        const r = run(
          [
            { type: "timer", timer: "connectRetry" },
            { type: "tcpFailed", reason: "x" },
          ],
          s,
          cfg,
          1,
        );
        s = r.state;
        const arm = r.actions.find((a) => a.type === "arm" && a.timer === "connectRetry");
        out.push(arm?.type === "arm" ? arm.ms : -1);
      }
      return { s, out };
    };
    const first = run(
      [{ type: "start" }, { type: "tcpFailed", reason: "x" }],
      initialState,
      cfg,
      1,
    ).state;
    const { s, out } = delays(first, 3);
    expect(out).toEqual([2000, 4000, 8000]);
    const up = run(toEstablished.slice(1), { ...s, state: "Connect" }).state;
    expect(up.failures).toBe(0);
    const again = run([{ type: "tcpClosed", reason: "x" }], up, cfg, 1);
    expect(again.brief.at(-1)).toBe("arm connectRetry 1000");
  });
});

describe("GTSM: OpenSent without the router's OPEN", () => {
  const gtsm = { ...cfg, ttlSecurityHops: 1 };
  const sent = run([{ type: "start" }, { type: "tcpConnected" }], initialState, gtsm);

  it("arms a hold-time-sized wait in OpenSent only with ttlSecurityHops", () => {
    expect(sent.brief).toContain("arm openWait 9000");
    expect(run([{ type: "start" }, { type: "tcpConnected" }]).brief).not.toContain(
      "arm openWait 9000",
    );
    const noHold = run([{ type: "start" }, { type: "tcpConnected" }], initialState, {
      ...gtsm,
      holdTime: 0,
    });
    expect(noHold.brief).toContain("arm openWait 90000");
  });

  it("says why when it expires, and keeps waiting for the OPEN (RFC 4271's 4 minutes)", () => {
    const r = run([{ type: "timer", timer: "openWait" }], sent.state, gtsm);
    expect(r.state.state).toBe("OpenSent");
    expect(r.actions).toEqual([
      {
        type: "error",
        text: expect.stringMatching(
          /^no OPEN received 9 s after connecting: GTSM mismatch\?; with ttlSecurityHops 1 this node also drops the router's segments unless they arrive with TTL 255 or more/,
        ),
      },
    ]);
  });

  it("does nothing once the OPEN came (a late timer)", () => {
    const confirm = run([received({ type: "open", open: peerOpen() })], sent.state, gtsm).state;
    expect(confirm.state).toBe("OpenConfirm");
    expect(run([{ type: "timer", timer: "openWait" }], confirm, gtsm).actions).toEqual([]);
  });
});

describe("graceful restart (RFC 4724) in OPEN", () => {
  const gr = { ...cfg, gracefulRestartTime: 120 };
  const sentOpen = (actions: FsmAction[]) => {
    const send = actions.find((a) => a.type === "send" && a.kind === "open");
    return send?.type === "send" ? decodeOpen(send.bytes.subarray(19)) : undefined;
  };
  const grOf = (actions: FsmAction[]) => {
    const o = sentOpen(actions);
    return o !== undefined && "capabilities" in o ? o.capabilities.gracefulRestart : undefined;
  };
  const withGR = peerOpen({
    capabilities: {
      families: ["ipv4-unicast"],
      routeRefresh: true,
      fourOctetAS: 64500,
      endOfRibAware: true,
      gracefulRestart: { restarting: false, restartTime: 120, families: [] },
    },
  });
  const toUp: FsmEvent[] = [
    { type: "start" },
    { type: "tcpConnected" },
    received({ type: "open", open: withGR }),
    received({ type: "keepalive" }),
  ];

  it("is not offered unless the peer config asks: only End-of-RIB awareness", () => {
    expect(grOf(run(toUp).actions)).toEqual({ restarting: false, restartTime: 0, families: [] });
    expect(run(toUp).state.negotiated?.gracefulRestart).toBe(false);
  });

  it("sets R and F (our family only) on a new session's first OPENs, until Established", () => {
    const first = run(toUp, initialState, gr);
    expect(grOf(first.actions)).toEqual({
      restarting: true,
      restartTime: 120,
      families: [{ family: "ipv4-unicast", forwardingPreserved: true }],
    });
    expect(first.state.negotiated?.gracefulRestart).toBe(true);
    // A failed first attempt is still the restarted speaker's: R stays set.
    const failed = run(
      [
        { type: "start" },
        { type: "tcpFailed", reason: "x" },
        { type: "timer", timer: "connectRetry" },
        { type: "tcpConnected" },
      ],
      initialState,
      gr,
    );
    expect(grOf(failed.actions)?.restarting).toBe(true);
    // After Established, a reconnect of the same session is no speaker restart: R clear, F kept.
    const again = run(
      [
        { type: "tcpClosed", reason: "reset" },
        { type: "timer", timer: "connectRetry" },
        { type: "tcpConnected" },
      ],
      first.state,
      gr,
    );
    expect(grOf(again.actions)).toEqual({
      restarting: false,
      restartTime: 120,
      families: [{ family: "ipv4-unicast", forwardingPreserved: true }],
    });
    // Also after a stop and start of the same session.
    const restarted = run(
      [{ type: "stop" }, { type: "start" }, { type: "tcpConnected" }],
      first.state,
      gr,
    );
    expect(grOf(restarted.actions)?.restarting).toBe(false);
  });

  it("a restarting stop closes a GR session without NOTIFICATION; every other session gets the Cease", () => {
    const grUp = run(toUp, initialState, gr).state;
    const restartStop: FsmEvent = { type: "stop", text: "bye", restarting: true };
    expect(run([restartStop], grUp, gr).brief).toEqual(["close", ...DOWN_TIMERS, "state Idle"]);
    expect(run([restartStop], grUp, gr).state.stopped).toBe(true);
    // Not a restart: the Cease as ever.
    expect(run([{ type: "stop", text: "bye" }], grUp, gr).brief[0]).toBe("send notification 6/2");
    // GR offered but the peer did not send the capability: it would drop the routes anyway.
    const noGR = run(toEstablished, initialState, gr).state;
    expect(noGR.negotiated?.gracefulRestart).toBe(false);
    expect(run([restartStop], noGR, gr).brief[0]).toBe("send notification 6/2");
    // Not Established: nothing to keep, the peer is told.
    const opening = run(toUp.slice(0, 3), initialState, gr).state;
    expect(opening.state).toBe("OpenConfirm");
    expect(run([restartStop], opening, gr).brief[0]).toBe("send notification 6/2");
  });

  it("offers IPv6 unicast on an IPv6 session", () => {
    const v6 = { ...gr, peerAddress: "2001:db8::1" };
    expect(ourOpen(v6, true).capabilities.gracefulRestart?.families).toEqual([
      { family: "ipv6-unicast", forwardingPreserved: true },
    ]);
  });

  it("is negotiated only when the peer sends a Graceful Restart capability", () => {
    expect(negotiate(gr, peerOpen())).toMatchObject({ gracefulRestart: false });
    expect(negotiate(gr, withGR)).toMatchObject({ gracefulRestart: true });
    expect(negotiate(cfg, withGR)).toMatchObject({ gracefulRestart: false });
  });
});
