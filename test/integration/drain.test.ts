// `ironlb drain` / `ironlb undrain` (issue 21, planned handover) against the real apiserver:
// the real command sets and removes the Node annotation and waits on what real Speakers
// (informers, records; announcers on a LAN in memory, membership as the test says) publish
// in their IPAnnouncements: an IP moves and the command says where, an IP no other node may
// announce is kept and makes it exit 3, a new owner that never shows up makes it time out.
import pino from "pino";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { PATHS } from "../../src/api/vocabulary.ts";
import { KubeClient } from "../../src/k8s/client.ts";
import { Announcer } from "../../src/layer2/announcer.ts";
import { speakerMetrics } from "../../src/speaker/metrics.ts";
import { ipAnnouncementName, Speaker } from "../../src/speaker/speaker.ts";
import { Lan, MembershipGroup } from "../../src/speaker/testkit.ts";
import {
  applyCRDs,
  createNamespace,
  createPool,
  deletePool,
  runIronlb,
  waitFor,
} from "../support/cluster.ts";

const ironlb = (...args: string[]) => runIronlb(args);

const tag = `drain-${process.pid}`;
// Services of this class only: speakers here leave other files' Services alone.
const CLASS = `ironlb.dev/${tag}`;
const NODES = [`${tag}-a`, `${tag}-b`, `${tag}-c`] as const;
const POOL = tag;
// Addresses no other integration file's pool holds.
const IP_MOVE = "198.51.100.216";
const IP_LOCAL = "198.51.100.217";
const IP_STUCK = "198.51.100.218";

