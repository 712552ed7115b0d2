// The controller in process against the stateful fake API server (FakeCluster): what a
// user sees after each change (the Service's status and conditions, Events), for the
// lifecycle controller.test.ts does not cover: assignment, exhaustion and release on
// deletion, a pool edit that takes an assigned IP away, and a restart that keeps every
// assignment from the Services' statuses.
import type { V1Service } from "@kubernetes/client-node";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { apiVersion } from "../api/group.ts";
import { PATHS } from "../api/vocabulary.ts";
import { KubeClient } from "../k8s/client.ts";
import { FakeCluster, waitUntil } from "../k8s/fake-cluster.ts";
import { Controller } from "./controller.ts";
import { controllerMetrics } from "./metrics.ts";

let cluster: FakeCluster;
const running: Controller[] = [];

beforeEach(() => {
  cluster = new FakeCluster();
  cluster.put(PATHS.namespaces, { metadata: { name: "shop" } });
});

afterEach(async () => {
  for (const c of running.splice(0)) await c.stop();
  await cluster.close();
});

const pool = (addresses: string[]) => ({
  apiVersion,
  kind: "IPAddressPool",
  metadata: { name: "p", creationTimestamp: "2026-01-01T00:00:00Z" },
  spec: { addresses },
});

function putService(name: string, created = "2026-01-01T00:00:00Z"): void {
  cluster.put(PATHS.services, {
    metadata: { name, namespace: "shop", creationTimestamp: created },
    spec: { type: "LoadBalancer", ports: [{ port: 80, protocol: "TCP" }] },
  });
}

const ipOf = (name: string) =>
  cluster
    .get<V1Service>(PATHS.services, name, "shop")
    ?.status?.loadBalancer?.ingress?.map((i) => i.ip)
    .join(",") || undefined;

const events = (reason: string) =>
  cluster
    .list<{ reason: string; involvedObject: { name: string }; message: string }>("/api/v1/events")
    .filter((e) => e.reason === reason)
    .map((e) => e.involvedObject.name)
    .sort();

async function startController(name = "c1"): Promise<Controller> {
  const c = new Controller(
    new KubeClient({ server: await cluster.endpoint(name) }),
    {
      ipMode: "VIP",
      concurrency: 1,
      instance: name,
      lbClass: "ironlb.dev/lb",
      handleUnclassed: true,
    },
    pino({ level: "silent" }),
    controllerMetrics(),
  );
  running.push(c);
  await c.start();
  return c;
}

describe("Controller in process: the Service lifecycle", () => {
  it("assigns an IP of the pool, one per Service, and says so in an Event", async () => {
    cluster.put(PATHS.ipAddressPools, pool(["192.0.2.10-192.0.2.11"]));
    await startController();
    putService("a");
    putService("b");
    await waitUntil(() => ipOf("a") !== undefined && ipOf("b") !== undefined);
    expect([ipOf("a"), ipOf("b")].sort()).toEqual(["192.0.2.10", "192.0.2.11"]);
    await waitUntil(() => events("IPAllocated").length === 2);
    expect(events("IPAllocated")).toEqual(["a", "b"]);
  });

  it("pool exhausted: the third Service waits with AllocationFailed, gets the IP a deleted one frees", async () => {
    cluster.put(PATHS.ipAddressPools, pool(["192.0.2.10-192.0.2.11"]));
    await startController();
    putService("a");
    putService("b");
    await waitUntil(() => ipOf("a") !== undefined && ipOf("b") !== undefined);
    putService("c");
    await waitUntil(() => events("AllocationFailed").includes("c"));
    expect(ipOf("c")).toBeUndefined();
    const freed = ipOf("a");
    cluster.remove(PATHS.services, "a", "shop");
    await waitUntil(() => ipOf("c") !== undefined);
    expect(ipOf("c")).toBe(freed);
    expect(ipOf("b")).not.toBe(freed);
  });

  it("a pool edit that takes an assigned IP away moves the Service to one still in the pool", async () => {
    cluster.put(PATHS.ipAddressPools, pool(["192.0.2.10/32"]));
    await startController();
    putService("a");
    await waitUntil(() => ipOf("a") === "192.0.2.10");
    cluster.put(PATHS.ipAddressPools, pool(["192.0.2.20/32"]));
    await waitUntil(() => ipOf("a") === "192.0.2.20");
  });

  it("restart: every assignment is kept from the statuses; a Service added meanwhile gets a free IP", async () => {
    cluster.put(PATHS.ipAddressPools, pool(["192.0.2.10-192.0.2.12"]));
    const first = await startController("c1");
    putService("a", "2026-01-01T00:00:01Z");
    putService("b", "2026-01-01T00:00:02Z");
    await waitUntil(() => ipOf("a") !== undefined && ipOf("b") !== undefined);
    await first.idle();
    const before = { a: ipOf("a"), b: ipOf("b") };
    await first.stop();
    running.splice(running.indexOf(first), 1);
    // While no controller runs, a third Service comes; it is listed first (a Service the
    // new controller reconciles before the others must not take their IPs).
    const held = ["a", "b"].map((n) => cluster.get(PATHS.services, n, "shop")!);
    for (const n of ["a", "b"]) cluster.remove(PATHS.services, n, "shop");
    putService("c", "2026-01-01T00:00:03Z");
    for (const svc of held) cluster.put(PATHS.services, svc);
    const writes = cluster.writes.length;
    await startController("c2");
    await waitUntil(() => ipOf("c") !== undefined);
    expect({ a: ipOf("a"), b: ipOf("b") }).toEqual(before);
    expect(ipOf("c")).not.toBe(before.a);
    expect(ipOf("c")).not.toBe(before.b);
    // The new controller wrote no status of a or b (they kept theirs as they were).
    expect(
      cluster.writes
        .slice(writes)
        .filter((w) => /services\/(a|b)\/status$/.test(w.path))
        .map((w) => w.path),
    ).toEqual([]);
  });
});
