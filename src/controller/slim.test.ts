import type { V1Service } from "@kubernetes/client-node";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ANNOTATIONS, isOurs, quoted, statusIPs } from "../api/service.ts";
import { translateService } from "./service-request.ts";
import {
  ANNOTATION_VALUE_LIMIT,
  LABELS_LIMIT,
  SERVICE_ANNOTATIONS,
  slimNamespace,
  slimService,
} from "./slim.ts";

/** A Service with every field a user or another controller may set, and a big annotation. */
function full(over: Partial<V1Service["spec"]> = {}, annotations: Record<string, string> = {}) {
  const svc: V1Service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name: "web",
      namespace: "shop",
      uid: "u-1",
      resourceVersion: "rv-opaque-7",
      generation: 3,
      creationTimestamp: "2026-01-02T03:04:05Z" as unknown as Date,
      labels: { app: "web", tier: "front" },
      annotations: {
        "kubectl.kubernetes.io/last-applied-configuration": "x".repeat(200_000),
        "example.com/notes": "y".repeat(50_000),
        ...annotations,
      },
      finalizers: ["example.com/keep"],
      ownerReferences: [{ apiVersion: "v1", kind: "X", name: "o", uid: "o-1" }],
      managedFields: [{ manager: "kubectl", operation: "Apply" }],
    },
    spec: {
      type: "LoadBalancer",
      loadBalancerClass: "ironlb.dev/lb",
      loadBalancerIP: "198.51.100.7",
      loadBalancerSourceRanges: ["0.0.0.0/0"],
      ipFamilies: ["IPv4", "IPv6"],
      ipFamilyPolicy: "PreferDualStack",
      externalTrafficPolicy: "Local",
      internalTrafficPolicy: "Cluster",
      healthCheckNodePort: 30500,
      selector: { app: "web" },
      sessionAffinity: "ClientIP",
      sessionAffinityConfig: { clientIP: { timeoutSeconds: 60 } },
      clusterIP: "10.0.0.5",
      clusterIPs: ["10.0.0.5", "fd00::5"],
      externalIPs: ["192.0.2.9"],
      allocateLoadBalancerNodePorts: true,
      publishNotReadyAddresses: false,
      trafficDistribution: "PreferClose",
      ports: [
        { name: "http", port: 80, protocol: "TCP", targetPort: 8080 as never, nodePort: 31000 },
        { name: "dns", port: 53, protocol: "UDP", appProtocol: "dns" },
      ],
      ...over,
    },
    status: {
      loadBalancer: {
        ingress: [
          { ip: "198.51.100.7", ipMode: "VIP", ports: [{ port: 80, protocol: "TCP" }] },
          { ip: "2001:db8::7" },
        ],
      },
      conditions: [
        {
          type: "ironlb.dev/IPAllocated",
          status: "True",
          reason: "Allocated",
          message: "assigned",
          lastTransitionTime: "2026-01-02T03:04:06Z" as unknown as Date,
          observedGeneration: 3,
        },
        {
          type: "example.com/Other",
          status: "False",
          reason: "Whatever",
          message: "another controller's condition",
          lastTransitionTime: "2026-01-02T03:04:07Z" as unknown as Date,
        },
      ],
    },
  };
  return svc;
}

const filter = { lbClass: "ironlb.dev/lb", handleUnclassed: true };

