import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type BfdPacket,
  decodePacket,
  describeDiag,
  encodePacket,
  singleHopTtlOk,
} from "./packet.ts";

const UP: BfdPacket = {
  diag: 0,
  state: "Up",
  poll: false,
  final: false,
  controlPlaneIndependent: false,
  demand: false,
  detectMult: 3,
  myDiscriminator: 0x11223344,
  yourDiscriminator: 0x55667788,
  desiredMinTxUs: 100_000,
  requiredMinRxUs: 100_000,
  requiredMinEchoRxUs: 0,
};

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("BFD control packet (RFC 5880 §4.1)", () => {
  it("encodes the mandatory section byte for byte", () => {
    // version 1, diag 0 | state Up (3) << 6, P | mult 3 | length 24 | discriminators |
    // 100 ms, 100 ms in µs | echo 0
    expect(hex(encodePacket({ ...UP, poll: true }))).toBe(
      "20e00318" + "11223344" + "55667788" + "000186a0" + "000186a0" + "00000000",
    );
    expect(hex(encodePacket({ ...UP, state: "Down", diag: 1, final: true })).slice(0, 4)).toBe(
      "2150",
    );
  });

  it("decodes what FRR's bfdd sends (Down, your discriminator 0, slow 1 s TX)", () => {
    const frr = Buffer.from(
      "20400318" + "00000001" + "00000000" + "000f4240" + "000186a0" + "00000032",
      "hex",
    );
    expect(decodePacket(frr)).toEqual({
      packet: {
        ...UP,
        state: "Down",
        myDiscriminator: 1,
        yourDiscriminator: 0,
        desiredMinTxUs: 1_000_000,
        requiredMinEchoRxUs: 50,
      },
    });
  });

  it("round-trips any valid packet", () => {
    const packet = fc.record({
      diag: fc.integer({ min: 0, max: 31 }),
      state: fc.constantFrom("AdminDown", "Down", "Init", "Up" as const),
      flag: fc.constantFrom("none", "poll", "final"),
      controlPlaneIndependent: fc.boolean(),
      demand: fc.boolean(),
      detectMult: fc.integer({ min: 1, max: 255 }),
      myDiscriminator: fc.integer({ min: 1, max: 0xffffffff }),
      yourDiscriminator: fc.integer({ min: 1, max: 0xffffffff }),
      desiredMinTxUs: fc.integer({ min: 0, max: 0xffffffff }),
      requiredMinRxUs: fc.integer({ min: 0, max: 0xffffffff }),
      requiredMinEchoRxUs: fc.integer({ min: 0, max: 0xffffffff }),
    });
    fc.assert(
      fc.property(packet, ({ flag, ...rest }) => {
        const p: BfdPacket = { ...rest, poll: flag === "poll", final: flag === "final" };
        expect(decodePacket(encodePacket(p))).toEqual({ packet: p });
      }),
    );
  });

  it("never throws on any bytes, and answers a packet or a reason", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const r = decodePacket(bytes);
        expect("packet" in r || (typeof r.error === "string" && r.error.length > 0)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });

  it("discards what §6.8.6 says to discard, each with its reason", () => {
    const ok = encodePacket(UP);
    const with_ = (i: number, v: number) => {
      const b = Uint8Array.from(ok);
      b[i] = v;
      return b;
    };
    const zeroed = (from: number) => {
      const b = Uint8Array.from(ok);
      b.fill(0, from, from + 4);
      return b;
    };
    const cases: [Uint8Array, string][] = [
      [ok.subarray(0, 23), "too short: 23 bytes"],
      [with_(0, 0x40), "version 2, expected 1"],
      [with_(3, 20), "length field 20 too small"],
      [with_(3, 30), "length field 30 beyond the 24-byte datagram"],
      [with_(1, 0xc4), "length field 24 too small"],
      [
        Uint8Array.from([0x20, 0xc4, 3, 26, ...ok.subarray(4), 1, 2]),
        "authentication present, none configured",
      ],
      [with_(1, 0xc1), "multipoint bit set"],
      [with_(2, 0), "detect multiplier 0"],
      [zeroed(4), "my discriminator 0"],
      [zeroed(8), "your discriminator 0 in state Up"],
      [with_(1, 0xf0), "poll and final both set"],
    ];
    for (const [bytes, reason] of cases) expect(decodePacket(bytes)).toEqual({ error: reason });
    // Down with your discriminator 0 is how every session starts.
    const down = zeroed(8);
    down[1] = 0x40;
    expect("packet" in decodePacket(down)).toBe(true);
    // A longer datagram (padding) is fine.
    expect("packet" in decodePacket(Uint8Array.from([...ok, 0, 0]))).toBe(true);
  });

  it("names the diagnostics", () => {
    expect(describeDiag(1)).toBe("Control Detection Time Expired");
    expect(describeDiag(3)).toBe("Neighbor Signaled Session Down");
    expect(describeDiag(20)).toBe("diagnostic 20");
  });
});

describe("singleHopTtlOk (RFC 5881 section 5)", () => {
  it.each([
    [255, true],
    [254, false],
    [64, false],
    [1, false],
    [0, false],
    [-1, false], // the kernel reported no TTL: fail closed
  ])("TTL %i -> %s", (ttl, ok) => {
    expect(singleHopTtlOk(ttl)).toBe(ok);
  });
});
