// What ironlb makes at run time and must also remove: the heartbeat Secret the controller
// creates and keeps (so the chart renders the same manifests every time), and what
// `ironlb cleanup` (the chart's post-delete hook) removes (Leases, IPAnnouncements, the Secret)
// and what it leaves so that a reinstall gives every Service its IP back.
// Against the real apiserver, with the controller and the cleanup as real processes.
import { CoordinationV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { bgpSessionStateName } from "../../src/api/bgpsessionstate.ts";
import { ALLOCATED_CONDITION, MIN_HEARTBEAT_KEY_BYTES } from "../../src/api/vocabulary.ts";
import {
  ensureHeartbeatSecret,
  keepHeartbeatSecret,
} from "../../src/controller/heartbeat-secret.ts";
import { KubeClient } from "../../src/k8s/client.ts";
import { createLogger } from "../../src/observability/log.ts";
import { ipAnnouncementName } from "../../src/speaker/speaker.ts";
import {
  applyCRDs,
  type Component,
  clients,
  createNamespace,
  createPool,
  createService,
  getService,
  ingressIPs,
  startComponent,
  startController,
  waitFor,
  waitForIPs,
} from "../support/cluster.ts";

const running: Component[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.stop("SIGKILL")));
});

const { core } = clients();
const merge = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const api = () => KubeClient.load(inject("kubeconfig"));
const decoded = (b64: string | undefined) => Buffer.from(b64 ?? "", "base64").toString();

describe("heartbeat Secret kept by the controller", () => {
  it("is created once with a random key and never changed afterwards", async () => {
    const namespace = await createNamespace("hb");
    const ref = { namespace, name: "hb", key: "secret" };
    expect(await ensureHeartbeatSecret(api(), ref)).toEqual({ outcome: "created" });
    const first = await core.readNamespacedSecret({ name: "hb", namespace });
    const key = decoded(first.data?.secret);
    expect(key.length).toBeGreaterThanOrEqual(MIN_HEARTBEAT_KEY_BYTES);
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(first.metadata?.labels?.["app.kubernetes.io/managed-by"]).toBe("ironlb-controller");

    expect(await ensureHeartbeatSecret(api(), ref)).toEqual({ outcome: "exists" });
    const again = await core.readNamespacedSecret({ name: "hb", namespace });
    expect(again.data).toEqual(first.data);
    expect(again.metadata?.resourceVersion).toBe(first.metadata?.resourceVersion);

    // Another namespace gets another key: the key is random, not derived.
    const other = await createNamespace("hb");
    await ensureHeartbeatSecret(api(), { ...ref, namespace: other });
    const o = await core.readNamespacedSecret({ name: "hb", namespace: other });
    expect(decoded(o.data?.secret)).not.toBe(key);
  });

  it("leaves an unusable existing Secret alone and says why", async () => {
    const namespace = await createNamespace("hb");
    await core.createNamespacedSecret({
      namespace,
      body: {
        metadata: { name: "mine" },
        stringData: { other: "0123456789abcdef", secret: "short" },
      },
    });
    expect(await ensureHeartbeatSecret(api(), { namespace, name: "mine", key: "secret" })).toEqual({
      outcome: "invalid",
      reason: 'its key "secret" has 5 bytes, speakers need at least 16',
    });
    expect(await ensureHeartbeatSecret(api(), { namespace, name: "mine", key: "nope" })).toEqual({
      outcome: "invalid",
      reason: 'it has no key "nope"',
    });
    const s = await core.readNamespacedSecret({ name: "mine", namespace });
    expect(decoded(s.data?.secret)).toBe("short");
  });

  it("two replicas starting at once end with one Secret and agree on it", async () => {
    const namespace = await createNamespace("hb");
    const ref = { namespace, name: "hb", key: "k" };
    const log = createLogger("test", "silent");
    const [a, b] = await Promise.all([
      keepHeartbeatSecret(api(), ref, log).done,
      keepHeartbeatSecret(api(), ref, log).done,
    ]);
    expect([a.outcome, b.outcome].sort()).toEqual(["created", "exists"]);
    const s = await core.readNamespacedSecret({ name: "hb", namespace });
    expect(Object.keys(s.data ?? {})).toEqual(["k"]);
  });

  it("comes back when deleted while the controller runs (key rotation, old chart upgrades)", async () => {
    const namespace = await createNamespace("hb");
    const ref = { namespace, name: "hb", key: "secret" };
    const keeper = keepHeartbeatSecret(api(), ref, createLogger("test", "silent"), {
      recheckMs: 100,
    });
    try {
      expect((await keeper.done).outcome).toBe("created");
      const old = await core.readNamespacedSecret({ name: "hb", namespace });
      await core.deleteNamespacedSecret({ name: "hb", namespace });
      const back = await waitFor("the Secret to come back", async () => {
        const s = await core.readNamespacedSecret({ name: "hb", namespace });
        return s.metadata?.uid !== old.metadata?.uid ? s : undefined;
      });
      expect(decoded(back.data?.secret)).not.toBe(decoded(old.data?.secret));
    } finally {
      keeper.stop();
    }
  });

  it("the controller process makes it at start (--heartbeat-secret)", async () => {
    const namespace = await createNamespace("hb");
    const c = startController([
      "--namespace",
      namespace,
      "--no-leader-elect",
      "--heartbeat-secret",
      "speakers",
      "--heartbeat-secret-key",
      "key",
      "--lb-class",
      "test.ironlb.dev/none",
      "--ignore-unclassed",
    ]);
    running.push(c);
    const s = await waitFor("the heartbeat Secret", () =>
      core.readNamespacedSecret({ name: "speakers", namespace }),
    );
    expect(decoded(s.data?.key).length).toBeGreaterThanOrEqual(MIN_HEARTBEAT_KEY_BYTES);
    await waitFor("the log line", () =>
      c.logs().find((l) => l.msg === "heartbeat Secret ready" && l.outcome === "created"),
    );
  });
});

