import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_HEARTBEAT_DEAD_AFTER_MS,
  decodeHeartbeat,
  encodeHeartbeat,
  HEARTBEAT_MAX_BYTES,
  type Heartbeat,
  HeartbeatSender,
  HeartbeatTracker,
  type HeartbeatTrackerOptions,
  heartbeatSigner,
  MAX_CLOCK_SKEW_MS,
  peekHeartbeat,
} from "./heartbeat.ts";

const secret = "correct horse battery staple";
const beat: Heartbeat = {
  node: "worker-1",
  incarnation: 1_700_000_000_000,
  seq: 42,
  sentAtMs: 1_700_000_001_234,
  leaving: false,
};

const arbBeat = fc.record({
  node: fc.string({ unit: "grapheme", minLength: 1, maxLength: 60 }),
  incarnation: fc.maxSafeNat(),
  seq: fc.maxSafeNat(),
  sentAtMs: fc.maxSafeNat(),
  leaving: fc.boolean(),
});

/** Rewrites a byte and re-signs, to reach the checks that come after the MAC. */
function resign(bytes: Uint8Array, key: string): Uint8Array {
  const out = Uint8Array.from(bytes);
  const signed = out.subarray(0, out.length - 32);
  out.set(createHmac("sha256", key).update(signed).digest(), signed.length);
  return out;
}

