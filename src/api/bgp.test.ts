import { describe, expect, it } from "vitest";
import { parseBGPAdvertisement, parseCommunity } from "./bgpadvertisement.ts";
import { durationSeconds, parseBGPPeer } from "./bgppeer.ts";
import { bgpSessionStateName } from "./bgpsessionstate.ts";
import { dnsSubdomainPattern } from "./common.ts";

describe("durationSeconds", () => {
  it.each([
    ["90s", 90],
    ["0s", 0],
    ["3m", 180],
    ["1m30s", 90],
    ["1h", 3600],
    ["1h2m3s", 3723],
    ["99h9999m99999s", 99 * 3600 + 9999 * 60 + 99999],
  ])("%s is %i s", (text, secs) => expect(durationSeconds(text)).toBe(secs));

  it.each(["", "90", "1.5s", "3000ms", "1s1m", "100h", "-3s", " 3s", "3S"])("refuses %j", (text) =>
    expect(durationSeconds(text)).toBeUndefined(),
  );
});

describe("parseCommunity", () => {
  it.each([
    ["65535:666", { kind: "standard", value: 0xffff029a }],
    ["0:0", { kind: "standard", value: 0 }],
    ["64512:100", { kind: "standard", value: 64512 * 65536 + 100 }],
    ["no-export", { kind: "standard", value: 0xffffff01 }],
    ["no-advertise", { kind: "standard", value: 0xffffff02 }],
    ["blackhole", { kind: "standard", value: 0xffff029a }],
    ["graceful-shutdown", { kind: "standard", value: 0xffff0000 }],
    ["large:1:2:3", { kind: "large", value: [1, 2, 3] }],
    ["large:4294967295:0:4294967295", { kind: "large", value: [4294967295, 0, 4294967295] }],
  ])("%s", (text, want) => expect(parseCommunity(text)).toEqual(want));

  it.each([
    "65536:1",
    "1:65536",
    "1",
    "large:1:2",
    "large:4294967296:1:1",
    "toString",
    "NO-EXPORT",
  ])("refuses %j", (text) => expect(parseCommunity(text)).toBeUndefined());
});

describe("parse with defaults", () => {
  it("fills peerPort of a BGPPeer and the aggregation lengths of a BGPAdvertisement", () => {
    const p = parseBGPPeer({
      apiVersion: "ironlb.dev/v1beta1",
      kind: "BGPPeer",
      metadata: { name: "tor" },
      spec: { myASN: 64512, peerASN: 64500, peerAddress: "192.0.2.1" },
    });
    expect(p.ok && p.value.spec.peerPort).toBe(179);
    const a = parseBGPAdvertisement({
      apiVersion: "ironlb.dev/v1beta1",
      kind: "BGPAdvertisement",
      metadata: { name: "all" },
    });
    expect(a.ok && a.value.spec).toEqual({ aggregationLength: 32, aggregationLengthV6: 128 });
  });
});

describe("bgpSessionStateName", () => {
  it("reads as node and peer, with a tag that keeps ambiguous pairs apart", () => {
    const a = bgpSessionStateName("worker-1", "tor-a");
    expect(a).toMatch(/^worker-1-tor-a-[0-9a-f]{8}$/);
    expect(bgpSessionStateName("a-b", "c")).not.toBe(bgpSessionStateName("a", "b-c"));
    expect(bgpSessionStateName("worker-1", "tor-a")).toBe(a);
  });

  it("stays a DNS subdomain of at most 253 characters for the longest names", () => {
    const node = `${"n".repeat(61)}.${"x".repeat(63)}.${"y".repeat(63)}.${"z".repeat(63)}`;
    const peer = `${"p".repeat(200)}-.q`.replace("-.", "a.");
    for (const [n, p] of [
      [node, peer],
      [`${"a".repeat(243)}-b`, "c"],
      [`${"a".repeat(243)}.b`, "c"],
    ] as const) {
      const name = bgpSessionStateName(n, p);
      expect(name.length).toBeLessThanOrEqual(253);
      expect(name).toMatch(dnsSubdomainPattern);
    }
  });
});
