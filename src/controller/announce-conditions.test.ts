// The Announceable condition's bookkeeping in process (the controller against the stateful
// fake API server, with a stand-in verdict): what is judged again after which change. A
// Service's own change (its EndpointSlice here) is judged alone and at once, even while
// full passes are throttled by their cost; Services sharing an IP are judged together; a
// cluster-wide change (an L2Advertisement) judges every Service, a write to a pool's status
// or a Node's heartbeat does not. The verdict itself is
// src/speaker/announceable.ts's (its own table tests); the real thing end to end is
// test/integration/announceable.test.ts.
import type { V1Service } from "@kubernetes/client-node";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { apiVersion } from "../api/group.ts";
import { PATHS } from "../api/vocabulary.ts";
import { KubeClient } from "../k8s/client.ts";
import { FakeCluster, waitUntil } from "../k8s/fake-cluster.ts";
import type { AnnounceJudge, AnnounceVerdict } from "./announce-conditions.ts";
import { Controller } from "./controller.ts";
import { controllerMetrics } from "./metrics.ts";

const CONDITION = "ironlb.dev/Announceable";
/** What judging the whole cluster (3 Services here) costs: the next full pass waits 50× this. */
const FULL_PASS_MS = 150;

let cluster: FakeCluster;
let controller: Controller | undefined;
/** The Services each call of the judge was given, in order. */
let calls: string[][];
/** The Services the judge has seen with an IP. */
let seenWithIP: Set<string>;
/** Calls that were given every EndpointSlice: full passes (see "ghost" below). */
let fullPasses: number;

beforeEach(() => {
  cluster = new FakeCluster();
  cluster.put(PATHS.namespaces, { metadata: { name: "shop" } });
  cluster.put(PATHS.ipAddressPools, {
    apiVersion,
    kind: "IPAddressPool",
    metadata: { name: "p", creationTimestamp: "2026-01-01T00:00:00Z" },
    spec: { addresses: ["192.0.2.10-192.0.2.19"] },
  });
  calls = [];
  seenWithIP = new Set();
  fullPasses = 0;
  // A slice of no Service: only a full pass, given the whole cache, hands it to the judge.
  putSlice("ghost", true);
});

afterEach(async () => {
  await controller?.stop();
  controller = undefined;
  await cluster.close();
});

/** Stand-in verdict: announceable when the Service has a ready endpoint. */
const judge: AnnounceJudge = (input) => {
  calls.push(input.services.map((s) => s.metadata?.name ?? "").sort());
  if (input.slices.some((sl) => sl.metadata?.name === "ghost-1")) fullPasses++;
  if (input.services.length >= 3) {
    const until = performance.now() + FULL_PASS_MS;
    while (performance.now() < until);
  }
  const out = new Map<string, AnnounceVerdict>();
  for (const s of input.services) {
    if (!s.status?.loadBalancer?.ingress?.length) continue;
    const name = s.metadata?.name;
    seenWithIP.add(name ?? "");
    const ready = input.slices.some(
      (sl) =>
        sl.metadata?.labels?.["kubernetes.io/service-name"] === name &&
        (sl.endpoints ?? []).some((e) => e.conditions?.ready === true),
    );
    out.set(
      `shop/${name}`,
      ready
        ? { announceable: true }
        : { announceable: false, reason: "NoReadyEndpoints", message: "no ready endpoint" },
    );
  }
  return out;
};

function putService(
  name: string,
  more: { annotations?: Record<string, string>; port?: number; status?: V1Service["status"] } = {},
): void {
  cluster.put(PATHS.services, {
    metadata: {
      name,
      namespace: "shop",
      creationTimestamp: "2026-01-01T00:00:00Z",
      ...(more.annotations ? { annotations: more.annotations } : {}),
    },
    spec: { type: "LoadBalancer", ports: [{ port: more.port ?? 80, protocol: "TCP" }] },
    ...(more.status ? { status: more.status } : {}),
  });
}

function putSlice(service: string, ready: boolean): void {
  cluster.put(PATHS.endpointSlices, {
    metadata: {
      name: `${service}-1`,
      namespace: "shop",
      labels: { "kubernetes.io/service-name": service },
    },
    addressType: "IPv4",
    endpoints: [{ addresses: ["10.0.0.1"], conditions: { ready } }],
  });
}

const service = (name: string) => cluster.get<V1Service>(PATHS.services, name, "shop");
const condition = (name: string) =>
  service(name)?.status?.conditions?.find((c) => c.type === CONDITION);
const ipOf = (name: string) => service(name)?.status?.loadBalancer?.ingress?.[0]?.ip;

