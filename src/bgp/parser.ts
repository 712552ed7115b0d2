// The receiving side of a BGP TCP stream: reassembles messages across any chunking (16-byte
// marker, length, type; RFC 4271 §6.1 header checks) and decodes them. It never throws:
// malformed bytes yield one error value (the NOTIFICATION to send) and the parser stops,
// since the session closes anyway. UPDATEs are only counted by the session: ironlb takes no
// routes. Pure (a buffer, no I/O).
import type { Family } from "./capabilities.ts";
import {
  decodeNotification,
  decodeOpen,
  decodeRouteRefresh,
  HEADER_LENGTH,
  MAX_MESSAGE_LENGTH,
  MSG_KEEPALIVE,
  MSG_NOTIFICATION,
  MSG_OPEN,
  MSG_ROUTE_REFRESH,
  MSG_UPDATE,
  type OpenMessage,
  type WireError,
} from "./messages.ts";
import { NOTIFICATION_HEADER_ERROR, type Notification } from "./notification.ts";

export type ReceivedMessage =
  | { type: "open"; open: OpenMessage }
  | { type: "update"; length: number }
  | { type: "notification"; notification: Notification }
  | { type: "keepalive" }
  | { type: "routeRefresh"; family: Family | undefined };

export type ParseResult = ReceivedMessage | { type: "error"; error: WireError };

/** Smallest (and for fixed-size types, exact) lengths per RFC 4271 §4 and RFC 2918. */
const minLength: Record<number, number> = {
  [MSG_OPEN]: 29,
  [MSG_UPDATE]: 23,
  [MSG_NOTIFICATION]: 21,
  [MSG_KEEPALIVE]: 19,
  [MSG_ROUTE_REFRESH]: 23,
};
const exactLength: Record<number, number> = { [MSG_KEEPALIVE]: 19, [MSG_ROUTE_REFRESH]: 23 };

function headerError(subcode: number, reason: string, data: Uint8Array): ParseResult {
  return {
    type: "error",
    error: { error: { code: NOTIFICATION_HEADER_ERROR, subcode, data }, reason },
  };
}

export class MessageParser {
  #buf = new Uint8Array(0);
  #failed = false;

  /** The messages completed by `chunk`, in order; after an error nothing more. */
  push(chunk: Uint8Array): ParseResult[] {
    if (this.#failed) return [];
    const joined = new Uint8Array(this.#buf.length + chunk.length);
    joined.set(this.#buf, 0);
    joined.set(chunk, this.#buf.length);
    const out: ParseResult[] = [];
    let at = 0;
    while (joined.length - at >= HEADER_LENGTH) {
      for (let i = 0; i < 16; i++) {
        if (joined[at + i] !== 0xff) {
          return this.#fail(out, headerError(1, "marker is not all ones", new Uint8Array(0)));
        }
      }
      const length = ((joined[at + 16] ?? 0) << 8) | (joined[at + 17] ?? 0);
      const type = joined[at + 18] ?? 0;
      const lengthBytes = joined.slice(at + 16, at + 18);
      if (length < HEADER_LENGTH || length > MAX_MESSAGE_LENGTH) {
        return this.#fail(out, headerError(2, `message length ${length}`, lengthBytes));
      }
      const min = minLength[type];
      if (min === undefined) {
        return this.#fail(out, headerError(3, `message type ${type}`, Uint8Array.of(type)));
      }
      const exact = exactLength[type];
      if (length < min || (exact !== undefined && length !== exact)) {
        return this.#fail(out, headerError(2, `length ${length} for type ${type}`, lengthBytes));
      }
      if (joined.length - at < length) break;
      const body = joined.subarray(at + HEADER_LENGTH, at + length);
      const msg = decodeBody(type, body);
      if (msg.type === "error") return this.#fail(out, msg);
      out.push(msg);
      at += length;
    }
    this.#buf = joined.slice(at);
    return out;
  }

  #fail(out: ParseResult[], error: ParseResult): ParseResult[] {
    this.#failed = true;
    this.#buf = new Uint8Array(0);
    out.push(error);
    return out;
  }
}

function decodeBody(type: number, body: Uint8Array): ParseResult {
  switch (type) {
    case MSG_OPEN: {
      const open = decodeOpen(body);
      return "error" in open ? { type: "error", error: open } : { type: "open", open };
    }
    case MSG_UPDATE:
      return { type: "update", length: body.length + HEADER_LENGTH };
    case MSG_NOTIFICATION:
      return { type: "notification", notification: decodeNotification(body) };
    case MSG_KEEPALIVE:
      return { type: "keepalive" };
    default:
      return { type: "routeRefresh", family: decodeRouteRefresh(body) };
  }
}
