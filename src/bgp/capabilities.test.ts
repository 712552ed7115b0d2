import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Capabilities,
  decodeCapabilities,
  decodeGracefulRestart,
  encodeCapabilities,
  encodeGracefulRestart,
  type GracefulRestart,
} from "./capabilities.ts";

const bytes = (...b: number[]) => Uint8Array.from(b);
const decode = (b: Uint8Array): Capabilities => {
  const into: Capabilities = { families: [], routeRefresh: false };
  expect(decodeCapabilities(b, into)).toBeUndefined();
  return into;
};

describe("Graceful Restart capability (RFC 4724 §3)", () => {
  it("encodes R bit, 12-bit restart time and per-family F bits, never the N bit", () => {
    const gr: GracefulRestart = {
      restarting: true,
      restartTime: 0xabc,
      families: [
        { family: "ipv4-unicast", forwardingPreserved: true },
        { family: "ipv6-unicast", forwardingPreserved: false },
      ],
    };
    expect(encodeGracefulRestart(gr)).toEqual([
      ...[64, 10], // code, length 2 + 2 × 4
      ...[0x80 | 0x0a, 0xbc], // R, no N (0x40), time 0xabc
      ...[0, 1, 1, 0x80], // IPv4 unicast, F
      ...[0, 2, 1, 0], // IPv6 unicast, no F
    ]);
    expect(encodeGracefulRestart({ ...gr, restarting: false, families: [] })).toEqual([
      64, 2, 0x0a, 0xbc,
    ]);
  });

  it("clamps a restart time outside 12 bits instead of spilling into the flags", () => {
    const at = (t: number) =>
      encodeGracefulRestart({ restarting: false, restartTime: t, families: [] });
    expect(at(5000).slice(2)).toEqual([0x0f, 0xff]);
    expect(at(-3).slice(2)).toEqual([0, 0]);
    expect(at(Number.NaN).slice(2)).toEqual([0, 0]);
  });

  it("round-trips through the Capabilities parameter, replacing the bare End-of-RIB form", () => {
    const c: Capabilities = {
      families: ["ipv6-unicast"],
      routeRefresh: true,
      endOfRibAware: true,
      fourOctetAS: 4200000001,
      gracefulRestart: {
        restarting: false,
        restartTime: 120,
        families: [{ family: "ipv6-unicast", forwardingPreserved: true }],
      },
    };
    const wire = encodeCapabilities(c);
    // One GR capability only: the full one, not the 2-byte End-of-RIB form as well.
    expect([...wire].filter((b, i, a) => b === 64 && i > 0 && a[i - 1] !== 1).length).toBe(1);
    expect(decode(wire)).toEqual(c);
  });

  it("reads what FRR and BIRD send: a helper's capability with no families", () => {
    // FRR 8.4 helper: R clear, time 120, no families; BIRD "aware": time 0, no families.
    expect(decode(bytes(64, 2, 0, 120))).toEqual({
      families: [],
      routeRefresh: false,
      endOfRibAware: true,
      gracefulRestart: { restarting: false, restartTime: 120, families: [] },
    });
    // BIRD restarted with -R: R and F set for IPv4 unicast.
    expect(decode(bytes(64, 6, 0x80, 20, 0, 1, 1, 0x80)).gracefulRestart).toEqual({
      restarting: true,
      restartTime: 20,
      families: [{ family: "ipv4-unicast", forwardingPreserved: true }],
    });
  });

  it("ignores the N bit and other flags when reading the restart time", () => {
    expect(decodeGracefulRestart(bytes(0x40 | 0x30 | 0x01, 0x2c)).restartTime).toBe(300);
    expect(decodeGracefulRestart(bytes(0x40, 0)).restarting).toBe(false);
  });

  it("is lenient with malformed values: short, partial tuples, unknown and repeated families", () => {
    expect(decodeGracefulRestart(bytes())).toEqual({
      restarting: false,
      restartTime: 0,
      families: [],
    });
    expect(decodeGracefulRestart(bytes(0x80))).toEqual({
      restarting: false,
      restartTime: 0,
      families: [],
    });
    expect(
      decodeGracefulRestart(bytes(0, 90, 0, 1, 1, 0x80, 0, 1, 1, 0, 0, 25, 1, 0x80, 0, 2, 1)),
    ).toEqual({
      restarting: false,
      restartTime: 90,
      families: [{ family: "ipv4-unicast", forwardingPreserved: true }],
    });
    // The whole parameter still decodes: a GR capability of odd length is no OPEN error.
    expect(decode(bytes(64, 3, 0, 1, 7, 65, 4, 0, 0, 0xfd, 0xe8)).fourOctetAS).toBe(65000);
  });

  it("never throws on random values, and decodes whatever it encodes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (v) => {
        const gr = decodeGracefulRestart(v);
        expect(gr.restartTime).toBeGreaterThanOrEqual(0);
        expect(gr.restartTime).toBeLessThanOrEqual(4095);
        expect(() => decodeCapabilities(v, { families: [], routeRefresh: false })).not.toThrow();
      }),
    );
    const family = fc.constantFrom("ipv4-unicast" as const, "ipv6-unicast" as const);
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.integer({ min: 0, max: 4095 }),
        fc.uniqueArray(fc.record({ family, forwardingPreserved: fc.boolean() }), {
          selector: (f) => f.family,
        }),
        (restarting, restartTime, families) => {
          const gr = { restarting, restartTime, families };
          expect(
            decodeGracefulRestart(Uint8Array.from(encodeGracefulRestart(gr).slice(2))),
          ).toEqual(gr);
        },
      ),
    );
  });
});
