import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BPF_MAX_INSTRUCTIONS, encodeFilter, runFilter } from "../layer2/bpf-filter.ts";
import { parseIPv4, parseIPv6 } from "../layer2/codec.ts";
import { encodeHeartbeat } from "./heartbeat.ts";
import { heartbeatFilter } from "./heartbeat-filter.ts";

const INCARNATION = 1_765_000_000_123 * 1000 + 417;

/** A heartbeat datagram from host:port as a UDP socket's filter sees it (and its IP packet). */
function datagram(host: string, port: number, incarnation = INCARNATION) {
  const beat = encodeHeartbeat(
    { node: "node-b", incarnation, seq: 7, sentAtMs: 1_765_000_000_200, leaving: false },
    "k",
  );
  const udp = Buffer.alloc(8 + beat.length);
  udp.writeUInt16BE(port, 0);
  udp.writeUInt16BE(7947, 2);
  udp.writeUInt16BE(udp.length, 4);
  Buffer.from(beat).copy(udp, 8);
  const v4 = parseIPv4(host);
  let ip: Buffer;
  if (v4) {
    ip = Buffer.alloc(20);
    ip[0] = 0x45;
    ip[9] = 17;
    v4.copy(ip, 12);
  } else {
    ip = Buffer.alloc(40);
    ip[0] = 0x60;
    ip[6] = 17;
    parseIPv6(host.toLowerCase())!.copy(ip, 8);
  }
  return { udp, ip: Buffer.concat([ip, udp]) };
}

const passes = (
  prog: ReturnType<typeof heartbeatFilter>,
  host: string,
  port = 7947,
  inc?: number,
) => {
  const d = datagram(host, port, inc);
  return runFilter(prog, d.udp, d.ip) > 0;
};

