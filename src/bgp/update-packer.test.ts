import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatIP } from "../net/address.ts";
import type { BgpRoute } from "./types.ts";
import {
  endOfRib,
  packAnnouncements,
  packWithdrawals,
  type UpdateContext,
} from "./update-packer.ts";

// An UPDATE reader written from RFC 4271 §4.3 / RFC 4760, independent of the encoder.
interface Attr {
  flags: number;
  value: Uint8Array;
}
interface Decoded {
  withdrawn: string[];
  attrs: Map<number, Attr>;
  order: number[];
  nlri: string[];
  mpReach?: { afi: number; nextHop: Uint8Array; nlri: string[] };
  mpUnreach?: { afi: number; nlri: string[] };
}

function prefixes(b: Uint8Array, v6: boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < b.length; ) {
    const len = b[i]!;
    const n = Math.ceil(len / 8);
    let value = 0n;
    for (let k = 0; k < (v6 ? 16 : 4); k++)
      value = (value << 8n) | BigInt(k < n ? b[i + 1 + k]! : 0);
    out.push(`${formatIP({ family: v6 ? "IPv6" : "IPv4", value })}/${len}`);
    i += 1 + n;
  }
  return out;
}

function decode(msg: Uint8Array): Decoded {
  expect([...msg.subarray(0, 16)]).toEqual(Array(16).fill(0xff));
  expect((msg[16]! << 8) | msg[17]!).toBe(msg.length);
  expect(msg[18]).toBe(2);
  const b = msg.subarray(19);
  const wl = (b[0]! << 8) | b[1]!;
  const withdrawn = prefixes(b.subarray(2, 2 + wl), false);
  const al = (b[2 + wl]! << 8) | b[3 + wl]!;
  const a = b.subarray(4 + wl, 4 + wl + al);
  const attrs = new Map<number, Attr>();
  const order: number[] = [];
  for (let i = 0; i < a.length; ) {
    const flags = a[i]!;
    const type = a[i + 1]!;
    const ext = (flags & 0x10) !== 0;
    const len = ext ? (a[i + 2]! << 8) | a[i + 3]! : a[i + 2]!;
    const start = i + (ext ? 4 : 3);
    attrs.set(type, { flags, value: a.subarray(start, start + len) });
    order.push(type);
    i = start + len;
  }
  const d: Decoded = { withdrawn, attrs, order, nlri: prefixes(b.subarray(4 + wl + al), false) };
  const r = attrs.get(14)?.value;
  if (r !== undefined) {
    const nhl = r[3]!;
    d.mpReach = {
      afi: (r[0]! << 8) | r[1]!,
      nextHop: r.subarray(4, 4 + nhl),
      nlri: prefixes(r.subarray(5 + nhl), r[1] === 2),
    };
  }
  const u = attrs.get(15)?.value;
  if (u !== undefined)
    d.mpUnreach = { afi: (u[0]! << 8) | u[1]!, nlri: prefixes(u.subarray(3), u[1] === 2) };
  return d;
}

const ebgp: UpdateContext = {
  myASN: 4200000001,
  internal: false,
  fourOctet: true,
  nextHops: { "ipv4-unicast": ["192.0.2.11"], "ipv6-unicast": ["2001:db8::11"] },
};
const route = (prefix: string, extra: Partial<BgpRoute> = {}): BgpRoute => ({
  prefix,
  communities: [],
  largeCommunities: [],
  ...extra,
});

