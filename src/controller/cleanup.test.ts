import type { V1Lease, V1Service } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { ALLOCATED_CONDITION, ANNOUNCEABLE_CONDITION } from "../api/vocabulary.ts";
import { cleanupPatch, leaseLive } from "./cleanup.ts";

const filter = { lbClass: "ironlb.dev/lb", handleUnclassed: true };

function svc(o: {
  cls?: string;
  type?: string;
  annotations?: Record<string, string>;
  ingress?: string[];
  conditions?: string[];
}): V1Service {
  return {
    metadata: { name: "web", namespace: "shop", resourceVersion: "42", annotations: o.annotations },
    spec: { type: o.type ?? "LoadBalancer", loadBalancerClass: o.cls },
    status: {
      loadBalancer: { ingress: (o.ingress ?? []).map((ip) => ({ ip })) },
      conditions: (o.conditions ?? []).map((type) => ({
        type,
        status: "True",
        reason: "R",
        message: "",
        lastTransitionTime: new Date(0),
      })),
    },
  };
}

const pool = { "ironlb.dev/ip-allocated-from-pool": "lan" };
const node = { "ironlb.dev/announcing-node": "n1" };

describe("cleanupPatch, full cleanup (keepAddresses false)", () => {
  it("removes the IPs, ironlb's condition and both written annotations, nothing else", () => {
    const s = svc({
      annotations: { ...pool, ...node, "ironlb.dev/loadBalancerIPs": "198.51.100.7", x: "y" },
      ingress: ["198.51.100.7"],
      conditions: [ALLOCATED_CONDITION, "other.example/Ready"],
    });
    expect(cleanupPatch(s, filter, false)).toEqual({
      metadata: {
        resourceVersion: "42",
        annotations: {
          "ironlb.dev/ip-allocated-from-pool": null,
          "ironlb.dev/announcing-node": null,
        },
      },
      status: {
        loadBalancer: { ingress: null },
        conditions: [expect.objectContaining({ type: "other.example/Ready" })],
      },
    });
  });

  it.each([
    ["no ironlb marks", svc({ ingress: ["198.51.100.7"] })],
    ["another implementation's class", svc({ cls: "other/lb", annotations: pool, ingress: ["x"] })],
    [
      "unclassed while ironlb ignores unclassed Services",
      svc({ annotations: pool, ingress: ["x"] }),
      { ...filter, handleUnclassed: false },
    ],
  ])("leaves a Service alone: %s", (_why, s, f = filter) => {
    expect(cleanupPatch(s, f, false)).toBeUndefined();
  });

  it("cleans a failed allocation (condition only) without touching ingress or annotations", () => {
    expect(
      cleanupPatch(svc({ cls: "ironlb.dev/lb", conditions: [ALLOCATED_CONDITION] }), filter, false),
    ).toEqual({ metadata: { resourceVersion: "42" }, status: { conditions: [] } });
  });

  it("cleans a Service that stopped being a LoadBalancer but kept marks", () => {
    expect(cleanupPatch(svc({ type: "ClusterIP", annotations: node }), filter, false)).toEqual({
      metadata: { resourceVersion: "42", annotations: { "ironlb.dev/announcing-node": null } },
      status: {},
    });
  });
});

describe("cleanupPatch, keeping addresses (the default)", () => {
  const held = {
    annotations: { ...pool, "ironlb.dev/allow-shared-ip": "k" },
    ingress: ["198.51.100.7"],
    conditions: [ALLOCATED_CONDITION],
  };

  it.each([
    ["an assigned Service: its IP, pool annotation and condition", svc(held)],
    ["a failed allocation (condition only)", svc({ conditions: [ALLOCATED_CONDITION] })],
    ["another implementation's Service", svc({ cls: "other/lb", annotations: node })],
  ])("leaves alone %s", (_why, s) => {
    expect(cleanupPatch(s, filter, true)).toBeUndefined();
  });

  it("removes only the announcing-node annotation: no node announces after an uninstall", () => {
    expect(
      cleanupPatch(svc({ ...held, annotations: { ...held.annotations, ...node } }), filter, true),
    ).toEqual({
      metadata: { resourceVersion: "42", annotations: { "ironlb.dev/announcing-node": null } },
      status: {},
    });
  });

  it("removes the Announceable condition: no node announces after an uninstall", () => {
    const s = svc({ ...held, conditions: [ALLOCATED_CONDITION, ANNOUNCEABLE_CONDITION] });
    expect(cleanupPatch(s, filter, true)).toEqual({
      metadata: { resourceVersion: "42" },
      status: { conditions: [expect.objectContaining({ type: ALLOCATED_CONDITION })] },
    });
    expect(cleanupPatch(s, filter, false)).toMatchObject({ status: { conditions: [] } });
  });
});

describe("leaseLive", () => {
  const lease = (holder: string | undefined, renew: string, secs = 10): V1Lease => ({
    spec: {
      holderIdentity: holder,
      renewTime: renew as unknown as Date,
      leaseDurationSeconds: secs,
    },
  });
  const t0 = Date.parse("2026-01-01T00:00:00Z");

  it.each([
    ["held and fresh", lease("a", "2026-01-01T00:00:00.000000Z"), t0 + 9_999, true],
    ["expired", lease("a", "2026-01-01T00:00:00.000000Z"), t0 + 10_000, false],
    ["released (no holder)", lease(undefined, "2026-01-01T00:00:00Z"), t0, false],
    ["never renewed", { spec: { holderIdentity: "a", leaseDurationSeconds: 5 } }, t0, false],
  ])("%s", (_why, l, now, want) => {
    expect(leaseLive(l as V1Lease, now)).toBe(want);
  });
});