describe("ironlb drain / undrain", () => {
  const api = KubeClient.load(inject("kubeconfig"));
  const lan = new Lan();
  const group = new MembershipGroup();
  const speakers = new Map<string, { speaker: Speaker; announcer: Announcer }>();
  let ns: string;

  const annotation = async (node: string) =>
    (
      await api.get<{ metadata: { annotations?: Record<string, string> } }>(
        `${PATHS.nodes}/${node}`,
      )
    ).metadata.annotations?.["ironlb.dev/drain"];
  /** `ironlb drain NODE` as the tests run it: this file's Services only, then `extra`. */
  const drain = (node: string, ...extra: string[]) =>
    ironlb(
      "drain",
      node,
      "--kubeconfig",
      inject("kubeconfig"),
      "--lb-class",
      CLASS,
      "--ignore-unclassed",
      ...extra,
    );
  /** What each speaker logged (info and up), to wait on what it did. */
  const logs = new Map<string, Record<string, unknown>[]>();
  const recordOf = async (ip: string) =>
    (
      await api
        .get<{ status?: { node?: string } }>(`${PATHS.ipAnnouncements}/${ipAnnouncementName(ip)}`)
        .catch(() => undefined)
    )?.status?.node;
  const announcing = (ip: string) =>
    [...speakers].filter(([, s]) => s.announcer.isAnnounced(ip)).map(([n]) => n);

  async function service(name: string, ip: string, endpointsOn: readonly string[], local = false) {
    await api.create(`/api/v1/namespaces/${ns}/services`, {
      metadata: { name, annotations: { "ironlb.dev/ip-allocated-from-pool": POOL } },
      spec: {
        type: "LoadBalancer",
        loadBalancerClass: CLASS,
        externalTrafficPolicy: local ? "Local" : "Cluster",
        ports: [{ port: 80, protocol: "TCP" }],
      },
    });
    await api.mergePatch(`/api/v1/namespaces/${ns}/services/${name}/status`, {
      status: { loadBalancer: { ingress: [{ ip, ipMode: "VIP" }] } },
    });
    await api.create(`/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, {
      metadata: { name: `${name}-1`, labels: { "kubernetes.io/service-name": name } },
      addressType: "IPv4",
      endpoints: endpointsOn.map((n, i) => ({
        addresses: [`10.0.0.${i + 1}`],
        conditions: { ready: true },
        nodeName: n,
      })),
      ports: [{ port: 8080, protocol: "TCP" }],
    });
  }

  async function startSpeaker(node: string, i: number) {
    const mac = `02:00:00:00:21:0${i}`;
    const lines: Record<string, unknown>[] = [];
    logs.set(node, lines);
    const announcer = new Announcer({
      openSocket: (ifname, kind) => lan.socket(ifname, kind, mac),
      kernelFilter: false,
      replyLimits: false,
    });
    const speaker = new Speaker(
      api,
      {
        node,
        probeMs: 0,
        conflictRetryMs: 30_000,
        lbClass: CLASS,
        handleUnclassed: false,
        hostInterfaces: () => [
          {
            name: "eth0",
            up: true,
            virtual: false,
            mac,
            addresses: [
              {
                address: `198.51.100.${220 + i}`,
                family: "IPv4",
                internal: false,
                cidr: `198.51.100.${220 + i}/24`,
              },
            ],
          },
        ],
      },
      announcer,
      group.member(node),
      speakerMetrics(),
      pino(
        { level: "info" },
        { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) },
      ),
    );
    speakers.set(node, { speaker, announcer });
    await speaker.start();
  }

  beforeAll(async () => {
    await applyCRDs();
    ns = await createNamespace("drain");
    await createPool(POOL, {
      addresses: ["198.51.100.216/30"],
      autoAssign: false,
      serviceAllocation: { namespaces: [ns] },
    });
    await api.create(PATHS.l2Advertisements, {
      apiVersion: "ironlb.dev/v1beta1",
      kind: "L2Advertisement",
      metadata: { name: tag },
      spec: { ipAddressPools: [POOL] },
    });
    for (const n of NODES) {
      await api.create(PATHS.nodes, { metadata: { name: n } });
      await api.mergePatch(`${PATHS.nodes}/${n}/status`, {
        status: { conditions: [{ type: "Ready", status: "True", reason: "Test", message: "" }] },
      });
      // The Leases `ironlb drain` reads liveness from (as `ironlb status` does).
      await api.create(`/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`, {
        metadata: { name: `ironlb-speaker-${n}`, labels: { "ironlb.dev/speaker": "true" } },
        spec: {
          holderIdentity: n,
          leaseDurationSeconds: 3600,
          renewTime: new Date().toISOString().replace("Z", "000Z"),
        },
      });
    }
    // Speakers on a and b only: c's Lease says live, but nothing runs there (the stuck case).
    await startSpeaker(NODES[0], 1);
    await startSpeaker(NODES[1], 2);
  });

  afterAll(async () => {
    for (const { speaker, announcer } of speakers.values()) {
      await speaker.stop();
      announcer.close();
    }
    const gone = (p: string) => api.delete(p).catch(() => undefined);
    for (const s of ["move", "local", "stuck"])
      await gone(`/api/v1/namespaces/${ns}/services/${s}`);
    for (const ip of [IP_MOVE, IP_LOCAL, IP_STUCK])
      await gone(`${PATHS.ipAnnouncements}/${ipAnnouncementName(ip)}`);
    await gone(`${PATHS.l2Advertisements}/${tag}`);
    for (const n of NODES) await gone(`${PATHS.nodes}/${n}`);
    await deletePool(POOL).catch(() => undefined);
  });

  it("drain moves the IP to the other node, says where, exits 0; undrain removes the annotation and moves nothing back", async () => {
    const [a, b] = NODES;
    // Endpoints on a and b only: c (no speaker) is not eligible for it under Local.
    await service("move", IP_MOVE, [a, b], true);
    const owner = await waitFor("an owner recorded", async () => {
      const n = await recordOf(IP_MOVE);
      return n && announcing(IP_MOVE).join() === n ? n : undefined;
    });
    const peer = owner === a ? b : a;
    const r = await drain(owner, "--timeout", "30");
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(
      `node ${owner} drained (ironlb.dev/drain=true); 1 IP(s) announced from it`,
    );
    expect(r.stdout).toContain(`${IP_MOVE}: moved to ${peer}`);
    expect(r.stdout).toContain(`${owner} announces nothing: drained`);
    expect(r.code).toBe(0);
    expect(await annotation(owner)).toBe("true");
    expect(await recordOf(IP_MOVE)).toBe(peer);
    await waitFor("the drained node quiet", async () =>
      announcing(IP_MOVE).join() === peer ? true : undefined,
    );

    const logged = logs.get(owner)?.length ?? 0;
    const u = await ironlb("undrain", owner, "--kubeconfig", inject("kubeconfig"));
    expect(u).toEqual({ code: 0, stdout: `node ${owner} undrained\n`, stderr: "" });
    expect(await annotation(owner)).toBeUndefined();
    // Stickiness: the IP stays where it moved (its record unchanged, one answerer). The
    // barrier: the undrained node's speaker has evaluated without the annotation (it says
    // so in the evaluation that would take the IP back, before announcing anything).
    await waitFor("the undrained node's speaker to see the undrain", async () =>
      logs
        .get(owner)
        ?.slice(logged)
        .some((l) => l.msg === "undrained: may announce again")
        ? true
        : undefined,
    );
    expect(await recordOf(IP_MOVE)).toBe(peer);
    expect(announcing(IP_MOVE)).toEqual([peer]);
  });

  it("an IP no other node may announce (Local, its only endpoint there) is kept and named: exit 3; --no-wait returns at once", async () => {
    const [a] = NODES;
    await service("local", IP_LOCAL, [a], true);
    await waitFor("a announces it", async () =>
      (await recordOf(IP_LOCAL)) === a && announcing(IP_LOCAL).join() === a ? true : undefined,
    );
    const r = await drain(a, "--timeout", "30");
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(
      `${IP_LOCAL}: kept on ${a}: ${a} is drained, but no other node may announce ${IP_LOCAL}`,
    );
    expect(r.stdout).toContain(`run ironlb drain --force ${a}`);
    expect(r.code).toBe(3);
    expect(announcing(IP_LOCAL)).toEqual([a]);

    const f = await ironlb(
      "drain",
      a,
      "--force",
      "--no-wait",
      "--kubeconfig",
      inject("kubeconfig"),
    );
    expect(f).toEqual({
      code: 0,
      stdout: expect.stringContaining(`node ${a} drained (ironlb.dev/drain=force)`),
      stderr: "",
    });
    expect(await annotation(a)).toBe("force");
    await waitFor("a withdraws it", async () =>
      announcing(IP_LOCAL).length === 0 ? true : undefined,
    );
    await ironlb("undrain", a, "--kubeconfig", inject("kubeconfig"));
    await api.delete(`/api/v1/namespaces/${ns}/services/local`);
  });

  it("a new owner that never takes the IP: the command times out with exit 4 and says what is left", async () => {
    const [, b, c] = NODES;
    // Endpoints on b and c: drained b hands over to c, whose speaker does not run.
    await service("stuck", IP_STUCK, [b, c], true);
    await waitFor("b announces it", async () =>
      (await recordOf(IP_STUCK)) === b ? true : undefined,
    );
    const r = await drain(b, "--timeout", "3");
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(`${IP_STUCK}: still on ${b} (speakers choose ${c})`);
    expect(r.stdout).toContain("timed out after 3 s");
    expect(r.code).toBe(4);
    await ironlb("undrain", b, "--kubeconfig", inject("kubeconfig"));
  });

  it("a node that does not exist: exit 1 and a clear message", async () => {
    const r = await ironlb("drain", `${tag}-nope`, "--kubeconfig", inject("kubeconfig"));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`ironlb drain: node ${tag}-nope not found\n`);
  });
});