describe("ironlb cleanup", () => {
  beforeAll(async () => {
    await applyCRDs();
  });

  /**
   * What an installed ironlb leaves when `helm uninstall` has deleted its workloads: a
   * Service holding an IP that is not the lowest free one (so a fresh assignment would give
   * it another), one whose allocation failed, another implementation's Service, an
   * IPAnnouncement, the controller's Lease and its heartbeat Secret; the controller stopped.
   */
  async function uninstalled(tag: string, addresses: string) {
    const ns = await createNamespace(`cleanup-${tag}`);
    const svcNs = await createNamespace(`cleanup-${tag}-svc`);
    // A class of its own, so this never touches other tests' Services.
    const cls = `test.ironlb.dev/cleanup-${tag}-${process.pid}`;
    const filter = ["--lb-class", cls, "--ignore-unclassed"];
    await createPool(`cleanup-${svcNs}`, {
      addresses: [addresses],
      serviceAllocation: { namespaces: [svcNs] },
    });
    const controllerArgs = [
      "--namespace",
      ns,
      "--heartbeat-secret",
      "hb",
      "--lease-duration",
      "4",
      "--renew-deadline",
      "3",
      "--retry-period",
      "1",
      ...filter,
    ];
    const ctrl = startController(controllerArgs);
    running.push(ctrl);
    // web gets the second address: the first stays free once blocker is gone.
    await createService(svcNs, "blocker", { loadBalancerClass: cls });
    const [lowest] = await waitForIPs(svcNs, "blocker");
    await createService(svcNs, "web", {
      loadBalancerClass: cls,
      annotations: { "ironlb.dev/allow-shared-ip": "k", "team.example/owner": "shop" },
    });
    const [ip] = await waitForIPs(svcNs, "web");
    expect(ip).not.toBe(lowest);
    await core.deleteNamespacedService({ name: "blocker", namespace: svcNs });
    // One that cannot get an address: only the condition is ironlb's.
    await createService(svcNs, "failed", {
      loadBalancerClass: cls,
      annotations: { "ironlb.dev/address-pool": "no-such-pool" },
    });
    // Another implementation's Service with look-alike marks: never touched.
    await createService(svcNs, "theirs", { loadBalancerClass: "other.example/lb" });
    await core.patchNamespacedServiceStatus(
      {
        name: "theirs",
        namespace: svcNs,
        body: { status: { loadBalancer: { ingress: [{ ip: "203.0.113.99" }] } } },
      },
      merge,
    );
    await waitFor("the failed condition", async () =>
      (await getService(svcNs, "failed")).status?.conditions?.some(
        (c) => c.type === ALLOCATED_CONDITION,
      ),
    );
    await waitFor("the heartbeat Secret", () =>
      core.readNamespacedSecret({ name: "hb", namespace: ns }),
    );
    // What older speakers wrote when they announced.
    await core.patchNamespacedService(
      {
        name: "web",
        namespace: svcNs,
        body: { metadata: { annotations: { "ironlb.dev/announcing-node": "node-a" } } },
      },
      merge,
    );
    // ...and the record speakers keep of an announcement (a cluster-scoped IPAnnouncement).
    await clients().custom.createClusterCustomObject({
      group: "ironlb.dev",
      version: "v1beta1",
      plural: "ipannouncements",
      body: {
        apiVersion: "ironlb.dev/v1beta1",
        kind: "IPAnnouncement",
        metadata: { name: ipAnnouncementName(ip!) },
        status: { ip, node: "node-a", services: [`${svcNs}/web`] },
      },
    });
    // ...and a node's BGP session record.
    await clients().custom.createClusterCustomObject({
      group: "ironlb.dev",
      version: "v1beta1",
      plural: "bgpsessionstates",
      body: {
        apiVersion: "ironlb.dev/v1beta1",
        kind: "BGPSessionState",
        metadata: { name: bgpSessionStateName("node-a", ns) },
        status: { node: "node-a", peer: ns, state: "Established" },
      },
    });
    // The hook runs after Helm deleted the workloads: the controller stops (and releases
    // its Lease), then cleanup waits for no live Lease and cleans.
    await ctrl.stop("SIGTERM");
    return { ns, svcNs, cls, filter, ip: ip!, lowest: lowest!, controllerArgs };
  }

  async function runCleanup(ns: string, args: string[]): Promise<Component> {
    const job = startComponent([
      "cleanup",
      "--kubeconfig",
      inject("kubeconfig"),
      "--namespace",
      ns,
      "--heartbeat-secret",
      "hb",
      "--wait",
      "20",
      ...args,
    ]);
    running.push(job);
    expect(await waitFor("cleanup to exit", () => job.proc.exitCode ?? undefined, 30_000)).toBe(0);
    return job;
  }

  /** The run-time objects are gone in either mode. */
  async function expectRunTimeObjectsGone(ns: string, ip: string) {
    await expect(core.readNamespacedSecret({ name: "hb", namespace: ns })).rejects.toMatchObject({
      code: 404,
    });
    const leases = await clients()
      .kc.makeApiClient(CoordinationV1Api)
      .listNamespacedLease({ namespace: ns });
    expect(leases.items.map((l) => l.metadata?.name)).toEqual([]);
    await expect(
      clients().custom.getClusterCustomObject({
        group: "ironlb.dev",
        version: "v1beta1",
        plural: "ipannouncements",
        name: ipAnnouncementName(ip),
      }),
    ).rejects.toMatchObject({ code: 404 });
    await expect(
      clients().custom.getClusterCustomObject({
        group: "ironlb.dev",
        version: "v1beta1",
        plural: "bgpsessionstates",
        name: bgpSessionStateName("node-a", ns),
      }),
    ).rejects.toMatchObject({ code: 404 });
  }

  it("by default keeps every Service's IP, condition and pool annotation; a new controller restores them", async () => {
    const { ns, svcNs, cls, filter, ip, lowest, controllerArgs } = await uninstalled(
      "keep",
      "203.0.113.72/30",
    );
    const webBefore = await getService(svcNs, "web");
    const job = await runCleanup(ns, filter);

    const web = await getService(svcNs, "web");
    expect(ingressIPs(web)).toEqual([ip]);
    expect(web.status?.conditions?.find((c) => c.type === ALLOCATED_CONDITION)).toEqual(
      webBefore.status?.conditions?.find((c) => c.type === ALLOCATED_CONDITION),
    );
    // Only the stale announcing-node annotation went: nothing announces after an uninstall.
    expect(web.metadata?.annotations).toEqual({
      "ironlb.dev/allow-shared-ip": "k",
      "team.example/owner": "shop",
      "ironlb.dev/ip-allocated-from-pool": `cleanup-${svcNs}`,
    });
    const failed = await getService(svcNs, "failed");
    expect(failed.status?.conditions?.map((c) => c.type)).toEqual([ALLOCATED_CONDITION]);
    const theirs = await getService(svcNs, "theirs");
    expect(ingressIPs(theirs)).toEqual(["203.0.113.99"]);
    await expectRunTimeObjectsGone(ns, ip);
    const done = job.logs().find((l) => l.msg === "cleanup done");
    expect(done).toMatchObject({
      keepAddresses: true,
      services: 1,
      leases: 1,
      announcements: 1,
      sessionStates: 1,
      secret: `${ns}/hb`,
    });

    // The reinstall: a new controller reads the statuses back before it assigns anything,
    // so web keeps its IP although a lower one is free.
    const again = startController(controllerArgs);
    running.push(again);
    const restored = await waitFor("the restore log line", () =>
      again.logs().find((l) => l.msg === "restored assignments from service statuses"),
    );
    expect(restored).toMatchObject({ restored: 1, candidates: 1 });
    await createService(svcNs, "newcomer", { loadBalancerClass: cls });
    expect(await waitForIPs(svcNs, "newcomer")).toEqual([lowest]);
    expect(ingressIPs(await getService(svcNs, "web"))).toEqual([ip]);
  });

  it("with --no-keep-addresses removes ironlb's writes from the Services too", async () => {
    const { ns, svcNs, filter, ip } = await uninstalled("full", "203.0.113.76/30");
    const job = await runCleanup(ns, [...filter, "--no-keep-addresses"]);

    const web = await getService(svcNs, "web");
    expect(web.status?.loadBalancer?.ingress ?? []).toEqual([]);
    expect(web.status?.conditions?.some((c) => c.type === ALLOCATED_CONDITION) ?? false).toBe(
      false,
    );
    expect(web.metadata?.annotations).toEqual({
      "ironlb.dev/allow-shared-ip": "k",
      "team.example/owner": "shop",
    });
    const failed = await getService(svcNs, "failed");
    expect(failed.status?.conditions ?? []).toEqual([]);
    expect(failed.metadata?.annotations).toEqual({ "ironlb.dev/address-pool": "no-such-pool" });
    const theirs = await getService(svcNs, "theirs");
    expect(ingressIPs(theirs)).toEqual(["203.0.113.99"]);
    await expectRunTimeObjectsGone(ns, ip);
    const done = job.logs().find((l) => l.msg === "cleanup done");
    expect(done).toMatchObject({
      keepAddresses: false,
      services: 2,
      leases: 1,
      announcements: 1,
      sessionStates: 1,
      secret: `${ns}/hb`,
    });
  });
});
