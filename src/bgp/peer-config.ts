// The checks a BgpPeerConfig must pass before a session may use it. The CRD's validation
// should already refuse all of these; this is the session's own guard, so that a value that
// slipped through becomes a readable status error instead of an exception on the wire. Pure.
import { parseIP } from "../net/address.ts";
import type { BgpPeerConfig } from "./types.ts";

const MAX_ASN = 4294967295;
/** TCP_MD5SIG_MAXKEYLEN: the kernel's limit on a TCP-MD5 key. */
export const MD5_MAX_KEY_BYTES = 80;
const isInt = (n: unknown, min: number, max: number) =>
  typeof n === "number" && Number.isInteger(n) && n >= min && n <= max;

/** The problems of `cfg`, each a sentence naming the field; empty when it is usable. */
export function peerConfigProblems(cfg: BgpPeerConfig): string[] {
  const p: string[] = [];
  if (!isInt(cfg.myASN, 1, MAX_ASN)) p.push(`myASN ${cfg.myASN} is not in 1..${MAX_ASN}`);
  if (cfg.dynamicASN === undefined) {
    if (!isInt(cfg.peerASN, 1, MAX_ASN)) p.push(`peerASN ${cfg.peerASN} is not in 1..${MAX_ASN}`);
  } else if (cfg.dynamicASN !== "internal" && cfg.dynamicASN !== "external") {
    p.push(`dynamicASN ${JSON.stringify(cfg.dynamicASN)} is neither internal nor external`);
  } else if (cfg.peerASN !== 0) {
    p.push("peerASN must be 0 when dynamicASN is set");
  }
  const peer = parseIP(cfg.peerAddress);
  if (peer === undefined)
    p.push(`peerAddress ${JSON.stringify(cfg.peerAddress)} is not an IP address`);
  if (cfg.sourceAddress !== undefined) {
    const src = parseIP(cfg.sourceAddress);
    if (src === undefined) {
      p.push(`sourceAddress ${JSON.stringify(cfg.sourceAddress)} is not an IP address`);
    } else if (peer !== undefined && src.family !== peer.family) {
      p.push("sourceAddress and peerAddress are of different families");
    }
  }
  if (!isInt(cfg.peerPort, 1, 65535)) p.push(`peerPort ${cfg.peerPort} is not in 1..65535`);
  if (!(cfg.holdTime === 0 || isInt(cfg.holdTime, 3, 65535))) {
    p.push(`holdTime ${cfg.holdTime} is neither 0 nor in 3..65535 seconds`);
  }
  if (!isInt(cfg.keepaliveTime, 0, 65535)) {
    p.push(`keepaliveTime ${cfg.keepaliveTime} is not in 0..65535 seconds`);
  }
  if (!isInt(cfg.connectTime, 1, 65535)) {
    p.push(`connectTime ${cfg.connectTime} is not in 1..65535 seconds`);
  }
  if (cfg.passwordError !== undefined) p.push(cfg.passwordError);
  else if (cfg.password !== undefined) {
    const bytes = new TextEncoder().encode(cfg.password).length;
    if (bytes === 0 || bytes > MD5_MAX_KEY_BYTES) {
      p.push(`the TCP-MD5 password has ${bytes} bytes; it must have 1 to ${MD5_MAX_KEY_BYTES}`);
    }
  }
  if (cfg.gracefulRestartTime !== undefined && !isInt(cfg.gracefulRestartTime, 1, 4095)) {
    p.push(`gracefulRestartTime ${cfg.gracefulRestartTime} is not in 1..4095 seconds`);
  }
  if (cfg.ttlSecurityHops !== undefined && !isInt(cfg.ttlSecurityHops, 1, 254)) {
    p.push(`ttlSecurityHops ${cfg.ttlSecurityHops} is not in 1..254`);
  }
  const id = parseIP(cfg.routerID);
  if (id?.family !== "IPv4" || id.value === 0n) {
    p.push(`routerID ${JSON.stringify(cfg.routerID)} is not a non-zero dotted IPv4 address`);
  }
  return p;
}

/**
 * Why a connect attempt timed out, as far as this side can tell. A TCP-MD5 mismatch (another
 * key, or a key on one side only) makes the router's kernel drop our SYNs without an answer,
 * and a GTSM mismatch makes ours drop the router's answer: both look like an unreachable
 * peer, so say so instead of a bare timeout.
 */
export function connectTimeoutReason(cfg: BgpPeerConfig): string {
  const base = `no TCP connection within ${cfg.connectTime} s: the peer did not answer`;
  const md5 =
    cfg.password === undefined
      ? " (unreachable, filtered, or it expects a TCP-MD5 password and this BGPPeer sets none)"
      : "; this may be a TCP-MD5 password mismatch (the router drops segments whose MD5 signature is missing or wrong without an answer): check that the router has the same password for this node, or that the peer is reachable at all";
  return base + md5 + gtsmHint(cfg);
}

/** Why the hold timer expired; with GTSM, the likely cause: the router's TTL. */
export function holdExpiredReason(cfg: BgpPeerConfig): string {
  return `hold timer expired: nothing received from the peer${gtsmHint(cfg)}`;
}

/**
 * OpenSent for `seconds` with GTSM on: the router accepted the connection (its SYN-ACK came
 * with TTL 255) but its OPEN did not arrive, which is what a router that sends with a lower
 * TTL afterwards looks like (FRR without ttl-security answers from its listener at 255).
 */
export function noOpenReason(cfg: BgpPeerConfig, seconds: number): string {
  return `no OPEN received ${seconds} s after connecting: GTSM mismatch?${gtsmHint(cfg)}`;
}

/**
 * With GTSM our kernel drops a router's segments that arrive with a lower TTL, unanswered:
 * a router without GTSM looks unreachable or silent. Empty without ttlSecurityHops.
 */
function gtsmHint(cfg: BgpPeerConfig): string {
  const hops = cfg.ttlSecurityHops;
  if (hops === undefined) return "";
  return `; with ttlSecurityHops ${hops} this node also drops the router's segments unless they arrive with TTL ${256 - hops} or more: check that the router sends with TTL 255 (FRR: neighbor ADDRESS ttl-security hops ${hops}; BIRD: ttl security on)`;
}

/** The config for a log line: the password replaced by whether one is set. */
export function redactPeerConfig(cfg: BgpPeerConfig): Omit<BgpPeerConfig, "password"> & {
  password?: "(set)";
} {
  const { password, ...rest } = cfg;
  return password === undefined ? rest : { ...rest, password: "(set)" };
}
