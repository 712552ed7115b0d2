// Interop of ironlb's BGP sessions (src/bgp) with real routers: FRR (zebra + bgpd) and
// BIRD 2, each in its own network namespace, peered with a node namespace in which a child
// process (fixtures/bgp-session.ts) runs the BgpSessions. Everything is judged from the
// router: its BGP tables (vtysh / birdc) and its kernel routes.
//
// Namespaces: ilb-bgp-{node,frr,bird}-<random>; nothing in the root namespace changes.
// Addresses: node–FRR 203.0.113.112/29 (FRR .113, node .114 eBGP, .115 iBGP) and
// 2001:db8:b6b:1::/64; node–BIRD 203.0.113.104/29 (BIRD .105, node .106) and
// 2001:db8:b6b:2::/64; advertised prefixes 203.0.113.120/29 and 2001:db8:b6b:ff::/64.
// ASNs: node 4200000001 (4-octet, AS_TRANS in the OPEN), FRR 64500 (also the iBGP
// session's), BIRD 64501.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BgpPeerConfig, BgpRoute } from "../../src/bgp/types.ts";
import { waitFor } from "../support/kube.ts";
import { kernelRoute, RouterLab } from "./fixtures/routers.ts";

const MY_ASN = 4200000001;

const peer = (over: Partial<BgpPeerConfig> & Pick<BgpPeerConfig, "name" | "peerAddress">) => ({
  myASN: MY_ASN,
  peerASN: 64500,
  peerPort: 179,
  holdTime: 3,
  keepaliveTime: 1,
  connectTime: 2,
  routerID: "203.0.113.114",
  ...over,
});
const PEERS = {
  frr4: peer({ name: "frr4", peerAddress: "203.0.113.113", sourceAddress: "203.0.113.114" }),
  frr6: peer({
    name: "frr6",
    peerAddress: "2001:db8:b6b:1::1",
    sourceAddress: "2001:db8:b6b:1::2",
  }),
  frri: peer({
    name: "frri",
    myASN: 64500,
    peerAddress: "203.0.113.113",
    sourceAddress: "203.0.113.115",
    routerID: "203.0.113.115",
  }),
  bird4: peer({
    name: "bird4",
    peerASN: 64501,
    peerAddress: "203.0.113.105",
    sourceAddress: "203.0.113.106",
    routerID: "203.0.113.106",
  }),
  bird6: peer({
    name: "bird6",
    peerASN: 64501,
    peerAddress: "2001:db8:b6b:2::1",
    sourceAddress: "2001:db8:b6b:2::2",
    routerID: "203.0.113.106",
  }),
} satisfies Record<string, BgpPeerConfig>;

const comm = (a: number, b: number) => ((a << 16) | b) >>> 0;
const R1: BgpRoute = {
  prefix: "203.0.113.121/32",
  communities: [comm(64500, 100), comm(64500, 101)],
  largeCommunities: [[MY_ASN, 1, 2]],
};
const R2: BgpRoute = { prefix: "203.0.113.120/29", communities: [], largeCommunities: [] };
const R6: BgpRoute = {
  prefix: "2001:db8:b6b:ff::1/128",
  communities: [comm(64500, 200)],
  largeCommunities: [[MY_ASN, 3, 4]],
};
const RI: BgpRoute = {
  prefix: "203.0.113.122/32",
  communities: [],
  largeCommunities: [],
  localPref: 250,
};
const ALL = [R1, R2, R6];

const FRR_CONF = (dir: string) => `hostname ilb-bgp-frr
log file ${dir}/bgpd.log
log timestamp precision 3
router bgp 64500
 bgp router-id 203.0.113.113
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
 neighbor 203.0.113.114 remote-as ${MY_ASN}
 neighbor 203.0.113.114 passive
 neighbor 203.0.113.115 remote-as 64500
 neighbor 203.0.113.115 passive
 neighbor 2001:db8:b6b:1::2 remote-as ${MY_ASN}
 neighbor 2001:db8:b6b:1::2 passive
 address-family ipv4 unicast
  neighbor 203.0.113.114 activate
  neighbor 203.0.113.115 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor 2001:db8:b6b:1::2 activate
 exit-address-family
`;

