import type { V1Service } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { translateService } from "./service-request.ts";

function svc(spec: V1Service["spec"] = {}, annotations: Record<string, string> = {}): V1Service {
  return {
    metadata: { name: "web", namespace: "shop", annotations, labels: { app: "web" } },
    spec: {
      type: "LoadBalancer",
      ipFamilies: ["IPv4"],
      ipFamilyPolicy: "SingleStack",
      ports: [{ port: 80 }],
      ...spec,
    },
  };
}

describe("translateService", () => {
  it("maps families, ports, policy, selector and annotations", () => {
    const r = translateService(
      svc(
        {
          ipFamilyPolicy: "PreferDualStack",
          ipFamilies: ["IPv6"],
          externalTrafficPolicy: "Local",
          selector: { app: "web" },
          ports: [{ port: 53, protocol: "UDP" }],
        },
        { "ironlb.dev/address-pool": "edge", "ironlb.dev/allow-shared-ip": "k" },
      ),
      { team: "a" },
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.request).toMatchObject({
      key: "shop/web",
      families: [
        { family: "IPv6", required: true },
        { family: "IPv4", required: false },
      ],
      ports: [{ protocol: "UDP", port: 53 }],
      trafficPolicy: "Local",
      selector: { app: "web" },
      pool: "edge",
      sharingKey: "k",
      namespaceLabels: { team: "a" },
    });
    expect(r.warnings).toEqual([]);
  });

  it.each([
    [
      "RequireDualStack",
      { ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv4", "IPv6"] },
      [
        { family: "IPv4", required: true },
        { family: "IPv6", required: true },
      ],
    ],
    ["SingleStack IPv6", { ipFamilies: ["IPv6"] }, [{ family: "IPv6", required: true }]],
  ])("families for %s", (_n, spec, want) => {
    const r = translateService(svc(spec as V1Service["spec"]), {});
    expect(r.ok && r.request.families).toEqual(want);
  });

  it("takes requested IPs from the annotation or spec.loadBalancerIP", () => {
    const a = translateService(svc({}, { "ironlb.dev/loadBalancerIPs": " 198.51.100.5 " }), {});
    expect(a.ok && a.request.requestedIPs).toEqual(["198.51.100.5"]);
    const b = translateService(svc({ loadBalancerIP: "198.51.100.6" }), {});
    expect(b.ok && b.request.requestedIPs).toEqual(["198.51.100.6"]);
    const same = translateService(
      svc({ loadBalancerIP: "198.51.100.6" }, { "ironlb.dev/loadBalancerIPs": "198.51.100.6" }),
      {},
    );
    expect(same.ok).toBe(true);
  });

  it.each([
    [
      "annotation and spec disagree",
      svc({ loadBalancerIP: "198.51.100.7" }, { "ironlb.dev/loadBalancerIPs": "198.51.100.6" }),
      /disagree/,
    ],
    [
      "not an address",
      svc({}, { "ironlb.dev/loadBalancerIPs": "300.1.1.1" }),
      /not a valid IPv4 or IPv6 address/,
    ],
    [
      "two of one family",
      svc({}, { "ironlb.dev/loadBalancerIPs": "198.51.100.1,198.51.100.2" }),
      /at most one IPv4/,
    ],
    [
      "family not requested",
      svc({}, { "ironlb.dev/loadBalancerIPs": "2001:db8::1" }),
      /requested IPv6 address, but the Service's IP families are IPv4/,
    ],
    [
      "MetalLB and ironlb keys disagree",
      svc({}, { "ironlb.dev/address-pool": "a", "metallb.io/address-pool": "b" }),
      /disagree; remove metallb.io\/address-pool/,
    ],
    ["only commas", svc({}, { "ironlb.dev/loadBalancerIPs": ",,," }), /empty entry/],
    ["a trailing comma", svc({}, { "ironlb.dev/loadBalancerIPs": "198.51.100.1," }), /empty entry/],
    [
      "the unspecified IPv4 address",
      svc({}, { "ironlb.dev/loadBalancerIPs": "0.0.0.0" }),
      /0\.0\.0\.0 is the unspecified address/,
    ],
    [
      "the unspecified IPv6 address",
      svc({ ipFamilies: ["IPv6"] }, { "ironlb.dev/loadBalancerIPs": "::" }),
      /:: is the unspecified address/,
    ],
    [
      "an IPv4-mapped IPv6 address",
      svc({ ipFamilies: ["IPv6"] }, { "ironlb.dev/loadBalancerIPs": "::ffff:198.51.100.1" }),
      /not a valid IPv4 or IPv6 address/,
    ],
    [
      "a pool name that cannot name a pool",
      svc({}, { "ironlb.dev/address-pool": "Not_A_Pool" }),
      /is not a pool name/,
    ],
  ])("rejects: %s", (_n, s, msg) => {
    const r = translateService(s, {});
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatch(msg);
  });

  it("treats an empty annotation as unset", () => {
    const r = translateService(svc({}, { "ironlb.dev/loadBalancerIPs": " " }), {});
    expect(r.ok && r.request.requestedIPs).toEqual([]);
  });

  it("never echoes a huge annotation whole", () => {
    const huge = "x".repeat(52_000);
    for (const s of [
      svc({}, { "ironlb.dev/loadBalancerIPs": huge }),
      svc({}, { "ironlb.dev/loadBalancerIPs": `198.51.100.1,${huge}` }),
      svc({ loadBalancerIP: "198.51.100.2" }, { "ironlb.dev/loadBalancerIPs": huge }),
      svc({}, { "ironlb.dev/address-pool": huge }),
      svc({}, { "ironlb.dev/address-pool": huge, "metallb.io/address-pool": `${huge}y` }),
      svc({}, { "ironlb.dev/loadBalancerIPs": Array(300).fill("198.51.100.1").join(",") }),
    ]) {
      const r = translateService(s, {});
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error.length).toBeLessThan(600);
        expect(r.error).not.toContain("x".repeat(65));
      }
    }
  });

  it("reads both MetalLB annotation prefixes and warns with the ironlb key", () => {
    for (const prefix of ["metallb.io/", "metallb.universe.tf/"]) {
      const r = translateService(
        svc(
          {},
          { [`${prefix}loadBalancerIPs`]: "198.51.100.9", [`${prefix}allow-shared-ip`]: "x" },
        ),
        {},
      );
      expect(r.ok && r.request.requestedIPs).toEqual(["198.51.100.9"]);
      expect(r.ok && r.request.sharingKey).toBe("x");
      expect(r.warnings).toEqual([
        `annotation ${prefix}loadBalancerIPs is read for compatibility with MetalLB; use ironlb.dev/loadBalancerIPs instead`,
        `annotation ${prefix}allow-shared-ip is read for compatibility with MetalLB; use ironlb.dev/allow-shared-ip instead`,
      ]);
    }
  });
});
