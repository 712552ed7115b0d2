// Heartbeat keys bound to a node. Under the shared secret alone, every holder of it (root
// on any node, or read access to the Secret) could MAC a beat in any node's name and, by
// spoofing that node's address, make its peers think it left. So each speaker run makes an
// X25519 key pair and publishes the public half on its Lease (writes to a speaker's Lease
// are bound to its own node by the chart's ValidatingAdmissionPolicy). Beats between two
// nodes that both publish one are MACed with a key only those two can derive: an HMAC,
// under the shared secret, of their Diffie-Hellman secret and both public keys. A third
// node holds the shared secret but not the private key of either, so it cannot speak for
// them. Checking a beat still costs one HMAC; sending costs one per peer rather than one
// per interval (each peer already got its own datagram), and the Diffie-Hellman runs once
// per peer key. A peer that publishes no key (an older speaker, during a rolling upgrade)
// is heard and spoken to under the shared secret as before.
import {
  createHmac,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";

/** The Lease annotation with the speaker's X25519 public key (raw 32 bytes, base64url). */
export const HEARTBEAT_KEY_ANNOTATION = "ironlb.dev/heartbeat-public-key";

const LABEL = Buffer.from("ironlb heartbeat pair key 1\0");
const BASE64URL_32 = /^[A-Za-z0-9_-]{43}$/;

/** The X25519 public key a Lease publishes, or undefined when the text is not one. */
export function parsePublicKey(text: string | undefined): KeyObject | undefined {
  if (text === undefined || !BASE64URL_32.test(text)) return undefined;
  try {
    return createPublicKey({ key: { kty: "OKP", crv: "X25519", x: text }, format: "jwk" });
  } catch {
    return undefined;
  }
}

/** This speaker run's key pair and the pair keys derived from it (cached). */
export class HeartbeatPairing {
  /** The public key, as published (base64url of its 32 raw bytes). */
  readonly publicKey: string;
  readonly #private: KeyObject;
  /** Per shared secret (object identity: keys are re-read as new objects), per peer key. */
  #derived = new WeakMap<Uint8Array, Map<string, Buffer | null>>();

  constructor() {
    const { publicKey, privateKey } = generateKeyPairSync("x25519");
    this.#private = privateKey;
    this.publicKey = publicKey.export({ format: "jwk" }).x!;
  }

  /**
   * The MAC key for beats between this node and the peer publishing `peerPublic`, under
   * `secret`; undefined when `peerPublic` is not a usable X25519 key (not one, or a point
   * of small order, whose shared secret would be known to anyone).
   */
  pairKey(peerPublic: string, secret: Uint8Array): Buffer | undefined {
    let bySecret = this.#derived.get(secret);
    if (!bySecret) {
      bySecret = new Map();
      this.#derived.set(secret, bySecret);
    }
    const cached = bySecret.get(peerPublic);
    if (cached !== undefined) return cached ?? undefined;
    const key = this.#derive(peerPublic, secret);
    // Bounded by the number of distinct keys peers published while this secret was in use.
    bySecret.set(peerPublic, key ?? null);
    return key;
  }

  #derive(peerPublic: string, secret: Uint8Array): Buffer | undefined {
    const peer = parsePublicKey(peerPublic);
    if (!peer) return undefined;
    let shared: Buffer;
    try {
      shared = diffieHellman({ privateKey: this.#private, publicKey: peer });
    } catch {
      return undefined; // OpenSSL refuses small-order points (an all-zero secret)
    }
    if (shared.every((b) => b === 0)) return undefined;
    const [lo, hi] = [this.publicKey, peerPublic].sort();
    return createHmac("sha256", secret)
      .update(LABEL)
      .update(`${lo}\0${hi}\0`)
      .update(shared)
      .digest();
  }
}