// 'protocol kernel' puts the learnt routes into the BIRD namespace's kernel, to judge there.
const BIRD_CONF = (dir: string) => `log "${dir}/bird.log" all;
router id 203.0.113.105;
protocol device { }
protocol kernel { ipv4 { import none; export all; }; }
protocol kernel { ipv6 { import none; export all; }; }
protocol bgp node4 {
  local 203.0.113.105 as 64501; neighbor 203.0.113.106 as ${MY_ASN};
  passive on; error wait time 1,5;
  ipv4 { import all; export none; };
}
protocol bgp node6 {
  local 2001:db8:b6b:2::1 as 64501; neighbor 2001:db8:b6b:2::2 as ${MY_ASN};
  passive on; error wait time 1,5;
  ipv6 { import all; export none; };
}
`;

const lab = new RouterLab("bgp", {
  frr: {
    conf: FRR_CONF,
    nodeDev: "ethfrr",
    nodeAddrs: ["203.0.113.114/29", "203.0.113.115/29", "2001:db8:b6b:1::2/64"],
    routerAddrs: ["203.0.113.113/29", "2001:db8:b6b:1::1/64"],
  },
  bird: {
    conf: BIRD_CONF,
    nodeDev: "ethbird",
    nodeAddrs: ["203.0.113.106/29", "2001:db8:b6b:2::2/64"],
    routerAddrs: ["203.0.113.105/29", "2001:db8:b6b:2::1/64"],
  },
});
const NS_FRR = lab.ns.frr;
const NS_BIRD = lab.ns.bird;

