// The speaker in process: real informers against the fake apiserver, the real announcer on
// an in-memory socket, membership stubbed. The LAN-level proofs are in test/e2e.
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KubeClient } from "../k8s/client.ts";
import { FakeApiServer } from "../k8s/fake-apiserver.ts";
import { Informer } from "../k8s/informer.ts";
import { Announcer } from "../layer2/announcer.ts";
import { gratuitousArpRequest, unsolicitedNeighborAdvertisement } from "../layer2/codec.ts";
import type { PacketSocketKind } from "../layer2/packet-socket.ts";
import { speakerMetrics } from "./metrics.ts";
import { Speaker } from "./speaker.ts";
import { MemorySocket, soloMembership } from "./testkit.ts";

const NODE = "node-a";
const STRANGER = "02:00:00:00:00:66";
const CLAIMED = "192.0.2.10";
const OTHER_OWNED = "192.0.2.11";
const CLAIMED6 = "2001:db8::10";
/** Services besides the two that share CLAIMED: what a scan per frame would walk. */
const SERVICES = 2000;

const service = (name: string, ip: string) => ({
  metadata: { name, namespace: "shop", resourceVersion: "1", uid: `uid-${name}` },
  spec: { type: "LoadBalancer", ports: [{ port: 80, protocol: "TCP" }] },
  status: { loadBalancer: { ingress: [{ ip }] } },
});

let server: FakeApiServer;
let speaker: Speaker;
let announcer: Announcer;
/** The announcer's sockets on eth0, by kind. */
let sockets: Map<PacketSocketKind, MemorySocket>;
let lines: Array<Record<string, unknown>>;
/** Added to performance.now(): the speaker's claim window is on the monotonic clock. */
let skew: number;

beforeEach(async () => {
  skew = 0;
  const realNow = performance.now.bind(performance);
  vi.spyOn(performance, "now").mockImplementation(() => realNow() + skew);
  const services = [
    service("web", CLAIMED),
    service("api", CLAIMED),
    service("db", OTHER_OWNED),
    service("web6", CLAIMED6),
    ...Array.from({ length: SERVICES }, (_, i) =>
      service(`s${i}`, `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`),
    ),
  ];
  server = new FakeApiServer();
  server.onRequest = (method, path) => ({
    status: method === "GET" ? 200 : 404,
    body: {
      kind: "List",
      metadata: { resourceVersion: "1" },
      items: path === "/api/v1/services" ? services : [],
    },
  });
  const api = new KubeClient({ server: await server.start() });
  lines = [];
  const log = pino({ level: "info" }, { write: (s: string) => lines.push(JSON.parse(s)) });
  sockets = new Map();
  announcer = new Announcer({
    openSocket: (ifname, kind) => {
      const socket = new MemorySocket(ifname, kind);
      sockets.set(kind, socket);
      return socket;
    },
    kernelFilter: false,
  });
  const membership = soloMembership(NODE);
  speaker = new Speaker(
    api,
    {
      node: NODE,
      probeMs: 0,
      conflictRetryMs: 30_000,
      lbClass: "ironlb.dev/lb",
      handleUnclassed: true,
    },
    announcer,
    membership,
    speakerMetrics(),
    log,
  );
  const evaluated = new Promise<void>((r) => {
    speaker.onReconciled = () => r();
  });
  await speaker.start();
  await evaluated;
  // Answering for the IPs as their owner would (the speaker itself would only with an
  // eligible node, which this in-process setup does not model).
  announcer.announce(CLAIMED, "eth0");
  announcer.announce(OTHER_OWNED, "eth0");
  announcer.announce(CLAIMED6, "eth0");
});

afterEach(async () => {
  await speaker.stop();
  announcer.close();
  await server.close();
  vi.restoreAllMocks();
});

const conflictLines = (ip: string) =>
  lines.filter((l) => l.msg === "address conflict" && l.ip === ip);

describe("Speaker: another host claiming an IP this node announces", () => {
  it("costs a lookup per frame, not a walk over the Services, and logs once per IP per window", () => {
    const arp = sockets.get("arp")!;
    const ndp = sockets.get("ndp")!;
    const list = vi.spyOn(Informer.prototype, "list");
    const claim = gratuitousArpRequest(STRANGER, CLAIMED);
    for (let i = 0; i < 1000; i++) arp.deliver(claim);
    arp.deliver(gratuitousArpRequest(STRANGER, OTHER_OWNED));
    // NDP: another host's unsolicited advertisements for an owned IPv6 address.
    const claim6 = unsolicitedNeighborAdvertisement(STRANGER, CLAIMED6);
    for (let i = 0; i < 1000; i++) ndp.deliver(claim6);
    expect(announcer.counters.conflicts).toBe(2001);
    // No informer cache is read for any of the 2,001 frames.
    expect(list).not.toHaveBeenCalled();
    expect(conflictLines(CLAIMED)).toEqual([
      expect.objectContaining({
        level: 40,
        mac: STRANGER,
        interface: "eth0",
        during: "owned",
        services: ["shop/api", "shop/web"],
        claimsNotLogged: 0,
      }),
    ]);
    // The window is per IP: a claim on another IP is not hidden by the flood on the first.
    expect(conflictLines(OTHER_OWNED)).toEqual([
      expect.objectContaining({ services: ["shop/db"], claimsNotLogged: 0 }),
    ]);
    expect(conflictLines(CLAIMED6)).toEqual([
      expect.objectContaining({ mac: STRANGER, services: ["shop/web6"], claimsNotLogged: 0 }),
    ]);

    // Past the window, the next claim is logged with what the window dropped.
    skew += 3001;
    arp.deliver(claim);
    expect(conflictLines(CLAIMED)).toHaveLength(2);
    expect(conflictLines(CLAIMED)[1]).toMatchObject({ claimsNotLogged: 999 });
    expect(list).not.toHaveBeenCalled();
  });
});
