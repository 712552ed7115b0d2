import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KubeClient } from "./client.ts";
import { EventRecorder, serviceTarget } from "./events.ts";
import { FakeApiServer } from "./fake-apiserver.ts";

const log = pino({ level: "silent" });
const svc = serviceTarget({ metadata: { name: "web", namespace: "shop", uid: "u1" } });

let server: FakeApiServer;
let recorder: EventRecorder;
let now: number;
/** Events as the fake server stores them, by name. */
let stored: Map<string, Record<string, unknown>>;

beforeEach(async () => {
  server = new FakeApiServer();
  stored = new Map();
  server.onRequest = (method, path, _q, body) => {
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/events(?:\/([^/]+))?$/.exec(path);
    if (!m) return { status: 404, body: { message: "no" } };
    if (method === "POST") {
      const ev = JSON.parse(body) as { metadata: { name: string } };
      stored.set(ev.metadata.name, ev);
      return { status: 201, body: ev };
    }
    if (method === "PATCH") {
      const ev = stored.get(m[2]!);
      if (!ev) return { status: 404, body: { message: "gone" } };
      Object.assign(ev, JSON.parse(body));
      return { status: 200, body: ev };
    }
    return { status: 405, body: {} };
  };
  const client = new KubeClient({ server: await server.start() });
  now = Date.parse("2026-03-01T10:00:00Z");
  recorder = new EventRecorder(client, "controller", "pod-1", log, () => now);
});
afterEach(() => server.close());

const methods = () => server.requests.map((r) => r.method);

describe("EventRecorder", () => {
  it("records an Event on the Service with source, reason and timestamps", async () => {
    await recorder.emit(svc, "Warning", "AllocationFailed", "pool empty");
    expect(stored.size).toBe(1);
    const [ev] = [...stored.values()];
    expect(ev).toMatchObject({
      metadata: { namespace: "shop" },
      involvedObject: { kind: "Service", name: "web", namespace: "shop", uid: "u1" },
      type: "Warning",
      reason: "AllocationFailed",
      message: "pool empty",
      count: 1,
      firstTimestamp: "2026-03-01T10:00:00.000Z",
      source: { component: "controller", host: "pod-1" },
      reportingInstance: "pod-1",
    });
  });

  it("folds repeats into one Event with a count and the last time", async () => {
    await recorder.emit(svc, "Warning", "AllocationFailed", "pool empty");
    now += 60_000;
    await recorder.emit(svc, "Warning", "AllocationFailed", "pool empty");
    now += 60_000;
    await recorder.emit(svc, "Warning", "AllocationFailed", "pool empty");
    expect(methods()).toEqual(["POST", "PATCH", "PATCH"]);
    const [ev] = [...stored.values()];
    expect(ev).toMatchObject({ count: 3, lastTimestamp: "2026-03-01T10:02:00.000Z" });
    expect(ev!.firstTimestamp).toBe("2026-03-01T10:00:00.000Z");
  });

  it("does not fold different messages, reasons or objects", async () => {
    await recorder.emit(svc, "Warning", "AllocationFailed", "pool empty");
    await recorder.emit(svc, "Warning", "AllocationFailed", "pool gone");
    await recorder.emit(svc, "Normal", "IPAllocated", "pool empty");
    await recorder.emit({ ...svc, uid: "u2" }, "Warning", "AllocationFailed", "pool empty");
    expect(methods()).toEqual(["POST", "POST", "POST", "POST"]);
  });

  it("starts a new Event after the fold window (10 min), or when the old one is gone", async () => {
    await recorder.emit(svc, "Normal", "R", "m");
    now += 10 * 60_000;
    await recorder.emit(svc, "Normal", "R", "m");
    expect(methods()).toEqual(["POST", "POST"]);
    stored.clear(); // expired by the API server
    now += 1000;
    await recorder.emit(svc, "Normal", "R", "m");
    expect(methods()).toEqual(["POST", "POST", "PATCH", "POST"]);
    expect([...stored.values()][0]).toMatchObject({ count: 1 });
  });

  it("cluster-scoped objects get their Events in the default namespace", async () => {
    await recorder.emit(
      { apiVersion: "ironlb.dev/v1beta1", kind: "IPAddressPool", name: "p" },
      "Warning",
      "PoolOverlap",
      "x",
    );
    expect(server.requests[0]!.path).toBe("/api/v1/namespaces/default/events");
  });

  it("never throws when the API refuses", async () => {
    server.onRequest = () => ({ status: 500, body: { message: "etcd down" } });
    await expect(recorder.emit(svc, "Normal", "R", "m")).resolves.toBeUndefined();
  });
});

describe("EventRecorder lane", () => {
  it("writes at most maxInFlight Events at once, in the order emitted, stamped when emitted", async () => {
    const calls: { name: string; firstTimestamp: string; answer: () => void }[] = [];
    let inFlight = 0;
    let most = 0;
    const api = {
      create: (_path: string, body: { involvedObject: { name: string }; firstTimestamp: string }) =>
        new Promise<void>((resolve) => {
          inFlight++;
          most = Math.max(most, inFlight);
          calls.push({
            name: body.involvedObject.name,
            firstTimestamp: body.firstTimestamp,
            answer: () => {
              inFlight--;
              resolve();
            },
          });
        }),
    } as unknown as KubeClient;
    let t = Date.parse("2026-03-01T10:00:00Z");
    const lane = new EventRecorder(api, "controller", "pod-1", log, () => t, 2);
    const done = ["a", "b", "c", "d", "e"].map((name, i) => {
      t += 1000 * i;
      return lane.emit(
        serviceTarget({ metadata: { name, namespace: "shop", uid: name } }),
        "Normal",
        "IPAllocated",
        "x",
      );
    });
    const stamps = [...Array(5).keys()].map((i) => t - 1000 * (10 - (i * (i + 1)) / 2));
    expect(lane.pending).toBe(5);
    // Answer them one by one, as the apiserver would, checking the window each time.
    for (let i = 0; i < 5; i++) {
      await vi.waitFor(() => expect(calls.length).toBe(Math.min(i + 2, 5)));
      calls[i]!.answer();
    }
    await Promise.all(done);
    expect(most).toBe(2);
    expect(calls.map((c) => c.name)).toEqual(["a", "b", "c", "d", "e"]);
    expect(calls.map((c) => Date.parse(c.firstTimestamp))).toEqual(stamps);
    expect(lane.pending).toBe(0);
  });
});

describe("EventRecorder under a burst of distinct Events", () => {
  /** Emits `n` distinct Events through an API that answers at once: ms taken. */
  async function burst(n: number): Promise<number> {
    const instant = { create: async () => ({}), mergePatch: async () => ({}) };
    const r = new EventRecorder(instant as unknown as KubeClient, "controller", "p", log);
    const t = performance.now();
    const all: Promise<void>[] = [];
    for (let i = 0; i < n; i++)
      all.push(r.emit({ ...svc, name: `s${i}`, uid: `u${i}` }, "Warning", "NotAnnounceable", "x"));
    await Promise.all(all);
    return performance.now() - t;
  }

  it("costs time linear in their number (10,000 Services each told something at once)", async () => {
    await burst(1_200); // warm-up
    const small = Math.max(await burst(1_200), 5);
    const large = await burst(12_000);
    // Ten times as many: ~10× the time. A sweep of every folded Event per Event made it
    // ~150× (5 s for 12,000 on a 2-core machine).
    expect(large / small).toBeLessThan(40);
  });
});