describe("slimService", () => {
  it("keeps what the controller reads: the same request, ownership, IPs and conditions", () => {
    const cases: V1Service[] = [
      full(),
      full({}, { [ANNOTATIONS.loadBalancerIPs]: "198.51.100.7,2001:db8::7" }),
      full({ loadBalancerIP: undefined }, { "metallb.io/loadBalancerIPs": "198.51.100.9" }),
      full({}, { "metallb.universe.tf/address-pool": "p", [ANNOTATIONS.addressPool]: "q" }),
      full({}, { [ANNOTATIONS.allowSharedIP]: "k", "metallb.io/allow-shared-ip": "k" }),
      full({ ipFamilyPolicy: "RequireDualStack", ipFamilies: ["IPv6", "IPv4"] }),
    ];
    for (const svc of cases) {
      const slim = slimService(structuredClone(svc));
      expect(translateService(slim, { team: "a" })).toEqual(translateService(svc, { team: "a" }));
      expect(isOurs(slim, filter)).toBe(isOurs(svc, filter));
      expect(isOurs(slim, { ...filter, lbClass: "x" })).toBe(
        isOurs(svc, { ...filter, lbClass: "x" }),
      );
      expect(statusIPs(slim)).toEqual(statusIPs(svc));
      expect(slim.status?.conditions).toEqual(svc.status?.conditions);
      expect(slim.metadata).toMatchObject({
        name: "web",
        namespace: "shop",
        uid: "u-1",
        resourceVersion: "rv-opaque-7",
        generation: 3,
        creationTimestamp: "2026-01-02T03:04:05Z",
        labels: { app: "web", tier: "front" },
      });
      expect(slim.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool]).toBe(
        svc.metadata?.annotations?.[ANNOTATIONS.allocatedFromPool],
      );
      expect(slim.status?.loadBalancer?.ingress?.map((i) => i.ipMode)).toEqual(["VIP", undefined]);
    }
  });

  it("drops every other annotation and field: a 250 KiB Service becomes well under 2 KiB", () => {
    const svc = full({}, { [ANNOTATIONS.addressPool]: "p" });
    expect(JSON.stringify(svc).length).toBeGreaterThan(250_000);
    const slim = slimService(svc);
    expect(Object.keys(slim.metadata?.annotations ?? {})).toEqual([ANNOTATIONS.addressPool]);
    expect(JSON.stringify(slim).length).toBeLessThan(2_048);
    expect(slim.metadata?.managedFields).toBeUndefined();
    expect(slim.spec?.clusterIPs).toBeUndefined();
  });

  it("keeps every ironlb annotation and its MetalLB spellings, and only those", () => {
    for (const key of Object.values(ANNOTATIONS)) {
      const suffix = key.slice("ironlb.dev/".length);
      for (const k of [key, `metallb.io/${suffix}`, `metallb.universe.tf/${suffix}`])
        expect(SERVICE_ANNOTATIONS).toContain(k);
    }
    expect(SERVICE_ANNOTATIONS).toHaveLength(Object.values(ANNOTATIONS).length * 3);
  });

  it("translates any mix of annotations the same as the whole Service (property)", () => {
    const keys = [...SERVICE_ANNOTATIONS, "example.com/other", "metallb.io/other"];
    const values = fc.constantFrom("", "p", " p ", "198.51.100.7", "2001:db8::1,198.51.100.7", "k");
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom(...keys), values),
        fc.constantFrom("SingleStack", "PreferDualStack", "RequireDualStack"),
        fc.option(fc.constantFrom("198.51.100.7", "2001:db8::1"), { nil: undefined }),
        (annotations, ipFamilyPolicy, loadBalancerIP) => {
          const svc = full({ ipFamilyPolicy, loadBalancerIP }, annotations);
          const slim = slimService(structuredClone(svc));
          expect(translateService(slim, {})).toEqual(translateService(svc, {}));
        },
      ),
    );
  });
});

describe("slimService of a Service that is not a LoadBalancer", () => {
  it("keeps identity, type, the pool annotation and the status: what releasing its IP needs", () => {
    const svc = full({ type: "ClusterIP" }, { [ANNOTATIONS.allocatedFromPool]: "p" });
    const slim = slimService(structuredClone(svc));
    expect(isOurs(slim, filter)).toBe(false);
    expect(slim.spec).toEqual({ type: "ClusterIP" });
    expect(slim.metadata?.labels).toBeUndefined();
    expect(slim.metadata?.annotations).toEqual({ [ANNOTATIONS.allocatedFromPool]: "p" });
    expect(statusIPs(slim)).toEqual(statusIPs(svc));
    expect(slim.status?.conditions).toEqual(svc.status?.conditions);
    expect(JSON.stringify(slim).length).toBeLessThan(1_024);
  });
});

