import { describe, expect, it } from "vitest";
import { isOurs, type ServiceLike, statusIPs } from "./service.ts";

function svc(spec: ServiceLike["spec"] = {}): ServiceLike {
  return { spec: { type: "LoadBalancer", ...spec } };
}

const filter = { lbClass: "ironlb.dev/lb", handleUnclassed: true };

describe("isOurs", () => {
  it.each([
    ["unclassed LoadBalancer", svc(), filter, true],
    ["unclassed, unclassed not handled", svc(), { ...filter, handleUnclassed: false }, false],
    [
      "our class",
      svc({ loadBalancerClass: "ironlb.dev/lb" }),
      { ...filter, handleUnclassed: false },
      true,
    ],
    ["another class", svc({ loadBalancerClass: "example.com/lb" }), filter, false],
    ["ClusterIP", svc({ type: "ClusterIP" }), filter, false],
  ])("%s", (_n, s, f, want) => {
    expect(isOurs(s, f)).toBe(want);
  });
});

describe("statusIPs", () => {
  it("lists status IPs in order", () => {
    const s = svc();
    s.status = {
      loadBalancer: { ingress: [{ ip: "198.51.100.1" }, {}, { ip: "2001:db8::1" }] },
    };
    expect(statusIPs(s)).toEqual(["198.51.100.1", "2001:db8::1"]);
  });
});
