import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  encodeKeepalive,
  encodeNotification,
  encodeOpen,
  encodeRouteRefresh,
  frame,
} from "./messages.ts";
import { MessageParser, type ParseResult } from "./parser.ts";
import { endOfRib, packAnnouncements } from "./update-packer.ts";

const open = encodeOpen({
  version: 4,
  asn16: 64512,
  holdTime: 9,
  routerID: "192.0.2.1",
  capabilities: { families: ["ipv6-unicast"], routeRefresh: true, fourOctetAS: 64512 },
});
const update = packAnnouncements(
  "ipv4-unicast",
  Array.from({ length: 900 }, (_, i) => ({
    prefix: `10.0.${i >> 8}.${i & 255}/32`,
    communities: [],
    largeCommunities: [],
  })),
  { myASN: 64512, internal: false, fourOctet: true, nextHops: { "ipv4-unicast": ["192.0.2.1"] } },
).messages;
const valid = [
  open,
  encodeKeepalive(),
  ...update,
  endOfRib("ipv6-unicast"),
  encodeRouteRefresh("ipv4-unicast"),
  encodeNotification({ code: 6, subcode: 2, data: Uint8Array.of(2, 0x68, 0x69) }),
];
const stream = Buffer.concat(valid);

/** Feeds `bytes` in pieces cut at `cuts` (sorted offsets). */
function feed(bytes: Uint8Array, cuts: number[]): ParseResult[] {
  const p = new MessageParser();
  const out: ParseResult[] = [];
  let at = 0;
  for (const c of [...cuts, bytes.length]) {
    out.push(...p.push(bytes.subarray(at, c)));
    at = c;
  }
  return out;
}

const header = (length: number, type: number) =>
  Uint8Array.from([...Array(16).fill(0xff), length >> 8, length & 0xff, type]);

describe("MessageParser", () => {
  it("reads a stream of every message type", () => {
    expect(feed(stream, []).map((m) => m.type)).toEqual([
      "open",
      "keepalive",
      ...update.map(() => "update"),
      "update",
      "routeRefresh",
      "notification",
    ]);
    expect(update.length).toBe(2);
  });

  it("gives the same messages for any chunking of the stream", () => {
    const whole = feed(stream, []);
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: stream.length - 1 }), { maxLength: 40 }),
        (cuts) => {
          expect(
            feed(
              stream,
              cuts.sort((a, b) => a - b),
            ),
          ).toEqual(whole);
        },
      ),
    );
  });

  it("gives the same messages when fed byte by byte", () => {
    expect(
      feed(
        stream,
        [...Array(stream.length - 1).keys()].map((i) => i + 1),
      ),
    ).toEqual(feed(stream, []));
  });

  it("never throws on arbitrary bytes in arbitrary chunks, and stops after one error", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }),
        fc.boolean(),
        (chunks, withMarker) => {
          const p = new MessageParser();
          const out: ParseResult[] = [];
          if (withMarker) out.push(...p.push(Uint8Array.from(Array(16).fill(0xff))));
          for (const c of chunks) out.push(...p.push(c));
          const errors = out.filter((m) => m.type === "error");
          expect(errors.length).toBeLessThanOrEqual(1);
          if (errors.length === 1) expect(out.at(-1)?.type).toBe("error");
        },
      ),
      { numRuns: 500 },
    );
  });

  it("never throws on a valid header followed by an arbitrary body of any type", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 255 }),
        fc.uint8Array({ maxLength: 300 }),
        (t, body) => {
          const r = new MessageParser().push(frame(t, body));
          expect(r.length).toBe(1);
        },
      ),
      { numRuns: 1000 },
    );
  });

  const errorOf = (bytes: Uint8Array) => {
    const r = new MessageParser().push(bytes);
    const e = r.find((m) => m.type === "error");
    if (e?.type !== "error") throw new Error(`no error in ${JSON.stringify(r)}`);
    return [e.error.error.code, e.error.error.subcode, [...e.error.error.data]];
  };

  it.each([
    [
      "a marker that is not all ones",
      Uint8Array.from([...Array(15).fill(0xff), 0, 0, 19, 4]),
      [1, 1, []],
    ],
    ["length 18", header(18, 4), [1, 2, [0, 18]]],
    ["length 4097", header(4097, 2), [1, 2, [0x10, 0x01]]],
    ["type 9", header(19, 9), [1, 3, [9]]],
    ["a KEEPALIVE of 20 bytes", Uint8Array.from([...header(20, 4), 0]), [1, 2, [0, 20]]],
    ["an OPEN of 28 bytes", header(28, 1), [1, 2, [0, 28]]],
    ["a ROUTE-REFRESH of 24 bytes", header(24, 5), [1, 2, [0, 24]]],
    ["a NOTIFICATION of 20 bytes", header(20, 3), [1, 2, [0, 20]]],
    [
      "an OPEN of version 3",
      frame(1, Uint8Array.of(3, 0, 1, 0, 3, 10, 0, 0, 1, 0)),
      [2, 1, [0, 4]],
    ],
  ])("answers %s with the RFC 4271 §6 error", (_, bytes, expected) => {
    expect(errorOf(bytes)).toEqual(expected);
  });

  it("checks a header as soon as it is complete, before the body arrives", () => {
    const p = new MessageParser();
    expect(p.push(header(5000, 2).subarray(0, 18))).toEqual([]);
    expect(p.push(header(5000, 2).subarray(18))[0]?.type).toBe("error");
    expect(p.push(encodeKeepalive())).toEqual([]);
  });

  it("returns the messages before an error, then the error", () => {
    const r = new MessageParser().push(Buffer.concat([encodeKeepalive(), header(19, 7)]));
    expect(r.map((m) => m.type)).toEqual(["keepalive", "error"]);
  });
});
