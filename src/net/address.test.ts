import { BlockList } from "node:net";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  canonicalIP,
  formatIP,
  formatIPBytes,
  ipFromBytes,
  ipToBytes,
  isUnspecified,
  parseIP,
  specialRanges,
} from "./address.ts";

describe("parseIP / canonical text", () => {
  it.each([
    ["192.0.2.1", "192.0.2.1"],
    ["0.0.0.0", "0.0.0.0"],
    ["255.255.255.255", "255.255.255.255"],
    ["2001:DB8::1", "2001:db8::1"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // first of equal runs
    ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // single zero group stays
    ["2001:db8::", "2001:db8::"],
    ["::", "::"],
    ["::1", "::1"],
    ["1::", "1::"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
    ["::1.2.3.4", "::102:304"],
    ["64:ff9b::192.0.2.33", "64:ff9b::c000:221"],
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"],
    ["2001:db8:0:0:0:0:2:1", "2001:db8::2:1"],
    ["2001:db8::aaaa:0:0:1", "2001:db8::aaaa:0:0:1"],
  ])("%s -> %s", (input, out) => {
    expect(canonicalIP(input)).toBe(out);
  });

  it("gives family and value", () => {
    expect(parseIP("198.51.100.7")).toEqual({ family: "IPv4", value: 0xc6336407n });
    expect(parseIP("2001:db8::1")).toEqual({ family: "IPv6", value: (0x20010db8n << 96n) | 1n });
    expect(parseIP("::")).toEqual({ family: "IPv6", value: 0n });
    expect(parseIP("::1.2.3.4")).toEqual({ family: "IPv6", value: 0x01020304n });
  });

  // What CEL's isIP() refuses (Go netip, plus zones and IPv4-mapped addresses).
  it.each([
    "",
    " 192.0.2.1", // no surrounding spaces
    "192.0.2.1 ",
    "192.0.2",
    "192.0.2.256",
    "192.0.2.01",
    "01.2.3.4",
    "192.0.2.1.1",
    "192.0.2.-1",
    "192.0.2.+1",
    "a.b.c.d",
    "1.2.3.4%eth0",
    "2001:db8:::1",
    "2001:db8::1::2",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    "1:2:3:4:5:6:7:8::", // "::" must stand for at least one group
    "1:2:3:4:5:6::1.2.3.4",
    "1:2:3:4:5:1.2.3.4",
    "12345::",
    ":1::",
    "::1:",
    ":::",
    "1:::2",
    "g::1",
    "1.2.3.4::",
    "::1.2.3.4:5",
    "::1.2.3",
    "::a.2.3.4",
    "fe80::1%eth0", // zones
    "fe80::1%",
    "::ffff:192.0.2.1", // IPv4-mapped, in any spelling
    "::ffff:c000:0201",
    "0:0:0:0:0:ffff:192.0.2.1",
    "::ffff:192.0.2.256",
    "１.2.3.4", // non-ASCII digits
  ])("rejects %j", (input) => {
    expect(parseIP(input)).toBeUndefined();
  });

  it("round-trips every IPv6 value through its canonical text", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (value) => {
        const ip = { family: "IPv6" as const, value };
        const text = formatIP(ip);
        if (value >> 32n === 0xffffn) {
          // Printed like Go's netip, refused like CEL.
          expect(text).toMatch(/^::ffff:\d+\.\d+\.\d+\.\d+$/);
          expect(parseIP(text)).toBeUndefined();
          return;
        }
        expect(parseIP(text)).toEqual(ip);
        // The full, uncompressed form parses to the same value.
        const full = Array.from({ length: 8 }, (_, i) =>
          ((value >> BigInt(112 - 16 * i)) & 0xffffn).toString(16),
        ).join(":");
        expect(canonicalIP(full)).toBe(text);
      }),
    );
  });

  it("accepts what fast-check's generators call addresses (IPv4-mapped aside)", () => {
    // Node's own parser as an independent judge of which texts are IPv4-mapped.
    const mapped = new BlockList();
    mapped.addSubnet("::ffff:0:0", 96, "ipv6");
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        expect(canonicalIP(ip)).toBe(ip);
      }),
    );
    fc.assert(
      fc.property(fc.ipV6(), (ip) => {
        const parsed = parseIP(ip);
        expect(parsed === undefined).toBe(mapped.check(ip, "ipv6"));
        if (parsed !== undefined) expect(parseIP(formatIP(parsed))).toEqual(parsed);
      }),
    );
  });
});

describe("bytes", () => {
  it("formats bytes as the number form does and round-trips", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 20, maxLength: 20 }), fc.nat(4), (bytes, off) => {
        for (const family of ["IPv4", "IPv6"] as const) {
          const ip = ipFromBytes(bytes, off, family);
          expect(formatIPBytes(bytes, off, family)).toBe(formatIP(ip));
          const back = ipToBytes(ip);
          expect([...back]).toEqual([...bytes.subarray(off, off + back.length)]);
        }
      }),
    );
  });
});

describe("special addresses", () => {
  it("knows the unspecified addresses", () => {
    expect(isUnspecified(parseIP("0.0.0.0")!)).toBe(true);
    expect(isUnspecified(parseIP("::")!)).toBe(true);
    expect(isUnspecified(parseIP("0.0.0.1")!)).toBe(false);
  });

  it("describes loopback and multicast blocks", () => {
    const inside = (name: "loopback" | "multicast", text: string) => {
      const ip = parseIP(text)!;
      return specialRanges[name].some(
        (r) => r.family === ip.family && r.first <= ip.value && ip.value <= r.last,
      );
    };
    expect(inside("loopback", "127.0.0.1")).toBe(true);
    expect(inside("loopback", "127.255.255.255")).toBe(true);
    expect(inside("loopback", "128.0.0.0")).toBe(false);
    expect(inside("loopback", "::1")).toBe(true);
    expect(inside("loopback", "::2")).toBe(false);
    expect(inside("multicast", "224.0.0.1")).toBe(true);
    expect(inside("multicast", "239.255.255.255")).toBe(true);
    expect(inside("multicast", "240.0.0.0")).toBe(false);
    expect(inside("multicast", "ff02::1")).toBe(true);
    expect(inside("multicast", "fe80::1")).toBe(false);
  });
});
