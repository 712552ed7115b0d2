// The Forwarder's choice of nft scripts, with a recording runner in place of nft (the
// kernel side is test/e2e/nftables-table.test.ts).
import type { V1EndpointSlice, V1Service } from "@kubernetes/client-node";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Forwarder } from "./forwarder.ts";

const proxied: V1Service = {
  metadata: { name: "web", namespace: "default" },
  spec: {
    type: "LoadBalancer",
    externalTrafficPolicy: "Cluster",
    ports: [{ name: "http", port: 80, protocol: "TCP" }],
  },
  status: { loadBalancer: { ingress: [{ ip: "198.51.100.10", ipMode: "Proxy" }] } },
};
const vip: V1Service = {
  ...proxied,
  metadata: { name: "api", namespace: "default" },
  status: { loadBalancer: { ingress: [{ ip: "198.51.100.11", ipMode: "VIP" }] } },
};
const slices: V1EndpointSlice[] = [
  {
    addressType: "IPv4",
    metadata: {
      name: "web-1",
      namespace: "default",
      labels: { "kubernetes.io/service-name": "web" },
    },
    endpoints: [{ addresses: ["10.0.0.5"], nodeName: "node1", conditions: { ready: true } }],
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  },
];

function recording(absent = true) {
  const scripts: string[] = [];
  const nft = async (script: string) => {
    scripts.push(script);
    if (absent && script === "delete table inet ironlb\n")
      throw new Error(
        "nft -f failed (exit 1): Error: Could not process rule: No such file or directory",
      );
  };
  const f = new Forwarder(
    { node: "node1", lbClass: "ironlb.dev/lb", handleUnclassed: true, nft },
    pino({ level: "silent" }),
  );
  return { f, scripts };
}

describe("Forwarder", () => {
  it("leaves a node without ipMode Proxy Services without a table, and never creates one", async () => {
    const { f, scripts } = recording();
    f.update([vip], []);
    await f.settled();
    f.update([vip], []);
    await f.settled();
    await f.stop();
    // One delete (an earlier run's table would go), which finds none; nothing is added.
    expect(scripts).toEqual(["delete table inet ironlb\n"]);
  });

  it("builds the table for the first Proxy Service and removes it with the last", async () => {
    const { f, scripts } = recording();
    f.update([vip], []);
    await f.settled();
    f.update([vip, proxied], slices);
    await f.settled();
    expect(scripts).toHaveLength(2);
    // Built whole, in one transaction: replaces whatever might be there.
    expect(scripts[1]).toMatch(
      /^add table inet ironlb\ndelete table inet ironlb\nadd table inet ironlb\n/,
    );
    expect(scripts[1]).toContain("198.51.100.10");
    f.update([vip], slices);
    await f.settled();
    expect(scripts[2]).toBe("delete table inet ironlb\n");
    await f.stop();
    expect(scripts).toHaveLength(3);
  });

  it("removes the table on stop when it built one", async () => {
    const { f, scripts } = recording(false);
    f.update([proxied], slices);
    await f.settled();
    await f.stop();
    expect(scripts.at(-1)).toBe("delete table inet ironlb\n");
  });
});
