import { BlockList } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ARP_REPLY,
  ARP_REQUEST,
  arpProbe,
  arpReply,
  arpRequest,
  decodeArp,
  decodeArpFrame,
  decodeEthernet,
  decodeNdpFrame,
  encodeArpFrame,
  formatIPv6,
  formatMac,
  gratuitousArpReply,
  gratuitousArpRequest,
  icmpv6Checksum,
  ipv6MulticastMac,
  neighborAdvertisement,
  neighborSolicitation,
  normalizeIp,
  parseIPv4,
  parseIPv6,
  parseMac,
  solicitedNodeMulticast,
  unsolicitedNeighborAdvertisement,
} from "./codec.ts";

const MAC_A = "02:00:00:00:00:0a";
const MAC_B = "02:00:00:00:00:0b";

describe("address helpers", () => {
  it.each([
    ["02:00:00:00:00:0a", "02:00:00:00:00:0a"],
    ["AA-BB-CC-DD-EE-FF", "aa:bb:cc:dd:ee:ff"],
    ["a:b:c:d:e:f", "0a:0b:0c:0d:0e:0f"],
  ])("parses MAC %s", (text, canonical) => {
    const b = parseMac(text);
    expect(b).toBeDefined();
    expect(formatMac(b!)).toBe(canonical);
  });

  it.each([
    "",
    "02:00:00:00:00",
    "02:00:00:00:00:0a:0b",
    "gg:00:00:00:00:00",
    "020:00:00:00:00:00",
  ])("rejects MAC %j", (text) => expect(parseMac(text)).toBeUndefined());

  it.each([
    ["198.51.100.7", "198.51.100.7"],
    ["2001:db8::1", "2001:db8::1"],
    ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
    ["2001:db8:0:0:0:0:0:1", "2001:db8::1"],
    ["::", "::"],
    ["::1", "::1"],
    ["fe80::", "fe80::"],
    ["2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6"],
    ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
    ["2001:db8::1:0", "2001:db8::1:0"],
  ])("normalizes IP %s", (text, canonical) => expect(normalizeIp(text)).toBe(canonical));

  it.each([
    "",
    "::ffff:192.0.2.1", // IPv4-mapped: the API's grammar (src/net) refuses it, so no IP is one
    "198.51.100",
    "198.51.100.256",
    "198.51.100.07",
    "1.2.3.4.5",
    "2001:db8:::1",
    "2001:db8::1::2",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7::8",
    "12345::",
    "::g",
    "2001:db8::1%eth0",
  ])("rejects IP %j", (text) => expect(normalizeIp(text)).toBeUndefined());

  it("computes the solicited-node multicast address and its MAC", () => {
    expect(solicitedNodeMulticast("2001:db8::12:3456")).toBe("ff02::1:ff12:3456");
    expect(ipv6MulticastMac("ff02::1:ff12:3456")).toBe("33:33:ff:12:34:56");
    expect(ipv6MulticastMac("ff02::1")).toBe("33:33:00:00:00:01");
  });
});

