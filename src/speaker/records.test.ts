// The speaker's IPAnnouncement records and deadlines, in process: real informers against the
// fake apiserver (which keeps the records it is sent and streams them back as watch events),
// the real announcer on an in-memory socket, one eligible node, membership stubbed.
import pino from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import { PATHS } from "../api/vocabulary.ts";
import { KubeClient } from "../k8s/client.ts";
import { type Answer, FakeApiServer } from "../k8s/fake-apiserver.ts";
import { Announcer } from "../layer2/announcer.ts";
import { arpReply, decodeArpFrame } from "../layer2/codec.ts";
import type { PacketSocketKind } from "../layer2/packet-socket.ts";
import type { Membership } from "./membership.ts";
import { speakerMetrics } from "./metrics.ts";
import { ipAnnouncementName, recordRetryDelayMs, Speaker } from "./speaker.ts";
import { MemorySocket, soloMembership } from "./testkit.ts";

// The host's interfaces as the speaker reads them: one LAN link.
vi.mock("node:os", async (importOriginal) => ({
  ...(await importOriginal<typeof import("node:os")>()),
  networkInterfaces: () => ({
    eth0: [
      {
        address: "192.0.2.2",
        netmask: "255.255.255.0",
        family: "IPv4",
        mac: "02:00:00:00:01:00",
        internal: false,
        cidr: "192.0.2.2/24",
      },
    ],
  }),
}));

const NODE = "node-a";
const IP = "192.0.2.10";
const RECORD = `${PATHS.ipAnnouncements}/${ipAnnouncementName(IP)}`;
const STRANGER = "02:00:00:00:00:66";

const service = (name: string) => ({
  metadata: {
    name,
    namespace: "shop",
    resourceVersion: "1",
    uid: `uid-${name}`,
    annotations: { "ironlb.dev/ip-allocated-from-pool": "default" },
  },
  spec: { type: "LoadBalancer", ports: [{ port: 80, protocol: "TCP" }] },
  status: { loadBalancer: { ingress: [{ ip: IP }] } },
});
const slice = (svc: string) => ({
  metadata: {
    name: `${svc}-1`,
    namespace: "shop",
    resourceVersion: "1",
    labels: { "kubernetes.io/service-name": svc },
  },
  addressType: "IPv4",
  endpoints: [{ addresses: ["10.0.0.1"], conditions: { ready: true }, nodeName: NODE }],
});
const objects: Record<string, unknown[]> = {
  "/api/v1/services": [service("web")],
  "/apis/discovery.k8s.io/v1/endpointslices": [slice("web")],
  "/api/v1/nodes": [
    {
      metadata: { name: NODE, resourceVersion: "1" },
      status: { conditions: [{ type: "Ready", status: "True" }] },
    },
  ],
  "/apis/ironlb.dev/v1beta1/ipaddresspools": [
    {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "IPAddressPool",
      metadata: { name: "default", resourceVersion: "1", uid: "pool" },
      spec: { addresses: ["192.0.2.0/24"] },
    },
  ],
  "/apis/ironlb.dev/v1beta1/l2advertisements": [
    {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "L2Advertisement",
      metadata: { name: "l2", resourceVersion: "1", uid: "l2" },
      spec: { interfaces: ["eth0"] },
    },
  ],
};

interface Harness {
  server: FakeApiServer;
  speaker: Speaker;
  announcer: Announcer;
  /** The announcer's current ARP socket on eth0 (it reopens one after an idle time). */
  socket: () => MemorySocket;
  /** Every frame sent, over all sockets. */
  sent: Buffer[];
  lines: Array<Record<string, unknown>>;
  /** The IPAnnouncements the fake apiserver holds, by name. */
  records: Map<string, { metadata: { name: string; resourceVersion: string }; status: unknown }>;
  /** Answers for the next record writes (PATCH or POST), before the store's own. */
  failWrites: Answer[];
  /** Another node writes its record for IP (stored and streamed to the watch). */
  peerRecord: (node: string) => void;
  /** The membership stub, whose onRejoin the speaker set. */
  membership: Membership;
}

let h: Harness | undefined;

