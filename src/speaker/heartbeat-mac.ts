// HMAC-SHA256 for heartbeats without a createHmac per beat. A speaker checks one MAC per
// datagram (~2,500/s at 250 peers) and, with pair keys, computes one per peer per interval.
// `createHmac(alg, bytes)` builds a secret KeyObject and an Hmac stream object each time:
// ~70 µs a beat under the image's `--lite-mode` (bench/RESULTS.md, "Membership at scale"),
// the largest single cost in the speaker's profile at 250 peers. This computes the same
// HMAC (RFC 2104) from its definition, H((K ^ opad) || H((K ^ ipad) || m)), with two
// one-shot `crypto.hash` calls over buffers prepared once per key: the padded key is
// derived once and kept as long as the key object lives (a WeakMap on the key's identity;
// heartbeat keys and pair keys are long-lived objects, never changed in place: a key file
// read again is a new Buffer).
import { hash } from "node:crypto";

const BLOCK_BYTES = 64;
const DIGEST_BYTES = 32;
/** Longest message the heartbeat codec MACs (header and a 253-byte name). */
export const MAX_MAC_INPUT_BYTES = 29 + 253;

interface PaddedKey {
  /** K ^ ipad, then room for the message. */
  inner: Buffer;
  /** K ^ opad, then room for the inner digest. */
  outer: Buffer;
}

const byKey = new WeakMap<Uint8Array, PaddedKey>();
/** String keys (tests, tools) cannot be WeakMap keys: a few are kept, the rest re-derived. */
const byString = new Map<string, PaddedKey>();
const MAX_STRING_KEYS = 16;

function pad(key: Uint8Array): PaddedKey {
  // A key longer than the block is replaced by its hash (RFC 2104, section 2).
  const k = key.length > BLOCK_BYTES ? hash("sha256", key, "buffer") : key;
  const inner = Buffer.alloc(BLOCK_BYTES + MAX_MAC_INPUT_BYTES);
  const outer = Buffer.alloc(BLOCK_BYTES + DIGEST_BYTES);
  for (let i = 0; i < BLOCK_BYTES; i++) {
    const b = i < k.length ? k[i]! : 0;
    inner[i] = b ^ 0x36;
    outer[i] = b ^ 0x5c;
  }
  return { inner, outer };
}

function padded(key: string | Uint8Array): PaddedKey {
  if (typeof key === "string") {
    let p = byString.get(key);
    if (!p) {
      p = pad(Buffer.from(key, "utf8"));
      if (byString.size >= MAX_STRING_KEYS) byString.clear();
      byString.set(key, p);
    }
    return p;
  }
  let p = byKey.get(key);
  if (!p) {
    p = pad(key);
    byKey.set(key, p);
  }
  return p;
}

/**
 * HMAC-SHA256 of `message` (at most MAX_MAC_INPUT_BYTES) under `key`: the same bytes as
 * `createHmac("sha256", key).update(message).digest()`.
 */
export function heartbeatMac(key: string | Uint8Array, message: Uint8Array): Buffer {
  if (message.length > MAX_MAC_INPUT_BYTES)
    throw new RangeError(`heartbeat MAC input over ${MAX_MAC_INPUT_BYTES} bytes`);
  const p = padded(key);
  p.inner.set(message, BLOCK_BYTES);
  const inner = hash("sha256", p.inner.subarray(0, BLOCK_BYTES + message.length), "buffer");
  p.outer.set(inner, BLOCK_BYTES);
  return hash("sha256", p.outer, "buffer");
}
