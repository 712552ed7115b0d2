// Membership by Leases in process (no heartbeats): the Lease informer against the fake
// apiserver. How long a Lease has been silent is elapsed time: the wall clock stepping
// (NTP, often right after a stall) must neither keep a dead peer live nor kill live ones.
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { KubeClient } from "../k8s/client.ts";
import { FakeApiServer } from "../k8s/fake-apiserver.ts";
import { Membership } from "./membership.ts";

const HOUR = 3_600_000;

let server: FakeApiServer | undefined;
let membership: Membership | undefined;

afterEach(async () => {
  await membership?.stop();
  await server?.close();
  membership = undefined;
  server = undefined;
  vi.restoreAllMocks();
});

async function started(): Promise<{ advance: (ms: number) => void }> {
  let skew = 0;
  const realNow = performance.now.bind(performance);
  vi.spyOn(performance, "now").mockImplementation(() => realNow() + skew);
  server = new FakeApiServer();
  const peer = {
    metadata: {
      name: "ironlb-speaker-node-b",
      namespace: "ironlb",
      resourceVersion: "1",
      labels: { "ironlb.dev/speaker": "" },
    },
    spec: {
      holderIdentity: "node-b",
      leaseDurationSeconds: 15,
      renewTime: new Date().toISOString().replace("Z", "000Z"),
    },
  };
  server.onRequest = (method) => {
    if (method === "GET")
      return {
        status: 200,
        body: { kind: "LeaseList", metadata: { resourceVersion: "1" }, items: [peer] },
      };
    if (method === "PATCH") return { status: 404, body: { kind: "Status", code: 404 } };
    return { status: 201, body: {} };
  };
  const api = new KubeClient({ server: await server.start() });
  membership = new Membership(
    api,
    { node: "node-a", namespace: "ironlb", leaseDurationMs: 15_000, renewIntervalMs: 600_000 },
    pino({ level: "silent" }),
  );
  await membership.start();
  return { advance: (ms) => (skew += ms) };
}

describe("Membership: Lease ages on the monotonic clock", () => {
  it("a forward wall-clock step declares neither a peer nor this node dead", async () => {
    await started();
    expect([...membership!.live()].sort()).toEqual(["node-a", "node-b"]);
    const wall = Date.now();
    vi.spyOn(Date, "now").mockReturnValue(wall + HOUR);
    expect([...membership!.live()].sort()).toEqual(["node-a", "node-b"]);
    expect(membership!.selfHealthy()).toBe(true);
  });

  it("a backward wall-clock step does not keep a silent peer live", async () => {
    const { advance } = await started();
    expect(membership!.live().has("node-b")).toBe(true);
    const wall = Date.now();
    vi.spyOn(Date, "now").mockReturnValue(wall - HOUR);
    // Its Lease has not been renewed for longer than its duration.
    advance(15_001);
    expect(membership!.live().has("node-b")).toBe(false);
  });
});
