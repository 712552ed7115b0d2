// NOTIFICATION messages (RFC 4271 §4.5): codes and subcodes by name (RFC 4271 §6, RFC 4486
// Cease, RFC 6608 FSM errors, RFC 7313 ROUTE-REFRESH) and the RFC 9003 shutdown
// communication, so that a log line or a status says "Cease/Administrative Shutdown: text"
// instead of "6/2". Pure.

export const NOTIFICATION_HEADER_ERROR = 1;
export const NOTIFICATION_OPEN_ERROR = 2;
export const NOTIFICATION_UPDATE_ERROR = 3;
export const NOTIFICATION_HOLD_TIMER_EXPIRED = 4;
export const NOTIFICATION_FSM_ERROR = 5;
export const NOTIFICATION_CEASE = 6;

/** Cease subcodes (RFC 4486). */
export const CEASE_ADMINISTRATIVE_SHUTDOWN = 2;
export const CEASE_ADMINISTRATIVE_RESET = 4;
/** RFC 9384: the session ends because BFD declared the peer down. */
export const CEASE_BFD_DOWN = 10;

/** A NOTIFICATION's content. */
export interface Notification {
  code: number;
  subcode: number;
  data: Uint8Array;
}

const codeNames: Record<number, string> = {
  1: "Message Header Error",
  2: "OPEN Message Error",
  3: "UPDATE Message Error",
  4: "Hold Timer Expired",
  5: "Finite State Machine Error",
  6: "Cease",
  7: "ROUTE-REFRESH Message Error",
};

const subcodeNames: Record<number, Record<number, string>> = {
  1: { 1: "Connection Not Synchronized", 2: "Bad Message Length", 3: "Bad Message Type" },
  2: {
    1: "Unsupported Version Number",
    2: "Bad Peer AS",
    3: "Bad BGP Identifier",
    4: "Unsupported Optional Parameter",
    6: "Unacceptable Hold Time",
    7: "Unsupported Capability",
  },
  3: {
    1: "Malformed Attribute List",
    2: "Unrecognized Well-known Attribute",
    3: "Missing Well-known Attribute",
    4: "Attribute Flags Error",
    5: "Attribute Length Error",
    6: "Invalid ORIGIN Attribute",
    8: "Invalid NEXT_HOP Attribute",
    9: "Optional Attribute Error",
    10: "Invalid Network Field",
    11: "Malformed AS_PATH",
  },
  5: {
    1: "Unexpected Message in OpenSent State",
    2: "Unexpected Message in OpenConfirm State",
    3: "Unexpected Message in Established State",
  },
  6: {
    1: "Maximum Number of Prefixes Reached",
    2: "Administrative Shutdown",
    3: "Peer De-configured",
    4: "Administrative Reset",
    5: "Connection Rejected",
    6: "Other Configuration Change",
    7: "Connection Collision Resolution",
    8: "Out of Resources",
    9: "Hard Reset",
    10: "BFD Down",
  },
  7: { 1: "Invalid Message Length" },
};

/** RFC 9003 allows up to 255 octets of UTF-8. */
const MAX_SHUTDOWN_BYTES = 255;

function carriesShutdownText(code: number, subcode: number): boolean {
  return (
    code === NOTIFICATION_CEASE &&
    (subcode === CEASE_ADMINISTRATIVE_SHUTDOWN || subcode === CEASE_ADMINISTRATIVE_RESET)
  );
}

/** The RFC 9003 data field for `text`: a length octet and UTF-8, cut at a character edge. */
export function shutdownData(text: string): Uint8Array {
  let bytes = new TextEncoder().encode(text);
  if (bytes.length > MAX_SHUTDOWN_BYTES) {
    let end = MAX_SHUTDOWN_BYTES;
    // Back off continuation bytes (10xxxxxx) so no character is split.
    while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
    bytes = bytes.slice(0, end);
  }
  const out = new Uint8Array(bytes.length + 1);
  out[0] = bytes.length;
  out.set(bytes, 1);
  return out;
}

/** The shutdown text of a Cease 6/2 or 6/4 NOTIFICATION, or undefined when it has none. */
export function shutdownText(n: Notification): string | undefined {
  if (!carriesShutdownText(n.code, n.subcode) || n.data.length < 1) return undefined;
  const len = n.data[0] ?? 0;
  if (len === 0 || len !== n.data.length - 1) return undefined;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(n.data.subarray(1));
  } catch {
    return undefined;
  }
}

/** "Cease/Administrative Shutdown: \"maintenance\"", "OPEN Message Error/Bad Peer AS" … */
export function describeNotification(n: Notification): string {
  const code = codeNames[n.code] ?? `code ${n.code}`;
  const sub = subcodeNames[n.code]?.[n.subcode];
  const head =
    n.subcode === 0 && sub === undefined ? code : `${code}/${sub ?? `subcode ${n.subcode}`}`;
  const text = shutdownText(n);
  return text === undefined ? head : `${head}: ${JSON.stringify(text)}`;
}
