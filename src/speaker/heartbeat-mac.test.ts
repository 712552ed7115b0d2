import { createHmac, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { heartbeatMac, MAX_MAC_INPUT_BYTES } from "./heartbeat-mac.ts";

const reference = (key: string | Uint8Array, message: Uint8Array) =>
  createHmac("sha256", key).update(message).digest();

describe("heartbeatMac", () => {
  // Key lengths around the SHA-256 block (64 bytes: longer keys are hashed first), message
  // lengths from empty to the longest a beat signs.
  const keyLengths = [1, 16, 32, 63, 64, 65, 100, 200];
  const messageLengths = [0, 1, 30, 61, 64, 119, 200, MAX_MAC_INPUT_BYTES];
  for (const k of keyLengths)
    it(`equals createHmac for a ${k}-byte key at every message length`, () => {
      const key = randomBytes(k);
      for (const m of messageLengths) {
        const message = randomBytes(m);
        expect(heartbeatMac(key, message).toString("hex"), `message of ${m} bytes`).toBe(
          reference(key, message).toString("hex"),
        );
      }
    });

  it("equals RFC 4231 test case 2 (a string key)", () => {
    const mac = heartbeatMac("Jefe", Buffer.from("what do ya want for nothing?"));
    expect(mac.toString("hex")).toBe(
      "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    );
  });

  it("keeps keys apart: a cached key's pads are never used for another key", () => {
    const message = randomBytes(40);
    const keys = Array.from({ length: 40 }, () => randomBytes(32));
    const first = keys.map((k) => heartbeatMac(k, message).toString("hex"));
    // Again, interleaved with string keys (a bounded cache of their own).
    for (const [i, k] of keys.entries()) {
      expect(heartbeatMac(`s${i}`, message)).toEqual(reference(`s${i}`, message));
      expect(heartbeatMac(k, message).toString("hex")).toBe(first[i]);
      expect(first[i]).toBe(reference(k, message).toString("hex"));
    }
    expect(new Set(first).size).toBe(keys.length);
  });

  it("refuses a message longer than any beat signs", () => {
    expect(() => heartbeatMac(randomBytes(32), new Uint8Array(MAX_MAC_INPUT_BYTES + 1))).toThrow(
      RangeError,
    );
  });
});
