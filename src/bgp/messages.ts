// BGP-4 messages on the wire (RFC 4271 §4): the 19-byte header, OPEN, KEEPALIVE,
// NOTIFICATION and ROUTE-REFRESH (RFC 2918). UPDATEs are built in attributes.ts and
// update-packer.ts. Decoders return an error value, never throw. Pure.
import {
  type Capabilities,
  decodeCapabilities,
  encodeCapabilities,
  type Family,
  familyOf,
} from "./capabilities.ts";
import { NOTIFICATION_OPEN_ERROR, type Notification } from "./notification.ts";

export const HEADER_LENGTH = 19;
export const MAX_MESSAGE_LENGTH = 4096;
export const BGP_VERSION = 4;
/** RFC 6793: the 2-octet stand-in for an AS number above 65535. */
export const AS_TRANS = 23456;

export const MSG_OPEN = 1;
export const MSG_UPDATE = 2;
export const MSG_NOTIFICATION = 3;
export const MSG_KEEPALIVE = 4;
export const MSG_ROUTE_REFRESH = 5;

/** Counter names of the message types, as SessionStatus reports them. */
export type MessageKind = "open" | "update" | "notification" | "keepalive" | "routeRefresh";

export const kindOfType: Record<number, MessageKind> = {
  [MSG_OPEN]: "open",
  [MSG_UPDATE]: "update",
  [MSG_NOTIFICATION]: "notification",
  [MSG_KEEPALIVE]: "keepalive",
  [MSG_ROUTE_REFRESH]: "routeRefresh",
};

export interface OpenMessage {
  version: number;
  /** The 2-octet "My Autonomous System" field (AS_TRANS for a 4-octet AS). */
  asn16: number;
  holdTime: number;
  /** Dotted IPv4 BGP Identifier. */
  routerID: string;
  capabilities: Capabilities;
}

/** A decoding failure: the NOTIFICATION to send and why, for the log. */
export interface WireError {
  error: Notification;
  reason: string;
}

/** A whole message: header plus body. */
export function frame(type: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_LENGTH + body.length);
  out.fill(0xff, 0, 16);
  out[16] = out.length >> 8;
  out[17] = out.length & 0xff;
  out[18] = type;
  out.set(body, HEADER_LENGTH);
  return out;
}

export function encodeKeepalive(): Uint8Array {
  return frame(MSG_KEEPALIVE, new Uint8Array(0));
}

function routerIDBytes(id: string): number[] {
  const parts = id.split(".").map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new Error(`router ID ${JSON.stringify(id)} is not a dotted IPv4 address`);
  }
  return parts;
}

/** The 2-octet AS field for `asn`: itself, or AS_TRANS when it needs 4 octets. */
export function asn16Of(asn: number): number {
  return asn > 0xffff ? AS_TRANS : asn;
}

export function encodeOpen(o: OpenMessage): Uint8Array {
  const caps = encodeCapabilities(o.capabilities);
  const params = caps.length > 0 ? [2, caps.length, ...caps] : [];
  return frame(
    MSG_OPEN,
    Uint8Array.from([
      o.version,
      o.asn16 >> 8,
      o.asn16 & 0xff,
      o.holdTime >> 8,
      o.holdTime & 0xff,
      ...routerIDBytes(o.routerID),
      params.length,
      ...params,
    ]),
  );
}

function openError(subcode: number, reason: string, data = new Uint8Array(0)): WireError {
  return { error: { code: NOTIFICATION_OPEN_ERROR, subcode, data }, reason };
}

/** An OPEN's body (after the header) as a message, or the OPEN error to answer with. */
export function decodeOpen(b: Uint8Array): OpenMessage | WireError {
  if (b.length < 10) return openError(0, `OPEN body of ${b.length} bytes`);
  const version = b[0] ?? 0;
  if (version !== BGP_VERSION) {
    return openError(1, `BGP version ${version}`, Uint8Array.from([0, BGP_VERSION]));
  }
  const asn16 = ((b[1] ?? 0) << 8) | (b[2] ?? 0);
  const holdTime = ((b[3] ?? 0) << 8) | (b[4] ?? 0);
  const routerID = `${b[5]}.${b[6]}.${b[7]}.${b[8]}`;
  if (routerID === "0.0.0.0") return openError(3, "BGP Identifier 0.0.0.0");
  const optLen = b[9] ?? 0;
  if (10 + optLen !== b.length) {
    return openError(0, `optional parameters of ${optLen} bytes in a body of ${b.length}`);
  }
  const capabilities: Capabilities = { families: [], routeRefresh: false };
  let sawMultiprotocol = false;
  let i = 10;
  while (i < b.length) {
    const type = b[i] ?? 0;
    const len = b[i + 1];
    if (len === undefined || i + 2 + len > b.length) {
      return openError(0, "optional parameter runs past the OPEN");
    }
    if (type !== 2) return openError(4, `optional parameter type ${type}`);
    const value = b.subarray(i + 2, i + 2 + len);
    const bad = decodeCapabilities(value, capabilities);
    if (bad !== undefined) return openError(0, bad);
    sawMultiprotocol ||= hasMultiprotocol(value);
    i += 2 + len;
  }
  // RFC 4760: a speaker that announces no multiprotocol capability does IPv4 unicast.
  if (!sawMultiprotocol) capabilities.families.push("ipv4-unicast");
  return { version, asn16, holdTime, routerID, capabilities };
}

function hasMultiprotocol(caps: Uint8Array): boolean {
  for (let i = 0; i + 1 < caps.length; i += 2 + (caps[i + 1] ?? 0)) {
    if (caps[i] === 1) return true;
  }
  return false;
}

export function encodeNotification(n: Notification): Uint8Array {
  const body = new Uint8Array(2 + n.data.length);
  body[0] = n.code;
  body[1] = n.subcode;
  body.set(n.data, 2);
  return frame(MSG_NOTIFICATION, body);
}

/** A NOTIFICATION's body; the header check guarantees at least 2 bytes. */
export function decodeNotification(b: Uint8Array): Notification {
  return { code: b[0] ?? 0, subcode: b[1] ?? 0, data: b.slice(2) };
}

export function encodeRouteRefresh(f: Family): Uint8Array {
  return frame(MSG_ROUTE_REFRESH, Uint8Array.from([0, f === "ipv4-unicast" ? 1 : 2, 0, 1]));
}

/**
 * A ROUTE-REFRESH's body (4 bytes, checked by the header): the family asked for, or
 * undefined for a family ironlb does not speak or an RFC 7313 BoRR/EoRR marker.
 */
export function decodeRouteRefresh(b: Uint8Array): Family | undefined {
  if (b[2] !== 0) return undefined;
  return familyOf(((b[0] ?? 0) << 8) | (b[1] ?? 0), b[3] ?? 0);
}