async function start(): Promise<void> {
  controller = new Controller(
    new KubeClient({ server: await cluster.endpoint("c1") }),
    {
      ipMode: "VIP",
      concurrency: 1,
      instance: "c1",
      lbClass: "ironlb.dev/lb",
      handleUnclassed: true,
      announce: { judge, namespace: "ironlb-system", announceableMessage: "ok" },
    },
    pino({ level: "silent" }),
    controllerMetrics(),
  );
  await controller.start();
}

describe("the Announceable condition: what is judged again after which change", () => {
  it("a Service's own change is judged alone and at once, not after the throttled full pass", async () => {
    // "a" was reported before (by an earlier controller): False, its endpoint not ready.
    putService("a", {
      status: {
        loadBalancer: { ingress: [{ ip: "192.0.2.10", ipMode: "VIP" }] },
        conditions: [
          {
            type: CONDITION,
            status: "False",
            reason: "NoReadyEndpoints",
            message: "no ready endpoint",
            lastTransitionTime: new Date("2026-01-01T00:00:00Z"),
          },
        ],
      },
    });
    putSlice("a", false);
    for (const n of ["b", "c"]) {
      putService(n);
      putSlice(n, true);
    }
    await start();
    await waitUntil(() => ipOf("b") !== undefined && ipOf("c") !== undefined);
    // The first full pass: every Service, FULL_PASS_MS, so the next full one waits 7.5 s.
    await waitUntil(() => calls.some((c) => c.length === 3));
    await controller!.idle();
    await waitUntil(() => ["a", "b", "c"].every((n) => seenWithIP.has(n)));

    const before = calls.length;
    const t0 = performance.now();
    putSlice("a", true);
    await waitUntil(() => condition("a")?.status === "True", 2_500);
    expect(performance.now() - t0).toBeLessThan(2_500);
    // Judged alone: the cost of a change does not grow with the cluster.
    expect(calls.slice(before)).toEqual([["a"]]);
  });

  it("Services sharing an IP are judged together, no other", async () => {
    const annotations = { "ironlb.dev/allow-shared-ip": "k" };
    putService("a", { annotations });
    putService("b", { annotations, port: 81 });
    putService("c");
    for (const n of ["a", "b", "c"]) putSlice(n, true);
    await start();
    await waitUntil(() => ipOf("a") !== undefined && ipOf("b") !== undefined);
    expect(ipOf("a")).toBe(ipOf("b"));
    await waitUntil(() => ipOf("c") !== undefined);
    await controller!.idle();
    // Each has been judged with its IP (its status written: the last event about it).
    await waitUntil(() => ["a", "b", "c"].every((n) => seenWithIP.has(n)));

    const before = calls.length;
    putSlice("b", false);
    await waitUntil(() => calls.slice(before).some((c) => c.includes("b")));
    expect(calls.slice(before).find((c) => c.includes("b"))).toEqual(["a", "b"]);
  });

  it("a cluster-wide change (an L2Advertisement) judges every Service; writes that change nothing it reads (a pool's status, a Node's other conditions) do not", async () => {
    const node = (conditions: { type: string; status: string }[]) => ({
      metadata: { name: "n1", labels: { rack: "r1" } },
      status: { conditions },
    });
    cluster.put(PATHS.nodes, node([{ type: "Ready", status: "True" }]));
    for (const n of ["a", "b"]) {
      putService(n);
      putSlice(n, true);
    }
    await start();
    await waitUntil(() => ipOf("a") !== undefined && ipOf("b") !== undefined);
    await controller!.idle();
    await waitUntil(() => ["a", "b"].every((n) => seenWithIP.has(n)));
    await waitUntil(() => fullPasses > 0);
    const fullBefore = fullPasses;
    const p = cluster.get<{ status?: object }>(PATHS.ipAddressPools, "p")!;
    cluster.put(PATHS.ipAddressPools, { ...p, status: { assignedIPv4: 7 } });
    cluster.put(
      PATHS.nodes,
      node([
        { type: "Ready", status: "True" },
        { type: "MemoryPressure", status: "False" },
      ]),
    );
    // No event says that nothing happened: three times the debounce of a pass.
    await new Promise((r) => setTimeout(r, 1_500));
    expect(fullPasses).toBe(fullBefore);

    cluster.put(PATHS.l2Advertisements, {
      apiVersion,
      kind: "L2Advertisement",
      metadata: { name: "lan" },
      spec: { ipAddressPools: ["p"] },
    });
    await waitUntil(() => fullPasses > fullBefore);
    expect(calls.at(-1)).toEqual(["a", "b"]);
  });
});
