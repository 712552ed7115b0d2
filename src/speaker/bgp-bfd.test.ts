import { describe, expect, it } from "vitest";
import { parseBFDProfile } from "../api/bfdprofile.ts";
import type { BgpPeerConfig } from "../bgp/types.ts";
import { type BfdSettings, bfdPeerFor, bfdSettings, resolveBfd } from "./bgp-bfd.ts";

const cfg = (extra: Partial<BgpPeerConfig> = {}): BgpPeerConfig => ({
  name: "tor",
  myASN: 64512,
  peerASN: 64500,
  peerAddress: "192.0.2.1",
  peerPort: 179,
  holdTime: 90,
  keepaliveTime: 30,
  connectTime: 10,
  routerID: "192.0.2.11",
  ...extra,
});

const settings: BfdSettings = {
  profile: "p",
  desiredMinTxMs: 100,
  requiredMinRxMs: 200,
  detectMultiplier: 3,
  passive: false,
};

describe("bfdSettings", () => {
  it("maps MetalLB's fields (defaults applied) to the BFD timers", () => {
    const r = parseBFDProfile({
      apiVersion: "ironlb.dev/v1beta1",
      kind: "BFDProfile",
      metadata: { name: "d" },
    });
    if (!r.ok) throw new Error(r.errors.join("; "));
    expect(bfdSettings("d", r.value.spec)).toEqual({
      profile: "d",
      desiredMinTxMs: 300,
      requiredMinRxMs: 300,
      detectMultiplier: 3,
      passive: false,
    });
    const p = parseBFDProfile({
      apiVersion: "ironlb.dev/v1beta1",
      kind: "BFDProfile",
      metadata: { name: "f" },
      spec: { transmitInterval: 50, receiveInterval: 70, detectMultiplier: 4, passiveMode: true },
    });
    if (!p.ok) throw new Error(p.errors.join("; "));
    expect(bfdSettings("f", p.value.spec)).toEqual({
      profile: "f",
      desiredMinTxMs: 50,
      requiredMinRxMs: 70,
      detectMultiplier: 4,
      passive: true,
    });
  });
});

describe("bfdPeerFor", () => {
  const cases: Array<{
    name: string;
    cfg: BgpPeerConfig;
    settings: BfdSettings | undefined;
    connectedFrom: string | undefined;
    want: ReturnType<typeof bfdPeerFor>;
  }> = [
    {
      name: "no profile",
      cfg: cfg(),
      settings: undefined,
      connectedFrom: "192.0.2.11",
      want: undefined,
    },
    {
      name: "address not known yet",
      cfg: cfg(),
      settings,
      connectedFrom: undefined,
      want: undefined,
    },
    {
      name: "from the connection's address",
      cfg: cfg(),
      settings,
      connectedFrom: "192.0.2.11",
      want: {
        name: "tor",
        peerAddress: "192.0.2.1",
        localAddress: "192.0.2.11",
        desiredMinTxMs: 100,
        requiredMinRxMs: 200,
        detectMultiplier: 3,
      },
    },
    {
      name: "sourceAddress wins, passive carried",
      cfg: cfg({ sourceAddress: "192.0.2.12" }),
      settings: { ...settings, passive: true },
      connectedFrom: "192.0.2.11",
      want: {
        name: "tor",
        peerAddress: "192.0.2.1",
        localAddress: "192.0.2.12",
        desiredMinTxMs: 100,
        requiredMinRxMs: 200,
        detectMultiplier: 3,
        passive: true,
      },
    },
  ];
  for (const c of cases)
    it(c.name, () => {
      expect(bfdPeerFor("tor", c.cfg, c.settings, c.connectedFrom)).toEqual(c.want);
    });
});

describe("resolveBfd", () => {
  const spec = {
    receiveInterval: 100,
    transmitInterval: 100,
    detectMultiplier: 3,
    passiveMode: false,
  };
  const profiles = new Map([["fast", spec]]);
  it("no bfdProfile: no BFD, no problem", () => {
    expect(resolveBfd(undefined, profiles)).toEqual({});
    expect(resolveBfd("", undefined)).toEqual({});
  });
  it("a profile that exists gives its settings", () => {
    expect(resolveBfd("fast", profiles).settings).toEqual(bfdSettings("fast", spec));
  });
  it("a missing profile, or a cluster without the CRD, says so", () => {
    expect(resolveBfd("slow", profiles)).toEqual({ error: 'BFDProfile "slow" not found' });
    expect(resolveBfd("fast", undefined).error).toMatch(/no BFDProfile CRD/);
  });
});