describe("ARP", () => {
  it("encodes a request byte for byte", () => {
    const frame = arpRequest(MAC_A, "192.0.2.1", "198.51.100.7");
    expect(frame.length).toBe(60);
    expect(frame.subarray(0, 42).toString("hex")).toBe(
      [
        "ffffffffffff", // dst
        "02000000000a", // src
        "0806", // ARP
        "0001 0800 06 04 0001".replaceAll(" ", ""),
        "02000000000a c0000201".replaceAll(" ", ""),
        "000000000000 c6336407".replaceAll(" ", ""),
      ].join(""),
    );
    expect(frame.subarray(42).every((b) => b === 0)).toBe(true);
  });

  it.each([
    [
      "request",
      arpRequest(MAC_A, "192.0.2.1", "198.51.100.7"),
      "ff:ff:ff:ff:ff:ff",
      {
        op: ARP_REQUEST,
        senderMac: MAC_A,
        senderIp: "192.0.2.1",
        targetMac: "00:00:00:00:00:00",
        targetIp: "198.51.100.7",
      },
    ],
    [
      "reply",
      arpReply(MAC_B, "198.51.100.7", MAC_A, "192.0.2.1"),
      MAC_A,
      {
        op: ARP_REPLY,
        senderMac: MAC_B,
        senderIp: "198.51.100.7",
        targetMac: MAC_A,
        targetIp: "192.0.2.1",
      },
    ],
    [
      "gratuitous request",
      gratuitousArpRequest(MAC_B, "198.51.100.7"),
      "ff:ff:ff:ff:ff:ff",
      {
        op: ARP_REQUEST,
        senderMac: MAC_B,
        senderIp: "198.51.100.7",
        targetMac: "00:00:00:00:00:00",
        targetIp: "198.51.100.7",
      },
    ],
    [
      "gratuitous reply",
      gratuitousArpReply(MAC_B, "198.51.100.7"),
      "ff:ff:ff:ff:ff:ff",
      {
        op: ARP_REPLY,
        senderMac: MAC_B,
        senderIp: "198.51.100.7",
        targetMac: MAC_B,
        targetIp: "198.51.100.7",
      },
    ],
    [
      "probe",
      arpProbe(MAC_B, "198.51.100.7"),
      "ff:ff:ff:ff:ff:ff",
      {
        op: ARP_REQUEST,
        senderMac: MAC_B,
        senderIp: "0.0.0.0",
        targetMac: "00:00:00:00:00:00",
        targetIp: "198.51.100.7",
      },
    ],
  ])("round-trips a %s", (_name, frame, dst, arp) => {
    const d = decodeArpFrame(frame);
    expect(d).toEqual({ eth: { dst, src: arp.senderMac, etherType: 0x0806 }, arp });
  });

  const valid = arpRequest(MAC_A, "192.0.2.1", "198.51.100.7");
  const mutate = (at: number, value: number) => {
    const f = Buffer.from(valid);
    f[at] = value;
    return f;
  };
  it.each([
    ["empty", Buffer.alloc(0)],
    ["only an Ethernet header", valid.subarray(0, 14)],
    ["truncated ARP body", valid.subarray(0, 41)],
    ["not ARP", mutate(13, 0x00)],
    ["802.3 length field", mutate(12, 0x00)],
    ["hardware type 6", mutate(15, 6)],
    ["protocol IPv6", mutate(16, 0x86)],
    ["hardware length 8", mutate(18, 8)],
    ["protocol length 16", mutate(19, 16)],
    ["opcode 3 (RARP)", mutate(21, 3)],
    ["opcode 0", mutate(21, 0)],
  ])("rejects %s", (_name, frame) => expect(decodeArpFrame(frame)).toBeUndefined());

  it("accepts a frame without padding (as packet sockets may deliver)", () => {
    expect(decodeArpFrame(valid.subarray(0, 42))?.arp.targetIp).toBe("198.51.100.7");
  });

  it("throws on invalid addresses when encoding", () => {
    expect(() => arpRequest("nope", "192.0.2.1", "198.51.100.7")).toThrow(TypeError);
    expect(() => arpRequest(MAC_A, "192.0.2.300", "198.51.100.7")).toThrow(TypeError);
    expect(() => arpRequest(MAC_A, "192.0.2.1", "2001:db8::1")).toThrow(TypeError);
  });
});

describe("IPv6 neighbour discovery", () => {
  it("builds a neighbour solicitation to the solicited-node group", () => {
    const f = neighborSolicitation({ srcMac: MAC_A, srcIp: "2001:db8::a", target: "2001:db8::7" });
    expect(f.subarray(0, 6).toString("hex")).toBe("3333ff000007");
    expect(f.readUInt16BE(12)).toBe(0x86dd);
    expect(f[14 + 7]).toBe(255); // hop limit
    expect(decodeNdpFrame(f)).toEqual({
      eth: { dst: "33:33:ff:00:00:07", src: MAC_A, etherType: 0x86dd },
      ip: { src: "2001:db8::a", dst: "ff02::1:ff00:7", hopLimit: 255 },
      message: { type: "solicitation", target: "2001:db8::7", sourceMac: MAC_A },
    });
  });

  it("builds a DAD probe without a source link-layer option", () => {
    const f = neighborSolicitation({ srcMac: MAC_A, srcIp: "::", target: "2001:db8::7" });
    const d = decodeNdpFrame(f);
    expect(d?.ip.src).toBe("::");
    expect(d?.message).toEqual({ type: "solicitation", target: "2001:db8::7" });
  });

  it("builds an unsolicited override advertisement to all-nodes", () => {
    const f = unsolicitedNeighborAdvertisement(MAC_B, "2001:db8::7");
    expect(decodeNdpFrame(f)).toEqual({
      eth: { dst: "33:33:00:00:00:01", src: MAC_B, etherType: 0x86dd },
      ip: { src: "2001:db8::7", dst: "ff02::1", hopLimit: 255 },
      message: {
        type: "advertisement",
        target: "2001:db8::7",
        router: false,
        solicited: false,
        override: true,
        targetMac: MAC_B,
      },
    });
  });

  it("checksums to zero over pseudo-header and message (RFC 4443 2.3)", () => {
    const f = neighborAdvertisement({
      srcMac: MAC_B,
      srcIp: "2001:db8::7",
      target: "2001:db8::7",
      dstIp: "2001:db8::a",
      dstMac: MAC_A,
      solicited: true,
      override: true,
    });
    const ip = f.subarray(14);
    const len = ip.readUInt16BE(4);
    expect(icmpv6Checksum(ip.subarray(8, 24), ip.subarray(24, 40), ip.subarray(40, 40 + len))).toBe(
      0,
    );
  });

  const ns = neighborSolicitation({ srcMac: MAC_A, srcIp: "2001:db8::a", target: "2001:db8::7" });
  const mutate = (at: number, value: number) => {
    const f = Buffer.from(ns);
    f[at] = value;
    return f;
  };
  const dadWithOption = (() => {
    // A DAD solicitation must not carry a source link-layer option; build one that does.
    const f = Buffer.from(ns);
    Buffer.alloc(16).copy(f, 14 + 8);
    const ip = f.subarray(14);
    ip.writeUInt16BE(0, 42);
    ip.writeUInt16BE(
      icmpv6Checksum(ip.subarray(8, 24), ip.subarray(24, 40), ip.subarray(40, 72)),
      42,
    );
    return f;
  })();
  it.each([
    ["truncated", ns.subarray(0, 70)],
    ["bad checksum", mutate(14 + 40 + 10, 0x99)],
    ["hop limit 64", mutate(14 + 7, 64)],
    ["IPv4 version", mutate(14, 0x45)],
    ["UDP next header", mutate(14 + 6, 17)],
    ["ICMPv6 echo request", mutate(14 + 40, 128)],
    ["non-zero code", mutate(14 + 41, 1)],
    ["multicast target", mutate(14 + 48, 0xff)],
    ["option length zero", mutate(14 + 40 + 25, 0)],
    ["payload length beyond frame", mutate(14 + 4, 0x10)],
    ["DAD probe with source option", dadWithOption],
  ])("rejects %s", (_name, frame) => expect(decodeNdpFrame(frame)).toBeUndefined());
});

