// End-to-end BGP mode: real speakers (`ironlb speaker` in two node namespaces) and a real
// controller against a real control plane, peered with FRR in a router namespace on the
// same LAN. Judged from the router: its kernel route for a Service IP has one next hop per
// node that should advertise it (ECMP), and none once the Service or its endpoint is gone.
//
// Addresses: the e2e LAN 203.0.113.128/25 (test/lab/addresses.ts), router 203.0.113.208;
// Service IPs from 198.51.100.64/26 (pool 198.51.100.90-198.51.100.99). ASNs: nodes 64512,
// router 64500 (private). Namespaces: the lab's prefix (ilbbgp…), router `<prefix>rtr`.
// The router also runs bfdd (profile `fast`, 100 ms × 3); its BGP neighbors use BFD only
// once the last test turns it on, with a BFDProfile of the same timers on the BGPPeer; that
// test also sends TTL-254 BFD packets from the router's namespace to a node (RFC 5881 §5).

import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { bgpSessionStateName } from "../../src/api/bgpsessionstate.ts";
import { ipAnnouncementName } from "../../src/api/ipannouncement.ts";
import { E2E_SUBNET, POOL_CIDR } from "../lab/addresses.ts";
import { destroyStale, Lab, randomPrefix } from "../lab/lab.ts";
import { run } from "../lab/net.ts";
import { clientsFor, repoRoot, waitFor } from "../support/kube.ts";
import {
  Frr,
  type FrrNeighbor,
  RouteWatch,
  removeNamespaces,
  requireRouters,
} from "./fixtures/routers.ts";

if (process.platform !== "linux" || process.getuid?.() !== 0) {
  throw new Error("the e2e tier needs Linux and root (network namespaces): run it as root");
}
requireRouters();

const ROUTER_IP = "203.0.113.208";
const NODE_ASN = 64512;
const ROUTER_ASN = 64500;
/** The DaemonSet the speakers are told they belong to (--daemonset). */
const SPEAKER_DS = "ironlb-speaker";
const group = "ironlb.dev";
const version = "v1beta1";

/** The fields of FRR's `show bgp neighbors <addr> json` these tests read. */
type Neighbor = FrrNeighbor & {
  connectionsEstablished?: number;
  bgpTimerHoldTimeMsecs?: number;
  neighborCapabilities?: { gracefulRestart?: string };
};

/** A path as FRR's `show bgp ipv4 unicast <prefix> json` prints it (the fields read here). */
interface Path {
  peer?: { peerId?: string };
  community?: { string?: string };
  locPrf?: number;
  stale?: boolean;
  nexthops?: { ip: string }[];
}

/** The fields of a BGPSessionState's status these tests read. */
interface SessionStatus {
  state?: string;
  peerAddress?: string;
  node?: string;
  gracefulRestart?: string;
  bfdState?: string;
  bfdError?: string;
  lastNotification?: string;
}

/** nftables table inside a node: everything to and from the router dropped. */
const DROP_ROUTER = `table inet ilbbgpbfd {
  chain in { type filter hook input priority -300; policy accept; ip saddr ${ROUTER_IP} drop; }
  chain out { type filter hook output priority -300; policy accept; ip daddr ${ROUTER_IP} drop; }
}
`;

/** A kernel route as `ip -j route` prints it: one gateway, or several next hops (ECMP). */
interface KernelRoute {
  gateway?: string;
  nexthops?: { gateway?: string }[];
}

