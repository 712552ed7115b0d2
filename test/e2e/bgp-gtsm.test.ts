// GTSM (RFC 5082) on ironlb's BGP sessions against FRR (`neighbor X ttl-security hops 1`),
// in network namespaces: with GTSM on both sides the session is Established and stays so
// (IPv4, IPv6), which FRR allows only for segments received with TTL 255; a router that does
// not send with TTL 255 gets no session, the node's kernel dropping its segments
// (TcpExtTCPMinTTLDrop); a node without GTSM gets none either, the router dropping ours.
//
// Namespaces: ilb-gtsm-{node,frr}-<random>; nothing in the root namespace changes.
// Addresses: 203.0.113.24/29 (FRR .25; node .26 GTSM both sides, .27 GTSM on the node only,
// .28 GTSM on the router only) and 2001:db8:6a5:1::/64 (FRR ::1, node ::2 GTSM both).
// ASNs: node 4200000003, FRR 64504.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BgpPeerConfig } from "../../src/bgp/types.ts";
import { waitFor } from "../support/kube.ts";
import { RouterLab, sh } from "./fixtures/routers.ts";

const MY_ASN = 4200000003;
const ROUTER = "203.0.113.25";
const ROUTER6 = "2001:db8:6a5:1::1";

const peer = (
  name: string,
  peerAddress: string,
  sourceAddress: string,
  ttlSecurityHops: number | undefined,
): BgpPeerConfig => ({
  name,
  myASN: MY_ASN,
  peerASN: 64504,
  peerAddress,
  sourceAddress,
  peerPort: 179,
  holdTime: 3,
  keepaliveTime: 1,
  connectTime: 2,
  routerID: "203.0.113.26",
  ...(ttlSecurityHops === undefined ? {} : { ttlSecurityHops }),
});
const PEERS = [
  peer("both", ROUTER, "203.0.113.26", 1),
  peer("both6", ROUTER6, "2001:db8:6a5:1::2", 1),
  peer("node-only", ROUTER, "203.0.113.27", 1),
  peer("router-only", ROUTER, "203.0.113.28", undefined),
];

const FRR_CONF = (dir: string) => `hostname ilb-gtsm-frr
log file ${dir}/bgpd.log
router bgp 64504
 bgp router-id ${ROUTER}
 bgp log-neighbor-changes
 no bgp ebgp-requires-policy
 no bgp default ipv4-unicast
${["203.0.113.26", "203.0.113.27", "203.0.113.28", "2001:db8:6a5:1::2"]
  .map((a) => ` neighbor ${a} remote-as ${MY_ASN}\n neighbor ${a} passive\n`)
  .join("")}${["203.0.113.26", "203.0.113.28", "2001:db8:6a5:1::2"]
  .map((a) => ` neighbor ${a} ttl-security hops 1\n`)
  .join("")} address-family ipv4 unicast
  neighbor 203.0.113.26 activate
  neighbor 203.0.113.27 activate
  neighbor 203.0.113.28 activate
 exit-address-family
 address-family ipv6 unicast
  neighbor 2001:db8:6a5:1::2 activate
 exit-address-family
`;

const lab = new RouterLab("gtsm", {
  frr: {
    conf: FRR_CONF,
    nodeDev: "ethfrr",
    nodeAddrs: ["203.0.113.26/29", "203.0.113.27/29", "203.0.113.28/29", "2001:db8:6a5:1::2/64"],
    routerAddrs: [`${ROUTER}/29`, `${ROUTER6}/64`],
  },
});

/** The namespace's TcpExtTCPMinTTLDrop: segments its kernel dropped for IP_MINTTL. */
function minTtlDrops(ns: string): number {
  const lines = sh("ip", ["netns", "exec", ns, "cat", "/proc/net/netstat"]).split("\n");
  const tcpExt = lines.filter((l) => l.startsWith("TcpExt:"));
  const names = tcpExt[0]!.split(/\s+/);
  const values = tcpExt[1]!.split(/\s+/);
  const i = names.indexOf("TCPMinTTLDrop");
  if (i < 0) throw new Error("this kernel has no TcpExt TCPMinTTLDrop counter");
  return Number(values[i]);
}

