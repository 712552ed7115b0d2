import { describe, expect, it } from "vitest";
import {
  type BfdAction,
  type BfdSession,
  type BfdSessionConfig,
  detectionTimeUs,
  initialSession,
  jitteredMs,
  step,
  txIntervalUs,
} from "./fsm.ts";
import type { BfdPacket, BfdState } from "./packet.ts";

const CFG: BfdSessionConfig = {
  localDiscriminator: 7,
  desiredMinTxMs: 100,
  requiredMinRxMs: 100,
  detectMultiplier: 3,
};

/** What FRR's bfdd sends with profile 100 ms × 3: 1 s TX while not Up. */
const peer = (state: BfdState, over: Partial<BfdPacket> = {}): BfdPacket => ({
  diag: 0,
  state,
  poll: false,
  final: false,
  controlPlaneIndependent: false,
  demand: false,
  detectMult: 3,
  myDiscriminator: 99,
  yourDiscriminator: state === "Down" ? 0 : 7,
  desiredMinTxUs: state === "Up" ? 100_000 : 1_000_000,
  requiredMinRxUs: 100_000,
  requiredMinEchoRxUs: 0,
  ...over,
});

function started(cfg = CFG): BfdSession {
  return step(cfg, initialSession(cfg), { type: "start" }, 0.5).state;
}

/** Drives a session through packets from the peer; returns the last step. */
function drive(s: BfdSession, packets: BfdPacket[], cfg = CFG) {
  let r = { state: s, actions: [] as BfdAction[] };
  for (const packet of packets) r = step(cfg, r.state, { type: "received", packet }, 0.5);
  return r;
}

const up = () => drive(started(), [peer("Down"), peer("Up")]).state;
const sent = (actions: BfdAction[]) =>
  actions.flatMap((a) => (a.type === "send" ? [a.packet] : []));
const armed = (actions: BfdAction[], timer: string) =>
  actions.flatMap((a) => (a.type === "arm" && a.timer === timer ? [a.ms] : []));

describe("BFD state machine (RFC 5880 §6.8.6)", () => {
  const transitions: [BfdState, BfdState, BfdState, number][] = [
    // local, received, next, diag
    ["Down", "AdminDown", "Down", 0],
    ["Down", "Down", "Init", 0],
    ["Down", "Init", "Up", 0],
    ["Down", "Up", "Down", 0],
    ["Init", "AdminDown", "Down", 3],
    ["Init", "Down", "Init", 0],
    ["Init", "Init", "Up", 0],
    ["Init", "Up", "Up", 0],
    ["Up", "AdminDown", "Down", 3],
    ["Up", "Down", "Down", 3],
    ["Up", "Init", "Up", 0],
    ["Up", "Up", "Up", 0],
  ];
  const reach: Record<string, () => BfdSession> = {
    Down: started,
    Init: () => drive(started(), [peer("Down")]).state,
    Up: up,
  };
  for (const [local, received, next, diag] of transitions) {
    it(`${local} + peer ${received} -> ${next}`, () => {
      const r = drive(reach[local]!(), [peer(received)]);
      expect(r.state.state).toBe(next);
      if (next !== local) {
        expect(r.actions[0]).toEqual({ type: "state", from: local, to: next, diag });
      } else {
        expect(r.actions.some((a) => a.type === "state")).toBe(false);
      }
    });
  }

  it("AdminDown ignores packets and timers; start goes Down and sends at once", () => {
    const s = initialSession(CFG);
    expect(step(CFG, s, { type: "received", packet: peer("Down") }, 0.5).actions).toEqual([]);
    expect(step(CFG, s, { type: "timer", timer: "detect" }, 0.5).actions).toEqual([]);
    const r = step(CFG, s, { type: "start" }, 0.5);
    expect(r.state.state).toBe("Down");
    expect(sent(r.actions)).toHaveLength(1);
    expect(sent(r.actions)[0]).toMatchObject({
      state: "Down",
      yourDiscriminator: 0,
      myDiscriminator: 7,
    });
  });

  it("stop sends one AdminDown packet (diag 7) and disarms both timers", () => {
    const r = step(CFG, up(), { type: "stop" }, 0.5);
    expect(r.state.state).toBe("AdminDown");
    expect(r.actions).toContainEqual({ type: "disarm", timer: "tx" });
    expect(r.actions).toContainEqual({ type: "disarm", timer: "detect" });
    expect(sent(r.actions)).toEqual([expect.objectContaining({ state: "AdminDown", diag: 7 })]);
  });

  it("ignores a packet addressed to another discriminator", () => {
    const r = drive(up(), [peer("Down", { yourDiscriminator: 8 })]);
    expect(r.state.state).toBe("Up");
    expect(r.actions).toEqual([]);
  });

  it("a detection time without packets takes Up (and Init) down with diag 1, forgetting the peer", () => {
    for (const s of [up(), reach.Init!()]) {
      const r = step(CFG, s, { type: "timer", timer: "detect" }, 0.5);
      expect(r.state.state).toBe("Down");
      expect(r.state.remoteDiscr).toBe(0);
      expect(r.actions[0]).toEqual({ type: "state", from: s.state, to: "Down", diag: 1 });
      // The Down packet goes at once, back at the slow rate, to nobody in particular.
      expect(sent(r.actions)[0]).toMatchObject({
        state: "Down",
        diag: 1,
        yourDiscriminator: 0,
        desiredMinTxUs: 1_000_000,
      });
    }
  });
});

