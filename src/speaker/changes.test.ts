import { describe, expect, it } from "vitest";
import { serviceCanMatter, serviceChangeMatters, sliceChangeMatters } from "./changes.ts";

const filter = { lbClass: "ironlb.dev/lb", handleUnclassed: true };
const lb = (ips: string[], cls?: string) => ({
  spec: { type: "LoadBalancer", ...(cls ? { loadBalancerClass: cls } : {}) },
  status: { loadBalancer: { ingress: ips.map((ip) => ({ ip })) } },
});
const NO_IP = lb([]);
const WITH_IP = lb(["192.0.2.10"]);
const OTHER_CLASS = lb(["192.0.2.11"], "example.com/other");
const CLUSTER_IP = {
  spec: { type: "ClusterIP" },
  status: { loadBalancer: { ingress: [{ ip: "192.0.2.12" }] } },
};

describe("serviceCanMatter", () => {
  it.each([
    ["absent", undefined, false],
    ["ours, no status yet", { spec: { type: "LoadBalancer" } }, false],
    ["ours, empty ingress", NO_IP, false],
    ["ours, an ingress entry without ip (hostname only)", lb([""]), false],
    ["ours, with an IP", WITH_IP, true],
    ["ours by class, with an IP", lb(["192.0.2.13"], "ironlb.dev/lb"), true],
    ["another class's, with an IP", OTHER_CLASS, false],
    ["not a LoadBalancer (an old status left)", CLUSTER_IP, false],
  ])("%s", (_, svc, want) => {
    expect(serviceCanMatter(svc, filter)).toBe(want);
  });
});

describe("serviceChangeMatters", () => {
  it.each([
    ["created without an IP (the controller assigns it next)", NO_IP, undefined, false],
    ["created with an IP", WITH_IP, undefined, true],
    ["the controller's assignment", WITH_IP, NO_IP, true],
    ["an edit while it has no IP (still pending)", NO_IP, NO_IP, false],
    ["any edit of a Service with an IP", WITH_IP, WITH_IP, true],
    ["its IP taken away", NO_IP, WITH_IP, true],
    ["turned into a ClusterIP Service", CLUSTER_IP, WITH_IP, true],
    ["deleted with an IP", undefined, WITH_IP, true],
    ["deleted without an IP", undefined, NO_IP, false],
    ["another class's Service, any change", OTHER_CLASS, OTHER_CLASS, false],
  ])("%s", (_, now, was, want) => {
    expect(serviceChangeMatters(now, was, filter)).toBe(want);
  });
});

describe("sliceChangeMatters", () => {
  it.each([
    ["its Service not cached yet (its own event evaluates later)", undefined, false],
    ["its Service has no IP yet", NO_IP, false],
    ["its Service has an IP", WITH_IP, true],
    ["its Service is another class's", OTHER_CLASS, false],
  ])("%s", (_, svc, want) => {
    expect(sliceChangeMatters(svc, filter)).toBe(want);
  });
});
