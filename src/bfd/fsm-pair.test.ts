// Two state machines talking to each other on a virtual clock: the whole protocol from
// both sides, without sockets: start-up, Poll/Final, the steady fast rate, detection of a
// silent peer and recovery. (fsm.test.ts checks the single steps, e.g. that a state change
// reschedules the transmit timer at once.)
import { describe, expect, it } from "vitest";
import {
  type BfdAction,
  type BfdSession,
  type BfdSessionConfig,
  type BfdTimer,
  initialSession,
  step,
} from "./fsm.ts";
import type { BfdPacket } from "./packet.ts";

interface Side {
  cfg: BfdSessionConfig;
  s: BfdSession;
  timers: Map<BfdTimer, number>;
  log: { at: number; from: string; to: string; diag: number }[];
  sent: number[];
}

function pair(timers = { desiredMinTxMs: 100, requiredMinRxMs: 100, detectMultiplier: 3 }) {
  const mk = (d: number): Side => {
    const cfg = { localDiscriminator: d, ...timers };
    return { cfg, s: initialSession(cfg), timers: new Map(), log: [], sent: [] };
  };
  const sides = [mk(1), mk(2)] as const;
  let now = 0;
  let seed = 1;
  const random = () => {
    seed = (seed * 16807) % 2147483647;
    return seed / 2147483647;
  };
  const wire: { at: number; to: 0 | 1; packet: BfdPacket }[] = [];
  /** Packets from side i are lost while cut[i]. */
  const cut = [false, false];
  const apply = (i: 0 | 1, actions: BfdAction[]) => {
    const me = sides[i];
    for (const a of actions) {
      if (a.type === "send") {
        me.sent.push(now);
        if (!cut[i]) wire.push({ at: now + 1, to: i === 0 ? 1 : 0, packet: a.packet });
      } else if (a.type === "arm") me.timers.set(a.timer, now + a.ms);
      else if (a.type === "disarm") me.timers.delete(a.timer);
      else me.log.push({ at: now, from: a.from, to: a.to, diag: a.diag });
    }
  };
  const run = (i: 0 | 1, ev: Parameters<typeof step>[2]) => {
    const r = step(sides[i].cfg, sides[i].s, ev, random());
    sides[i].s = r.state;
    apply(i, r.actions);
  };
  /** Advances the virtual clock to `until`, delivering packets and firing timers in order. */
  const advance = (until: number) => {
    for (;;) {
      let next = until + 1;
      let what: (() => void) | undefined;
      for (const i of [0, 1] as const) {
        for (const [t, at] of sides[i].timers) {
          if (at < next) {
            next = at;
            what = () => {
              sides[i].timers.delete(t);
              run(i, { type: "timer", timer: t });
            };
          }
        }
      }
      const w = wire.reduce<(typeof wire)[number] | undefined>(
        (m, x) => (m === undefined || x.at < m.at ? x : m),
        undefined,
      );
      if (w !== undefined && w.at <= next) {
        next = w.at;
        what = () => {
          wire.splice(wire.indexOf(w), 1);
          run(w.to, { type: "received", packet: w.packet });
        };
      }
      if (what === undefined || next > until) break;
      now = next;
      what();
    }
    now = until;
  };
  run(0, { type: "start" });
  run(1, { type: "start" });
  return { sides, advance, cut, now: () => now };
}

describe("two BFD sessions on a virtual clock", () => {
  it("come Up, finish the Poll, and then stay Up at the fast rate (no flapping)", () => {
    const p = pair();
    p.advance(30_000);
    for (const side of p.sides) {
      expect(side.s.state).toBe("Up");
      expect(side.s.pollActive).toBe(false);
      // Started (AdminDown -> Down) once, Up once, never Down again.
      expect(side.log.filter((l) => l.to === "Down")).toHaveLength(1);
      expect(side.log.at(-1)?.to).toBe("Up");
      // From Up on, one packet every 75-100 ms.
      const upAt = side.log.at(-1)!.at;
      const gaps = side.sent
        .filter((t) => t > upAt + 500)
        .map((t, i, a) => (i === 0 ? 0 : t - a[i - 1]!))
        .slice(1);
      expect(Math.max(...gaps)).toBeLessThanOrEqual(100);
      expect(Math.min(...gaps)).toBeGreaterThanOrEqual(75);
    }
  });

  it("a silent peer is declared Down after the detection time (300 ms), and tells the other side", () => {
    const p = pair();
    p.advance(5000);
    p.cut[1] = true;
    const t0 = p.now();
    p.advance(t0 + 1000);
    const [a, b] = p.sides;
    const down = a.log.find((l) => l.at > t0)!;
    expect(down).toMatchObject({ from: "Up", to: "Down", diag: 1 });
    // The last packet from b arrived up to 100 ms before the cut: 200-300 ms after it.
    expect(down.at - t0).toBeGreaterThan(200);
    expect(down.at - t0).toBeLessThanOrEqual(300);
    expect(b.log.find((l) => l.at > t0)).toMatchObject({ from: "Up", to: "Down", diag: 3 });
    // Back together: Up again.
    p.cut[1] = false;
    p.advance(p.now() + 5000);
    expect(a.s.state).toBe("Up");
    expect(b.s.state).toBe("Up");
  });
});