describe("BFD timers", () => {
  it("negotiates: TX = max(our desired TX, their required RX); detection = their mult × max(our RX, their TX)", () => {
    const table: [Partial<BfdSessionConfig>, Partial<BfdPacket>, number, number][] = [
      // ours, theirs (Up), tx interval µs, detection µs
      [{}, {}, 100_000, 300_000],
      [{ desiredMinTxMs: 50 }, { requiredMinRxUs: 300_000 }, 300_000, 300_000],
      [{ desiredMinTxMs: 300 }, { requiredMinRxUs: 50_000 }, 300_000, 300_000],
      [{ requiredMinRxMs: 50 }, { desiredMinTxUs: 200_000, detectMult: 5 }, 100_000, 1_000_000],
      [{ requiredMinRxMs: 500 }, { desiredMinTxUs: 100_000, detectMult: 2 }, 100_000, 1_000_000],
    ];
    for (const [ours, theirs, tx, detect] of table) {
      const cfg = { ...CFG, ...ours };
      const r = drive(started(cfg), [peer("Down"), peer("Up", theirs)], cfg);
      expect(r.state.state).toBe("Up");
      expect(txIntervalUs(r.state)).toBe(tx);
      expect(detectionTimeUs(r.state)).toBe(detect);
      expect(armed(r.actions, "detect")).toEqual([detect / 1000]);
    }
  });

  it("sends at >= 1 s while not Up, and at the configured rate from the moment it is Up", () => {
    const s = started();
    expect(armed(step(CFG, s, { type: "timer", timer: "tx" }, 1).actions, "tx")).toEqual([1000]);
    const init = drive(s, [peer("Down")]);
    expect(sent(init.actions)[0]?.desiredMinTxUs).toBe(1_000_000);
    expect(armed(init.actions, "tx")).toEqual([1000 * (0.75 + 0.25 * 0.5)]);
    // Init -> Up: a packet now and the timer rescheduled to 100 ms in the same step.
    const upStep = drive(init.state, [peer("Up")]);
    expect(upStep.actions[0]).toMatchObject({ type: "state", to: "Up" });
    expect(sent(upStep.actions)).toHaveLength(1);
    expect(armed(upStep.actions, "tx")).toEqual([100 * 0.875]);
    expect(sent(upStep.actions)[0]).toMatchObject({
      state: "Up",
      desiredMinTxUs: 100_000,
      yourDiscriminator: 99,
    });
  });

  it("jitters to 75-100 % of the interval, 75-90 % with a detect multiplier of 1", () => {
    expect(jitteredMs(100_000, 3, 0)).toBe(75);
    expect(jitteredMs(100_000, 3, 1)).toBe(100);
    expect(jitteredMs(100_000, 1, 0)).toBe(75);
    expect(jitteredMs(100_000, 1, 1)).toBeCloseTo(90);
    expect(jitteredMs(100_000, 3, 7)).toBe(100); // clamped
  });

  it("does not send periodic packets to a peer whose required min RX is 0", () => {
    const r = drive(up(), [peer("Up", { requiredMinRxUs: 0 })]);
    expect(r.actions).toContainEqual({ type: "disarm", timer: "tx" });
    expect(r.state.txArmed).toBe(false);
    expect(step(CFG, r.state, { type: "timer", timer: "tx" }, 0.5).actions).toEqual([]);
  });

  it("passive: silent until the peer speaks, then answers", () => {
    const cfg = { ...CFG, passive: true };
    const s = step(cfg, initialSession(cfg), { type: "start" }, 0.5);
    expect(sent(s.actions)).toEqual([]);
    expect(s.state.txArmed).toBe(false);
    const r = drive(s.state, [peer("Down")], cfg);
    expect(sent(r.actions)[0]).toMatchObject({ state: "Init", yourDiscriminator: 99 });
    expect(r.state.txArmed).toBe(true);
  });
});

