import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  arpFilter,
  BPF_MAX_INSTRUCTIONS,
  encodeFilter,
  ndpFilter,
  runFilter,
  socketFilter,
} from "./bpf-filter.ts";
import {
  arpProbe,
  arpReply,
  arpRequest,
  gratuitousArpRequest,
  neighborAdvertisement,
  neighborSolicitation,
  unsolicitedNeighborAdvertisement,
} from "./codec.ts";

const MAC = "02:00:00:00:00:01";
const PEER = "02:00:00:00:00:02";
const passes = (prog: ReturnType<typeof arpFilter>, frame: Buffer) => runFilter(prog, frame) > 0;

describe("arpFilter", () => {
  const owned = ["198.51.100.10", "198.51.100.200", "203.0.113.7"];
  const prog = arpFilter(owned);

  it.each([
    ["request for an owned IP", arpRequest(PEER, "203.0.113.1", "198.51.100.10"), true],
    ["request for another owned IP", arpRequest(PEER, "203.0.113.1", "203.0.113.7"), true],
    ["request for an IP not owned", arpRequest(PEER, "203.0.113.1", "198.51.100.11"), false],
    [
      "request for a neighbour of an owned IP",
      arpRequest(PEER, "203.0.113.1", "198.51.100.9"),
      false,
    ],
    ["probe for an owned IP (sender 0.0.0.0)", arpProbe(PEER, "198.51.100.200"), true],
    ["probe for an IP not owned", arpProbe(PEER, "198.51.100.201"), false],
    ["another host claims an owned IP", gratuitousArpRequest(PEER, "198.51.100.10"), true],
    ["gratuitous ARP for an IP not owned", gratuitousArpRequest(PEER, "198.51.100.12"), false],
    [
      "reply from an owned IP's other user",
      arpReply(PEER, "203.0.113.7", MAC, "203.0.113.1"),
      true,
    ],
    ["request from an owned IP as sender", arpRequest(PEER, "198.51.100.10", "203.0.113.99"), true],
    ["truncated request", arpRequest(PEER, "203.0.113.1", "198.51.100.10").subarray(0, 40), false],
    [
      "NDP frame",
      neighborSolicitation({ srcMac: PEER, srcIp: "2001:db8::1", target: "2001:db8::2" }),
      false,
    ],
  ])("%s", (_name, frame, expected) => {
    expect(passes(prog, frame)).toBe(expected);
  });

  it("drops everything when nothing is watched", () => {
    expect(arpFilter([])).toEqual([{ code: 6, jt: 0, jf: 0, k: 0 }]);
    expect(passes(arpFilter([]), arpRequest(PEER, "203.0.113.1", "198.51.100.10"))).toBe(false);
  });

  it("ignores IPv6 entries and duplicates, normalises spellings", () => {
    expect(arpFilter(["198.51.100.10", "2001:db8::1", "198.51.100.10"])).toEqual(
      arpFilter(["198.51.100.10"]),
    );
  });

  it("rejects something that is not an IP", () => {
    expect(() => arpFilter(["198.51.100.300"])).toThrow(/not an IP address/);
  });

  it("compares unsigned: addresses above 128.0.0.0 sort after lower ones", () => {
    const p = arpFilter(["1.2.3.4", "203.0.113.250", "255.255.255.254"]);
    expect(passes(p, arpRequest(PEER, "0.0.0.0", "255.255.255.254"))).toBe(true);
    expect(passes(p, arpRequest(PEER, "0.0.0.0", "255.255.255.255"))).toBe(false);
    expect(passes(p, arpRequest(PEER, "0.0.0.0", "1.2.3.4"))).toBe(true);
  });

  it("stays small: a lookup costs about log2(n) + 8 instructions", () => {
    const many = Array.from({ length: 1000 }, (_, i) => `198.51.${100 + (i >> 8)}.${i & 255}`);
    const p = arpFilter(many);
    expect(p.length).toBeLessThan(BPF_MAX_INSTRUCTIONS);
    // Count the instructions run for a miss.
    let executed = 0;
    const counting = new Proxy(p, {
      get(target, prop, recv) {
        if (typeof prop === "string" && /^\d+$/.test(prop)) executed++;
        return Reflect.get(target, prop, recv);
      },
    });
    expect(runFilter(counting, arpRequest(PEER, "203.0.113.1", "203.0.113.2"))).toBe(0);
    expect(executed).toBeLessThan(2 * (10 + 8 + 12) + 5);
  });

  it("answers membership exactly, for any set (property, through long jumps too)", () => {
    const ipArb = fc
      .tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
      .map((o) => o.join("."));
    fc.assert(
      fc.property(fc.uniqueArray(ipArb, { maxLength: 700 }), ipArb, (set, probe) => {
        const p = arpFilter(set);
        const has = new Set(set).has(probe);
        expect(passes(p, arpRequest(PEER, "0.0.0.0", probe))).toBe(has);
        for (const ip of set.slice(0, 20)) {
          expect(passes(p, arpRequest(PEER, "0.0.0.0", ip))).toBe(true);
        }
        for (const ins of p) {
          expect(ins.jt).toBeLessThanOrEqual(255);
          expect(ins.jf).toBeLessThanOrEqual(255);
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe("ndpFilter", () => {
  const owned = ["2001:db8::10", "2001:db8:1::10", "2001:db8::ffff:1"];
  const prog = ndpFilter(owned);
  const ns = (target: string, srcIp = "2001:db8::99") =>
    neighborSolicitation({ srcMac: PEER, srcIp, target });

  it.each([
    ["solicitation for an owned IP", ns("2001:db8::10"), true],
    ["same last word, other prefix, also owned", ns("2001:db8:1::10"), true],
    ["same last word, not owned", ns("2001:db8:2::10"), false],
    ["solicitation for an IP not owned", ns("2001:db8::11"), false],
    ["DAD probe for an owned IP", ns("2001:db8::ffff:1", "::"), true],
    [
      "another host advertises an owned IP",
      unsolicitedNeighborAdvertisement(PEER, "2001:db8::10"),
      true,
    ],
    [
      "solicited advertisement for an IP not owned",
      neighborAdvertisement({
        srcMac: PEER,
        srcIp: "2001:db8::12",
        target: "2001:db8::12",
        dstIp: "2001:db8::1",
        dstMac: MAC,
      }),
      false,
    ],
    ["ARP frame", arpRequest(PEER, "203.0.113.1", "198.51.100.10"), false],
  ])("%s", (_name, frame, expected) => {
    expect(passes(prog, frame)).toBe(expected);
  });

  it("drops ICMPv6 that is not neighbour discovery, and non-ICMPv6", () => {
    const echo = Buffer.from(ns("2001:db8::10"));
    echo[54] = 128;
    const udp = Buffer.from(ns("2001:db8::10"));
    udp[20] = 17;
    expect(passes(prog, echo)).toBe(false);
    expect(passes(prog, udp)).toBe(false);
  });

  it("answers membership exactly, for any set (property)", () => {
    const ipArb = fc
      .tuple(fc.nat(3), fc.nat(3), fc.nat(0xffff))
      .map(([a, b, c]) => `2001:db8:${a}::${b}:${c.toString(16)}`);
    fc.assert(
      fc.property(fc.uniqueArray(ipArb, { maxLength: 200 }), ipArb, (set, probe) => {
        const p = ndpFilter(set);
        const has = new Set(set).has(probe);
        expect(passes(p, ns(probe))).toBe(has);
        for (const ip of set.slice(0, 10)) expect(passes(p, ns(ip))).toBe(true);
      }),
      { numRuns: 60 },
    );
  });
});

describe("encodeFilter", () => {
  it("lays out struct sock_filter in host order", () => {
    const buf = encodeFilter([{ code: 0x15, jt: 1, jf: 2, k: 0x0806 }]);
    expect([...buf]).toEqual([0x15, 0, 1, 2, 0x06, 0x08, 0, 0]);
    const be = encodeFilter([{ code: 0x15, jt: 1, jf: 2, k: 0x0806 }], false);
    expect([...be]).toEqual([0, 0x15, 1, 2, 0, 0, 0x08, 0x06]);
  });

  it("refuses empty and oversized programs", () => {
    expect(() => encodeFilter([])).toThrow(RangeError);
    const huge = socketFilter("arp", []).concat(
      new Array(BPF_MAX_INSTRUCTIONS).fill(arpFilter([])[0]),
    );
    expect(() => encodeFilter(huge)).toThrow(/1\.\.4096/);
  });
});
