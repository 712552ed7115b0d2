// The controller in process against the fake API server: what the status write does when
// the cache lags behind the controller's own write. resourceVersions are opaque strings
// (the API's rule): only equality may be relied on.
import type { V1Service } from "@kubernetes/client-node";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KubeClient } from "../k8s/client.ts";
import { FakeApiServer } from "../k8s/fake-apiserver.ts";
import { Controller } from "./controller.ts";
import { controllerMetrics } from "./metrics.ts";

const STATUS_PATH = "/api/v1/namespaces/ns/services/a/status";

let server: FakeApiServer;
let controller: Controller;
let metrics: ReturnType<typeof controllerMetrics>;
/** The Service as the server holds it. */
let svc: V1Service;
/** The resourceVersion the server gives the next status write. */
let nextRV: string;

const list = (items: unknown[]) => ({
  status: 200,
  body: { metadata: { resourceVersion: "1" }, items },
});

beforeEach(async () => {
  server = new FakeApiServer();
  const url = await server.start();
  server.onRequest = (method, path, _q, body) => {
    if (method === "GET" && path === "/api/v1/services") return list([svc]);
    if (method === "GET" && path === "/api/v1/namespaces")
      return list([{ metadata: { name: "ns", resourceVersion: "1" } }]);
    if (method === "GET" && path.endsWith("/ipaddresspools"))
      return list([
        {
          apiVersion: "ironlb.dev/v1beta1",
          kind: "IPAddressPool",
          metadata: { name: "p", resourceVersion: "1", creationTimestamp: "2026-01-01T00:00:00Z" },
          spec: { addresses: ["192.0.2.0/28"] },
        },
      ]);
    if (method === "PATCH" && path === STATUS_PATH) {
      const patch = JSON.parse(body) as { status: V1Service["status"] };
      svc = {
        ...svc,
        metadata: { ...svc.metadata, resourceVersion: nextRV },
        status: patch.status,
      };
      return { status: 200, body: svc };
    }
    return { status: 200, body: {} }; // events, pool status
  };
  metrics = controllerMetrics();
  controller = new Controller(
    new KubeClient({ server: url }),
    {
      ipMode: "VIP",
      concurrency: 1,
      instance: "t",
      lbClass: "ironlb.dev/lb",
      handleUnclassed: true,
    },
    pino({ level: "silent" }),
    metrics,
  );
});

afterEach(async () => {
  await controller.stop();
  await server.close();
});

const statusWrites = () =>
  server.requests.filter((r) => r.method === "PATCH" && r.path === STATUS_PATH);

function service(rv: string): V1Service {
  return {
    metadata: { name: "a", namespace: "ns", uid: "u", resourceVersion: rv },
    spec: { type: "LoadBalancer", ports: [{ port: 80, protocol: "TCP" }] },
  };
}

/** Starts the controller and waits for its first status write of ns/a. */
async function startAndWrite(): Promise<void> {
  await controller.start();
  await vi.waitFor(() => expect(statusWrites()).toHaveLength(1));
  await controller.idle();
}

/** Makes the controller reconcile ns/a again from its cache (a namespace label change). */
async function reconcileAgain(): Promise<void> {
  const before = await reconcileCount();
  const w = server.openWatches().find((x) => x.path === "/api/v1/namespaces")!;
  w.send("MODIFIED", { metadata: { name: "ns", resourceVersion: "2", labels: { x: "y" } } });
  await vi.waitFor(async () => expect(await reconcileCount()).toBeGreaterThan(before));
  await controller.idle();
}

/** Reconciles done so far (the reconcile duration histogram's count). */
async function reconcileCount(): Promise<number> {
  const text = await metrics.registry.metrics();
  return Number(/ironlb_reconcile_duration_seconds_count (\d+)/.exec(text)?.[1]);
}

describe("Controller status write and opaque resourceVersions", () => {
  it("skips a re-write while the cache still shows the version its write replaced (non-numeric versions)", async () => {
    svc = service("x9");
    nextRV = "x10";
    await startAndWrite();
    // The watch has not brought the write back: the cache still holds version x9.
    await reconcileAgain();
    expect(statusWrites()).toHaveLength(1);
  });

  it("writes again when the cache shows another version, even one that compares lower", async () => {
    svc = service("20");
    nextRV = "30";
    await startAndWrite();
    const ips = svc.status?.loadBalancer?.ingress?.map((i) => i.ip);
    expect(ips).toHaveLength(1);
    // Someone else cleared the status; the server's version for that is "25": opaque, not
    // ordered, it says nothing about being older or newer than "30".
    svc = service("25");
    nextRV = "40";
    const w = server.openWatches().find((x) => x.path === "/api/v1/services")!;
    w.send("MODIFIED", svc);
    await vi.waitFor(() => expect(statusWrites()).toHaveLength(2));
    await controller.idle();
    expect(svc.status?.loadBalancer?.ingress?.map((i) => i.ip)).toEqual(ips);
  });
});
