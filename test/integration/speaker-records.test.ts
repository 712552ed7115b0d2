// Issue 16, finding 12: the speaker's IPAnnouncement records are level-triggered. A real
// Speaker (informers, record writes) against the real apiserver; the announcer on an
// in-memory socket and membership stubbed (one live node): what is judged is the record the
// apiserver holds, as peers and `ironlb status` read it.
import pino from "pino";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { PATHS } from "../../src/api/vocabulary.ts";
import { KubeClient } from "../../src/k8s/client.ts";
import { Announcer } from "../../src/layer2/announcer.ts";
import { speakerMetrics } from "../../src/speaker/metrics.ts";
import { ipAnnouncementName, Speaker } from "../../src/speaker/speaker.ts";
import { MemorySocket, soloMembership } from "../../src/speaker/testkit.ts";
import { applyCRDs, createNamespace, createPool, deletePool, waitFor } from "../support/cluster.ts";

// The host's interfaces as the speaker reads them: one LAN link (no netns needed here).
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

const NODE = `records-${process.pid}`;
const IP = "192.0.2.77";
const RECORD = `${PATHS.ipAnnouncements}/${ipAnnouncementName(IP)}`;

type Record_ = {
  metadata: { uid: string };
  status?: { node?: string; interfaces?: string[]; services?: string[] };
};

describe("speaker: IPAnnouncement records follow what is announced", () => {
  const api = KubeClient.load(inject("kubeconfig"));
  let ns: string;
  let pool: string;
  let speaker: Speaker;
  let announcer: Announcer;
  const ad = `records-${process.pid}`;

  /** A Service of `ns` holding IP (status written as the controller would) with a ready endpoint on NODE. */
  async function service(name: string, port: number): Promise<void> {
    await api.create(`/api/v1/namespaces/${ns}/services`, {
      metadata: { name, annotations: { "ironlb.dev/ip-allocated-from-pool": pool } },
      spec: { type: "LoadBalancer", ports: [{ port, protocol: "TCP" }] },
    });
    await api.mergePatch(`/api/v1/namespaces/${ns}/services/${name}/status`, {
      status: { loadBalancer: { ingress: [{ ip: IP, ipMode: "VIP" }] } },
    });
    await api.create(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
      metadata: { name: `${name}-1`, labels: { "kubernetes.io/service-name": name } },
      addressType: "IPv4",
      endpoints: [{ addresses: ["10.0.0.1"], conditions: { ready: true }, nodeName: NODE }],
      ports: [{ port: 8080, protocol: "TCP" }],
    });
  }

  const record = () => api.get<Record_>(RECORD).catch(() => undefined);

  beforeAll(async () => {
    await applyCRDs();
    ns = await createNamespace("records");
    pool = `records-${process.pid}`;
    await createPool(pool, { addresses: ["192.0.2.64/26"] });
    await api.create(`/apis/ironlb.dev/v1beta1/l2advertisements`, {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "L2Advertisement",
      metadata: { name: ad },
      spec: { ipAddressPools: [pool], interfaces: ["eth0"] },
    });
    await api.create("/api/v1/nodes", { metadata: { name: NODE } });
    await api.mergePatch(`/api/v1/nodes/${NODE}/status`, {
      status: { conditions: [{ type: "Ready", status: "True", reason: "Test", message: "" }] },
    });
    await service("web", 80);
    announcer = new Announcer({
      openSocket: (ifname, kind) => new MemorySocket(ifname, kind),
      kernelFilter: false,
    });
    const membership = soloMembership(NODE);
    speaker = new Speaker(
      api,
      { node: NODE, probeMs: 0, conflictRetryMs: 30_000, lbClass: "x", handleUnclassed: true },
      announcer,
      membership,
      speakerMetrics(),
      pino({ level: "silent" }),
    );
    speaker.onLinks(new Map([["eth0", true]]));
    await speaker.start();
  });

  afterAll(async () => {
    await speaker?.stop();
    announcer?.close();
    await api.delete(RECORD).catch(() => undefined);
    await api.delete(`/apis/ironlb.dev/v1beta1/l2advertisements/${ad}`).catch(() => undefined);
    await api.delete(`/api/v1/nodes/${NODE}`).catch(() => undefined);
    await deletePool(pool).catch(() => undefined);
  });

  it("records the announcement, then the second Service that joins the shared IP", async () => {
    const first = await waitFor("the record", async () => {
      const r = await record();
      return r?.status?.services?.length ? r : undefined;
    });
    expect(first.status).toMatchObject({
      node: NODE,
      interfaces: ["eth0"],
      services: [`${ns}/web`],
    });
    await service("api", 443);
    const joined = await waitFor(
      "the record to name both Services",
      async () => {
        const r = await record();
        return r?.status?.services?.length === 2 ? r : undefined;
      },
      10_000,
    );
    expect(joined.status?.services).toEqual([`${ns}/api`, `${ns}/web`]);
  });

  it("writes the record again when it is deleted while the IP stays held", async () => {
    const before = await record();
    expect(before?.status?.node).toBe(NODE);
    await api.delete(RECORD);
    const again = await waitFor(
      "the record written again",
      async () => {
        const r = await record();
        return r && r.metadata.uid !== before?.metadata.uid ? r : undefined;
      },
      10_000,
    );
    expect(again.status).toMatchObject({ node: NODE, interfaces: ["eth0"] });
    expect(again.status?.services).toEqual([`${ns}/api`, `${ns}/web`]);
  });
});