describe("BGP GTSM against FRR (network namespaces)", () => {
  const status = (p: string) => lab.sessions.status(p);
  let dropsBefore = 0;
  let routerDropsBefore = 0;

  beforeAll(async () => {
    await lab.start();
    dropsBefore = minTtlDrops(lab.ns.node);
    routerDropsBefore = minTtlDrops(lab.ns.frr);
    for (const p of PEERS) await lab.sessions.start(p);
  });

  afterAll(() => lab.stop());

  it("is Established with GTSM on both sides (IPv4, IPv6) and stays so: FRR takes only TTL 255", async () => {
    for (const addr of ["203.0.113.26", "2001:db8:6a5:1::2"]) {
      await waitFor(
        `FRR's session with ${addr}`,
        async () => (await lab.frr.neighbor(addr)).bgpState === "Established",
        20_000,
      );
    }
    const since = {
      both: (await status("both")).establishedAt,
      both6: (await status("both6")).establishedAt,
    };
    // FRR's hold time is 3 s and its socket drops segments below TTL 255 once accepted: five
    // keepalives received (5 s) on the same session mean ours arrive with TTL 255.
    for (const addr of ["203.0.113.26", "2001:db8:6a5:1::2"]) {
      await waitFor(
        `5 keepalives at FRR from ${addr}`,
        async () => (await lab.frr.neighbor(addr)).messageStats.keepalivesRecv! >= 5,
        20_000,
      );
      expect((await lab.frr.neighbor(addr)).bgpState).toBe("Established");
    }
    expect(await status("both")).toMatchObject({ state: "Established", establishedAt: since.both });
    expect(await status("both6")).toMatchObject({
      state: "Established",
      establishedAt: since.both6,
    });
  });

  it("gets no session with a router that does not send with TTL 255: the node's kernel drops its segments", async () => {
    // FRR answers the SYN from its listener (TTL 255) but then sends with TTL 1 (eBGP): its
    // OPEN never gets through, and the session waits in OpenSent for it.
    await waitFor(
      "TCPMinTTLDrop on the node to rise",
      () => minTtlDrops(lab.ns.node) > dropsBefore,
      15_000,
    );
    await waitFor(
      "node-only in OpenSent",
      async () => (await status("node-only")).state === "OpenSent",
      15_000,
    );
    // Its status says why after the hold time (3 s here), not after the 4-minute OpenSent
    // hold timer.
    const why = await waitFor(
      "node-only's status to suspect GTSM",
      async () => {
        const st = await status("node-only");
        return st.state === "OpenSent" && st.lastError?.includes("GTSM mismatch?")
          ? st.lastError
          : undefined;
      },
      15_000,
    );
    expect(why).toMatch(/^no OPEN received 3 s after connecting: GTSM mismatch\?/);
    // FRR gives up waiting for our KEEPALIVE (its OpenConfirm hold time, 3 s); ours never came.
    await waitFor(
      "FRR to give up on 203.0.113.27",
      async () => {
        const n = await lab.frr.neighbor("203.0.113.27");
        return n.bgpState !== "OpenConfirm" && n.lastResetDueTo !== undefined;
      },
      15_000,
    );
    expect((await lab.frr.neighbor("203.0.113.27")).bgpState).not.toBe("Established");
    const s = await status("node-only");
    expect(s.state).not.toBe("Established");
    expect(s.establishedAt).toBeUndefined();
  });

  it("a router with GTSM and a node without: the router drops our segments, never Established there", async () => {
    // Our first segments reach FRR before it sets its minimum TTL on the accepted socket, so
    // it gets our OPEN; our KEEPALIVE and everything after it (TTL 64) it drops. Our side
    // may call the session Established for a moment, until its hold timer expires.
    await waitFor(
      "TCPMinTTLDrop on the router to rise",
      () => minTtlDrops(lab.ns.frr) > routerDropsBefore,
      15_000,
    );
    await waitFor(
      "router-only: an attempt ended",
      async () => (await status("router-only")).lastError !== undefined,
      15_000,
    );
    const n = await lab.frr.neighbor("203.0.113.28");
    expect(n.bgpState).not.toBe("Established");
    expect(n.connectionsEstablished ?? 0).toBe(0);
  });
});
