// TCP-MD5 (RFC 2385) on ironlb's BGP sessions against real routers: FRR (`neighbor X
// password`) and BIRD 2 (`password "..."`), each in its own network namespace, peered with
// a node namespace whose child process (fixtures/bgp-session.ts) runs the BgpSessions. A
// session with the router's password is established and its route installed; another
// password, none where the router expects one, or one where the router expects none gives
// no session (the router's kernel drops the segments, its TcpExt counters say which way)
// and a status that names a possible password mismatch instead of a bare timeout.
//
// Namespaces: ilb-md5-{node,frr,bird}-<random>; nothing in the root namespace changes.
// Addresses: node–FRR 203.0.113.40/29 (FRR .41; node .42 right password, .43 wrong, .44
// none, .45 a password FRR does not expect) and 2001:db8:5d5:1::/64 (FRR ::1, node ::2);
// node–BIRD 203.0.113.48/29 (BIRD .49; node .50 right, .51 wrong, .52 none) and
// 2001:db8:5d5:2::/64 (BIRD ::1, node ::2); advertised 203.0.113.57/32 and
// 2001:db8:5d5:ff::1/128. ASNs: node 4200000002, FRR 64502, BIRD 64503.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { addonSocket } from "../../src/bgp/tcp-socket.ts";
import type { BgpPeerConfig, BgpRoute } from "../../src/bgp/types.ts";
import { waitFor } from "../support/kube.ts";
import { kernelRoute, RouterLab, sh } from "./fixtures/routers.ts";

const MY_ASN = 4200000002;
const RIGHT = "md5-right-Pa55";
const WRONG = "md5-wrong-Pa55";

const peer = (
  name: string,
  peerASN: number,
  peerAddress: string,
  sourceAddress: string,
  password: string | undefined,
): BgpPeerConfig => ({
  name,
  myASN: MY_ASN,
  peerASN,
  peerAddress,
  sourceAddress,
  peerPort: 179,
  holdTime: 3,
  keepaliveTime: 1,
  connectTime: 2,
  routerID: "203.0.113.42",
  ...(password === undefined ? {} : { password }),
});
const PEERS = [
  peer("frr-right", 64502, "203.0.113.41", "203.0.113.42", RIGHT),
  peer("frr-wrong", 64502, "203.0.113.41", "203.0.113.43", WRONG),
  peer("frr-none", 64502, "203.0.113.41", "203.0.113.44", undefined),
  peer("frr-unexpected", 64502, "203.0.113.41", "203.0.113.45", RIGHT),
  peer("frr-right6", 64502, "2001:db8:5d5:1::1", "2001:db8:5d5:1::2", RIGHT),
  peer("bird-right", 64503, "203.0.113.49", "203.0.113.50", RIGHT),
  peer("bird-wrong", 64503, "203.0.113.49", "203.0.113.51", WRONG),
  peer("bird-none", 64503, "203.0.113.49", "203.0.113.52", undefined),
  peer("bird-right6", 64503, "2001:db8:5d5:2::1", "2001:db8:5d5:2::2", RIGHT),
  // The source address is on no interface of the node: the addon's bind fails.
  peer("frr-badsource", 64502, "203.0.113.41", "203.0.113.46", RIGHT),
];
const R4: BgpRoute = { prefix: "203.0.113.57/32", communities: [], largeCommunities: [] };
const R6: BgpRoute = { prefix: "2001:db8:5d5:ff::1/128", communities: [], largeCommunities: [] };

const FRR_CONF = (dir: string) => `hostname ilb-md5-frr
log file ${dir}/bgpd.log
router bgp 64502
 bgp router-id 203.0.113.41
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
${["203.0.113.42", "203.0.113.43", "203.0.113.44", "203.0.113.45", "2001:db8:5d5:1::2"]
  .map((a) => ` neighbor ${a} remote-as ${MY_ASN}\n neighbor ${a} passive\n`)
  .join("")}${["203.0.113.42", "203.0.113.43", "203.0.113.44", "2001:db8:5d5:1::2"]
  .map((a) => ` neighbor ${a} password ${RIGHT}\n`)
  .join("")} address-family ipv4 unicast
  neighbor 203.0.113.42 activate
  neighbor 203.0.113.43 activate
  neighbor 203.0.113.44 activate
  neighbor 203.0.113.45 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor 2001:db8:5d5:1::2 activate
 exit-address-family
`;