describe("heartbeat codec", () => {
  it("has a fixed layout", () => {
    const bytes = encodeHeartbeat({ ...beat, leaving: true }, secret);
    expect(bytes.length).toBe(29 + "worker-1".length + 32);
    expect([...bytes.subarray(0, 4)]).toEqual([0x49, 0x4c, 1, 1]);
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    expect(view.getBigUint64(4)).toBe(BigInt(beat.incarnation));
    expect(view.getBigUint64(12)).toBe(42n);
    expect(view.getBigUint64(20)).toBe(BigInt(beat.sentAtMs));
    expect(bytes[28]).toBe(8);
    expect(new TextDecoder().decode(bytes.subarray(29, 37))).toBe("worker-1");
  });

  it("round-trips", () => {
    fc.assert(
      fc.property(arbBeat, fc.uint8Array({ minLength: 1, maxLength: 64 }), (b, key) => {
        fc.pre(new TextEncoder().encode(b.node).length <= 253);
        const bytes = encodeHeartbeat(b, key);
        expect(bytes.length).toBeLessThanOrEqual(HEARTBEAT_MAX_BYTES);
        expect(decodeHeartbeat(bytes, key)).toEqual({ ok: true, beat: b, paired: false });
        expect(decodeHeartbeat(Buffer.from(bytes), key)).toEqual({
          ok: true,
          beat: b,
          paired: false,
        });
      }),
    );
  });

  it("decodes from an offset inside a larger buffer", () => {
    const bytes = encodeHeartbeat(beat, secret);
    const big = new Uint8Array(bytes.length + 7);
    big.set(bytes, 3);
    expect(decodeHeartbeat(big.subarray(3, 3 + bytes.length), secret)).toEqual({
      ok: true,
      beat,
      paired: false,
    });
  });

  const good = encodeHeartbeat(beat, secret);
  const flip = (i: number, mask = 0x01) => {
    const b = Uint8Array.from(good);
    b[i]! ^= mask;
    return b;
  };
  it.each<[string, Uint8Array, string]>([
    ["empty", new Uint8Array(0), "truncated"],
    ["truncated header", good.subarray(0, 20), "truncated"],
    ["truncated MAC", good.subarray(0, good.length - 1), "truncated"],
    ["trailing byte", Uint8Array.from([...good, 0]), "bad-length"],
    ["oversized", new Uint8Array(HEARTBEAT_MAX_BYTES + 1), "oversized"],
    ["bad magic", flip(0), "bad-magic"],
    ["wrong version", flip(2, 0x03), "wrong-version"],
    ["flipped flag", flip(3), "bad-mac"],
    ["flipped seq bit", flip(19), "bad-mac"],
    ["flipped name byte", flip(30), "bad-mac"],
    ["flipped MAC byte", flip(good.length - 1), "bad-mac"],
    ["unknown flag, signed", resign(flip(3, 0x80), secret), "bad-flags"],
    ["unsafe integer, signed", resign(flip(12, 0x80), secret), "bad-number"],
  ])("rejects %s", (_, bytes, error) => {
    expect(decodeHeartbeat(bytes, secret)).toEqual({ ok: false, error });
  });

  it("rejects a wrong secret and an empty one", () => {
    expect(decodeHeartbeat(good, "other")).toEqual({ ok: false, error: "bad-mac" });
    expect(decodeHeartbeat(good, "")).toEqual({ ok: false, error: "bad-mac" });
  });

  it("rejects an empty or invalid UTF-8 name even when signed", () => {
    const noName = Uint8Array.from([...good.subarray(0, 28), 0, ...new Uint8Array(32)]);
    expect(decodeHeartbeat(resign(noName, secret), secret)).toEqual({
      ok: false,
      error: "bad-name",
    });
    const badUtf8 = Uint8Array.from(good);
    badUtf8[29] = 0xff;
    expect(decodeHeartbeat(resign(badUtf8, secret), secret)).toEqual({
      ok: false,
      error: "bad-name",
    });
  });

  it("accepts any of several keys (a rotation), and no other", () => {
    const next = "the next key, not yet sent with";
    const other = encodeHeartbeat(beat, next);
    expect(decodeHeartbeat(good, [secret, next])).toEqual({ ok: true, beat, paired: false });
    expect(decodeHeartbeat(other, [secret, next])).toEqual({ ok: true, beat, paired: false });
    expect(decodeHeartbeat(other, [secret])).toEqual({ ok: false, error: "bad-mac" });
    expect(decodeHeartbeat(good, [])).toEqual({ ok: false, error: "bad-mac" });
    expect(decodeHeartbeat(good, ["", next])).toEqual({ ok: false, error: "bad-mac" });
  });

  it("accepts bytes and string secrets alike", () => {
    const key = new TextEncoder().encode(secret);
    expect(decodeHeartbeat(encodeHeartbeat(beat, key), secret).ok).toBe(true);
  });

  it.each<[string, Partial<Heartbeat>]>([
    ["empty name", { node: "" }],
    ["long name", { node: "n".repeat(254) }],
    ["negative seq", { seq: -1 }],
    ["fractional incarnation", { incarnation: 1.5 }],
    ["unsafe sentAtMs", { sentAtMs: 2 ** 53 }],
    ["NaN seq", { seq: Number.NaN }],
  ])("refuses to encode %s", (_, over) => {
    expect(() => encodeHeartbeat({ ...beat, ...over }, secret)).toThrow(RangeError);
  });

  it("signs one encoded beat for many receivers, each datagram its own buffer", () => {
    const sign = heartbeatSigner(beat);
    const keys = ["k1", "k2", "k3"].map((k) => Buffer.from(k));
    const out = keys.map((k, i) => sign(k, i !== 1));
    for (const [i, k] of keys.entries()) {
      const paired = i !== 1;
      expect(out[i]).toEqual(encodeHeartbeat(beat, k, paired));
      expect(decodeHeartbeat(out[i]!, k)).toEqual({ ok: true, beat, paired });
      for (const [j, other] of keys.entries())
        if (j !== i)
          expect(decodeHeartbeat(out[i]!, other)).toEqual({ ok: false, error: "bad-mac" });
    }
    // Every datagram is a buffer of its own (a send in flight may hold the previous one).
    expect(new Set(out.map((o) => o.buffer)).size).toBe(out.length);
    expect(() => sign("")).toThrow(RangeError);
  });

  it("refuses to encode with an empty secret", () => {
    expect(() => encodeHeartbeat(beat, "")).toThrow(RangeError);
  });

  it("never throws on random bytes, and never accepts them", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => {
        expect(decodeHeartbeat(bytes, secret).ok).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it("never throws on mutated valid datagrams", () => {
    fc.assert(
      fc.property(
        fc.nat(good.length - 1),
        fc.integer({ min: 1, max: 255 }),
        fc.nat(good.length - 1),
        (i, mask, cut) => {
          const b = Uint8Array.from(good);
          b[i]! ^= mask;
          expect(decodeHeartbeat(b, secret).ok).toBe(false);
          expect(decodeHeartbeat(good.subarray(0, cut), secret).ok).toBe(false);
        },
      ),
    );
  });
});

describe("HeartbeatTracker", () => {
  const b = (over: Partial<Heartbeat> = {}): Heartbeat => ({ ...beat, ...over });
  /** A tracker whose wall clock is the test beat's send time (no skew). */
  const tracker = (o: HeartbeatTrackerOptions = {}) =>
    new HeartbeatTracker({ wallClock: () => beat.sentAtMs, ...o });

  it("defaults to three missed 100 ms beats plus half an interval", () => {
    expect(DEFAULT_HEARTBEAT_DEAD_AFTER_MS).toBe(350);
    expect(tracker().deadAfterMs).toBe(350);
  });

  it("times a node out after deadAfterMs of silence", () => {
    const t = tracker({ deadAfterMs: 300 });
    expect(t.isAlive("worker-1", 0)).toBe(false);
    expect(t.receive(b({ seq: 1 }), 1000)).toBe("accepted");
    expect(t.isAlive("worker-1", 1300)).toBe(true);
    expect(t.isAlive("worker-1", 1301)).toBe(false);
    expect(t.dead(1301)).toEqual(["worker-1"]);
    expect(t.receive(b({ seq: 2 }), 1400)).toBe("accepted");
    expect(t.alive(1400)).toEqual(["worker-1"]);
  });

  it.each<[string, Array<[Partial<Heartbeat>, string]>]>([
    [
      "replays and reordering within an incarnation",
      [
        [{ seq: 5 }, "accepted"],
        [{ seq: 5 }, "replay"],
        [{ seq: 4 }, "replay"],
        [{ seq: 6 }, "accepted"],
        [{ seq: 100 }, "accepted"],
      ],
    ],
    [
      "restarts and stale incarnations",
      [
        [{ incarnation: 10, seq: 50 }, "accepted"],
        [{ incarnation: 11, seq: 1 }, "accepted"],
        [{ incarnation: 10, seq: 51 }, "stale-incarnation"],
        [{ incarnation: 11, seq: 1 }, "replay"],
        [{ incarnation: 11, seq: 2 }, "accepted"],
      ],
    ],
    [
      "leaving is final for the incarnation",
      [
        [{ incarnation: 10, seq: 1 }, "accepted"],
        [{ incarnation: 10, seq: 2, leaving: true }, "accepted"],
        [{ incarnation: 10, seq: 3 }, "after-leaving"],
        [{ incarnation: 10, seq: 2, leaving: true }, "replay"],
        [{ incarnation: 12, seq: 0 }, "accepted"],
      ],
    ],
  ])("handles %s", (_, steps) => {
    const t = tracker();
    steps.forEach(([over, outcome], i) => {
      expect(t.receive(b(over), i * 10), `step ${i}`).toBe(outcome);
    });
  });

  it("marks a leaving node dead at once, and a restart revives it", () => {
    const t = tracker();
    t.receive(b({ seq: 1 }), 0);
    t.receive(b({ node: "worker-2", seq: 1 }), 0);
    expect(t.receive(b({ seq: 2, leaving: true }), 10)).toBe("accepted");
    expect(t.isAlive("worker-1", 10)).toBe(false);
    expect(t.alive(10)).toEqual(["worker-2"]);
    expect(t.dead(10)).toEqual(["worker-1"]);
    t.receive(b({ incarnation: beat.incarnation + 1, seq: 0 }), 20);
    expect(t.isAlive("worker-1", 20)).toBe(true);
  });

  it("does not extend life on refused beats", () => {
    const t = tracker({ deadAfterMs: 100 });
    t.receive(b({ seq: 9 }), 0);
    expect(t.receive(b({ seq: 9 }), 90)).toBe("replay");
    expect(t.isAlive("worker-1", 150)).toBe(false);
  });

  describe("bound to the receiver's clock", () => {
    const T = 1_780_000_000_000; // the receiver's wall clock, ms
    const skew = MAX_CLOCK_SKEW_MS;
    const real = (over: Partial<Heartbeat> = {}): Heartbeat => ({
      node: "worker-1",
      incarnation: (T - 3_600_000) * 1000 + 7, // started an hour ago
      seq: 1,
      sentAtMs: T,
      leaving: false,
      ...over,
    });

    it("allows a few minutes of skew", () => {
      expect(skew).toBeGreaterThanOrEqual(60_000);
      expect(skew).toBeLessThanOrEqual(10 * 60_000);
    });

    it("refuses an incarnation that starts beyond the skew, so a forged one cannot silence a node", () => {
      let wall = T;
      const t = tracker({ wallClock: () => wall });
      expect(t.receive(real({ seq: 1 }), 0)).toBe("accepted");
      const forged = real({ incarnation: Number.MAX_SAFE_INTEGER, seq: 2, leaving: true });
      expect(t.receive(forged, 10)).toBe("future-incarnation");
      expect(t.receive(real({ incarnation: (T + skew + 1) * 1000, leaving: true }), 10)).toBe(
        "future-incarnation",
      );
      wall = T + 100;
      expect(t.receive(real({ seq: 2, sentAtMs: wall }), 100)).toBe("accepted");
      expect(t.isAlive("worker-1", 100)).toBe(true);
      // At the limit it is a restart (clocks may be that far apart).
      expect(
        t.receive(real({ incarnation: (wall + skew) * 1000 + 999, sentAtMs: wall }), 110),
      ).toBe("accepted");
    });

    it("refuses beats sent outside the window, also from a node it has no state for", () => {
      for (const sentAtMs of [T - skew - 1, T + skew + 1, 0]) {
        const t = tracker({ wallClock: () => T });
        expect(t.receive(real({ sentAtMs }), 0), `sentAtMs ${sentAtMs}`).toBe("clock-skew");
        expect(t.known()).toEqual([]);
      }
      for (const sentAtMs of [T - skew, T + skew]) {
        expect(tracker({ wallClock: () => T }).receive(real({ sentAtMs }), 0)).toBe("accepted");
      }
      // A configured bound replaces the default.
      const strict = tracker({ wallClock: () => T, maxClockSkewMs: 1000 });
      expect(strict.receive(real({ sentAtMs: T - 1001 }), 0)).toBe("clock-skew");
      expect(strict.receive(real({ sentAtMs: T - 999 }), 0)).toBe("accepted");
    });

    it("lets a node that a forged leaving beat killed come back with its next real beat", () => {
      let wall = T;
      const t = tracker({ wallClock: () => wall });
      expect(t.receive(real({ seq: 10 }), 0)).toBe("accepted");
      // Forged with the key: a later incarnation within the skew, and the top seq.
      const forged = real({ incarnation: (T + 60_000) * 1000, seq: 2 ** 53 - 1, leaving: true });
      expect(t.receive(forged, 5)).toBe("accepted");
      expect(t.isAlive("worker-1", 5)).toBe(false);
      wall = T + 100;
      expect(t.receive(real({ seq: 11, sentAtMs: wall }), 100)).toBe("accepted");
      expect(t.isAlive("worker-1", 100)).toBe(true);
      // Same with the same incarnation and a huge seq.
      expect(t.receive(real({ seq: 2 ** 53 - 1, sentAtMs: wall, leaving: true }), 105)).toBe(
        "accepted",
      );
      wall = T + 200;
      expect(t.receive(real({ seq: 12, sentAtMs: wall }), 200)).toBe("accepted");
      expect(t.isAlive("worker-1", 200)).toBe(true);
    });

    it("keeps a node dead against beats sent before the one that killed it", () => {
      let wall = T;
      const t = tracker({ wallClock: () => wall });
      const recorded = [1, 2, 3].map((seq) => real({ seq, sentAtMs: T + seq * 100 }));
      for (const [i, r] of recorded.entries()) {
        wall = r.sentAtMs;
        expect(t.receive(r, i * 100)).toBe("accepted");
      }
      wall = T + 400;
      expect(t.receive(real({ seq: 4, sentAtMs: wall, leaving: true }), 400)).toBe("accepted");
      // Replayed beats of that run, or of the one before it, do not revive it.
      wall = T + 500;
      for (const r of recorded) expect(t.receive(r, 500)).toBe("replay");
      expect(t.receive(real({ incarnation: 5, seq: 99, sentAtMs: T + 50 }), 500)).toBe(
        "stale-incarnation",
      );
      expect(t.isAlive("worker-1", 500)).toBe(false);
      // A live node is not taken over by a lower incarnation, whatever its send time.
      const u = tracker({ wallClock: () => wall });
      expect(u.receive(real({ seq: 1, sentAtMs: wall }), 0)).toBe("accepted");
      expect(u.receive(real({ incarnation: 5, sentAtMs: wall + 1000 }), 10)).toBe(
        "stale-incarnation",
      );
    });
  });

  it("forgets and prunes", () => {
    const t = tracker();
    t.receive(b({ node: "a", seq: 1 }), 0);
    t.receive(b({ node: "b", seq: 1 }), 5000);
    t.prune(6000, 2000);
    expect(t.known()).toEqual(["b"]);
    t.forget("b");
    expect(t.known()).toEqual([]);
    // A forgotten node starts afresh.
    expect(t.receive(b({ node: "b", seq: 1 }), 7000)).toBe("accepted");
  });

  it("gives a peer whose beats came with long gaps (CPU starvation) more time, for a while", () => {
    const t = tracker({ deadAfterMs: 350, maxDeadAfterMs: 3000 });
    let seq = 0;
    const send = (at: number) => t.receive(b({ node: "node-a", seq: ++seq }), at);
    for (let at = 0; at <= 1000; at += 100) send(at);
    // Calm: dead after 350 ms.
    expect(t.deadlineMs("node-a", 1000)).toBe(350);
    expect(t.isAlive("node-a", 1351)).toBe(false);
    // A starved sender: a 300 ms gap gives it 900 ms; then an 800 ms gap gives it 2.4 s.
    send(1300);
    expect(t.deadlineMs("node-a", 1300)).toBe(900);
    send(2100);
    expect(t.deadlineMs("node-a", 2100)).toBe(2400);
    expect(t.isAlive("node-a", 2100 + 2000)).toBe(true);
    expect(t.isAlive("node-a", 2100 + 2500)).toBe(false);
    // A silence beyond the deadline was a death: its return does not stretch the deadline.
    send(2100 + 2600);
    expect(t.deadlineMs("node-a", 2100 + 2600)).toBeLessThanOrEqual(2400);
    // Forgotten after calm: about a minute later the deadline is back to 350 ms.
    for (let at = 4800; at <= 40_000; at += 100) send(at);
    for (let at = 40_100; at <= 80_000; at += 100) send(at);
    expect(t.deadlineMs("node-a", 80_000)).toBe(350);
    // Our own stalls count too (pressure), capped at maxDeadAfterMs.
    expect(t.deadlineMs("node-a", 80_000, 500)).toBe(1500);
    expect(t.deadlineMs("node-a", 80_000, 5000)).toBe(3000);
  });

  it("rejects a non-positive timeout", () => {
    expect(() => tracker({ deadAfterMs: 0 })).toThrow(RangeError);
  });

  it("a node is alive exactly when its last accepted beat is recent and not leaving", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ seq: fc.nat(20), leaving: fc.boolean(), dt: fc.nat(200) }), {
          maxLength: 30,
        }),
        fc.nat(500),
        (steps, after) => {
          const t = tracker({ deadAfterMs: 250, maxDeadAfterMs: 0 });
          let now = 0;
          let last: { at: number; leaving: boolean } | undefined;
          let maxSeq = -1;
          let left = false;
          for (const s of steps) {
            now += s.dt;
            const outcome = t.receive(b({ seq: s.seq, leaving: s.leaving }), now);
            const expected = s.seq <= maxSeq ? "replay" : left ? "after-leaving" : "accepted";
            if (outcome !== expected) return false;
            if (outcome === "accepted") {
              maxSeq = s.seq;
              left = s.leaving;
              last = { at: now, leaving: s.leaving };
            }
          }
          const at = now + after;
          const alive = last !== undefined && !last.leaving && at - last.at <= 250;
          return t.isAlive(beat.node, at) === alive;
        },
      ),
    );
  });
});

