// ironlb as users run it: a real cluster on this machine (kubelet, containerd, kube-proxy in
// nftables mode, bridge CNI; test/cluster/cluster.ts), ironlb installed with `helm install`
// from its image, and a LAN client reaching real pods through ARP → node → kube-proxy.
// BGP mode in the same cluster: the chart's BGP values peer every node with a router (FRR,
// test/cluster/router.ts), and a client behind the router reaches the same Services over
// one next hop per node.
// One cluster for the whole file; it is removed in afterAll even when a test fails, and
// the root namespace's sysctls, nftables ruleset and routes must be as they were.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { load as loadYaml } from "js-yaml";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { CLIENT_IP, ROUTED_CLIENT_IP, ROUTER_IP } from "../cluster/addresses.ts";
import { destroyCluster, type RealCluster } from "../cluster/cluster.ts";
import { type HostSnapshot, hostSnapshot, hostSnapshotDiff } from "../cluster/host.ts";
import {
  APP_NAMESPACE,
  announcingNode,
  CLUSTER_SVC,
  clientEcho,
  deleteSpeakerPod,
  followSpeakerLog,
  installIronlb,
  LOCAL_SVC,
  NAMESPACE,
  READINESS_VALUES,
  RELEASE,
  sample,
  timeFailover,
  waitAnswer,
  waitExternalIP,
  waitSpeakersReady,
} from "../cluster/ironlb.ts";
import { BGP_PEER, type LabRouter, waitSessionsEstablished } from "../cluster/router.ts";
import { upWithIronlb } from "../cluster/up.ts";
import { tryRun } from "../lab/net.ts";
import { repoRoot, sleep, waitFor } from "../support/kube.ts";

const log = (m: string) => process.stderr.write(`[cluster-e2e] ${m}\n`);

/** `helm upgrade` of the running release with one value changed, waiting for the rollout. */
async function upgradeWith(c: RealCluster, setting: string): Promise<void> {
  await c.helm([
    "upgrade",
    RELEASE,
    join(repoRoot, "charts/ironlb"),
    "--namespace",
    NAMESPACE,
    "--reuse-values",
    "--set",
    setting,
    "--wait",
    "--timeout",
    "120s",
  ]);
}

/** Enough of an OpenAPI schema to add a field to a CRD. */
interface Schema {
  type?: string;
  default?: unknown;
  properties?: Record<string, Schema>;
}

/** A Service that did not request an IP and holds one that is not the lowest free one. */
const KEPT_SVC = "echo-kept";

/** Each LoadBalancer Service of the app namespace with its EXTERNAL-IPs, as kubectl shows. */
async function externalIPs(c: RealCluster): Promise<Record<string, string>> {
  const out = await c.kubectl([
    "get",
    "svc",
    "-n",
    APP_NAMESPACE,
    "-o",
    "jsonpath={range .items[?(@.spec.type=='LoadBalancer')]}{.metadata.name}={.status.loadBalancer.ingress[*].ip}{'\\n'}{end}",
  ]);
  return Object.fromEntries(
    out
      .trim()
      .split("\n")
      .map((l) => l.split("=") as [string, string]),
  );
}

/** The controller pod that holds the leader Lease ("" when none). */
async function leaseHolder(c: RealCluster): Promise<string> {
  return (
    await c.kubectl([
      "get",
      "lease",
      "-n",
      NAMESPACE,
      "ironlb-controller",
      "-o",
      "jsonpath={.spec.holderIdentity}",
    ])
  ).trim();
}

/**
 * Waits until a controller pod other than `previous` leads and has rebuilt its state from
 * the Services' statuses; returns its pod name and its "restored assignments" log record.
 */
async function newLeaderRestored(
  c: RealCluster,
  previous: string,
): Promise<{ pod: string; restored: number; candidates: number }> {
  return waitFor(
    "a new controller leader that restored the assignments",
    async () => {
      const holder = await leaseHolder(c);
      if (holder === "" || holder === previous) return undefined;
      const logs = await c.kubectl(["logs", "-n", NAMESPACE, holder]);
      const line = logs
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { msg?: string; restored?: number; candidates?: number })
        .find((l) => l.msg === "restored assignments from service statuses");
      return line
        ? { pod: holder, restored: line.restored ?? -1, candidates: line.candidates ?? -1 }
        : undefined;
    },
    120_000,
    500,
  );
}