describe("slimService bounds what a tenant controls", () => {
  const huge = (c: string, n = 200_000) => c.repeat(n);
  /** Many labels, each within the API's per-label limits (there is no total limit). */
  const manyLabels = (n: number, tag = "") =>
    Object.fromEntries(
      Array.from({ length: n }, (_, i) => [`l${i}.example.com/k${tag}`, "v".repeat(60)]),
    );

  it("keeps a long ironlb annotation as a short digest: equal values stay equal, others differ", () => {
    const a = slimService(full({}, { [ANNOTATIONS.allowSharedIP]: `${huge("k")}a` }));
    const a2 = slimService(full({}, { [ANNOTATIONS.allowSharedIP]: `${huge("k")}a` }));
    const b = slimService(full({}, { [ANNOTATIONS.allowSharedIP]: `${huge("k")}b` }));
    const key = (s: V1Service) => s.metadata?.annotations?.[ANNOTATIONS.allowSharedIP] ?? "";
    expect(key(a).length).toBeLessThan(150);
    expect(quoted(key(a))).toBe(quoted(`${huge("k")}a`)); // messages say the same
    expect(quoted(key(a))).toContain("(200001 characters)");
    expect(key(a)).toBe(key(a2));
    expect(key(a)).not.toBe(key(b));
    // A value at the limit is kept as it is.
    const atLimit = "s".repeat(ANNOTATION_VALUE_LIMIT);
    expect(key(slimService(full({}, { [ANNOTATIONS.allowSharedIP]: atLimit })))).toBe(atLimit);
  });

  it("a long IP list, pool name or loadBalancerIP stays invalid, with the same message", () => {
    for (const svc of [
      full({ loadBalancerIP: undefined }, { [ANNOTATIONS.loadBalancerIPs]: huge("x", 52_000) }),
      full({}, { "metallb.io/address-pool": huge("p") }),
      full({ loadBalancerIP: huge("9") }),
    ]) {
      const whole = translateService(svc, {});
      expect(whole.ok).toBe(false);
      expect(translateService(slimService(svc), {})).toEqual(whole);
    }
  });

  it(`drops the labels of a Service whose labels exceed ${LABELS_LIMIT} bytes, keeps them up to that`, () => {
    const few = manyLabels(10);
    expect(slimService(full()).metadata?.labels).toEqual({ app: "web", tier: "front" });
    const svc = full();
    svc.metadata!.labels = few;
    expect(slimService(svc).metadata?.labels).toEqual(few);
    svc.metadata!.labels = manyLabels(5_000); // ~400 KiB, which the API server accepts
    expect(slimService(svc).metadata?.labels).toBeUndefined();
  });

  it("keeps a large pod selector as a digest: equal selectors stay equal, others differ", () => {
    const sel = (tag: string) =>
      slimService(full({ selector: manyLabels(5_000, tag) })).spec?.selector;
    expect(JSON.stringify(sel("a")).length).toBeLessThan(200);
    expect(sel("a")).toEqual(sel("a"));
    expect(sel("a")).not.toEqual(sel("b"));
    expect(slimService(full({ selector: { app: "web" } })).spec?.selector).toEqual({ app: "web" });
  });

  it("a Service with everything a tenant controls at its largest is cached in under 4 KiB", () => {
    const annotations = Object.fromEntries(SERVICE_ANNOTATIONS.map((k) => [k, huge("z", 20_000)]));
    const svc = full({ selector: manyLabels(5_000), loadBalancerIP: huge("1") }, annotations);
    svc.metadata!.labels = manyLabels(5_000);
    svc.status = { loadBalancer: { ingress: [{ ip: "198.51.100.7" }] } };
    expect(JSON.stringify(svc).length).toBeGreaterThan(1_000_000);
    expect(JSON.stringify(slimService(svc)).length).toBeLessThan(4_096);
  });
});

describe("slimNamespace", () => {
  it("keeps identity and labels only", () => {
    expect(
      slimNamespace({
        metadata: {
          name: "shop",
          uid: "n-1",
          resourceVersion: "9",
          labels: { team: "a" },
          annotations: { big: "z".repeat(100_000) },
        },
        spec: { finalizers: ["kubernetes"] },
        status: { phase: "Active" },
      }),
    ).toEqual({
      metadata: { name: "shop", uid: "n-1", resourceVersion: "9", labels: { team: "a" } },
    });
  });
});