describe("HeartbeatSender", () => {
  const T = 1_780_000_000_000;
  const skew = MAX_CLOCK_SKEW_MS;

  it("counts seq up within an incarnation that is its start time", () => {
    const s = new HeartbeatSender("node-b", T, 1234);
    expect(s.incarnation).toBe(T * 1000 + 234);
    expect(s.next(T + 5)).toEqual({
      node: "node-b",
      incarnation: T * 1000 + 234,
      seq: 1,
      sentAtMs: T + 5,
      leaving: false,
    });
    expect(s.next(T + 105, true)).toMatchObject({ seq: 2, leaving: true });
  });

  it.each<[string, (own: HeartbeatSender) => Partial<Heartbeat>]>([
    [
      "a leaving beat at the edge of the skew with a later incarnation",
      () => ({ incarnation: (T + skew) * 1000 + 999, seq: 1, sentAtMs: T + skew, leaving: true }),
    ],
    [
      "a leaving beat of its own incarnation with the top seq",
      (own) => ({
        incarnation: own.incarnation,
        seq: 2 ** 53 - 1,
        sentAtMs: T + skew,
        leaving: true,
      }),
    ],
    // (A forged beat sent at the receiver's present is overcome by the next real one anyway:
    // see "lets a node that a forged leaving beat killed come back".)
  ])("refutes %s: peers accept its next beats again", (_, forge) => {
    let wall = T;
    const peer = new HeartbeatTracker({ wallClock: () => wall });
    const own = new HeartbeatSender("node-b", T - 3_600_000, 1);
    const silent = new HeartbeatSender("node-b", T - 3_600_000, 1); // the same, not refuting
    for (let i = 0; i < 3; i++) {
      silent.next(wall);
      expect(peer.receive(own.next(wall), 0)).toBe("accepted");
    }
    const forged: Heartbeat = { node: "node-b", ...forge(own) } as Heartbeat;
    expect(peer.receive(forged, 1)).toBe("accepted");
    expect(peer.isAlive("node-b", 1)).toBe(false);
    const before = own.incarnation;
    expect(own.heard(forged, wall, 5)).toBe("refuted");
    expect(own.incarnation).toBeGreaterThan(Math.max(before, forged.incarnation));
    // Without the refutation its beats stay refused until its clock passes the forged one.
    wall = T + 1;
    expect(peer.receive(silent.next(wall), 2)).not.toBe("accepted");
    expect(peer.receive(own.next(wall), 2)).toBe("accepted");
    expect(peer.isAlive("node-b", 2)).toBe(true);
    wall = T + 101;
    expect(peer.receive(own.next(wall), 102)).toBe("accepted");
  });

  it("ignores its own beats coming back, and beats peers refuse anyway", () => {
    const own = new HeartbeatSender("node-b", T - 1000, 1);
    const sent = [own.next(T), own.next(T + 100)];
    const inc = own.incarnation;
    for (const b of sent) expect(own.heard(b, T + 200, 2)).toBe("echo");
    expect(own.heard({ ...sent[0]!, incarnation: inc - 1, leaving: true }, T, 2)).toBe("echo");
    expect(own.heard({ ...sent[0]!, seq: 99, sentAtMs: T - skew - 1 }, T, 2)).toBe("echo");
    expect(
      own.heard({ ...sent[0]!, incarnation: Number.MAX_SAFE_INTEGER, leaving: true }, T, 2),
    ).toBe("echo");
    expect(own.incarnation).toBe(inc);
    // Its own leaving beat, once it left, is an echo too.
    const bye = own.next(T + 300, true);
    expect(own.heard(bye, T + 300, 2)).toBe("echo");
  });
});

describe("peekHeartbeat: the claimed incarnation and seq, before the MAC", () => {
  const beat = {
    node: "node-a",
    incarnation: 1_765_000_000_000_042,
    seq: 77,
    sentAtMs: 1,
    leaving: false,
  };
  it("reads them from a well-formed beat, whatever key signed it", () => {
    expect(peekHeartbeat(encodeHeartbeat(beat, "some key"))).toEqual({
      incarnation: beat.incarnation,
      seq: 77,
    });
  });
  it.each([
    ["too short", (b: Uint8Array) => b.subarray(0, 40)],
    ["bad magic", (b: Uint8Array) => Uint8Array.from(b, (x, i) => (i === 0 ? 0 : x))],
    ["another version", (b: Uint8Array) => Uint8Array.from(b, (x, i) => (i === 2 ? 2 : x))],
    ["an unsafe seq", (b: Uint8Array) => Uint8Array.from(b, (x, i) => (i === 12 ? 0xff : x))],
    ["oversized", () => new Uint8Array(600)],
  ])("undefined when %s", (_what, mangle) => {
    expect(peekHeartbeat(mangle(encodeHeartbeat(beat, "k")))).toBeUndefined();
  });
});