const birdPeer = (name: string, local: string, neighbor: string, family: 4 | 6) => `
protocol bgp ${name} {
  local ${local} as 64503; neighbor ${neighbor} as ${MY_ASN};
  passive on; error wait time 1,5; password "${RIGHT}";
  ipv${family} { import all; export none; };
}`;
const BIRD_CONF = (dir: string) => `log "${dir}/bird.log" all;
router id 203.0.113.49;
protocol device { }
protocol kernel { ipv4 { import none; export all; }; }
protocol kernel { ipv6 { import none; export all; }; }
${birdPeer("right4", "203.0.113.49", "203.0.113.50", 4)}
${birdPeer("wrong4", "203.0.113.49", "203.0.113.51", 4)}
${birdPeer("none4", "203.0.113.49", "203.0.113.52", 4)}
${birdPeer("right6", "2001:db8:5d5:2::1", "2001:db8:5d5:2::2", 6)}
`;

/** The namespace's TCP-MD5 counters (TcpExtTCPMD5*), from its /proc/net/netstat. */
function md5Counters(ns: string): Record<string, number> {
  const lines = sh("ip", ["netns", "exec", ns, "cat", "/proc/net/netstat"]).split("\n");
  const names = lines.find((l) => l.startsWith("TcpExt:"))!.split(/\s+/);
  const values = lines.filter((l) => l.startsWith("TcpExt:"))[1]!.split(/\s+/);
  const out: Record<string, number> = {};
  names.forEach((n, i) => {
    if (n.startsWith("TCPMD5")) out[n] = Number(values[i]);
  });
  return out;
}

const lab = new RouterLab("md5", {
  frr: {
    conf: FRR_CONF,
    nodeDev: "ethfrr",
    nodeAddrs: [
      "203.0.113.42/29",
      "203.0.113.43/29",
      "203.0.113.44/29",
      "203.0.113.45/29",
      "2001:db8:5d5:1::2/64",
    ],
    routerAddrs: ["203.0.113.41/29", "2001:db8:5d5:1::1/64"],
  },
  bird: {
    conf: BIRD_CONF,
    nodeDev: "ethbird",
    nodeAddrs: ["203.0.113.50/29", "203.0.113.51/29", "203.0.113.52/29", "2001:db8:5d5:2::2/64"],
    routerAddrs: ["203.0.113.49/29", "2001:db8:5d5:2::1/64"],
  },
});
const NS_FRR = lab.ns.frr;
const NS_BIRD = lab.ns.bird;