describe("BGP mode: speakers peered with FRR", () => {
  const prefix = randomPrefix("ilbbgp");
  const routerNs = `${prefix}rtr`;
  let lab: Lab;
  let router: Frr | undefined;
  let workDir = "";
  let nextPort = 9100;
  const custom = () => clientsFor(lab.kc).custom;

  /** The next hops of the router's kernel route to `dst` (installed by zebra), sorted. */
  const routeHops = async (dst: string): Promise<string[] | undefined> => {
    const out = await run("ip", ["-n", routerNs, "-j", "route", "show", "exact", dst]);
    const r = (JSON.parse(out || "[]") as KernelRoute[])[0];
    if (r === undefined) return undefined;
    return (r.nexthops?.map((h) => h.gateway ?? "") ?? (r.gateway ? [r.gateway] : [])).sort();
  };
  /** Next hops for a Service IP (its /32) or a prefix; none: []. */
  const hopsFor = async (dst: string) =>
    (await routeHops(dst.includes("/") ? dst : `${dst}/32`)) ?? [];
  const waitHops = (
    dst: string,
    want: string[],
    what: string,
    { timeoutMs = 20_000, intervalMs = 50 } = {},
  ) =>
    waitFor(
      `${what}: router next hops for ${dst} = [${want.join(", ")}]`,
      async () => JSON.stringify(await hopsFor(dst)) === JSON.stringify([...want].sort()),
      timeoutMs,
      intervalMs,
    ).catch(async (err: Error) => {
      throw new Error(
        `${err.message}; now [${(await hopsFor(dst)).join(", ")}]\n${await router!.vtysh("show bgp ipv4 unicast")}`,
      );
    });
  /** The router's BGP paths for a Service IP (its /32): none, []. */
  const pathsFor = async (ip: string) =>
    (await router!.json<{ paths?: Path[] }>(`show bgp ipv4 unicast ${ip}/32 json`)).paths ?? [];
  /**
   * Waits until the router's BGP paths for a Service IP pass `test`, and returns them; a
   * timeout shows what the router has for it.
   */
  const waitForPath = (
    ip: string,
    test: (ps: Path[]) => boolean | Promise<boolean>,
    what: string,
    timeoutMs = 20_000,
  ) =>
    waitFor(
      `${what}: router paths for ${ip}`,
      async () => {
        const ps = await pathsFor(ip);
        return (await test(ps)) ? ps : undefined;
      },
      timeoutMs,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}\n${await router!.vtysh(`show bgp ipv4 unicast ${ip}/32`)}`);
    });
  const neighbor = async (addr: string) =>
    (await router!.json<Record<string, Neighbor>>(`show bgp neighbors ${addr} json`))[addr];
  /** Waits until the router's view of its neighbor `addr` passes `test`. */
  const waitNeighbor = (
    addr: string,
    test: (n: Neighbor) => boolean,
    what: string,
    timeoutMs = 30_000,
  ) =>
    waitFor(
      `${what}: router's neighbor ${addr}`,
      async () => {
        const n = await neighbor(addr);
        return n !== undefined && test(n) ? n : undefined;
      },
      timeoutMs,
    );
  const established = (n: Neighbor) => n.bgpState === "Established";
  /** A Cluster Service with its endpoint on node1, once both nodes advertise its IP. */
  const advertisedByBoth = async (name: string, pool = "bgp") => {
    const svc = await lab.createService(name, { port: nextPort++, pool, endpoints: ["node1"] });
    const ip = await lab.waitForIP(svc);
    await waitHops(
      ip,
      lab.nodes.map((n) => n.ip),
      "both nodes advertise",
    );
    return { svc, ip };
  };
  /** Merges `spec` into the BGPPeer "tor" (null removes a field). */
  const patchPeer = (spec: Record<string, unknown>) =>
    custom().patchClusterCustomObject(
      { group, version, plural: "bgppeers", name: "tor", body: { spec } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  /** A node's BGPSessionState status for the peer "tor". */
  const sessionState = async (node: string) =>
    (
      (await custom().getClusterCustomObject({
        group,
        version,
        plural: "bgpsessionstates",
        name: bgpSessionStateName(node, "tor"),
      })) as { status?: SessionStatus }
    ).status;

  beforeAll(async () => {
    await destroyStale("ilbbgp");
    workDir = mkdtempSync(join(tmpdir(), "ironlb-e2e-bgp-"));
    lab = await Lab.create({
      prefix,
      subnet: E2E_SUBNET,
      poolCIDR: POOL_CIDR,
      nodes: 2,
      speakerArgs: ["--daemonset", SPEAKER_DS],
      kubeconfig: inject("kubeconfig"),
      binDir: inject("binDir"),
      workDir,
    });
    // The router: a namespace on the lab's LAN (a port of its bridge), FRR peering passively
    // with both nodes. RFC 8212: eBGP routes are accepted only through an import policy,
    // here the pool's /32s; maximum-paths for ECMP.
    await run("ip", ["netns", "add", routerNs]);
    await run("ip", ["-n", routerNs, "link", "set", "lo", "up"]);
    await run("ip", [
      "-n",
      lab.switchNs,
      "link",
      "add",
      "rtr0",
      "type",
      "veth",
      "peer",
      "name",
      "eth0",
      "netns",
      routerNs,
    ]);
    await run("ip", ["-n", lab.switchNs, "link", "set", "rtr0", "master", "br0", "up"]);
    await run("ip", ["-n", routerNs, "addr", "add", `${ROUTER_IP}/25`, "dev", "eth0"]);
    await run("ip", ["-n", routerNs, "link", "set", "eth0", "up"]);
    const neighbors = lab.nodes.map((n) => ` neighbor ${n.ip} peer-group NODES`).join("\n");
    router = await Frr.start(
      routerNs,
      (dir) => `hostname ${routerNs}
log file ${dir}/bgpd.log
ip prefix-list SVC seq 5 permit ${POOL_CIDR} ge 32
route-map FROM-NODES permit 10
 match ip address prefix-list SVC
exit
route-map TO-NODES deny 10
exit
router bgp ${ROUTER_ASN}
 bgp router-id ${ROUTER_IP}
 bgp log-neighbor-changes
 neighbor NODES peer-group
 neighbor NODES remote-as ${NODE_ASN}
 neighbor NODES passive
 neighbor NODES timers 3 9
${neighbors}
 address-family ipv4 unicast
  neighbor NODES route-map FROM-NODES in
  neighbor NODES route-map TO-NODES out
  maximum-paths 8
 exit-address-family
exit
`,
      {
        bfddConf: (dir) => `log file ${dir}/bfdd.log
bfd
 profile fast
  transmit-interval 100
  receive-interval 100
  detect-multiplier 3
 exit
exit
`,
      },
    );
    lab.startController();
    for (const n of lab.nodes) lab.startSpeaker(n.name);
    await lab.waitSpeakersReady(60_000);
    await lab.createPool("bgp", ["198.51.100.90-198.51.100.99"], { autoAssign: false });
    await lab.createClusterObject("bgppeers", "BGPPeer", "tor", {
      myASN: NODE_ASN,
      peerASN: ROUTER_ASN,
      peerAddress: ROUTER_IP,
      holdTime: "9s",
      keepaliveTime: "3s",
      connectTime: "2s",
    });
    await lab.createClusterObject("bgpadvertisements", "BGPAdvertisement", "bgp", {
      ipAddressPools: ["bgp"],
    });
  }, 180_000);

  afterEach((ctx) => {
    if (ctx.task.result?.state !== "fail" || !lab) return;
    const lines = lab.speakerLogLines(40, 40);
    if (lines.length > 0) console.error(`speaker warnings:\n${lines.join("\n")}`);
  });

  afterAll(async () => {
    try {
      // destroy() deletes the BGPPeers, BGPAdvertisements and BFDProfiles it created.
      router?.stop();
      removeNamespaces([routerNs]);
      await lab?.destroy();
    } finally {
      if (workDir && !process.env.IRONLB_KEEP_LOGS)
        rmSync(workDir, { recursive: true, force: true });
    }
  });

  it("establishes a session from every node and writes each node's BGPSessionState", async () => {
    for (const n of lab.nodes)
      await waitNeighbor(n.ip, established, `the router's session with ${n.name}`);
    for (const n of lab.nodes) {
      const st = await waitFor(`${n.name}'s BGPSessionState Established`, async () => {
        const st = await sessionState(n.name);
        return st?.state === "Established" ? st : undefined;
      });
      expect(st).toMatchObject({ node: n.name, peerAddress: ROUTER_IP });
    }
    // And an Event on the BGPPeer from each node (cluster-scoped: in "default").
    const events = await waitFor("a SessionEstablished Event from each node", async () => {
      const list = await clientsFor(lab.kc).core.listNamespacedEvent({
        namespace: "default",
        fieldSelector: "involvedObject.name=tor,involvedObject.kind=BGPPeer",
      });
      const messages = list.items
        .filter((e) => e.reason === "SessionEstablished")
        .map((e) => e.message ?? "");
      return lab.nodes.every((n) => messages.some((m) => m.startsWith(`Node ${n.name} `)))
        ? messages
        : undefined;
    });
    expect(events).toContain(
      `Node node1 established its BGP session with ${ROUTER_IP} (hold time 9s)`,
    );
  });

  it("gives a Cluster Service one next hop per node (ECMP), and withdraws it when the Service is deleted", async () => {
    const { svc, ip } = await advertisedByBoth("ecmp");
    // Each node recorded its own advertisement in the IP's IPAnnouncement (status.bgp).
    const record = () =>
      custom()
        .getClusterCustomObject({
          group,
          version,
          plural: "ipannouncements",
          name: ipAnnouncementName(ip),
        })
        .then(
          (o) => o as { status?: { bgp?: { node: string; peers: string[] }[] } },
          () => undefined,
        );
    const entries = await waitFor("both nodes' BGP entries in the IPAnnouncement", async () => {
      const e = (await record())?.status?.bgp ?? [];
      return e.length === lab.nodes.length ? e : undefined;
    });
    expect(entries.map((e) => `${e.node}:${e.peers.join(",")}`).sort()).toEqual([
      "node1:tor",
      "node2:tor",
    ]);
    // `ironlb status` says the same: both nodes advertise the IP to the router, and both
    // sessions are up with its prefix (a BGPSessionState is written at most once a second).
    const status = () =>
      execFileSync(
        process.execPath,
        [join(repoRoot, "bin/ironlb.js"), "status", "--kubeconfig", inject("kubeconfig")],
        { encoding: "utf8" },
      )
        .split("\n")
        .map((l) => l.split(/\s+/).join(" "));
    const want = [
      `default/ecmp ${ip} tor node1,node2`,
      "node1 tor Established 1 0 -",
      "node2 tor Established 1 0 -",
    ];
    let lines: string[] = [];
    await waitFor("ironlb status to show both advertisers and sessions", () => {
      lines = status();
      return want.every((w) => lines.includes(w));
    }).catch((err: Error) => {
      throw new Error(`${err.message}:\n${lines.join("\n")}`);
    });
    await lab.deleteService(svc);
    await waitHops(ip, [], "the Service is deleted");
    await waitFor("the IPAnnouncement to go", async () => (await record()) === undefined);
  });

  it("drain (RFC 8326): the drained node's path carries 65535:0, then is withdrawn; the other node's stays; undrain restores", async () => {
    const { svc, ip } = await advertisedByBoth("drained");
    const [n1, n2] = [lab.node("node1").ip, lab.node("node2").ip];
    const from = (ps: Path[], peer: string) => ps.filter((p) => p.peer?.peerId === peer);
    // FRR names 65535:0 "graceful-shutdown" in its community string.
    const gshut = (p: Path) => /graceful-shutdown|65535:0/.test(p.community?.string ?? "");
    expect((await pathsFor(ip)).some(gshut)).toBe(false);
    const cli = (...args: string[]) =>
      new Promise<{ code: number; stdout: string }>((resolve) =>
        execFile(
          process.execPath,
          [join(repoRoot, "bin/ironlb.js"), ...args, "--kubeconfig", inject("kubeconfig")],
          { env: { ...process.env, IRONLB_FROM_SOURCE: "1" } },
          (err, stdout) =>
            resolve({ code: err ? Number((err as { code?: number }).code) : 0, stdout }),
        ),
      );
    const drained = cli("drain", "node2", "--timeout", "60");
    // First the drained node's path is sent again with the community, the other untouched.
    const marked = await waitForPath(
      ip,
      (ps) => from(ps, n2).some(gshut),
      "node2's path with the graceful-shutdown community",
      10_000,
    );
    expect(from(marked, n1)).toHaveLength(1);
    expect(from(marked, n1).some(gshut)).toBe(false);
    // FRR 8.4 honours a received 65535:0 by itself: LOCAL_PREF 0 on that path, so traffic
    // leaves node2 (the kernel route keeps node1 only) while node2's path still exists.
    expect(from(marked, n2)[0]?.locPrf).toBe(0);
    await waitHops(ip, [n1], "node2's path least preferred");
    // Then it is withdrawn (after the speaker's drain delay); node1's path stays.
    const after = await waitForPath(
      ip,
      (ps) => from(ps, n2).length === 0,
      "node2's path withdrawn",
      15_000,
    );
    expect(from(after, n1)).toHaveLength(1);
    expect(await hopsFor(ip)).toEqual([n1]);
    const r = await drained;
    expect(r.stdout).toContain("node2 announces nothing: drained");
    expect(r.code).toBe(0);
    // Undrain: node2 advertises again, without the community.
    expect((await cli("undrain", "node2")).code).toBe(0);
    await waitHops(ip, [n1, n2], "node2 undrained");
    expect((await pathsFor(ip)).some(gshut)).toBe(false);
    await lab.deleteService(svc);
  });

  it("advertises a Local Service only from the node with its endpoint, and withdraws it when the endpoint goes", async () => {
    const svc = await lab.createService("local", {
      port: nextPort++,
      pool: "bgp",
      externalTrafficPolicy: "Local",
      endpoints: ["node2"],
    });
    const ip = await lab.waitForIP(svc);
    await waitHops(ip, [lab.node("node2").ip], "only node2 has the endpoint");
    await lab.setEndpoints(svc, ["node1"]);
    await waitHops(ip, [lab.node("node1").ip], "the endpoint moved to node1");
    await lab.setEndpoints(svc, []);
    await waitHops(ip, [], "no endpoint is left");
    await lab.deleteService(svc);
  });

  it("ends a stopping speaker's session with a Cease, so the router drops that next hop at once", async () => {
    const { svc, ip } = await advertisedByBoth("leaving");
    const both = lab.nodes.map((n) => n.ip);
    const t0 = performance.now();
    await lab.stopSpeaker("node2", "SIGTERM");
    await waitHops(ip, [lab.node("node1").ip], "node2's speaker stopped");
    // Far below the 9 s hold time: the router heard the Cease (or the close) at once.
    expect(performance.now() - t0).toBeLessThan(3000);
    const n2 = lab.node("node2").ip;
    expect(JSON.stringify(await neighbor(n2))).toContain("Administrative Shutdown");
    lab.startSpeaker("node2");
    await lab.waitSpeakersReady(60_000);
    await waitHops(ip, both, "node2's speaker is back");
    await lab.deleteService(svc);
    await waitHops(ip, [], "the Service is deleted");
  });

  it("carries an advertisement's communities, large communities and aggregation to the router", async () => {
    await lab.createPool("bgp-attrs", ["198.51.100.100/30"], { autoAssign: false });
    await lab.createClusterObject("bgpadvertisements", "BGPAdvertisement", "bgp-attrs", {
      ipAddressPools: ["bgp-attrs"],
      communities: ["64512:100", "no-export", "large:64512:1:2"],
    });
    // The same pool aggregated to its /30: accepted by a second prefix-list entry.
    await router!.vtysh("configure terminal", "ip prefix-list SVC seq 10 permit 198.51.100.100/30");
    await lab.createClusterObject("bgpadvertisements", "BGPAdvertisement", "bgp-agg", {
      ipAddressPools: ["bgp-attrs"],
      aggregationLength: 30,
    });
    try {
      const { svc, ip } = await advertisedByBoth("attrs", "bgp-attrs");
      const paths = await waitForPath(ip, (ps) => ps.length === 2, "both nodes' paths");
      const text = JSON.stringify(paths);
      expect(text).toContain("64512:100");
      expect(text).toContain("noExport");
      expect(text).toContain("64512:1:2");
      await waitHops(
        "198.51.100.100/30",
        lab.nodes.map((n) => n.ip),
        "both nodes advertise the aggregate",
      );
      await lab.deleteService(svc);
      await waitHops(ip, [], "the Service is deleted");
      await waitHops("198.51.100.100/30", [], "the aggregate withdrawn");
    } finally {
      for (const name of ["bgp-attrs", "bgp-agg"])
        await custom()
          .deleteClusterCustomObject({ group, version, plural: "bgpadvertisements", name })
          .catch(() => undefined);
    }
  });

  it("opens a new session when the BGPPeer's settings change, and the routes come back on it", async () => {
    const { svc, ip } = await advertisedByBoth("change");
    const both = lab.nodes.map((n) => n.ip);
    const before = await Promise.all(
      both.map(async (a) => (await neighbor(a))?.connectionsEstablished ?? 0),
    );
    await patchPeer({ holdTime: "6s", keepaliveTime: "2s" });
    for (const [i, a] of both.entries())
      await waitNeighbor(
        a,
        (n) =>
          established(n) &&
          (n.connectionsEstablished ?? 0) > before[i]! &&
          n.bgpTimerHoldTimeMsecs === 6000,
        "a new session with hold time 6 s",
        20_000,
      );
    await waitHops(ip, both, "the routes are back on the new sessions");
    await lab.deleteService(svc);
    await waitHops(ip, [], "the Service is deleted");
  });

  it("with enableGracefulRestart, a speaker killed (SIGKILL) and restarted changes no route at the router", async () => {
    const grNegotiated = (n: Neighbor) =>
      established(n) && n.neighborCapabilities?.gracefulRestart === "advertisedAndReceived";
    await patchPeer({ enableGracefulRestart: true, gracefulRestartTime: "60s" });
    for (const n of lab.nodes)
      await waitNeighbor(n.ip, grNegotiated, `graceful restart negotiated with ${n.name}`);
    const { svc, ip } = await advertisedByBoth("restart");
    const node2 = lab.node("node2");
    await waitFor(
      "node2's BGPSessionState to say graceful restart is negotiated",
      async () => (await sessionState("node2"))?.gracefulRestart === "Negotiated",
    );
    const watch = new RouteWatch(routerNs, [`${ip}/32`], "192.0.2.254/32");
    try {
      await watch.ready;
      const before = await hopsFor(ip);
      const sessionsBefore = (await neighbor(node2.ip))?.connectionsEstablished ?? 0;
      // A crash: the kernel closes the session's socket, no NOTIFICATION goes out.
      await lab.stopSpeaker("node2", "SIGKILL");
      lab.startSpeaker("node2");
      await lab.waitSpeakersReady(60_000);
      // The restarted speaker's table and End-of-RIB end the router's restart handling.
      await waitForPath(
        ip,
        async (ps) => {
          const p2 = ps.find((p) => p.nexthops?.some((h) => h.ip === node2.ip));
          const n = await neighbor(node2.ip);
          return (
            n !== undefined &&
            (n.connectionsEstablished ?? 0) > sessionsBefore &&
            grNegotiated(n) &&
            p2 !== undefined &&
            p2.stale !== true
          );
        },
        "FRR to take node2's path as fresh again, on a new session",
        30_000,
      ).catch(async (err: Error) => {
        throw new Error(`${err.message}\n${await router!.vtysh(`show bgp neighbors ${node2.ip}`)}`);
      });
      expect(await hopsFor(ip)).toEqual(before);
      expect(watch.events, "route changes at the router during the restart").toEqual([]);
    } finally {
      watch.stop();
    }
    await patchPeer({ enableGracefulRestart: null, gracefulRestartTime: null });
    await lab.deleteService(svc);
    await waitHops(ip, [], "the Service is deleted");
  });

  it("with enableGracefulRestart, SIGTERM while the speaker's DaemonSet stays (rolling update) changes no route; once the DaemonSet is gone (uninstall), SIGTERM withdraws at once", async () => {
    // A restart time no earlier test uses: the router's view of it tells the new sessions
    // (GR enabled) from older ones (the capability, with restart time 0, is always sent).
    const grNegotiated = (n: Neighbor) =>
      established(n) &&
      n.neighborCapabilities?.gracefulRestart === "advertisedAndReceived" &&
      (n.gracefulRestartInfo as { timers?: { receivedRestartTimer?: number } } | undefined)?.timers
        ?.receivedRestartTimer === 45;
    const apps = lab.kc.makeApiClient(AppsV1Api);
    const namespace = "ironlb-system";
    const node2 = lab.node("node2");
    const n1 = lab.node("node1").ip;
    // The speakers run with --daemonset SPEAKER_DS (beforeAll); no controller-manager runs
    // DaemonSets here, so the object is only what the speakers read at SIGTERM.
    await apps.createNamespacedDaemonSet({
      namespace,
      body: {
        metadata: { name: SPEAKER_DS },
        spec: {
          selector: { matchLabels: { app: SPEAKER_DS } },
          template: {
            metadata: { labels: { app: SPEAKER_DS } },
            spec: { containers: [{ name: "speaker", image: "ironlb:e2e" }] },
          },
        },
      },
    });
    const deleteDs = () =>
      apps.deleteNamespacedDaemonSet({ name: SPEAKER_DS, namespace }).catch(() => undefined);
    await patchPeer({ enableGracefulRestart: true, gracefulRestartTime: "45s" });
    try {
      for (const n of lab.nodes)
        await waitNeighbor(n.ip, grNegotiated, `graceful restart negotiated with ${n.name}`);
      const { svc, ip } = await advertisedByBoth("rolling");
      await waitFor(
        "node2's BGPSessionState to say graceful restart is negotiated",
        async () => (await sessionState("node2"))?.gracefulRestart === "Negotiated",
      );
      const before = await hopsFor(ip);
      const sessionsBefore = (await neighbor(node2.ip))?.connectionsEstablished ?? 0;
      const rolling = new RouteWatch(routerNs, [`${ip}/32`], "192.0.2.254/32");
      try {
        await rolling.ready;
        // A rolling update: SIGTERM, the DaemonSet stays, the new pod starts.
        const old = lab.speaker("node2")!;
        await lab.stopSpeaker("node2", "SIGTERM");
        lab.startSpeaker("node2");
        await lab.waitSpeakersReady(60_000);
        await waitForPath(
          ip,
          async (ps) => {
            const p2 = ps.find((p) => p.nexthops?.some((h) => h.ip === node2.ip));
            const n = await neighbor(node2.ip);
            return (
              n !== undefined &&
              (n.connectionsEstablished ?? 0) > sessionsBefore &&
              grNegotiated(n) &&
              p2 !== undefined &&
              p2.stale !== true
            );
          },
          "FRR to take node2's path as fresh again, on a new session",
          30_000,
        ).catch(async (err: Error) => {
          throw new Error(
            `${err.message}\n${await router!.vtysh(`show bgp neighbors ${node2.ip}`)}`,
          );
        });
        expect(await hopsFor(ip)).toEqual(before);
        expect(rolling.events, "route changes at the router during the rolling update").toEqual([]);
        // No NOTIFICATION reached the router: the TCP connection just closed.
        expect((await neighbor(node2.ip))?.lastResetDueTo).not.toBe("BGP Notification received");
        const decided = old
          .logs()
          .find((l) => typeof l.msg === "string" && /^(restart|departure): /.test(l.msg));
        expect(decided?.msg, "the speaker's shutdown decision").toMatch(/^restart: /);
        expect(decided?.reason).toBe(
          `DaemonSet ${SPEAKER_DS} stays and this node is not leaving: a restart`,
        );
      } finally {
        rolling.stop();
      }

      // Uninstall: the DaemonSet is deleted first, then its pods get SIGTERM.
      await deleteDs();
      const t0 = performance.now();
      await lab.stopSpeaker("node2", "SIGTERM");
      await waitHops(ip, [n1], "node2's speaker left (its DaemonSet gone)", { timeoutMs: 5000 });
      // Far below the 45 s restart time: the Cease ended it, no graceful restart.
      expect(performance.now() - t0).toBeLessThan(3000);
      expect(await neighbor(node2.ip)).toMatchObject({
        lastResetDueTo: "BGP Notification received",
        lastNotificationReason: "Cease/Administrative Shutdown",
        lastShutdownDescription: "ironlb: speaker shutting down",
      });
      const left = lab
        .speaker("node2")!
        .logs()
        .find((l) => typeof l.msg === "string" && l.msg.startsWith("departure: "));
      expect(left?.reason).toBe(`DaemonSet ${SPEAKER_DS} is gone (uninstall)`);
      lab.startSpeaker("node2");
      await lab.waitSpeakersReady(60_000);
      await waitHops(
        ip,
        lab.nodes.map((n) => n.ip),
        "node2's speaker is back",
      );
      await lab.deleteService(svc);
      await waitHops(ip, [], "the Service is deleted");
    } finally {
      await deleteDs();
      await patchPeer({ enableGracefulRestart: null, gracefulRestartTime: null });
    }
  });

  it("runs BFD with the router when the BGPPeer names a BFDProfile: a node cut off loses its next hop in well under a second (figure printed), and it comes back", async () => {
    const node = lab.node("node1");
    const both = lab.nodes.map((n) => n.ip);
    const nft = (args: string[], input?: string) =>
      execFileSync("ip", ["netns", "exec", node.ns, "nft", ...args], {
        input,
        stdio: ["pipe", "pipe", "pipe"],
      });
    type BfdPeer = { peer: string; status: string; "remote-transmit-interval"?: number };
    const bfdPeer = async (addr: string) =>
      (await router!.json<BfdPeer[]>("show bfd peers json")).find((p) => p.peer === addr);

    // A profile that does not exist yet: BGP goes on, the status says why there is no BFD.
    await patchPeer({ bfdProfile: "fast" });
    for (const n of lab.nodes)
      await waitFor(`${n.name}'s status naming the missing profile`, async () =>
        (await sessionState(n.name))?.bfdError?.includes('BFDProfile "fast" not found'),
      );
    await lab.createClusterObject("bfdprofiles", "BFDProfile", "fast", {
      receiveInterval: 100,
      transmitInterval: 100,
      detectMultiplier: 3,
    });
    await router!.vtysh(
      "configure terminal",
      "router bgp 64500",
      "neighbor NODES bfd",
      "neighbor NODES bfd profile fast",
    );
    try {
      const svc = await lab.createService("bfd", {
        port: nextPort++,
        pool: "bgp",
        endpoints: ["node1"],
      });
      const ip = await lab.waitForIP(svc);
      const allUp = async () => {
        for (const n of lab.nodes) {
          await waitFor(
            `the router's BFD peer ${n.ip} up at 100 ms`,
            async () => {
              const p = await bfdPeer(n.ip);
              return p?.status === "up" && p["remote-transmit-interval"] === 100;
            },
            30_000,
          );
          await waitFor(`${n.name}'s BGPSessionState with bfdState Up`, async () => {
            const st = await sessionState(n.name);
            return st?.bfdState === "Up" && st.bfdError === undefined;
          });
        }
        await waitHops(ip, both, "both nodes advertise with BFD up");
      };
      await allUp();

      // RFC 5881 §5 in the real speaker: BFD packets that did not arrive with TTL 255 (here
      // 254, as if forwarded) are dropped before decoding and counted in its metrics.
      const node2 = lab.node("node2");
      const ttlDrops = async () => {
        const text = await (await fetch(`http://${node2.ip}:7473/metrics`)).text();
        const m = /^ironlb_speaker_bfd_packets_dropped_total\{reason="ttl"\} (\S+)$/m.exec(text);
        return Number(m?.[1] ?? 0);
      };
      const dropsBefore = await ttlDrops();
      const send = `const s = require("node:dgram").createSocket("udp4");
        s.bind(0, ${JSON.stringify(ROUTER_IP)}, () => {
          s.setTTL(254);
          let n = 5;
          const go = () => s.send(Buffer.alloc(24, 0x20), 3784, ${JSON.stringify(node2.ip)}, () => {
            if (--n > 0) setTimeout(go, 20); else s.close();
          });
          go();
        });`;
      execFileSync("ip", ["netns", "exec", routerNs, process.execPath, "-e", send], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      await waitFor(
        "node2's metric of BFD packets dropped for their TTL to count the 5 sent",
        async () => (await ttlDrops()) === dropsBefore + 5,
        5000,
      ).catch(async (err: Error) => {
        throw new Error(`${err.message}; now ${await ttlDrops()}, before ${dropsBefore}`);
      });
      expect((await bfdPeer(node2.ip))?.status).toBe("up");

      // node1 cut off from the router (its link stays up): the router's BFD notices within
      // 3 × 100 ms and its kernel route loses node1, long before any BGP hold time.
      const t0 = performance.now();
      nft(["-f", "-"], DROP_ROUTER);
      let lostMs: number;
      try {
        await waitHops(ip, [lab.node("node2").ip], "node1 cut off", {
          timeoutMs: 5000,
          intervalMs: 10,
        });
        lostMs = performance.now() - t0;
        // node1's speaker saw its BFD go Down too and ended the BGP session at once with a
        // Cease "BFD Down" (6/10, RFC 9384), lost in the drop, rather than its hold timer.
        await waitFor("node1's status with BFD Down and the Cease it sent", async () => {
          const st = await sessionState("node1");
          return st?.bfdState !== "Up" && st?.lastNotification?.startsWith("sent 6/10");
        });
      } finally {
        nft(["delete", "table", "inet", "ilbbgpbfd"]);
      }
      console.log(
        `BFD 100 ms × 3 through the speaker: node1 cut off -> router kernel route without it after ${lostMs.toFixed(0)} ms`,
      );
      expect(lostMs).toBeLessThan(1000);
      // Back: BFD Up again, a new BGP session, both next hops.
      await allUp();
      await lab.deleteService(svc);
      await waitHops(ip, [], "the Service is deleted");
    } finally {
      try {
        nft(["delete", "table", "inet", "ilbbgpbfd"]);
      } catch {
        // already gone
      }
      await router!.vtysh("configure terminal", "router bgp 64500", "no neighbor NODES bfd");
      await patchPeer({ bfdProfile: null });
    }
  });
});