describe("BFD Poll/Final (RFC 5880 §6.5)", () => {
  it("coming Up starts a Poll (our TX dropped from 1 s): P on periodic packets until the Final", () => {
    const s = up();
    expect(s.pollActive).toBe(true);
    const tick = step(CFG, s, { type: "timer", timer: "tx" }, 0.5);
    expect(sent(tick.actions)[0]).toMatchObject({ poll: true, final: false });
    const fin = drive(s, [peer("Up", { final: true })]);
    expect(fin.state.pollActive).toBe(false);
    expect(sent(step(CFG, fin.state, { type: "timer", timer: "tx" }, 0.5).actions)[0]?.poll).toBe(
      false,
    );
  });

  it("answers the peer's Poll at once with a Final (and no P)", () => {
    const s = { ...up(), pollActive: false };
    const r = drive(s, [peer("Up", { poll: true })]);
    expect(sent(r.actions)).toEqual([
      expect.objectContaining({ final: true, poll: false, state: "Up" }),
    ]);
    // and on a state change too: the packet announcing it carries the Final
    const init = drive(started(), [peer("Down")]).state;
    const both = drive(init, [peer("Up", { poll: true })]);
    expect(sent(both.actions)).toEqual([expect.objectContaining({ final: true, state: "Up" })]);
  });

  it("new timers while Up: a Poll; a slower TX waits for the Final, a faster one applies at once", () => {
    const s = drive(up(), [peer("Up", { final: true })]).state;
    const slower = step(
      CFG,
      s,
      {
        type: "configure",
        timers: { desiredMinTxMs: 300, requiredMinRxMs: 100, detectMultiplier: 3 },
      },
      0.5,
    );
    expect(slower.state.pollActive).toBe(true);
    expect(sent(slower.actions)[0]).toMatchObject({ poll: true, desiredMinTxUs: 300_000 });
    expect(txIntervalUs(slower.state)).toBe(100_000);
    const done = drive(slower.state, [peer("Up", { final: true })]);
    expect(txIntervalUs(done.state)).toBe(300_000);
    const faster = step(
      CFG,
      done.state,
      {
        type: "configure",
        timers: { desiredMinTxMs: 50, requiredMinRxMs: 50, detectMultiplier: 3 },
      },
      0.5,
    );
    expect(faster.state.pollActive).toBe(true);
    expect(txIntervalUs(faster.state)).toBe(100_000); // the peer's required RX
    expect(sent(faster.actions)[0]).toMatchObject({
      poll: true,
      desiredMinTxUs: 50_000,
      requiredMinRxUs: 50_000,
    });
  });

  it("the same timers again change nothing", () => {
    const s = up();
    const r = step(
      CFG,
      s,
      {
        type: "configure",
        timers: { desiredMinTxMs: 100, requiredMinRxMs: 100, detectMultiplier: 3 },
      },
      0.5,
    );
    expect(r.actions).toEqual([]);
  });
});