describe("packAnnouncements", () => {
  it("builds the RFC 4271 bytes of one IPv4 route towards an eBGP 4-octet peer", () => {
    const { messages } = packAnnouncements(
      "ipv4-unicast",
      [route("198.51.100.10/32", { communities: [0xffff029a] })],
      ebgp,
    );
    const attrs = [
      ...[0x40, 1, 1, 0], // ORIGIN IGP
      ...[0x40, 2, 6, 2, 1, 0xfa, 0x56, 0xea, 0x01], // AS_PATH: AS_SEQUENCE [4200000001]
      ...[0x40, 3, 4, 192, 0, 2, 11], // NEXT_HOP
      ...[0xc0, 8, 4, 0xff, 0xff, 0x02, 0x9a], // COMMUNITIES 65535:666
    ];
    const body = [0, 0, 0, attrs.length, ...attrs, 32, 198, 51, 100, 10];
    expect(messages.map((m) => [...m])).toEqual([
      [...Array(16).fill(0xff), 0, 19 + body.length, 2, ...body],
    ]);
  });

  it("puts IPv6 in MP_REACH with the global next hop (RFC 2545) and keeps type order", () => {
    const { messages } = packAnnouncements(
      "ipv6-unicast",
      [route("2001:db8:100::10/128", { largeCommunities: [[4200000001, 7, 8]] })],
      ebgp,
    );
    expect(messages).toHaveLength(1);
    const d = decode(messages[0]!);
    expect(d.order).toEqual([1, 2, 14, 32]);
    expect(d.nlri).toEqual([]);
    expect(d.mpReach?.afi).toBe(2);
    expect(
      formatIP({
        family: "IPv6",
        value: BigInt(`0x${Buffer.from(d.mpReach!.nextHop).toString("hex")}`),
      }),
    ).toBe("2001:db8::11");
    expect(d.mpReach?.nlri).toEqual(["2001:db8:100::10/128"]);
    expect([...d.attrs.get(32)!.value]).toEqual([0xfa, 0x56, 0xea, 0x01, 0, 0, 0, 7, 0, 0, 0, 8]);
  });

  it("sends an empty AS_PATH and LOCAL_PREF to an internal peer only", () => {
    const r = route("198.51.100.10/32", { localPref: 250 });
    const i = decode(
      packAnnouncements("ipv4-unicast", [r], { ...ebgp, internal: true }).messages[0]!,
    );
    expect(i.attrs.get(2)!.value.length).toBe(0);
    expect([...i.attrs.get(5)!.value]).toEqual([0, 0, 0, 250]);
    const e = decode(packAnnouncements("ipv4-unicast", [r], ebgp).messages[0]!);
    expect(e.attrs.has(5)).toBe(false);
  });

  it("uses 2-octet AS_PATH with AS_TRANS plus AS4_PATH towards a peer without 4-octet AS", () => {
    const d = decode(
      packAnnouncements("ipv4-unicast", [route("198.51.100.10/32")], { ...ebgp, fourOctet: false })
        .messages[0]!,
    );
    expect([...d.attrs.get(2)!.value]).toEqual([2, 1, 0x5b, 0xa0]);
    expect(d.attrs.get(17)).toEqual({
      flags: 0xc0,
      value: Uint8Array.of(2, 1, 0xfa, 0x56, 0xea, 1),
    });
    const small = decode(
      packAnnouncements("ipv4-unicast", [route("198.51.100.10/32")], {
        ...ebgp,
        myASN: 64512,
        fourOctet: false,
      }).messages[0]!,
    );
    expect([...small.attrs.get(2)!.value]).toEqual([2, 1, 0xfc, 0x00]);
    expect(small.attrs.has(17)).toBe(false);
  });

  it("sets the extended-length flag on an attribute over 255 bytes", () => {
    const communities = Array.from({ length: 100 }, (_, i) => i + 1);
    const d = decode(
      packAnnouncements("ipv4-unicast", [route("198.51.100.10/32", { communities })], ebgp)
        .messages[0]!,
    );
    expect(d.attrs.get(8)!.flags).toBe(0xd0);
    expect(d.attrs.get(8)!.value.length).toBe(400);
    const short = decode(
      packAnnouncements("ipv4-unicast", [route("198.51.100.10/32", { communities: [1] })], ebgp)
        .messages[0]!,
    );
    expect(short.attrs.get(8)!.flags).toBe(0xc0);
  });

  it("packs 2000 equal routes into few UPDATEs of at most 4096 bytes", () => {
    const routes = Array.from({ length: 2000 }, (_, i) =>
      route(`10.${i >> 8}.${i & 255}.1/32`, { communities: [1] }),
    );
    const { messages } = packAnnouncements("ipv4-unicast", routes, ebgp);
    // 5 bytes per /32 → about 810 per UPDATE.
    expect(messages.length).toBe(3);
    for (const m of messages) expect(m.length).toBeLessThanOrEqual(4096);
    expect(messages.flatMap((m) => decode(m).nlri)).toEqual(routes.map((r) => r.prefix));
  });

  it("skips prefixes of the other family and a route whose attributes cannot fit", () => {
    const huge = route("198.51.100.11/32", {
      communities: Array.from({ length: 1100 }, (_, i) => i),
    });
    const r = packAnnouncements("ipv4-unicast", [route("2001:db8::1/128"), huge, route("x")], ebgp);
    expect(r.messages).toEqual([]);
    expect(r.skipped.map((s) => s.prefix)).toEqual(["2001:db8::1/128", "x", "198.51.100.11/32"]);
  });

  it("round-trips any set of routes: every prefix once, with its own attributes", () => {
    const v4 = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }));
    const arb = fc.array(
      fc.record({
        p: v4,
        communities: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 3 }),
        large: fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat()), { maxLength: 2 }),
      }),
      { maxLength: 400 },
    );
    fc.assert(
      fc.property(arb, (rs) => {
        const byPrefix = new Map<string, BgpRoute>();
        for (const x of rs) {
          const [v, len] = x.p;
          const masked = len === 0 ? 0 : (v >>> (32 - len)) << (32 - len);
          const prefix = `${formatIP({ family: "IPv4", value: BigInt(masked >>> 0) })}/${len}`;
          byPrefix.set(
            prefix,
            route(prefix, { communities: x.communities, largeCommunities: x.large }),
          );
        }
        const { messages, skipped } = packAnnouncements(
          "ipv4-unicast",
          [...byPrefix.values()],
          ebgp,
        );
        expect(skipped).toEqual([]);
        const seen = new Map<string, number[]>();
        for (const m of messages) {
          expect(m.length).toBeLessThanOrEqual(4096);
          const d = decode(m);
          const c = d.attrs.get(8)?.value ?? new Uint8Array(0);
          const comms = [...Array(c.length / 4).keys()].map((i) =>
            Buffer.from(c).readUInt32BE(i * 4),
          );
          for (const p of d.nlri) {
            expect(seen.has(p)).toBe(false);
            seen.set(p, comms);
          }
        }
        expect(new Set(seen.keys())).toEqual(new Set(byPrefix.keys()));
        for (const [p, comms] of seen) {
          expect(comms).toEqual([...new Set(byPrefix.get(p)!.communities)].sort((a, b) => a - b));
        }
      }),
      { numRuns: 50 },
    );
  });
});