async function start(
  opts: { probeMs?: number; conflictRetryMs?: number; ads?: unknown[] } = {},
): Promise<Harness> {
  const lists: Record<string, unknown[]> = {
    ...objects,
    ...(opts.ads ? { "/apis/ironlb.dev/v1beta1/l2advertisements": opts.ads } : {}),
  };
  const server = new FakeApiServer();
  const records: Harness["records"] = new Map();
  const failWrites: Answer[] = [];
  let rv = 10;
  const sendRecord = (type: string, obj: unknown) => {
    for (const w of server.openWatches()) if (w.path === PATHS.ipAnnouncements) w.send(type, obj);
  };
  server.onRequest = (method, path, _query, body) => {
    if (method === "GET")
      return {
        status: 200,
        body: {
          kind: "List",
          metadata: { resourceVersion: "1" },
          items: path === PATHS.ipAnnouncements ? [...records.values()] : (lists[path] ?? []),
        },
      };
    if (!path.startsWith(PATHS.ipAnnouncements)) return { status: 201, body: {} };
    const failure = failWrites.shift();
    if (failure) return failure;
    const sent = JSON.parse(body) as { metadata?: { name: string }; status: unknown };
    const name = method === "POST" ? sent.metadata!.name : path.split("/").at(-1)!;
    const prev = records.get(name);
    if (method === "PATCH" && !prev)
      return { status: 404, body: { kind: "Status", code: 404, message: "not found" } };
    const obj = {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "IPAnnouncement",
      metadata: { name, resourceVersion: String(++rv) },
      status: { ...((prev?.status as object) ?? {}), ...(sent.status as object) },
    };
    records.set(name, obj);
    sendRecord(prev ? "MODIFIED" : "ADDED", obj);
    return { status: prev ? 200 : 201, body: obj };
  };
  const api = new KubeClient({ server: await server.start() });
  const lines: Harness["lines"] = [];
  const log = pino({ level: "info" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  const sockets = new Map<PacketSocketKind, MemorySocket>();
  const sent: Buffer[] = [];
  const announcer = new Announcer({
    openSocket: (ifname, kind) => {
      const s = new MemorySocket(ifname, kind, sent);
      sockets.set(kind, s);
      return s;
    },
    kernelFilter: false,
  });
  const membership = soloMembership(NODE);
  const speaker = new Speaker(
    api,
    {
      node: NODE,
      probeMs: opts.probeMs ?? 0,
      conflictRetryMs: opts.conflictRetryMs ?? 30_000,
      lbClass: "ironlb.dev/lb",
      handleUnclassed: true,
    },
    announcer,
    membership,
    speakerMetrics(),
    log,
  );
  speaker.onLinks(new Map([["eth0", true]]));
  h = {
    server,
    speaker,
    announcer,
    socket: () => sockets.get("arp")!,
    sent,
    lines,
    records,
    failWrites,
    membership,
    peerRecord: (node) => {
      const name = ipAnnouncementName(IP);
      const obj = {
        apiVersion: "ironlb.dev/v1beta1",
        kind: "IPAnnouncement",
        metadata: { name, resourceVersion: String(++rv) },
        status: { ip: IP, node, interfaces: ["eth0"], services: ["shop/web"] },
      };
      records.set(name, obj);
      sendRecord("MODIFIED", obj);
    },
  };
  return h;
}

afterEach(async () => {
  if (!h) return;
  await h.speaker.stop();
  h.announcer.close();
  await h.server.close();
  h = undefined;
  vi.restoreAllMocks();
});

/** The open watch of `path` (it opens after the informer's list). */
const watchOf = (x: Harness, path: string) =>
  vi.waitFor(
    () => {
      const w = x.server.openWatches().find((o) => o.path === path);
      if (!w) throw new Error(`no watch of ${path} yet`);
      return w;
    },
    { timeout: 2000, interval: 5 },
  );

const recordOf = (x: Harness) => x.records.get(ipAnnouncementName(IP))?.status;

describe("Speaker: IPAnnouncement records are level-triggered", () => {
  it("retries a record write that failed, with a log line naming the IP, until it lands", async () => {
    const x = await start();
    x.failWrites.push({
      status: 500,
      body: { kind: "Status", code: 500, message: "etcdserver: request timed out" },
    });
    await x.speaker.start();
    await vi.waitFor(() => expect(recordOf(x)).toBeDefined(), { timeout: 2000, interval: 20 });
    expect(recordOf(x)).toMatchObject({
      ip: IP,
      node: NODE,
      interfaces: ["eth0"],
      services: ["shop/web"],
    });
    expect(x.lines.filter((l) => l.msg === "could not record the announcement")).toEqual([
      expect.objectContaining({ level: 40, ip: IP, attempt: 1, services: ["shop/web"] }),
    ]);
    const writes = x.server.requests.filter(
      (r) => r.path.startsWith(PATHS.ipAnnouncements) && r.method !== "GET",
    );
    // The failed patch, then the patch that finds no record and the create.
    expect(writes.map((r) => `${r.method} ${r.path}`)).toEqual([
      `PATCH ${RECORD}`,
      `PATCH ${RECORD}`,
      `POST ${PATHS.ipAnnouncements}`,
    ]);
  });

  it("updates the record's Service list when a second Service joins the shared IP", async () => {
    const x = await start();
    await x.speaker.start();
    await vi.waitFor(() => expect(recordOf(x)).toMatchObject({ services: ["shop/web"] }), {
      timeout: 2000,
      interval: 20,
    });
    const since = (recordOf(x) as { since: string }).since;
    (await watchOf(x, "/apis/discovery.k8s.io/v1/endpointslices")).send("ADDED", slice("api"));
    (await watchOf(x, "/api/v1/services")).send("ADDED", service("api"));
    await vi.waitFor(
      () => expect(recordOf(x)).toMatchObject({ services: ["shop/api", "shop/web"] }),
      { timeout: 2000, interval: 20 },
    );
    // The same announcement, not a new one: `since` is kept.
    expect(recordOf(x)).toMatchObject({ node: NODE, interfaces: ["eth0"], since });
  });
});

describe("Speaker: records after a rejoin", () => {
  it("does not overwrite the record of a node that took the IP over while a probe says it answers", async () => {
    const x = await start();
    await x.speaker.start();
    await vi.waitFor(() => expect(recordOf(x)).toMatchObject({ node: NODE }), {
      timeout: 2000,
      interval: 20,
    });
    // Back from a stall: node-b took the IP over meanwhile, its record arrives, and it
    // answers our probe for the IP.
    x.membership.onRejoin("stall", 2000);
    x.sent.length = 0;
    // Record writes are counted where they start (the request may still be on its way).
    const patch = vi.spyOn(KubeClient.prototype, "mergePatch");
    const create = vi.spyOn(KubeClient.prototype, "create");
    x.peerRecord("node-b");
    await vi.waitFor(
      () =>
        expect(
          x.sent.filter((f) => {
            const d = decodeArpFrame(f);
            return d?.arp.senderIp === "0.0.0.0" && d.arp.targetIp === IP;
          }),
        ).not.toEqual([]),
      { timeout: 2000, interval: 5 },
    );
    x.socket().deliver(arpReply(STRANGER, IP, "02:00:00:00:01:00", "0.0.0.0"));
    await vi.waitFor(
      () =>
        expect(x.lines.map((l) => l.msg)).toContain(
          "rejoined: another host answers this IP, not re-announcing it yet",
        ),
      { timeout: 2000, interval: 5 },
    );
    // Its record stands: ours would make it let go while clients still go to it.
    const writes = [...patch.mock.calls, ...create.mock.calls].filter((c) =>
      String(c[0]).startsWith(PATHS.ipAnnouncements),
    );
    expect(writes).toEqual([]);
    expect(recordOf(x)).toMatchObject({ node: "node-b" });
  });
});

describe("recordRetryDelayMs", () => {
  it.each([
    { failures: 1, random: 0, ms: 250 },
    { failures: 1, random: 0.999, ms: 499.75 },
    { failures: 2, random: 0, ms: 500 },
    { failures: 4, random: 0.5, ms: 3000 },
    { failures: 7, random: 0, ms: 15_000 },
    { failures: 8, random: 0.999, ms: 29_985 },
    { failures: 1000, random: 0.999, ms: 29_985 },
  ])("after $failures failures with random $random: $ms ms", ({ failures, random, ms }) => {
    expect(recordRetryDelayMs(failures, random)).toBeCloseTo(ms, 6);
  });
});

describe("Speaker: deadlines on the monotonic clock", () => {
  it("probes again after conflictRetryMs although the wall clock stepped back an hour", async () => {
    const x = await start({ probeMs: 10_000, conflictRetryMs: 100 });
    await x.speaker.start();
    const probes = () =>
      x.sent.filter((f) => {
        const d = decodeArpFrame(f);
        return d?.arp.senderIp === "0.0.0.0" && d.arp.targetIp === IP;
      });
    await vi.waitFor(() => expect(probes()).toHaveLength(1), { timeout: 2000, interval: 10 });
    // Another host answers the probe; then NTP steps the wall clock back an hour.
    const wall = Date.now();
    vi.spyOn(Date, "now").mockReturnValue(wall - 3_600_000);
    x.socket().deliver(arpReply(STRANGER, IP, "02:00:00:00:01:00", "0.0.0.0"));
    await vi.waitFor(
      () =>
        expect(x.lines.filter((l) => l.msg === "address conflict")).toEqual([
          expect.objectContaining({ ip: IP, mac: STRANGER, during: "probe" }),
        ]),
      { timeout: 1000, interval: 5 },
    );
    // 100 ms later on the monotonic clock the IP is probed again.
    await vi.waitFor(() => expect(probes()).toHaveLength(2), { timeout: 2000, interval: 10 });
  });
});

const ad = (name: string, spec: Record<string, unknown>) => ({
  apiVersion: "ironlb.dev/v1beta1",
  kind: "L2Advertisement",
  metadata: { name, resourceVersion: "1", uid: name },
  spec,
});

describe("Speaker: what it reads goes through the checkers of src/api", () => {
  it("skips a malformed L2Advertisement, saying so once per version", async () => {
    // `ipAddressPools` must be a list: read as it is, the string "default" would select the
    // pool (a string has includes() too) and the IP would be announced on its say-so.
    const x = await start({ ads: [ad("bad", { ipAddressPools: "default" })] });
    const evaluations: number[] = [];
    x.speaker.onReconciled = () => evaluations.push(1);
    await x.speaker.start();
    await vi.waitFor(() => expect(evaluations.length).toBeGreaterThan(0), {
      timeout: 2000,
      interval: 10,
    });
    // More evaluations of the same object version: no further line.
    (await watchOf(x, "/api/v1/nodes")).send("MODIFIED", {
      metadata: { name: NODE, resourceVersion: "2" },
      status: { conditions: [{ type: "Ready", status: "True" }] },
    });
    await vi.waitFor(() => expect(evaluations.length).toBeGreaterThan(1), {
      timeout: 2000,
      interval: 10,
    });
    // Not announced on the malformed object's say-so.
    expect(x.announcer.counters.gratuitousSent).toBe(0);
    expect(recordOf(x)).toBeUndefined();
    expect(x.lines.filter((l) => l.msg === "invalid L2Advertisement")).toEqual([
      expect.objectContaining({
        level: 40,
        name: "bad",
        resourceVersion: "1",
        errors: ["spec.ipAddressPools: must be of type array"],
        using: "nothing: skipped",
      }),
    ]);
    expect(x.lines.filter((l) => l.msg === "IP not announced by any node")).toEqual([
      expect.objectContaining({ ip: IP, reason: expect.stringContaining("no L2Advertisement") }),
    ]);
  });

  it("uses an L2Advertisement with a field it does not know (a newer CRD), saying which", async () => {
    const x = await start({ ads: [ad("next", { interfaces: ["eth0"], someFutureField: 3 })] });
    await x.speaker.start();
    await vi.waitFor(() => expect(recordOf(x)).toMatchObject({ interfaces: ["eth0"] }), {
      timeout: 2000,
      interval: 20,
    });
    expect(x.lines.filter((l) => l.msg === "unknown fields ignored (a newer CRD?)")).toEqual([
      expect.objectContaining({
        kind: "L2Advertisement",
        name: "next",
        fields: ["spec.someFutureField"],
      }),
    ]);
    expect(x.lines.filter((l) => l.msg === "invalid L2Advertisement")).toEqual([]);
  });
});
