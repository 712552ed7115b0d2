import { describe, expect, it } from "vitest";
import {
  AS_TRANS,
  decodeNotification,
  decodeOpen,
  decodeRouteRefresh,
  encodeKeepalive,
  encodeNotification,
  encodeOpen,
  encodeRouteRefresh,
  type OpenMessage,
} from "./messages.ts";

const MARKER = Array(16).fill(0xff);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

describe("KEEPALIVE", () => {
  it("is the bare 19-byte header of type 4 (RFC 4271 §4.4)", () => {
    expect([...encodeKeepalive()]).toEqual([...MARKER, 0, 19, 4]);
  });
});

describe("OPEN", () => {
  const open: OpenMessage = {
    version: 4,
    asn16: AS_TRANS,
    holdTime: 90,
    routerID: "192.0.2.1",
    capabilities: {
      families: ["ipv4-unicast"],
      routeRefresh: true,
      endOfRibAware: true,
      fourOctetAS: 4200000001,
    },
  };

  it("encodes version, AS_TRANS, hold time, identifier and one Capabilities parameter", () => {
    const caps = [
      ...[1, 4, 0, 1, 0, 1], // multiprotocol IPv4 unicast
      ...[2, 0], // route refresh
      ...[64, 2, 0, 0], // graceful restart: no restart time, no families
      ...[65, 4, 0xfa, 0x56, 0xea, 0x01], // 4-octet AS 4200000001
    ];
    const body = [4, 0x5b, 0xa0, 0, 90, 192, 0, 2, 1, caps.length + 2, 2, caps.length, ...caps];
    expect([...encodeOpen(open)]).toEqual([...MARKER, 0, 19 + body.length, 1, ...body]);
  });

  it("decodes what it encodes (a bare GR capability reads as no restart time, no families)", () => {
    expect(decodeOpen(encodeOpen(open).subarray(19))).toEqual({
      ...open,
      capabilities: {
        ...open.capabilities,
        gracefulRestart: { restarting: false, restartTime: 0, families: [] },
      },
    });
  });

  it("reads IPv4 unicast into a peer that announces no multiprotocol capability (RFC 4760)", () => {
    const bare = [4, 0xfb, 0xf4, 0, 3, 10, 0, 0, 1, 0];
    expect(decodeOpen(Uint8Array.from(bare))).toEqual({
      version: 4,
      asn16: 64500,
      holdTime: 3,
      routerID: "10.0.0.1",
      capabilities: { families: ["ipv4-unicast"], routeRefresh: false },
    });
  });

  it("skips capabilities it does not know (RFC 5492) and reads several parameters", () => {
    const body = [4, 0xfb, 0xf4, 0, 3, 10, 0, 0, 1, 14];
    body.push(2, 4, 73, 2, 0x61, 0x62); // hostname-ish unknown capability
    body.push(2, 6, 1, 4, 0, 2, 0, 1); // IPv6 unicast
    const o = decodeOpen(Uint8Array.from(body));
    expect(o).toMatchObject({ capabilities: { families: ["ipv6-unicast"] } });
  });

  const errorOf = (body: number[]) => {
    const r = decodeOpen(Uint8Array.from(body));
    if (!("error" in r)) throw new Error("expected an error");
    return [r.error.code, r.error.subcode, [...r.error.data]];
  };

  it.each([
    ["version 3", [3, 0, 1, 0, 3, 10, 0, 0, 1, 0], [2, 1, [0, 4]]],
    ["identifier 0.0.0.0", [4, 0, 1, 0, 3, 0, 0, 0, 0, 0], [2, 3, []]],
    ["optional parameter type 1", [4, 0, 1, 0, 3, 10, 0, 0, 1, 2, 1, 0], [2, 4, []]],
    ["parameter length past the end", [4, 0, 1, 0, 3, 10, 0, 0, 1, 2, 2, 5], [2, 0, []]],
    ["parameters length wrong", [4, 0, 1, 0, 3, 10, 0, 0, 1, 9], [2, 0, []]],
    ["capability past its parameter", [4, 0, 1, 0, 3, 10, 0, 0, 1, 4, 2, 2, 1, 9], [2, 0, []]],
    ["4-octet AS of length 2", [4, 0, 1, 0, 3, 10, 0, 0, 1, 6, 2, 4, 65, 2, 0, 1], [2, 0, []]],
    ["short body", [4, 0, 1], [2, 0, []]],
  ])("answers %s with an OPEN error", (_, body, expected) => {
    expect(errorOf(body)).toEqual(expected);
  });
});

describe("NOTIFICATION", () => {
  it("is code, subcode and data after the header", () => {
    const n = { code: 6, subcode: 2, data: Uint8Array.of(2, 0x68, 0x69) };
    const bytes = encodeNotification(n);
    expect(hex(bytes.subarray(16))).toBe("001803060202" + "6869");
    expect(decodeNotification(bytes.subarray(19))).toEqual(n);
  });
});

describe("ROUTE-REFRESH", () => {
  it("is AFI, reserved, SAFI (RFC 2918) and decodes back to the family", () => {
    const v6 = encodeRouteRefresh("ipv6-unicast");
    expect([...v6]).toEqual([...MARKER, 0, 23, 5, 0, 2, 0, 1]);
    expect(decodeRouteRefresh(v6.subarray(19))).toBe("ipv6-unicast");
    expect(decodeRouteRefresh(encodeRouteRefresh("ipv4-unicast").subarray(19))).toBe(
      "ipv4-unicast",
    );
  });

  it("ignores other families and RFC 7313 BoRR/EoRR markers", () => {
    expect(decodeRouteRefresh(Uint8Array.of(0, 1, 1, 1))).toBeUndefined();
    expect(decodeRouteRefresh(Uint8Array.of(0, 1, 0, 128))).toBeUndefined();
    expect(decodeRouteRefresh(Uint8Array.of(0, 25, 0, 65))).toBeUndefined();
  });
});
