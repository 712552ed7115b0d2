import { describe, expect, it } from "vitest";
import { decodeHeartbeat, encodeHeartbeat, type Heartbeat, peekPaired } from "./heartbeat.ts";
import { HeartbeatPairing, parsePublicKey } from "./heartbeat-pairing.ts";

const secret = Buffer.from("the shared heartbeat key, 32 byte");
const beat: Heartbeat = {
  node: "node-a",
  incarnation: 1_700_000_000_000_000,
  seq: 7,
  sentAtMs: 1_700_000_000_123,
  leaving: true,
};

describe("HeartbeatPairing", () => {
  const a = new HeartbeatPairing();
  const b = new HeartbeatPairing();
  const c = new HeartbeatPairing(); // a third node: holds the shared secret too

  it("gives two nodes the same pair key, and nobody else", () => {
    const ab = a.pairKey(b.publicKey, secret)!;
    expect(ab).toHaveLength(32);
    expect(b.pairKey(a.publicKey, secret)).toEqual(ab);
    // The third node derives its own keys with each of them, never theirs.
    expect(c.pairKey(a.publicKey, secret)).not.toEqual(ab);
    expect(c.pairKey(b.publicKey, secret)).not.toEqual(ab);
    expect(ab.equals(secret)).toBe(false);
  });

  it("depends on the shared secret too", () => {
    const other = Buffer.from("another shared heartbeat key, 32b");
    expect(a.pairKey(b.publicKey, other)).not.toEqual(a.pairKey(b.publicKey, secret));
    expect(a.pairKey(b.publicKey, other)).toEqual(b.pairKey(a.publicKey, other));
  });

  it("refuses what is not a usable public key", () => {
    for (const bad of [
      "",
      "not base64url!",
      a.publicKey.slice(1),
      `${a.publicKey}A`,
      // The all-zero point: its shared secret is zero for everyone.
      Buffer.alloc(32).toString("base64url"),
    ]) {
      expect(a.pairKey(bad, secret), bad).toBeUndefined();
    }
    expect(parsePublicKey(b.publicKey)).toBeDefined();
    expect(parsePublicKey(undefined)).toBeUndefined();
  });

  it("authenticates a paired beat only under the pair key", () => {
    const ab = a.pairKey(b.publicKey, secret)!;
    const bytes = encodeHeartbeat(beat, ab, true);
    expect(peekPaired(bytes)).toBe(true);
    expect(decodeHeartbeat(bytes, b.pairKey(a.publicKey, secret)!)).toEqual({
      ok: true,
      beat,
      paired: true,
    });
    // Neither the shared secret nor the third node's keys verify it.
    expect(decodeHeartbeat(bytes, secret)).toEqual({ ok: false, error: "bad-mac" });
    expect(decodeHeartbeat(bytes, c.pairKey(a.publicKey, secret)!)).toEqual({
      ok: false,
      error: "bad-mac",
    });
    // A beat under the shared secret says it is not paired.
    const plain = encodeHeartbeat(beat, secret);
    expect(peekPaired(plain)).toBe(false);
    expect(decodeHeartbeat(plain, secret)).toEqual({ ok: true, beat, paired: false });
  });
});