describe("packWithdrawals", () => {
  it("puts IPv4 in the withdrawn routes field and IPv6 in MP_UNREACH", () => {
    const [v4] = packWithdrawals("ipv4-unicast", [
      "198.51.100.10/32",
      "2001:db8::1/128",
      "198.51.100.0/25",
    ]);
    expect(decode(v4!).withdrawn).toEqual(["198.51.100.10/32", "198.51.100.0/25"]);
    const [v6] = packWithdrawals("ipv6-unicast", ["198.51.100.10/32", "2001:db8::1/128"]);
    expect(decode(v6!).mpUnreach).toEqual({ afi: 2, nlri: ["2001:db8::1/128"] });
  });

  it("splits many withdrawals over UPDATEs of at most 4096 bytes", () => {
    const ps = Array.from({ length: 1000 }, (_, i) => `2001:db8::${(i + 1).toString(16)}/128`);
    const ms = packWithdrawals("ipv6-unicast", ps);
    expect(ms.length).toBe(5); // 17 bytes each, ~239 per UPDATE
    for (const m of ms) expect(m.length).toBeLessThanOrEqual(4096);
    expect(ms.flatMap((m) => decode(m).mpUnreach!.nlri)).toEqual(ps);
  });
});

describe("End-of-RIB (RFC 4724 §2)", () => {
  it("is an empty UPDATE for IPv4 and an empty MP_UNREACH for IPv6", () => {
    const m = Array(16).fill(0xff);
    expect([...endOfRib("ipv4-unicast")]).toEqual([...m, 0, 23, 2, 0, 0, 0, 0]);
    expect([...endOfRib("ipv6-unicast")]).toEqual([
      ...m,
      0,
      29,
      2,
      0,
      0,
      0,
      6,
      0x80,
      15,
      3,
      0,
      2,
      1,
    ]);
  });
});