describe("BGP TCP-MD5 against FRR and BIRD (network namespaces)", () => {
  const status = (p: string) => lab.sessions.status(p);

  /** The session's status once a connect attempt has timed out (connectTime 2 s). */
  const timedOut = (p: string) =>
    waitFor(
      `${p}: a connect timeout`,
      async () => {
        const s = await status(p);
        return s.lastError?.startsWith("no TCP connection within 2 s") ? s : undefined;
      },
      15_000,
    );

  beforeAll(async () => {
    await lab.start();
    for (const p of PEERS) {
      await lab.sessions.start(p);
      await lab.sessions.routes(p.name, [p.peerAddress.includes(":") ? R6 : R4]);
    }
  });

  afterAll(() => lab.stop());

  describe("FRR", () => {
    it("establishes the sessions with the router's password (IPv4, IPv6) and installs the routes", async () => {
      for (const addr of ["203.0.113.42", "2001:db8:5d5:1::2"]) {
        await waitFor(
          `FRR's session with ${addr}`,
          async () => (await lab.frr.neighbor(addr)).bgpState === "Established",
          20_000,
        );
      }
      expect(await status("frr-right")).toMatchObject({ state: "Established" });
      expect(await status("frr-right6")).toMatchObject({ state: "Established" });
      await waitFor(
        "203.0.113.57 in FRR's kernel through .42",
        async () => (await kernelRoute(NS_FRR, "203.0.113.57"))?.gateway === "203.0.113.42",
      );
      await waitFor(
        "2001:db8:5d5:ff::1 in FRR's kernel",
        async () =>
          (await kernelRoute(NS_FRR, "2001:db8:5d5:ff::1"))?.gateway === "2001:db8:5d5:1::2",
      );
    });

    it("gets no session with another password, and says it may be a password mismatch", async () => {
      const before = md5Counters(NS_FRR);
      const s = await timedOut("frr-wrong");
      expect(s.state).not.toBe("Established");
      expect(s.lastError).toContain("may be a TCP-MD5 password mismatch");
      expect((await lab.frr.neighbor("203.0.113.43")).bgpState).not.toBe("Established");
      // The router's kernel dropped our signed SYNs: wrong signature.
      await waitFor(
        "FRR's kernel to count a bad MD5 signature",
        () => md5Counters(NS_FRR).TCPMD5Failure! > before.TCPMD5Failure!,
      );
    });

    it("gets no session without a password where the router expects one, and says it may need one", async () => {
      const before = md5Counters(NS_FRR);
      const s = await timedOut("frr-none");
      expect(s.state).not.toBe("Established");
      expect(s.lastError).toContain("expects a TCP-MD5 password and this BGPPeer sets none");
      expect((await lab.frr.neighbor("203.0.113.44")).bgpState).not.toBe("Established");
      await waitFor(
        "FRR's kernel to count a missing MD5 signature",
        () => md5Counters(NS_FRR).TCPMD5NotFound! > before.TCPMD5NotFound!,
      );
    });

    it("gets no session with a password the router does not expect", async () => {
      const before = md5Counters(NS_FRR);
      const s = await timedOut("frr-unexpected");
      expect(s.lastError).toContain("may be a TCP-MD5 password mismatch");
      expect((await lab.frr.neighbor("203.0.113.45")).bgpState).not.toBe("Established");
      await waitFor(
        "FRR's kernel to count an unexpected MD5 signature",
        () => md5Counters(NS_FRR).TCPMD5Unexpected! > before.TCPMD5Unexpected!,
      );
    });

    it("reports a source address the node does not have (the addon's bind error)", async () => {
      const s = await waitFor("a bind error", async () => {
        const st = await status("frr-badsource");
        return st.lastError?.includes("EADDRNOTAVAIL") ? st : undefined;
      });
      expect(s.lastError).toMatch(
        /^connect failed: cannot create the TCP-MD5 socket: binding to 203\.0\.113\.46 failed: no interface of this node has it \(EADDRNOTAVAIL/,
      );
      expect(s.state).not.toBe("Established");
    });
  });

  describe("BIRD", () => {
    it("establishes the sessions with the router's password (IPv4, IPv6) and installs the routes", async () => {
      for (const p of ["right4", "right6"]) {
        await waitFor(
          `BIRD's ${p}`,
          async () =>
            /BGP state:\s+Established/.test(await lab.bird.birdc("show", "protocols", "all", p)),
          20_000,
        );
      }
      expect(await status("bird-right")).toMatchObject({ state: "Established" });
      expect(await status("bird-right6")).toMatchObject({ state: "Established" });
      await waitFor(
        "the routes in BIRD's kernel",
        async () =>
          (await kernelRoute(NS_BIRD, "203.0.113.57"))?.gateway === "203.0.113.50" &&
          (await kernelRoute(NS_BIRD, "2001:db8:5d5:ff::1"))?.gateway === "2001:db8:5d5:2::2",
      );
    });

    it("gets no session with another password, and says it may be a password mismatch", async () => {
      const before = md5Counters(NS_BIRD);
      const s = await timedOut("bird-wrong");
      expect(s.lastError).toContain("may be a TCP-MD5 password mismatch");
      expect(await lab.bird.birdc("show", "protocols", "all", "wrong4")).not.toMatch(
        /BGP state:\s+Established/,
      );
      await waitFor(
        "BIRD's kernel to count a bad MD5 signature",
        () => md5Counters(NS_BIRD).TCPMD5Failure! > before.TCPMD5Failure!,
      );
    });

    it("gets no session without a password where the router expects one", async () => {
      const before = md5Counters(NS_BIRD);
      const s = await timedOut("bird-none");
      expect(s.lastError).toContain("expects a TCP-MD5 password and this BGPPeer sets none");
      expect(await lab.bird.birdc("show", "protocols", "all", "none4")).not.toMatch(
        /BGP state:\s+Established/,
      );
      await waitFor(
        "BIRD's kernel to count a missing MD5 signature",
        () => md5Counters(NS_BIRD).TCPMD5NotFound! > before.TCPMD5NotFound!,
      );
    });
  });

  it("refuses a key longer than the kernel's 80 bytes before creating a socket", () => {
    expect(() => addonSocket({ peerAddress: "203.0.113.41", password: "k".repeat(81) })).toThrow(
      /a TCP-MD5 key has 1 to 80 bytes, this one 81 \(EINVAL/,
    );
  });
});
