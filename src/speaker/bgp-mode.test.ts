import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { KubeClient } from "../k8s/client.ts";
import { EventRecorder } from "../k8s/events.ts";
import { FakeApiServer } from "../k8s/fake-apiserver.ts";
import { BgpMode } from "./bgp-mode.ts";
import { speakerMetrics } from "./metrics.ts";

let server: FakeApiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const inputs = {
  services: [{ key: "shop/web", ips: ["198.51.100.7"], externalTrafficPolicy: "Cluster" as const }],
  slices: [],
  nodes: [{ name: "n1", labels: {} }],
  pools: [{ name: "p", labels: {}, addresses: ["198.51.100.0/24"] }],
};

describe("BgpMode", () => {
  it("turns itself off, with one line saying why, where the cluster has no BGP CRDs", async () => {
    server = new FakeApiServer(); // answers 404 to everything
    const api = new KubeClient({ server: await server.start() });
    const lines: { msg: string }[] = [];
    const log = pino({ level: "info" }, { write: (l: string) => lines.push(JSON.parse(l)) });
    let sessions = 0;
    const mode = new BgpMode(
      api,
      {
        node: "n1",
        sessions: () => {
          sessions++;
          throw new Error("no session expected");
        },
      },
      new EventRecorder(api, "speaker", "n1", log),
      speakerMetrics(),
      log,
      () => {},
    );
    await mode.start();
    expect(mode.reconcile(inputs)).toBeUndefined();
    expect(sessions).toBe(0);
    expect(lines.map((l) => l.msg)).toContain(
      "BGP mode is off: the cluster has no BGPPeer CRD (apply this release's CRDs from config/crd, then restart the speakers)",
    );
    // It asked once, and watches nothing.
    expect(server.requests.map((r) => r.path)).toEqual(["/apis/ironlb.dev/v1beta1/bgppeers"]);
    await mode.stop();
  });
});