describe("heartbeatFilter", () => {
  const v4 = heartbeatFilter(4, [
    { host: "198.51.100.11", port: 7947 },
    { host: "198.51.100.12", port: 7947 },
    { host: "198.51.100.13", port: 8000 },
    { host: "2001:db8::1", port: 7947 }, // the other family: not this socket's
    { host: "198.51.100.14", port: 7947, incarnation: INCARNATION },
    { host: "198.51.100.15", port: 7947, incarnation: null },
  ]);

  it.each([
    ["a peer's published source", "198.51.100.11", 7947, undefined, true],
    ["another peer's", "198.51.100.12", 7947, undefined, true],
    ["a peer on its own port", "198.51.100.13", 8000, undefined, true],
    ["a peer's address from another port", "198.51.100.11", 8000, undefined, false],
    ["a port a peer uses, from an address none published", "198.51.100.99", 7947, undefined, false],
    ["a LAN host next to a peer", "198.51.100.10", 7947, undefined, false],
    ["a muted peer's beat of its current run", "198.51.100.14", 7947, INCARNATION, true],
    ["a forgery from a muted peer's source", "198.51.100.14", 7947, INCARNATION + 1, false],
    [
      "a forgery that guessed the high word only",
      "198.51.100.14",
      7947,
      INCARNATION + 2 ** 32,
      false,
    ],
    ["a muted peer never heard: nothing", "198.51.100.15", 7947, INCARNATION, false],
  ])("%s: passes %s", (_name, host, port, inc, want) => {
    expect(passes(v4, host, port, inc)).toBe(want);
  });

  it("IPv6: whole addresses compared, per shared prefix", () => {
    const v6 = heartbeatFilter(6, [
      { host: "2001:db8:1::11", port: 7947 },
      { host: "2001:db8:1::12", port: 7947 },
      { host: "2001:db8:2::11", port: 7947 },
      { host: "2001:DB8:3:0::0:13", port: 7947, incarnation: INCARNATION },
      { host: "198.51.100.11", port: 7947 },
    ]);
    expect(passes(v6, "2001:db8:1::11")).toBe(true);
    expect(passes(v6, "2001:db8:1::12")).toBe(true);
    expect(passes(v6, "2001:db8:2::11")).toBe(true);
    expect(passes(v6, "2001:db8:2::12")).toBe(false); // a last word another prefix has
    expect(passes(v6, "2001:db8:4::11")).toBe(false);
    expect(passes(v6, "2001:db9:1::11")).toBe(false);
    expect(passes(v6, "2001:db8:1::11", 7948)).toBe(false);
    expect(passes(v6, "2001:DB8:3::13")).toBe(true);
    expect(passes(v6, "2001:db8:3::13", 7947, INCARNATION - 1)).toBe(false);
    // An IPv4 peer cannot reach an IPv6 socket bound to one address.
    expect(() => heartbeatFilter(6, [{ host: "::ffff:198.51.100.11", port: 7947 }])).not.toThrow();
  });

  it("no sources: nothing passes; the other family's: nothing passes", () => {
    expect(passes(heartbeatFilter(4, []), "198.51.100.11")).toBe(false);
    expect(passes(heartbeatFilter(6, [{ host: "198.51.100.11", port: 7947 }]), "2001:db8::1")).toBe(
      false,
    );
  });

  it("a source both open and muted (two nodes publish it) stays open", () => {
    const p = heartbeatFilter(4, [
      { host: "198.51.100.11", port: 7947, incarnation: INCARNATION },
      { host: "198.51.100.11", port: 7947 },
    ]);
    expect(passes(p, "198.51.100.11", 7947, 5)).toBe(true);
  });

  it("a datagram too short to hold an incarnation is dropped from a muted source", () => {
    const p = heartbeatFilter(4, [{ host: "198.51.100.14", port: 7947, incarnation: INCARNATION }]);
    const d = datagram("198.51.100.14", 7947);
    expect(runFilter(p, d.udp.subarray(0, 12), d.ip.subarray(0, 32))).toBe(0);
  });

  it("1,000 peers on one LAN fit the kernel's limit in either family", () => {
    const n = 1000;
    const v4hosts = Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.1`);
    const v6hosts = Array.from({ length: n }, (_, i) => `2001:db8:0:1::${(i + 1).toString(16)}`);
    const p4 = heartbeatFilter(
      4,
      v4hosts.map((host) => ({ host, port: 7947 })),
    );
    const p6 = heartbeatFilter(
      6,
      v6hosts.map((host, i) => ({ host, port: 7947, ...(i % 50 === 0 ? { incarnation: 5 } : {}) })),
    );
    expect(p4.length).toBeLessThan(1600);
    expect(p6.length).toBeLessThan(1700);
    encodeFilter(p4);
    encodeFilter(p6);
    for (const h of v4hosts) expect(passes(p4, h)).toBe(true);
    for (const [i, h] of v6hosts.entries())
      expect(passes(p6, h, 7947, i % 50 === 0 ? 5 : 9)).toBe(true);
    expect(passes(p6, "2001:db8:0:1::3e9")).toBe(false);
  });

  it("refuses a program over the kernel's limit (peers on as many prefixes and ports)", () => {
    const hosts = Array.from({ length: 600 }, (_, i) => ({
      host: `2001:db8:${i.toString(16)}::1`,
      port: 7000 + i,
    }));
    expect(() => heartbeatFilter(6, hosts)).toThrow(
      new RegExp(`needs \\d+ instructions, the kernel takes ${BPF_MAX_INSTRUCTIONS}`),
    );
  });

  it("passes exactly the published sources (property)", () => {
    const addr = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 1, max: 40 }));
    fc.assert(
      fc.property(
        fc.uniqueArray(addr, { selector: ([a, b]) => `${a}.${b}`, maxLength: 60 }),
        fc.array(addr, { maxLength: 20 }),
        fc.integer({ min: 7946, max: 7948 }),
        (published, probes, port) => {
          const host = ([a, b]: [number, number]) => `198.51.${100 + a}.${b}`;
          const prog = heartbeatFilter(
            4,
            published.map((p) => ({ host: host(p), port: 7947 })),
          );
          const set = new Set(published.map(host));
          for (const p of [...probes, ...published])
            expect(passes(prog, host(p), port)).toBe(port === 7947 && set.has(host(p)));
        },
      ),
    );
  });
});
