// End-to-end BGP mode through the real speaker (`ironlb speaker` in three node namespaces,
// a real controller and control plane), peered over IPv4 and IPv6 with two routers on the
// same LAN: FRR (eBGP) and BIRD 2 (iBGP). Where bgp-speaker.test.ts covers FRR over IPv4
// with two nodes, this file covers BIRD, IPv6 and dual-stack Services, three next hops, a
// 4-octet node ASN, and LOCAL_PREF, each judged from the routers (vtysh / birdc and the
// routers' kernel routes).
//
// Addresses: the e2e LAN 203.0.113.128/25 and 2001:db8:2::/64 (test/lab/addresses.ts),
// FRR 203.0.113.209 / 2001:db8:2::209, BIRD 203.0.113.210 / 2001:db8:2::210; Service IPs
// 198.51.100.84-89 and 2001:db8:2:ff::b0-bf. ASNs: nodes 4200000004 (4-octet: AS_TRANS in
// the OPEN), FRR 64506, BIRD 4200000004 (iBGP, so that LOCAL_PREF reaches it). Namespaces:
// the lab's prefix (ilbbgi…), routers `<prefix>frr` and `<prefix>bird`.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { bgpSessionStateName } from "../../src/api/bgpsessionstate.ts";
import { E2E_SUBNET, LAN6_BITS, POOL_CIDR } from "../lab/addresses.ts";
import { destroyStale, Lab, type LabService, randomPrefix } from "../lab/lab.ts";
import { run } from "../lab/net.ts";
import { clientsFor, waitFor } from "../support/kube.ts";
import {
  Bird,
  Frr,
  type FrrNeighbor,
  kernelRoute,
  nextHops,
  removeNamespaces,
  requireRouters,
} from "./fixtures/routers.ts";

if (process.platform !== "linux" || process.getuid?.() !== 0) {
  throw new Error("the e2e tier needs Linux and root (network namespaces): run it as root");
}
requireRouters();

const NODE_ASN = 4200000004;
const FRR_ASN = 64506;
const FRR = { v4: "203.0.113.209", v6: "2001:db8:2::209" };
const BIRD = { v4: "203.0.113.210", v6: "2001:db8:2::210" };
const POOL = ["198.51.100.84-198.51.100.87", "2001:db8:2:ff::b0-2001:db8:2:ff::b7"];
const POOL_ATTRS = ["198.51.100.88-198.51.100.89", "2001:db8:2:ff::b8-2001:db8:2:ff::bf"];
const group = "ironlb.dev";
const version = "v1beta1";
const PEERS = ["bgpi-frr4", "bgpi-frr6", "bgpi-bird4", "bgpi-bird6"];

/** A BGP path as FRR's `show bgp ipv4|ipv6 unicast <prefix> json` prints it (fields read here). */
interface FrrPath {
  aspath?: { string?: string };
  community?: { string?: string };
  largeCommunity?: { string?: string };
  locPrf?: number;
  nexthops?: { ip: string }[];
}

