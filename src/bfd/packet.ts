// The BFD Control packet (RFC 5880 §4.1, mandatory section only: no authentication in this
// step). Pure: encode for sending, decode with every reception check of §6.8.6 that needs
// only the packet itself. decode never throws: any bytes from the wire get a reason.

export type BfdState = "AdminDown" | "Down" | "Init" | "Up";
const STATES: readonly BfdState[] = ["AdminDown", "Down", "Init", "Up"];

/** Diagnostic codes (RFC 5880 §4.1). */
export const DIAG_NONE = 0;
export const DIAG_DETECTION_TIME_EXPIRED = 1;
export const DIAG_NEIGHBOR_SIGNALED_DOWN = 3;
export const DIAG_ADMIN_DOWN = 7;

const DIAG_NAMES = [
  "No Diagnostic",
  "Control Detection Time Expired",
  "Echo Function Failed",
  "Neighbor Signaled Session Down",
  "Forwarding Plane Reset",
  "Path Down",
  "Concatenated Path Down",
  "Administratively Down",
  "Reverse Concatenated Path Down",
];

export function describeDiag(diag: number): string {
  return DIAG_NAMES[diag] ?? `diagnostic ${diag}`;
}

export interface BfdPacket {
  diag: number;
  state: BfdState;
  poll: boolean;
  final: boolean;
  /** C bit: the sender's BFD does not share fate with its control plane. Always false here. */
  controlPlaneIndependent: boolean;
  demand: boolean;
  detectMult: number;
  myDiscriminator: number;
  yourDiscriminator: number;
  /** Microseconds, as on the wire. */
  desiredMinTxUs: number;
  requiredMinRxUs: number;
  requiredMinEchoRxUs: number;
}

export const BFD_VERSION = 1;
export const PACKET_LENGTH = 24;

export function encodePacket(p: BfdPacket): Uint8Array {
  const b = new Uint8Array(PACKET_LENGTH);
  const v = new DataView(b.buffer);
  b[0] = (BFD_VERSION << 5) | (p.diag & 0x1f);
  b[1] =
    (STATES.indexOf(p.state) << 6) |
    (p.poll ? 0x20 : 0) |
    (p.final ? 0x10 : 0) |
    (p.controlPlaneIndependent ? 0x08 : 0) |
    (p.demand ? 0x02 : 0);
  b[2] = p.detectMult & 0xff;
  b[3] = PACKET_LENGTH;
  v.setUint32(4, p.myDiscriminator >>> 0);
  v.setUint32(8, p.yourDiscriminator >>> 0);
  v.setUint32(12, p.desiredMinTxUs >>> 0);
  v.setUint32(16, p.requiredMinRxUs >>> 0);
  v.setUint32(20, p.requiredMinEchoRxUs >>> 0);
  return b;
}

export type DecodeResult = { packet: BfdPacket } | { error: string };

/** Decodes one datagram; a packet §6.8.6 says to discard comes back as an error reason. */
export function decodePacket(bytes: Uint8Array): DecodeResult {
  if (bytes.length < PACKET_LENGTH) return { error: `too short: ${bytes.length} bytes` };
  const version = (bytes[0] as number) >> 5;
  if (version !== BFD_VERSION) return { error: `version ${version}, expected ${BFD_VERSION}` };
  const flags = bytes[1] as number;
  const auth = (flags & 0x04) !== 0;
  const length = bytes[3] as number;
  if (length < (auth ? 26 : PACKET_LENGTH)) return { error: `length field ${length} too small` };
  if (length > bytes.length) {
    return { error: `length field ${length} beyond the ${bytes.length}-byte datagram` };
  }
  if (auth) return { error: "authentication present, none configured" };
  if ((flags & 0x01) !== 0) return { error: "multipoint bit set" };
  const detectMult = bytes[2] as number;
  if (detectMult === 0) return { error: "detect multiplier 0" };
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const myDiscriminator = v.getUint32(4);
  const yourDiscriminator = v.getUint32(8);
  if (myDiscriminator === 0) return { error: "my discriminator 0" };
  const state = STATES[flags >> 6] as BfdState;
  if (yourDiscriminator === 0 && state !== "Down" && state !== "AdminDown") {
    return { error: `your discriminator 0 in state ${state}` };
  }
  const poll = (flags & 0x20) !== 0;
  const final = (flags & 0x10) !== 0;
  if (poll && final) return { error: "poll and final both set" };
  return {
    packet: {
      diag: (bytes[0] as number) & 0x1f,
      state,
      poll,
      final,
      controlPlaneIndependent: (flags & 0x08) !== 0,
      demand: (flags & 0x02) !== 0,
      detectMult,
      myDiscriminator,
      yourDiscriminator,
      desiredMinTxUs: v.getUint32(12),
      requiredMinRxUs: v.getUint32(16),
      requiredMinEchoRxUs: v.getUint32(20),
    },
  };
}

/** Why a received datagram is dropped before it reaches a session (a metric label). */
export type DropReason = "ttl" | "malformed" | "no-session";

/**
 * RFC 5881 §5 (single hop, no authentication): a control packet counts only when received
 * with TTL / hop limit 255, i.e. sent from the link itself and not forwarded by any router.
 * A TTL the kernel did not report (-1) fails too: the check must not silently pass.
 */
export function singleHopTtlOk(ttl: number): boolean {
  return ttl === 255;
}