describe("ironlb installed by helm in a real cluster", () => {
  let c: RealCluster | undefined;
  let before: HostSnapshot;
  let ipCluster = "";
  let ipLocal = "";
  let ipKept = "";
  let ipsBefore: Record<string, string> = {};
  let imageTag = "";
  let r: LabRouter | undefined;
  let bgpValuesFile = "";
  const NODES = ["node1", "node2", "node3"];

  const cluster = () => {
    if (!c) throw new Error("the cluster did not start (see beforeAll)");
    return c;
  };
  const router = () => {
    if (!r) throw new Error("the router did not start (see beforeAll)");
    return r;
  };
  const nodeIPs = () => cluster().nodes.map((n) => n.ip);

  beforeAll(async () => {
    // A lab left running uses the same addresses: it is replaced (it is disposable).
    if (await destroyCluster(log)) log("removed a running lab cluster first");
    before = await hostSnapshot();
    const up = await upWithIronlb({
      dir: mkdtempSync(join(tmpdir(), "ironlb-cluster-e2e-")),
      binDir: inject("binDir"),
      log,
      bgp: true,
      values: READINESS_VALUES,
    });
    c = up.cluster;
    r = up.router;
    bgpValuesFile = up.bgpValuesFile ?? "";
    imageTag = up.image.tag;
    ipCluster = up.ipCluster;
    ipLocal = up.ipLocal;
    log(`IPs reached ${(up.ms.ipReached / 1000).toFixed(1)} s after the start`);
  }, 300_000);

  afterAll(async () => {
    await destroyCluster(log);
  }, 120_000);

  it("Cluster: the client reaches the pods on every node, masqueraded", async () => {
    await waitAnswer(cluster(), ipCluster);
    const answers = await sample(cluster(), ipCluster, 30);
    expect(answers.length).toBe(30);
    expect(new Set(answers.map((a) => a.node))).toEqual(new Set(["node1", "node2", "node3"]));
    for (const a of answers) expect(a.client).not.toBe(CLIENT_IP);
  });

  it("Local: only the announcing node's pod answers, and it sees the client's address", async () => {
    const first = await waitAnswer(cluster(), ipLocal);
    const owner = await announcingNode(cluster(), LOCAL_SVC);
    expect(owner).toBe(first.node);
    const answers = await sample(cluster(), ipLocal, 10);
    expect(answers.length).toBe(10);
    for (const a of answers) expect(a).toMatchObject({ node: owner, client: CLIENT_IP });
    // The client's kernel resolved the IP to the announcing node's MAC through ARP.
    const n = await cluster().clientNeighbour(ipLocal);
    expect(n?.mac).toBe(await cluster().macOf(owner!));
  });

  it("the announcing node's speaker pod deleted: traffic flows again through another node", async () => {
    const owner = await announcingNode(cluster(), LOCAL_SVC);
    const speakerLog = await followSpeakerLog(cluster(), owner!);
    await speakerLog.attached;
    const f = await timeFailover(cluster(), ipLocal, (node) => deleteSpeakerPod(cluster(), node));
    log(
      `failover after the speaker pod of ${f.from} was deleted: ${f.ms.toFixed(0)} ms, to ${f.to}`,
    );
    expect(f.from).toBe(owner);
    expect(f.to).not.toBe(f.from);
    // The leaving speaker told its peers and stopped answering in one turn, on SIGTERM,
    // before anything slower (its Lease delete) and before it exited.
    await Promise.race([
      speakerLog.ended,
      sleep(60_000).then(() => {
        throw new Error("the deleted speaker's log did not end within 60 s");
      }),
    ]);
    const msgs = speakerLog.lines().map((l) => l.msg);
    const down = msgs.indexOf("shutting down");
    const left = speakerLog
      .lines()
      .findIndex((l) => l.msg === "left: peers told, announcements withdrawn");
    expect(down).toBeGreaterThanOrEqual(0);
    expect(left).toBeGreaterThan(down);
    // In between, only its BGP session ending (the Cease, sent in the same turn).
    for (const l of speakerLog.lines().slice(down + 1, left)) expect(l.peer).toBe(BGP_PEER);
    expect(speakerLog.lines()[left]?.ips).toContain(ipLocal);
    const a = await clientEcho(cluster(), ipLocal);
    expect(a?.client).toBe(CLIENT_IP);
    expect(await clientEcho(cluster(), ipCluster)).toBeDefined();
    await waitSpeakersReady(cluster());
  });

  it("BGP: every node's session with the router from the chart values is Established, as its BGPSessionState says", async () => {
    // The router's side (a speaker pod replaced just before may still be connecting)...
    await router().waitEstablished();
    // ...and what each node's speaker wrote about its own session.
    const established = await waitSessionsEstablished(cluster());
    expect(established.map((s) => s.status?.node).sort()).toEqual(NODES);
    for (const s of established)
      expect(s.status).toMatchObject({ peer: BGP_PEER, peerAddress: ROUTER_IP });
  });

  it("BGP: the router has one next hop per node, and the routed client's connections spread over the nodes", async () => {
    const r = router();
    // Cluster: every node advertises (the Service has ready endpoints).
    await r.waitNextHops(ipCluster, nodeIPs());
    const viaCluster = await r.sample(ipCluster, 10);
    expect(viaCluster.length).toBe(10);
    // Local: every node has its own echo pod, so every node advertises; a node sends to its
    // own pod only, so the answering node is the one the router chose. Hashing on ports
    // (fib_multipath_hash_policy=1 in the router's namespace) spreads one client's
    // connections over all three next hops.
    await r.waitNextHops(ipLocal, nodeIPs());
    const viaLocal = await r.sample(ipLocal, 30);
    expect(viaLocal.length).toBe(30);
    expect(new Set(viaLocal.map((a) => a.node))).toEqual(new Set(NODES));
    for (const a of viaLocal) expect(a.client).toBe(ROUTED_CLIENT_IP);
  });

  it("BGP: a node's speaker pod deleted: its next hop leaves the router at once and comes back with the new pod", async () => {
    const r = router();
    const cease = new RegExp(
      `NOTIFICATION: received from neighbor ${cluster().node("node2").ip} 6/2 \\(Cease/Administrative Shutdown\\)`,
    );
    const ceasesBefore = r.logLines(cease).length;
    const f = await r.failover(ipCluster, "node2", () => r.sample(ipCluster, 10));
    log(
      `BGP: node2's next hop withdrawn ${f.withdrawnMs.toFixed(0)} ms after its speaker pod was deleted, back after ${(f.backMs / 1000).toFixed(1)} s`,
    );
    expect(f.during).toEqual(nodeIPs().filter((ip) => ip !== cluster().node("node2").ip));
    // A Cease on SIGTERM (the router logged it), not the 9 s hold timer.
    expect(r.logLines(cease).length).toBeGreaterThan(ceasesBefore);
    expect(f.withdrawnMs).toBeLessThan(5000);
    expect(f.whileGone.length).toBe(10);
    expect(await r.nextHops(ipCluster)).toEqual(nodeIPs());
    await waitSpeakersReady(cluster());
  });

  it("helm upgrade with a changed value keeps the IPs and the traffic", async () => {
    const c = cluster();
    await upgradeWith(c, "logLevel=debug");
    await waitSpeakersReady(c);
    const env = await c.kubectl([
      "get",
      "daemonset",
      "-n",
      NAMESPACE,
      `${RELEASE}-speaker`,
      "-o",
      "jsonpath={.spec.template.spec.containers[0].env[?(@.name=='LOG_LEVEL')].value}",
    ]);
    expect(env.trim()).toBe("debug");
    expect(
      await c.kubectl([
        "get",
        "daemonset",
        "-n",
        NAMESPACE,
        `${RELEASE}-speaker`,
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
      ]),
    ).toBe(`localhost/ironlb:${imageTag}`);
    expect(await waitExternalIP(c, CLUSTER_SVC)).toBe(ipCluster);
    expect(await waitExternalIP(c, LOCAL_SVC)).toBe(ipLocal);
    const local = await waitAnswer(c, ipLocal);
    expect(local.client).toBe(CLIENT_IP);
    const answers = await sample(c, ipCluster, 10);
    expect(answers.length).toBe(10);
  });

  it("ipMode Proxy: kube-proxy leaves the IPs alone and the speakers forward them with their own table", async () => {
    const c = cluster();
    await upgradeWith(c, "ipMode=Proxy");
    await waitSpeakersReady(c);
    const caps = await c.kubectl([
      "get",
      "daemonset",
      "-n",
      NAMESPACE,
      `${RELEASE}-speaker`,
      "-o",
      "jsonpath={.spec.template.spec.containers[0].securityContext.capabilities.add}",
    ]);
    expect(JSON.parse(caps)).toEqual(["NET_RAW", "NET_ADMIN"]);
    // The new controller rewrites every status; kube-proxy then drops its rules for the IPs.
    const ipModes = async (svc: string) =>
      (
        await c.kubectl([
          "get",
          "svc",
          "-n",
          APP_NAMESPACE,
          svc,
          "-o",
          "jsonpath={.status.loadBalancer.ingress[*].ipMode}",
        ])
      ).trim();
    await waitFor(
      "ipMode Proxy in both Services' status",
      async () =>
        (await ipModes(CLUSTER_SVC)) === "Proxy" && (await ipModes(LOCAL_SVC)) === "Proxy",
      60_000,
      200,
    );
    const owner = await announcingNode(c, LOCAL_SVC);
    expect(owner).toBeDefined();
    // The speaker's own table, in the announcing node's network namespace, names the IP.
    await waitFor(
      `the speaker's nftables table on ${owner} to forward ${ipLocal}`,
      async () =>
        (
          (await tryRun("ip", [
            "netns",
            "exec",
            c.node(owner!).ns,
            "nft",
            "list",
            "table",
            "inet",
            "ironlb",
          ])) ?? ""
        ).includes(ipLocal),
      30_000,
      200,
    );
    // Local: the owner's own pod, which sees the client; Cluster: pods on every node.
    await waitAnswer(c, ipLocal);
    const local = await sample(c, ipLocal, 10);
    expect(local.length).toBe(10);
    for (const a of local) expect(a).toMatchObject({ node: owner, client: CLIENT_IP });
    await waitAnswer(c, ipCluster);
    const answers = await sample(c, ipCluster, 30);
    expect(answers.length).toBe(30);
    expect(new Set(answers.map((a) => a.node))).toEqual(new Set(["node1", "node2", "node3"]));
    for (const a of answers) expect(a.client).not.toBe(CLIENT_IP);
  });

  it("helm uninstall removes ironlb: nothing answers ARP for the IPs, which the Services keep", async () => {
    const c = cluster();
    // echo-kept gets the address after blocker's; once blocker is gone a lower one is free,
    // so assigning afresh would give echo-kept another IP: only a kept status gives it back.
    const lbService = (name: string, app: string) => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${APP_NAMESPACE} }
spec:
  type: LoadBalancer
  selector: { app: ${app} }
  ports: [{ name: http, port: 80, targetPort: 8080 }]
`;
    await c.kubectl(["apply", "-f", "-"], lbService("blocker", "none"));
    const blocked = await waitExternalIP(c, "blocker");
    await c.kubectl(["apply", "-f", "-"], lbService(KEPT_SVC, "echo"));
    ipKept = await waitExternalIP(c, KEPT_SVC);
    expect(ipKept).not.toBe(blocked);
    await c.kubectl(["delete", "svc", "-n", APP_NAMESPACE, "blocker", "--wait"]);
    await waitAnswer(c, ipKept);
    ipsBefore = await externalIPs(c);
    expect(ipsBefore).toEqual({
      [CLUSTER_SVC]: ipCluster,
      [LOCAL_SVC]: ipLocal,
      [KEPT_SVC]: ipKept,
    });

    // The post-delete hook waits for the components' Leases to end (cleanup.waitSeconds).
    await c.helm(["uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "240s"]);
    await waitFor(
      "ironlb's pods to be gone",
      async () => (await c.kubectl(["get", "pods", "-n", NAMESPACE, "-o", "name"])).trim() === "",
      60_000,
      250,
    );
    // The hook ran: the run-time objects are gone...
    expect((await c.kubectl(["get", "ipannouncements", "-o", "name"])).trim()).toBe("");
    expect((await c.kubectl(["get", "bgpsessionstates", "-o", "name"])).trim()).toBe("");
    expect((await c.kubectl(["get", "leases", "-n", NAMESPACE, "-o", "name"])).trim()).toBe("");
    expect(await c.kubectl(["get", "secrets", "-n", NAMESPACE, "-o", "name"])).not.toContain(
      `${RELEASE}-heartbeat`,
    );
    // ...and the Services keep their IPs, pool annotation and condition (keepAddresses).
    expect(await externalIPs(c)).toEqual(ipsBefore);
    const kept = JSON.parse(
      await c.kubectl(["get", "svc", "-n", APP_NAMESPACE, KEPT_SVC, "-o", "json"]),
    ) as {
      metadata: { annotations?: Record<string, string> };
      status: { conditions?: { type: string; status: string }[] };
    };
    expect(kept.metadata.annotations?.["ironlb.dev/ip-allocated-from-pool"]).toBe("lab");
    expect(kept.status.conditions).toContainEqual(
      expect.objectContaining({ type: "ironlb.dev/IPAllocated", status: "True" }),
    );
    // With the client's cache emptied, its kernel must ARP again: no node answers now.
    await c.clientFlushNeighbours();
    expect(await c.clientGet(`http://${ipLocal}/`, 1500)).toBeUndefined();
    const n = await c.clientNeighbour(ipLocal);
    expect(n?.mac).toBeUndefined();
    // The leaving speakers ended their sessions: the router has no route left for the IPs.
    for (const ip of [ipCluster, ipLocal, ipKept]) expect(await router().nextHops(ip)).toEqual([]);
    expect(await router().clientEcho(ipCluster)).toBeUndefined();
  }, 300_000);

  it("helm install again: every Service gets the IP it had, and the client reaches it", async () => {
    const c = cluster();
    // The image is still on the nodes; the pool and CRDs outlived the release.
    await installIronlb(c, { archive: "", tag: imageTag }, READINESS_VALUES, false, [
      bgpValuesFile,
    ]);
    // The new release writes ipMode VIP (the last one wrote Proxy): each status was rewritten.
    await waitFor(
      "every status rewritten by the new controller (ipMode VIP)",
      async () =>
        (
          await c.kubectl([
            "get",
            "svc",
            "-n",
            APP_NAMESPACE,
            "-o",
            "jsonpath={.items[*].status.loadBalancer.ingress[*].ipMode}",
          ])
        ).trim() === "VIP VIP VIP",
      60_000,
      200,
    );
    expect(await externalIPs(c)).toEqual(ipsBefore);
    // From the statuses, before anything was assigned.
    expect(await newLeaderRestored(c, "")).toMatchObject({ restored: 3, candidates: 3 });
    await waitSpeakersReady(c);
    await waitAnswer(c, ipKept);
    expect((await waitAnswer(c, ipLocal)).client).toBe(CLIENT_IP);
    await waitAnswer(c, ipCluster);
    // The BGP values came back with the release: so did the router's routes.
    await router().waitNextHops(ipCluster, nodeIPs());
    expect((await router().waitAnswer(ipLocal)).client).toBe(ROUTED_CLIENT_IP);
  }, 300_000);

  it("new CRDs first, then helm upgrade, then helm rollback: every IP stays", async () => {
    const c = cluster();
    // The README's upgrade path: the chart's CRDs applied server-side, then the release.
    const applied = await c.kubectl([
      "apply",
      "--server-side",
      "--force-conflicts",
      "-f",
      join(repoRoot, "charts/ironlb/crds"),
    ]);
    expect(applied).toContain("ipaddresspools.ironlb.dev serverside-applied");
    expect(await externalIPs(c)).toEqual(ipsBefore);
    let leader = await leaseHolder(c);
    // A changed value rolls the controller and every speaker.
    await upgradeWith(c, "logLevel=debug");
    const upgraded = await newLeaderRestored(c, leader);
    expect(upgraded).toMatchObject({ restored: 3, candidates: 3 });
    expect(await externalIPs(c)).toEqual(ipsBefore);
    leader = upgraded.pod;

    await c.helm(["rollback", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "120s"]);
    const env = await c.kubectl([
      "get",
      "deployment",
      "-n",
      NAMESPACE,
      `${RELEASE}-controller`,
      "-o",
      "jsonpath={.spec.template.spec.containers[0].env[?(@.name=='LOG_LEVEL')].value}",
    ]);
    expect(env.trim()).toBe("info");
    expect(await newLeaderRestored(c, leader)).toMatchObject({ restored: 3, candidates: 3 });
    expect(await externalIPs(c)).toEqual(ipsBefore);
    // From the statuses, before anything was assigned.
    expect(await newLeaderRestored(c, "")).toMatchObject({ restored: 3, candidates: 3 });
    await waitSpeakersReady(c);
    await waitAnswer(c, ipKept);
    expect((await waitAnswer(c, ipLocal)).client).toBe(CLIENT_IP);
  }, 300_000);

  it("a newer pool CRD (a defaulted spec field, a new status field) costs no IP", async () => {
    const c = cluster();
    // What a later chart version may bring, applied first as the README says: a spec field
    // with a default (the apiserver then returns it in every pool) and a status field that
    // a newer controller writes; then this controller starts again, as after a rollback.
    const crd = loadYaml(
      readFileSync(join(repoRoot, "config/crd/ironlb.dev_ipaddresspools.yaml"), "utf8"),
    ) as {
      spec: { versions: { schema: { openAPIV3Schema: { properties: Record<string, Schema> } } }[] };
    };
    const props = crd.spec.versions[0]!.schema.openAPIV3Schema.properties;
    props.spec!.properties!.futureField = { type: "string", default: "on" };
    props.status!.properties!.futureStatus = { type: "string" };
    await c.kubectl(
      ["apply", "--server-side", "--force-conflicts", "-f", "-"],
      JSON.stringify(crd),
    );
    await waitFor(
      "the new field's default in the pool",
      async () =>
        (
          await c.kubectl(["get", "ipaddresspool", "lab", "-o", "jsonpath={.spec.futureField}"])
        ).trim() === "on",
      30_000,
      200,
    );
    await c.kubectl([
      "patch",
      "ipaddresspool",
      "lab",
      "--subresource=status",
      "--type=merge",
      "-p",
      '{"status":{"futureStatus":"written by a newer controller"}}',
    ]);
    const leader = await leaseHolder(c);
    await c.kubectl(["rollout", "restart", "-n", NAMESPACE, `deployment/${RELEASE}-controller`]);
    await c.kubectl([
      "rollout",
      "status",
      "-n",
      NAMESPACE,
      `deployment/${RELEASE}-controller`,
      "--timeout=120s",
    ]);
    expect(await newLeaderRestored(c, leader)).toMatchObject({ restored: 3, candidates: 3 });
    expect(await externalIPs(c)).toEqual(ipsBefore);
    await waitAnswer(c, ipKept);
  }, 300_000);

  it("after teardown the host's sysctls, nftables ruleset and routes are as before", async () => {
    await destroyCluster(log);
    c = undefined;
    const after = await hostSnapshot();
    expect(hostSnapshotDiff(before, after)).toEqual([]);
  });
});