describe("BGP mode: three speakers peered with FRR and BIRD over IPv4 and IPv6", () => {
  const prefix = randomPrefix("ilbbgi");
  const ns = { frr: `${prefix}frr`, bird: `${prefix}bird` };
  let lab: Lab;
  let frr: Frr | undefined;
  let bird: Bird | undefined;
  let workDir = "";
  let nextPort = 9300;
  const custom = () => clientsFor(lab.kc).custom;
  const v4Hops = () => lab.nodes.map((n) => n.ip).sort();
  const v6Hops = () => lab.nodes.map((n) => n.ip6!).sort();
  const host = (ip: string) => (ip.includes(":") ? `${ip}/128` : `${ip}/32`);

  /** What both routers' kernels have for `ip`: its next hops (none: []), sorted. */
  const kernelHops = async (ip: string) => ({
    frr: nextHops(await kernelRoute(ns.frr, host(ip))),
    bird: nextHops(await kernelRoute(ns.bird, host(ip))),
  });
  /** What both routers say about `ip`, for a failure message. */
  const routersSay = async (ip: string) => {
    const fam = ip.includes(":") ? "ipv6" : "ipv4";
    return [
      `FRR: ${await frr!.vtysh(`show bgp ${fam} unicast ${host(ip)}`).catch(String)}`,
      `BIRD: ${await bird!.birdc("show", "route", "all", "for", host(ip)).catch(String)}`,
    ].join("\n");
  };
  /**
   * Waits until the kernel routes of both routers to `ip` have exactly the next hops `want`
   * (the nodes' addresses of `ip`'s family; [] for withdrawn); `at` picks one of them.
   */
  const waitKernelHops = async (
    ip: string,
    want: string[],
    what: string,
    { timeoutMs = 20_000, at = ["frr", "bird"] as ("frr" | "bird")[] } = {},
  ) => {
    const w = JSON.stringify([...want].sort());
    let now = { frr: [] as string[], bird: [] as string[] };
    await waitFor(
      `${what}: next hops for ${ip} = [${want.join(", ")}] at ${at.join(" and ")}`,
      async () => {
        now = await kernelHops(ip);
        return at.every((r) => JSON.stringify(now[r]) === w);
      },
      timeoutMs,
      50,
    ).catch(async (err: Error) => {
      throw new Error(
        `${err.message}; now FRR [${now.frr.join(", ")}], BIRD [${now.bird.join(", ")}]\n${await routersSay(ip)}`,
      );
    });
  };
  /** The Service's ingress IPs once it has one of each family. */
  const dualIPs = async (svc: LabService) => {
    const ips = await waitFor(
      `an IPv4 and an IPv6 address on ${svc.name}`,
      async () => {
        const ing = (await lab.getService(svc.name)).status?.loadBalancer?.ingress ?? [];
        const all = ing.map((i) => i.ip ?? "");
        return all.length === 2 && all.some((a) => a.includes(":")) ? all : undefined;
      },
      20_000,
      100,
    );
    return { v4: ips.find((a) => !a.includes(":"))!, v6: ips.find((a) => a.includes(":"))! };
  };
  const frrPaths = async (ip: string) => {
    const fam = ip.includes(":") ? "ipv6" : "ipv4";
    return (await frr!.json<{ paths?: FrrPath[] }>(`show bgp ${fam} unicast ${host(ip)} json`))
      .paths;
  };
  /** BIRD's routes for `ip` with their attributes ("Network not found" when none: birdc exits 1). */
  const birdRoute = (ip: string) =>
    bird!.birdc("show", "route", "all", "for", host(ip)).catch((err: Error) => err.message);
  /** A node's BGPSessionState status for one of the peers. */
  const sessionState = async (node: string, peer: string) =>
    (
      (await custom().getClusterCustomObject({
        group,
        version,
        plural: "bgpsessionstates",
        name: bgpSessionStateName(node, peer),
      })) as { status?: { state?: string; flaps?: number; lastNotification?: string } }
    ).status;
  /** A Cluster dual-stack Service with its endpoint on node1, once all nodes advertise it. */
  const advertisedByAll = async (name: string, pool = "bgpi") => {
    const svc = await lab.createService(name, {
      port: nextPort++,
      pool,
      dualStack: true,
      endpoints: ["node1"],
    });
    const { v4, v6 } = await dualIPs(svc);
    await waitKernelHops(v4, v4Hops(), "all three nodes advertise the IPv4 address");
    await waitKernelHops(v6, v6Hops(), "all three nodes advertise the IPv6 address");
    return { svc, v4, v6 };
  };
  const frrNeighbor = async (addr: string) =>
    (await frr!.json<Record<string, FrrNeighbor>>(`show bgp neighbors ${addr} json`))[addr];

  beforeAll(async () => {
    await destroyStale("ilbbgi");
    workDir = mkdtempSync(join(tmpdir(), "ironlb-e2e-bgpi-"));
    lab = await Lab.create({
      prefix,
      subnet: E2E_SUBNET,
      poolCIDR: POOL_CIDR,
      ipv6: true,
      nodes: 3,
      // Advertisement only: no Service data path is tested here.
      kubeProxy: false,
      kubeconfig: inject("kubeconfig"),
      binDir: inject("binDir"),
      workDir,
    });
    // The routers: namespaces on the lab's LAN (ports of its bridge), both families.
    for (const [name, addr] of [
      ["frr", FRR],
      ["bird", BIRD],
    ] as const) {
      const rns = ns[name];
      await run("ip", ["netns", "add", rns]);
      await run("ip", ["-n", rns, "link", "set", "lo", "up"]);
      await run("ip", [
        ...["-n", lab.switchNs, "link", "add", `${name}0`, "type", "veth"],
        ...["peer", "name", "eth0", "netns", rns],
      ]);
      await run("ip", ["-n", lab.switchNs, "link", "set", `${name}0`, "master", "br0", "up"]);
      await run("ip", ["-n", rns, "addr", "add", `${addr.v4}/${lab.subnetBits}`, "dev", "eth0"]);
      await run("ip", [
        ...["-n", rns, "addr", "add", `${addr.v6}/${LAN6_BITS}`, "dev", "eth0", "nodad"],
      ]);
      await run("ip", ["-n", rns, "link", "set", "eth0", "up"]);
    }
    // FRR: eBGP with every node over each family; RFC 8212 import policy (the pools' host
    // routes), maximum-paths for ECMP.
    const frrNeighbors = lab.nodes
      .flatMap((n) => [
        ` neighbor ${n.ip} peer-group NODES4`,
        ` neighbor ${n.ip6} peer-group NODES6`,
      ])
      .join("\n");
    frr = await Frr.start(
      ns.frr,
      (dir) => `hostname ${ns.frr}
log file ${dir}/bgpd.log
ip prefix-list SVC4 seq 5 permit ${POOL_CIDR} ge 32
ipv6 prefix-list SVC6 seq 5 permit 2001:db8:2:ff::/120 ge 128
route-map FROM-NODES permit 10
 match ip address prefix-list SVC4
exit
route-map FROM-NODES permit 20
 match ipv6 address prefix-list SVC6
exit
route-map TO-NODES deny 10
exit
router bgp ${FRR_ASN}
 bgp router-id ${FRR.v4}
 bgp log-neighbor-changes
 no bgp default ipv4-unicast
 neighbor NODES4 peer-group
 neighbor NODES4 remote-as ${NODE_ASN}
 neighbor NODES4 passive
 neighbor NODES4 timers 3 9
 neighbor NODES6 peer-group
 neighbor NODES6 remote-as ${NODE_ASN}
 neighbor NODES6 passive
 neighbor NODES6 timers 3 9
${frrNeighbors}
 address-family ipv4 unicast
  neighbor NODES4 activate
  neighbor NODES4 route-map FROM-NODES in
  neighbor NODES4 route-map TO-NODES out
  maximum-paths 8
 exit-address-family
 address-family ipv6 unicast
  neighbor NODES6 activate
  neighbor NODES6 route-map FROM-NODES in
  neighbor NODES6 route-map TO-NODES out
  maximum-paths 8
 exit-address-family
exit
`,
    );
    // BIRD: iBGP with every node over each family (next hops on the LAN: gateway direct);
    // the kernel protocols merge equal paths into one multipath route.
    const birdProtocols = lab.nodes
      .flatMap((n) =>
        (
          [
            ["4", BIRD.v4, n.ip],
            ["6", BIRD.v6, n.ip6!],
          ] as const
        ).map(
          ([fam, local, nb]) => `protocol bgp ${n.name}_${fam} {
  local ${local} as ${NODE_ASN}; neighbor ${nb} as ${NODE_ASN};
  direct; passive on; error wait time 1,5; hold time 9;
  ipv${fam} { gateway direct; import where net ~ [ ${fam === "4" ? `${POOL_CIDR}{32,32}` : "2001:db8:2:ff::/120{128,128}"} ]; export none; };
}`,
        ),
      )
      .join("\n");
    bird = await Bird.start(
      ns.bird,
      (dir) => `log "${dir}/bird.log" all;
router id ${BIRD.v4};
protocol device { }
protocol kernel { merge paths on; ipv4 { import none; export all; }; }
protocol kernel { merge paths on; ipv6 { import none; export all; }; }
${birdProtocols}
`,
    );
    lab.startController();
    for (const n of lab.nodes) lab.startSpeaker(n.name);
    await lab.waitSpeakersReady(60_000);
    await lab.createPool("bgpi", POOL, { autoAssign: false });
    await lab.createPool("bgpi-attrs", POOL_ATTRS, { autoAssign: false });
    const peer = (peerASN: number, peerAddress: string) => ({
      myASN: NODE_ASN,
      peerASN,
      peerAddress,
      holdTime: "9s",
      keepaliveTime: "3s",
      connectTime: "2s",
    });
    await lab.createClusterObject("bgppeers", "BGPPeer", "bgpi-frr4", peer(FRR_ASN, FRR.v4));
    await lab.createClusterObject("bgppeers", "BGPPeer", "bgpi-frr6", peer(FRR_ASN, FRR.v6));
    await lab.createClusterObject("bgppeers", "BGPPeer", "bgpi-bird4", peer(NODE_ASN, BIRD.v4));
    await lab.createClusterObject("bgppeers", "BGPPeer", "bgpi-bird6", peer(NODE_ASN, BIRD.v6));
    await lab.createClusterObject("bgpadvertisements", "BGPAdvertisement", "bgpi", {
      ipAddressPools: ["bgpi"],
    });
    await lab.createClusterObject("bgpadvertisements", "BGPAdvertisement", "bgpi-attrs", {
      ipAddressPools: ["bgpi-attrs"],
      communities: ["64512:300", "no-advertise", "large:4200000004:5:6"],
      localPref: 250,
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
      frr?.stop();
      bird?.stop();
      removeNamespaces([ns.frr, ns.bird]);
      await lab?.destroy();
    } finally {
      if (workDir && !process.env.IRONLB_KEEP_LOGS)
        rmSync(workDir, { recursive: true, force: true });
    }
  });

  it("establishes IPv4 and IPv6 sessions from all three nodes with FRR (eBGP, 4-octet ASN, End-of-RIB) and BIRD (iBGP)", async () => {
    for (const n of lab.nodes) {
      for (const [addr, afi] of [
        [n.ip, "ipv4Unicast"],
        [n.ip6!, "ipv6Unicast"],
      ] as const) {
        const nb = await waitFor(
          `FRR's session with ${n.name} (${addr})`,
          async () => {
            const x = await frrNeighbor(addr);
            return x?.bgpState === "Established" ? x : undefined;
          },
          30_000,
        );
        // The node's ASN does not fit the OPEN's 2 octets: FRR took it from the capability.
        expect(nb.remoteAs).toBe(NODE_ASN);
        expect((nb.neighborCapabilities as Record<string, unknown>)["4byteAs"]).toBe(
          "advertisedAndReceived",
        );
        // The initial table (empty here) ended with an End-of-RIB of the session's family.
        await waitFor(
          `FRR to have ${n.name}'s End-of-RIB (${afi})`,
          async () => {
            const gr = (await frrNeighbor(addr))?.gracefulRestartInfo as
              | { endOfRibRecv?: Record<string, boolean> }
              | undefined;
            return JSON.stringify(gr?.endOfRibRecv) === JSON.stringify({ [afi]: true });
          },
          10_000,
        );
      }
      for (const fam of ["4", "6"]) {
        const out = await waitFor(
          `BIRD's session ${n.name}_${fam}`,
          async () => {
            const o = await bird!.birdc("show", "protocols", "all", `${n.name}_${fam}`);
            return /BGP state:\s+Established/.test(o) ? o : undefined;
          },
          30_000,
        );
        expect(out).toMatch(new RegExp(`Neighbor AS:\\s+${NODE_ASN}\\b`));
      }
    }
    // Each node's BGPSessionState says the same for every peer.
    for (const n of lab.nodes)
      for (const p of PEERS)
        await waitFor(
          `${n.name}'s BGPSessionState for ${p} Established`,
          async () => (await sessionState(n.name, p))?.state === "Established",
        );
  });

  it("gives a dual-stack Cluster Service a /32 and a /128 with three next hops at both routers; withdraws both when it loses its endpoints and when it is deleted", async () => {
    const { svc, v4, v6 } = await advertisedByAll("dual");
    // The BGP tables agree: one path per node, the IPv6 one with the node's IPv6 next hop.
    const p6 = (await frrPaths(v6)) ?? [];
    expect(p6.flatMap((p) => p.nexthops?.map((h) => h.ip) ?? []).sort()).toEqual(v6Hops());
    expect(p6.every((p) => p.aspath?.string === String(NODE_ASN))).toBe(true);
    const b6 = await birdRoute(v6);
    for (const h of v6Hops()) expect(b6).toContain(`via ${h} on eth0`);
    // No ready endpoint anywhere: nothing to send traffic to, so no node advertises it.
    await lab.setEndpoints(svc, []);
    await waitKernelHops(v4, [], "the Service lost its endpoints (IPv4)");
    await waitKernelHops(v6, [], "the Service lost its endpoints (IPv6)");
    await lab.setEndpoints(svc, ["node2"]);
    await waitKernelHops(v4, v4Hops(), "an endpoint is back (IPv4)");
    await waitKernelHops(v6, v6Hops(), "an endpoint is back (IPv6)");
    await lab.deleteService(svc);
    await waitKernelHops(v4, [], "the Service is deleted (IPv4)");
    await waitKernelHops(v6, [], "the Service is deleted (IPv6)");
    expect(await frrPaths(v6)).toBeUndefined();
    expect(await birdRoute(v6)).toMatch(/Network not found/);
  });

  it("advertises a dual-stack Local Service only from the nodes with its endpoints, in both families, follows them, and withdraws when none is left", async () => {
    const svc = await lab.createService("local", {
      port: nextPort++,
      pool: "bgpi",
      dualStack: true,
      externalTrafficPolicy: "Local",
      endpoints: ["node2"],
    });
    const { v4, v6 } = await dualIPs(svc);
    const [n1, n2, n3] = [lab.node("node1"), lab.node("node2"), lab.node("node3")];
    await waitKernelHops(v4, [n2.ip], "only node2 has the endpoint (IPv4)");
    await waitKernelHops(v6, [n2.ip6!], "only node2 has the endpoint (IPv6)");
    await lab.setEndpoints(svc, ["node1", "node3"]);
    await waitKernelHops(v4, [n1.ip, n3.ip], "the endpoints moved to node1 and node3 (IPv4)");
    await waitKernelHops(v6, [n1.ip6!, n3.ip6!], "the endpoints moved to node1 and node3 (IPv6)");
    await lab.setEndpoints(svc, []);
    await waitKernelHops(v4, [], "no endpoint is left (IPv4)");
    await waitKernelHops(v6, [], "no endpoint is left (IPv6)");
    await lab.deleteService(svc);
  });

  it("carries an advertisement's communities and large communities to both routers, and its LOCAL_PREF to the internal one (BIRD) only", async () => {
    const { svc, v4, v6 } = await advertisedByAll("attrs", "bgpi-attrs");
    for (const ip of [v4, v6]) {
      const out = await birdRoute(ip);
      // One block per node's path, each with the advertisement's attributes.
      expect(out.match(/BGP\.local_pref: 250\b/g)).toHaveLength(3);
      expect(out.match(/BGP\.community: \(64512,300\) \(65535,65282\)/g)).toHaveLength(3);
      expect(out.match(/BGP\.large_community: \(4200000004, 5, 6\)/g)).toHaveLength(3);
      const paths = (await frrPaths(ip)) ?? [];
      expect(paths).toHaveLength(3);
      for (const p of paths) {
        expect(p.community?.string).toBe("64512:300 no-advertise");
        expect(p.largeCommunity?.string).toBe("4200000004:5:6");
        // eBGP: no LOCAL_PREF on the wire (FRR shows none, or its default 100, never 250).
        expect(p.locPrf ?? 100).toBe(100);
      }
    }
    await lab.deleteService(svc);
    await waitKernelHops(v4, [], "the Service is deleted (IPv4)");
    await waitKernelHops(v6, [], "the Service is deleted (IPv6)");
  });

  it("answers a route refresh from FRR (clear bgp … soft in) and from BIRD (reload in) by sending its routes again", async () => {
    const { svc, v4, v6 } = await advertisedByAll("refresh");
    const n1 = lab.node("node1");
    const before = (await frrNeighbor(n1.ip6!))!.messageStats;
    await frr!.vtysh(`clear bgp ipv6 unicast ${n1.ip6} soft in`);
    const after = await waitFor("FRR to receive node1's UPDATEs again", async () => {
      const m = (await frrNeighbor(n1.ip6!))!.messageStats;
      return m.updatesRecv! > before.updatesRecv! ? m : undefined;
    });
    expect(after.routeRefreshSent).toBe(before.routeRefreshSent! + 1);
    // BIRD counts the routes it receives ("Import updates"): the resent one adds to them.
    const received = async () =>
      Number(
        /Import updates:\s+(\d+)/.exec(
          await bird!.birdc("show", "protocols", "all", "node1_4"),
        )?.[1] ?? Number.NaN,
      );
    const r0 = await received();
    expect(r0).toBeGreaterThan(0);
    await bird!.birdc("reload", "in", "node1_4");
    await waitFor("BIRD to receive node1's IPv4 route again", async () => (await received()) > r0);
    await waitKernelHops(v4, v4Hops(), "the routes stay (IPv4)");
    await waitKernelHops(v6, v6Hops(), "the routes stay (IPv6)");
    await lab.deleteService(svc);
    await waitKernelHops(v4, [], "the Service is deleted (IPv4)");
  });

  it("comes back after FRR's clear bgp and neighbor shutdown and BIRD's restart: new sessions, routes again", async () => {
    const { svc, v4, v6 } = await advertisedByAll("reset");
    const [n1, n2, n3] = [lab.node("node1"), lab.node("node2"), lab.node("node3")];
    const flaps = async (node: string, peer: string) =>
      (await sessionState(node, peer))?.flaps ?? 0;
    /** Waits for a new flap of the node's session with `peer` and the NOTIFICATION it got. */
    const waitReset = async (node: string, peer: string, since: number, notification: RegExp) =>
      waitFor(`${node}'s session with ${peer} to go down with ${notification}`, async () => {
        const st = await sessionState(node, peer);
        return (st?.flaps ?? 0) > since && notification.test(st?.lastNotification ?? "");
      });

    // FRR resets node1's IPv6 session (Cease/Administrative Reset).
    const f1 = await flaps("node1", "bgpi-frr6");
    const c1 = ((await frrNeighbor(n1.ip6!))?.connectionsEstablished as number) ?? 0;
    await frr!.vtysh(`clear bgp ${n1.ip6}`);
    await waitReset("node1", "bgpi-frr6", f1, /^received 6\/4\b/);
    await waitFor(
      "FRR's new session with node1 (IPv6)",
      async () => {
        const nb = await frrNeighbor(n1.ip6!);
        return nb?.bgpState === "Established" && (nb.connectionsEstablished as number) > c1;
      },
      30_000,
    );
    await waitKernelHops(v6, v6Hops(), "node1's IPv6 route back after clear bgp");

    // FRR shuts node2's IPv4 session down: its next hop leaves FRR (BIRD keeps all three),
    // and comes back once the shutdown is lifted.
    const f2 = await flaps("node2", "bgpi-frr4");
    const conf = (cmd: string) => frr!.vtysh("configure terminal", `router bgp ${FRR_ASN}`, cmd);
    await conf(`neighbor ${n2.ip} shutdown message maintenance-window`);
    await waitKernelHops(v4, [n1.ip, n3.ip], "node2's IPv4 session shut down at FRR", {
      at: ["frr"],
    });
    await waitReset("node2", "bgpi-frr4", f2, /^received 6\/2 .*maintenance-window/);
    expect((await kernelHops(v4)).bird).toEqual(v4Hops());
    await conf(`no neighbor ${n2.ip} shutdown`);
    await waitKernelHops(v4, v4Hops(), "node2 back at FRR after no shutdown", {
      timeoutMs: 30_000,
    });

    // BIRD restarts node3's IPv6 session.
    const f3 = await flaps("node3", "bgpi-bird6");
    await bird!.birdc("restart", "node3_6");
    await waitReset("node3", "bgpi-bird6", f3, /^received 6\/4\b/);
    await waitFor(
      "BIRD's session node3_6 Established again",
      async () =>
        /BGP state:\s+Established/.test(await bird!.birdc("show", "protocols", "all", "node3_6")),
      30_000,
    );
    await waitKernelHops(v6, v6Hops(), "node3's IPv6 route back in BIRD after its restart");

    await lab.deleteService(svc);
    await waitKernelHops(v4, [], "the Service is deleted (IPv4)");
    await waitKernelHops(v6, [], "the Service is deleted (IPv6)");
  });
});