describe("BGP sessions against FRR and BIRD (network namespaces)", () => {
  const vtysh = (...cmds: string[]) => lab.frr.vtysh(...cmds);
  const frrJson = <T = Record<string, unknown>>(cmd: string) => lab.frr.json<T>(cmd);
  const frrNeighbor = (addr: string) => lab.frr.neighbor(addr);
  const birdc = (...args: string[]) => lab.bird.birdc(...args);
  const status = (p: string) => lab.sessions.status(p);
  const established = async (p: string) => (await status(p)).state === "Established";

  beforeAll(async () => {
    await lab.start();
    for (const p of Object.values(PEERS)) await lab.sessions.start(p);
    for (const p of ["frr4", "frr6", "bird4", "bird6"]) await lab.sessions.routes(p, ALL);
    await lab.sessions.routes("frri", [RI]);
  });

  afterAll(() => lab.stop());

  describe("FRR", () => {
    it("establishes eBGP (IPv4, IPv6) and iBGP sessions; the router sees the 4-octet ASN", async () => {
      for (const addr of ["203.0.113.114", "203.0.113.115", "2001:db8:b6b:1::2"]) {
        await waitFor(
          `FRR's session with ${addr}`,
          async () => (await frrNeighbor(addr)).bgpState === "Established",
        );
      }
      const e = await frrNeighbor("203.0.113.114");
      expect(e.remoteAs).toBe(MY_ASN);
      expect((e.neighborCapabilities as Record<string, unknown>)["4byteAs"]).toBe(
        "advertisedAndReceived",
      );
      expect(e.bgpTimerHoldTimeMsecs).toBe(3000);
      expect((await frrNeighbor("203.0.113.115")).remoteAs).toBe(64500);
      expect((await frrNeighbor("2001:db8:b6b:1::2")).remoteAs).toBe(MY_ASN);
      const s = await status("frr4");
      expect(s).toMatchObject({
        state: "Established",
        negotiatedHoldTime: 3,
        families: ["ipv4-unicast"],
      });
      expect((await status("frr6")).families).toEqual(["ipv6-unicast"]);
    });

    it("advertises IPv4 and IPv6 with AS path, communities, large communities; local-pref on iBGP", async () => {
      type Paths = { paths: Record<string, unknown>[] };
      const v4 = await waitFor("203.0.113.121/32 at FRR", async () => {
        const r = await frrJson<Paths>("show bgp ipv4 unicast 203.0.113.121/32 json");
        return r.paths?.[0];
      });
      expect(v4).toMatchObject({
        aspath: { string: String(MY_ASN) },
        community: { string: "64500:100 64500:101" },
        largeCommunity: { string: `${MY_ASN}:1:2` },
        origin: "IGP",
      });
      const v6 = await waitFor("2001:db8:b6b:ff::1/128 at FRR", async () => {
        const r = await frrJson<Paths>("show bgp ipv6 unicast 2001:db8:b6b:ff::1/128 json");
        return r.paths?.[0];
      });
      expect(v6).toMatchObject({
        aspath: { string: String(MY_ASN) },
        community: { string: "64500:200" },
        largeCommunity: { string: `${MY_ASN}:3:4` },
      });
      const ibgp = await waitFor("203.0.113.122/32 at FRR", async () => {
        const r = await frrJson<Paths>("show bgp ipv4 unicast 203.0.113.122/32 json");
        return r.paths?.[0];
      });
      expect(ibgp).toMatchObject({ aspath: { string: "Local" }, locPrf: 250 });
      expect(v4.locPrf).toBeUndefined();
      // In the router's kernel, through the session's local address.
      expect(await kernelRoute(NS_FRR, "203.0.113.121")).toMatchObject({
        gateway: "203.0.113.114",
        protocol: "bgp",
      });
      expect(await kernelRoute(NS_FRR, "203.0.113.120/29")).toMatchObject({
        gateway: "203.0.113.114",
      });
      expect(await kernelRoute(NS_FRR, "203.0.113.122")).toMatchObject({
        gateway: "203.0.113.115",
      });
      expect(await kernelRoute(NS_FRR, "2001:db8:b6b:ff::1")).toMatchObject({
        gateway: "2001:db8:b6b:1::2",
      });
      // The IPv4 session carries no IPv6 prefix and the other way round.
      expect(await status("frr4")).toMatchObject({ prefixesSent: 2, prefixesIgnored: 1 });
      expect(await status("frr6")).toMatchObject({ prefixesSent: 1, prefixesIgnored: 2 });
    });

    it("sends End-of-RIB after the initial table", async () => {
      type GR = { gracefulRestartInfo: { endOfRibRecv: Record<string, boolean> } };
      expect(
        ((await frrNeighbor("203.0.113.114")) as unknown as GR).gracefulRestartInfo.endOfRibRecv,
      ).toEqual({
        ipv4Unicast: true,
      });
      expect(
        ((await frrNeighbor("2001:db8:b6b:1::2")) as unknown as GR).gracefulRestartInfo
          .endOfRibRecv,
      ).toEqual({
        ipv6Unicast: true,
      });
    });

    it("withdraws a removed prefix and re-announces a changed one", async () => {
      await lab.sessions.routes("frr4", [{ ...R1, communities: [comm(64500, 300)] }, R6]);
      await lab.sessions.routes("frr6", [R1]);
      await waitFor(
        "203.0.113.120/29 withdrawn at FRR",
        async () => (await kernelRoute(NS_FRR, "203.0.113.120/29")) === undefined,
      );
      await waitFor(
        "2001:db8:b6b:ff::1 withdrawn at FRR",
        async () => (await kernelRoute(NS_FRR, "2001:db8:b6b:ff::1")) === undefined,
      );
      await waitFor("the new community at FRR", async () => {
        const r = await frrJson<{ paths: { community?: { string: string } }[] }>(
          "show bgp ipv4 unicast 203.0.113.121/32 json",
        );
        return r.paths?.[0]?.community?.string === "64500:300";
      });
      await lab.sessions.routes("frr4", ALL);
      await lab.sessions.routes("frr6", ALL);
      await waitFor(
        "203.0.113.120/29 back",
        async () => (await kernelRoute(NS_FRR, "203.0.113.120/29")) !== undefined,
      );
      await waitFor(
        "2001:db8:b6b:ff::1 back",
        async () => (await kernelRoute(NS_FRR, "2001:db8:b6b:ff::1")) !== undefined,
      );
    });

    it("answers a ROUTE-REFRESH (clear bgp … soft in) by resending its routes", async () => {
      const before = (await frrNeighbor("203.0.113.114")).messageStats;
      const ours = (await status("frr4")).messagesReceived.routeRefresh ?? 0;
      await vtysh("clear bgp ipv4 unicast 203.0.113.114 soft in");
      await waitFor(
        "our session to see the ROUTE-REFRESH",
        async () => (await status("frr4")).messagesReceived.routeRefresh === ours + 1,
      );
      const after = await waitFor("FRR to receive the resent UPDATEs", async () => {
        const m = (await frrNeighbor("203.0.113.114")).messageStats;
        return m.updatesRecv! > before.updatesRecv! ? m : undefined;
      });
      expect(after.routeRefreshSent).toBe(before.routeRefreshSent! + 1);
      expect(await kernelRoute(NS_FRR, "203.0.113.121")).toMatchObject({
        gateway: "203.0.113.114",
      });
    });

    it("reconnects and re-advertises after clear bgp *", async () => {
      const flaps = (await status("frr4")).flaps;
      await vtysh("clear bgp *");
      await waitFor(
        "the session to go down",
        async () => (await status("frr4")).flaps === flaps + 1,
      );
      expect((await status("frr4")).lastNotification).toMatchObject({
        direction: "received",
        code: 6,
        subcode: 4,
        text: "Cease/Administrative Reset",
      });
      await waitFor("Established again", () => established("frr4"), 20_000);
      await waitFor(
        "FRR's session again",
        async () => (await frrNeighbor("203.0.113.114")).bgpState === "Established",
      );
      await waitFor(
        "the route back at FRR",
        async () => (await kernelRoute(NS_FRR, "203.0.113.121"))?.gateway === "203.0.113.114",
      );
    });

    it("handles neighbor shutdown (with its message) and reconnects after no shutdown", async () => {
      const conf = (cmd: string) => vtysh("configure terminal", "router bgp 64500", cmd);
      await waitFor("Established", () => established("frr6"), 20_000);
      const t0 = Date.now();
      await conf("neighbor 2001:db8:b6b:1::2 shutdown message maintenance-window");
      const s = await waitFor("the shutdown at our session", async () => {
        const st = await status("frr6");
        return st.lastNotification !== undefined && st.lastNotification.at >= t0 ? st : undefined;
      });
      expect(s.state).not.toBe("Established");
      expect(s.lastNotification).toMatchObject({
        direction: "received",
        text: 'Cease/Administrative Shutdown: "maintenance-window"',
      });
      await waitFor(
        "the IPv6 route gone at FRR",
        async () => (await kernelRoute(NS_FRR, "2001:db8:b6b:ff::1")) === undefined,
      );
      await conf("no neighbor 2001:db8:b6b:1::2 shutdown");
      await waitFor("Established again", () => established("frr6"), 30_000);
      await waitFor(
        "the IPv6 route back at FRR",
        async () => (await kernelRoute(NS_FRR, "2001:db8:b6b:ff::1")) !== undefined,
      );
    });

    it("tears a silent router's session down after the hold time (4/0) and comes back", async () => {
      const bgpd = lab.frr.pid("bgpd")!;
      await waitFor("Established", () => established("frr4"));
      const t0 = Date.now();
      process.kill(bgpd, "SIGSTOP");
      let elapsed = 0;
      try {
        await waitFor(
          "our hold timer to expire",
          async () => {
            const n = (await status("frr4")).lastNotification;
            return n?.direction === "sent" && n.code === 4 && n.at > t0;
          },
          10_000,
        );
        elapsed = Date.now() - t0;
      } finally {
        process.kill(bgpd, "SIGCONT");
      }
      // Hold 3 s, keepalives every second: 2–3 s after the last one FRR sent.
      expect(elapsed).toBeGreaterThan(1900);
      expect(elapsed).toBeLessThan(4500);
      expect((await status("frr4")).lastNotification?.text).toBe("Hold Timer Expired");
      await waitFor("FRR to read our NOTIFICATION", async () => {
        const n = await frrNeighbor("203.0.113.114");
        return (
          n.lastNotificationReason === "Hold Timer Expired" || n.lastErrorCodeSubcode === "0400"
        );
      });
      await waitFor("Established again", () => established("frr4"), 20_000);
    });

    it("keeps its keepalives coming, so that only a stopped speaker trips the router's hold timer", async () => {
      await waitFor("Established", () => established("frr4"));
      const before = await frrNeighbor("203.0.113.114");
      // Five keepalive intervals of one second: the router still has the session.
      await new Promise((r) => setTimeout(r, 5000));
      const during = await frrNeighbor("203.0.113.114");
      expect(during.bgpState).toBe("Established");
      expect(
        during.messageStats.keepalivesRecv! - before.messageStats.keepalivesRecv!,
      ).toBeGreaterThanOrEqual(4);
      const flaps = (await status("frr4")).flaps;
      const t0 = Date.now();
      lab.sessions.child.kill("SIGSTOP");
      try {
        await waitFor(
          "FRR's hold timer to expire",
          async () => {
            const n = await frrNeighbor("203.0.113.114");
            return (
              n.bgpState !== "Established" && n.lastNotificationReason === "Hold Timer Expired"
            );
          },
          10_000,
        );
        expect(Date.now() - t0).toBeGreaterThan(1900);
      } finally {
        lab.sessions.child.kill("SIGCONT");
      }
      await waitFor(
        "our session to learn it and come back",
        async () => {
          const s = await status("frr4");
          return s.state === "Established" && s.flaps === flaps + 1 ? s : undefined;
        },
        20_000,
      );
    });

    it("ends a session with Cease/Administrative Shutdown and its RFC 9003 text", async () => {
      await waitFor("Established", () => established("frr4"));
      const s = await lab.sessions.stopSession("frr4", "ironlb: node drained");
      expect(s.state).toBe("Idle");
      await waitFor("FRR to record our shutdown", async () => {
        const n = await frrNeighbor("203.0.113.114");
        return (
          n.lastShutdownDescription === "ironlb: node drained" &&
          n.lastNotificationReason === "Cease/Administrative Shutdown"
        );
      });
      await waitFor(
        "the routes gone at FRR",
        async () => (await kernelRoute(NS_FRR, "203.0.113.121")) === undefined,
      );
      // Stopped means stopped: no reconnect.
      await new Promise((r) => setTimeout(r, 1500));
      expect((await frrNeighbor("203.0.113.114")).bgpState).not.toBe("Established");
    });
  });

  describe("BIRD", () => {
    it("establishes IPv4 and IPv6 sessions; BIRD sees the 4-octet ASN", async () => {
      for (const p of ["node4", "node6"]) {
        await waitFor(
          `BIRD's ${p}`,
          async () => /BGP state:\s+Established/.test(await birdc("show", "protocols", "all", p)),
          20_000,
        );
      }
      expect(await birdc("show", "protocols", "all", "node4")).toMatch(
        new RegExp(`Neighbor AS:\\s+${MY_ASN}`),
      );
      expect(await status("bird4")).toMatchObject({ state: "Established", negotiatedHoldTime: 3 });
    });

    it("advertises IPv4 and IPv6 with communities and large communities into BIRD's kernel", async () => {
      const v4 = await waitFor("203.0.113.121/32 in BIRD", async () => {
        const out = await birdc("show", "route", "all", "for", "203.0.113.121/32");
        return out.includes("BGP.as_path") ? out : undefined;
      });
      expect(v4).toMatch(new RegExp(`BGP.as_path: ${MY_ASN}\\b`));
      expect(v4).toContain("BGP.community: (64500,100) (64500,101)");
      expect(v4).toContain(`BGP.large_community: (${MY_ASN}, 1, 2)`);
      const v6 = await waitFor("2001:db8:b6b:ff::1/128 in BIRD", async () => {
        const out = await birdc("show", "route", "all", "for", "2001:db8:b6b:ff::1/128");
        return out.includes("BGP.as_path") ? out : undefined;
      });
      expect(v6).toContain("BGP.community: (64500,200)");
      expect(v6).toContain(`BGP.large_community: (${MY_ASN}, 3, 4)`);
      await waitFor(
        "kernel routes in BIRD's namespace",
        async () =>
          (await kernelRoute(NS_BIRD, "203.0.113.121"))?.gateway === "203.0.113.106" &&
          (await kernelRoute(NS_BIRD, "2001:db8:b6b:ff::1"))?.gateway === "2001:db8:b6b:2::2",
      );
      expect(await kernelRoute(NS_BIRD, "203.0.113.120/29")).toMatchObject({
        gateway: "203.0.113.106",
      });
    });

    it("withdraws a removed prefix", async () => {
      await lab.sessions.routes("bird4", [R2]);
      await waitFor(
        "203.0.113.121 withdrawn at BIRD",
        async () => (await kernelRoute(NS_BIRD, "203.0.113.121")) === undefined,
      );
      expect(await birdc("show", "route", "for", "203.0.113.121/32")).not.toContain(
        "203.0.113.121/32",
      );
      expect(await kernelRoute(NS_BIRD, "203.0.113.120/29")).toMatchObject({
        gateway: "203.0.113.106",
      });
      await lab.sessions.routes("bird4", ALL);
      await waitFor(
        "203.0.113.121 back",
        async () => (await kernelRoute(NS_BIRD, "203.0.113.121")) !== undefined,
      );
    });

    it("answers BIRD's ROUTE-REFRESH (reload in)", async () => {
      const s0 = await status("bird4");
      await birdc("reload", "in", "node4");
      await waitFor("the ROUTE-REFRESH answered", async () => {
        const s = await status("bird4");
        return (
          s.messagesReceived.routeRefresh === (s0.messagesReceived.routeRefresh ?? 0) + 1 &&
          s.messagesSent.update! > s0.messagesSent.update!
        );
      });
      expect(await kernelRoute(NS_BIRD, "203.0.113.121")).toMatchObject({
        gateway: "203.0.113.106",
      });
    });

    it("reconnects after BIRD restarts the session", async () => {
      const flaps = (await status("bird4")).flaps;
      await birdc("restart", "node4");
      await waitFor(
        "the session to go down",
        async () => (await status("bird4")).flaps === flaps + 1,
      );
      await waitFor("Established again", () => established("bird4"), 20_000);
      await waitFor(
        "the route back in BIRD",
        async () => (await kernelRoute(NS_BIRD, "203.0.113.121")) !== undefined,
      );
    });

    it("ends a session with its shutdown text shown by BIRD", async () => {
      await lab.sessions.stopSession("bird6", "ironlb: speaker uninstalled");
      const out = await waitFor("BIRD to record our shutdown", async () => {
        const o = await birdc("show", "protocols", "all", "node6");
        return /Administrative shutdown/i.test(o) ? o : undefined;
      });
      expect(out).toContain("ironlb: speaker uninstalled");
      await waitFor(
        "the IPv6 route gone in BIRD",
        async () => (await kernelRoute(NS_BIRD, "2001:db8:b6b:ff::1")) === undefined,
      );
    });
  });
});