// ---- properties ---------------------------------------------------------------------------

const macArb = fc.uint8Array({ minLength: 6, maxLength: 6 }).map((b) => formatMac(b));
const v4Arb = fc.ipV4();
const mapped = new BlockList();
mapped.addSubnet("::ffff:0:0", 96, "ipv6");
const v6Arb = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => formatIPv6(b));
const unicastV6Arb = v6Arb.filter((ip) => !ip.startsWith("ff"));

describe("properties", () => {
  it("decoders never throw on arbitrary bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        decodeEthernet(bytes);
        decodeArp(bytes);
        decodeArpFrame(bytes);
        decodeNdpFrame(bytes);
      }),
      { numRuns: 5000 },
    );
  });

  it("decoders never throw on mutated valid frames", () => {
    const seeds = [
      arpRequest(MAC_A, "192.0.2.1", "198.51.100.7"),
      neighborSolicitation({ srcMac: MAC_A, srcIp: "2001:db8::a", target: "2001:db8::7" }),
      unsolicitedNeighborAdvertisement(MAC_B, "2001:db8::7"),
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...seeds),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }),
        fc.nat(),
        (seed, edits, cut) => {
          const f = Buffer.from(seed);
          for (const [at, v] of edits) f[at % f.length] = v;
          const g = f.subarray(0, cut % (f.length + 1));
          decodeArpFrame(g);
          decodeNdpFrame(g);
        },
      ),
    );
  });

  it("IPv6 text form round-trips through bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        expect(parseIPv6(formatIPv6(b))?.equals(Buffer.from(b))).toBe(true);
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        // IPv4-mapped addresses are refused like the API refuses them (Node's parser judges).
        expect(parseIPv6(ip) !== undefined).toBe(!mapped.check(ip, "ipv6"));
      }),
    );
    fc.assert(
      fc.property(v4Arb, (ip) => {
        expect(parseIPv4(ip)?.join(".")).toBe(ip);
      }),
    );
  });

  it("ARP encode -> decode round-trips", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(ARP_REQUEST, ARP_REPLY),
        macArb,
        v4Arb,
        macArb,
        v4Arb,
        macArb,
        (op, senderMac, senderIp, targetMac, targetIp, dst) => {
          const arp = { op, senderMac, senderIp, targetMac, targetIp };
          expect(decodeArpFrame(encodeArpFrame(arp, dst))).toEqual({
            eth: { dst, src: senderMac, etherType: 0x0806 },
            arp,
          });
        },
      ),
    );
  });

  it("neighbour solicitation and advertisement encode -> decode round-trips", () => {
    fc.assert(
      fc.property(macArb, unicastV6Arb, unicastV6Arb, (mac, src, target) => {
        const f = neighborSolicitation({ srcMac: mac, srcIp: src, target });
        const d = decodeNdpFrame(f);
        expect(d?.ip.src).toBe(src);
        expect(d?.ip.dst).toBe(solicitedNodeMulticast(target));
        expect(d?.eth.dst).toBe(ipv6MulticastMac(solicitedNodeMulticast(target)));
        expect(d?.message.target).toBe(target);
        if (src !== "::") expect(d?.message).toMatchObject({ sourceMac: mac });
      }),
    );
    fc.assert(
      fc.property(
        macArb,
        macArb,
        unicastV6Arb,
        unicastV6Arb,
        fc.boolean(),
        fc.boolean(),
        fc.boolean(),
        (srcMac, dstMac, srcIp, dstIp, router, solicited, override) => {
          const f = neighborAdvertisement({
            srcMac,
            dstMac,
            srcIp,
            dstIp,
            target: srcIp,
            router,
            solicited,
            override,
          });
          expect(decodeNdpFrame(f)).toEqual({
            eth: { dst: dstMac, src: srcMac, etherType: 0x86dd },
            ip: { src: srcIp, dst: dstIp, hopLimit: 255 },
            message: {
              type: "advertisement",
              target: srcIp,
              router,
              solicited,
              override,
              targetMac: srcMac,
            },
          });
        },
      ),
    );
  });
});
