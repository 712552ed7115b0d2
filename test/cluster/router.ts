// BGP mode in the real-cluster lab: a router on the LAN running FRR, peered with every
// node's speaker, and a client behind the router, off the LAN, that reaches the Services
// only through it. Shared by `npm run lab` and the cluster e2e test.
//
//   ilbc-router   eth0 on the LAN (ROUTER_IP), eth1 to the routed client (ROUTER_ROUTED_IP);
//                 FRR (zebra + bgpd, AS ROUTER_ASN) accepts the pool's /32s from the nodes
//                 (an RFC 8212 import policy), installs one next hop per advertising node
//                 (maximum-paths), forwards, and hashes flows on their ports as well as their
//                 addresses (fib_multipath_hash_policy=1, a sysctl of its own namespace).
//   ilbc-rclient  the routed client (ROUTED_CLIENT_IP), default route via the router.
// Each node routes ROUTED_CIDR via the router, as a default gateway would. Everything is
// inside the lab's namespaces: destroyCluster removes them with the rest.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Frr, kernelRoute, nextHops } from "../e2e/fixtures/routers.ts";
import { run, tryRun } from "../lab/net.ts";
import { waitFor } from "../support/kube.ts";
import {
  LAN_PREFIX,
  NODE_ASN,
  POOL_CIDR,
  ROUTED_CIDR,
  ROUTED_CLIENT_IP,
  ROUTER_ASN,
  ROUTER_IP,
  ROUTER_ROUTED_IP,
} from "./addresses.ts";
import { PREFIX, type RealCluster, ROUTER_DIR } from "./cluster.ts";
import { deleteSpeakerPod, type EchoAnswer, parseEcho } from "./ironlb.ts";

export const ROUTER_NS = `${PREFIX}router`;
export const ROUTED_CLIENT_NS = `${PREFIX}rclient`;
/** The BGPPeer the chart values declare. */
export const BGP_PEER = "router";

const ROUTED_PREFIX = Number(ROUTED_CIDR.split("/")[1]);

/**
 * The chart values of BGP mode (`helm install -f`): every node peers with the router and
 * advertises the lab's pool (which its L2Advertisement announces on the LAN as well).
 */
export function bgpValues(): string {
  return `# BGP mode: every node's speaker connects to the lab's router and advertises the
# Service IPs of pool "lab" to it (the pool's L2Advertisement still answers ARP on the LAN).
bgpPeers:
  - name: ${BGP_PEER}
    spec:
      myASN: ${NODE_ASN}
      peerASN: ${ROUTER_ASN}
      peerAddress: ${ROUTER_IP}
      holdTime: 9s
      keepaliveTime: 3s
      connectTime: 2s
bgpAdvertisements:
  - name: lab
    spec:
      ipAddressPools: [lab]
`;
}

/** The router's bgpd.conf: passive sessions with the nodes, import the pool's /32s only. */
function bgpdConf(nodeIPs: string[]): string {
  return `hostname ${ROUTER_NS}
log file DIR/bgpd.log
! RFC 8212: eBGP routes are accepted only through an import policy; here the pool's /32s.
ip prefix-list SERVICES seq 5 permit ${POOL_CIDR} ge 32
route-map FROM-NODES permit 10
 match ip address prefix-list SERVICES
exit
route-map TO-NODES deny 10
exit
router bgp ${ROUTER_ASN}
 bgp router-id ${ROUTER_IP}
 bgp log-neighbor-changes
 neighbor NODES peer-group
 neighbor NODES remote-as ${NODE_ASN}
 ! The speakers connect out; the router only listens.
 neighbor NODES passive
${nodeIPs.map((ip) => ` neighbor ${ip} peer-group NODES`).join("\n")}
 address-family ipv4 unicast
  neighbor NODES route-map FROM-NODES in
  neighbor NODES route-map TO-NODES out
  ! One next hop per advertising node (ECMP).
  maximum-paths 8
 exit-address-family
exit
`;
}

function inNet(ns: string, cmd: string, args: string[]): Promise<string> {
  return run("nsenter", [`--net=/run/netns/${ns}`, "--", cmd, ...args]);
}

/** Adds namespace `ns` with `dev` (the peer of `port` in `from`) addressed `cidr`. */
async function link(from: string, port: string, ns: string, dev: string, cidr: string) {
  await inNet(from, "ip", ["link", "add", port, "type", "veth", "peer", "name", dev, "netns", ns]);
  await inNet(ns, "ip", ["addr", "add", cidr, "dev", dev]);
  await inNet(ns, "ip", ["link", "set", dev, "up"]);
}

export interface SessionState {
  metadata: { name: string };
  status?: { node?: string; peer?: string; peerAddress?: string; state?: string };
}

/** Waits until every node has an Established BGPSessionState for the router; returns them. */
export function waitSessionsEstablished(c: RealCluster, timeoutMs = 60_000) {
  return waitFor(
    "an Established BGPSessionState per node",
    async () => {
      const list = JSON.parse(await c.kubectl(["get", "bgpsessionstates", "-o", "json"])) as {
        items: SessionState[];
      };
      const up = list.items.filter(
        (i) => i.status?.peer === BGP_PEER && i.status.state === "Established",
      );
      return up.length === c.nodes.length ? up : undefined;
    },
    timeoutMs,
    250,
  );
}

export interface BgpFailover {
  node: string;
  /** Milliseconds from the speaker pod's deletion to its next hop leaving the router's kernel. */
  withdrawnMs: number;
  /** Next hops while it was gone. */
  during: string[];
  /** Milliseconds from the deletion to the next hop coming back (the new pod's session). */
  backMs: number;
}

export class LabRouter {
  readonly frr: Frr;
  private readonly c: RealCluster;

  private constructor(frr: Frr, c: RealCluster) {
    this.frr = frr;
    this.c = c;
  }

  /** Builds the router and the routed client on the cluster's LAN and starts FRR. */
  static async create(c: RealCluster): Promise<LabRouter> {
    await run("ip", ["netns", "add", ROUTER_NS]);
    await run("ip", ["netns", "add", ROUTED_CLIENT_NS]);
    for (const ns of [ROUTER_NS, ROUTED_CLIENT_NS])
      await inNet(ns, "ip", ["link", "set", "lo", "up"]);
    // A port of the LAN's bridge, like the nodes'.
    await link(`${PREFIX}sw`, "router", ROUTER_NS, "eth0", `${ROUTER_IP}/${LAN_PREFIX}`);
    await inNet(`${PREFIX}sw`, "ip", ["link", "set", "router", "master", "br0", "up"]);
    await link(ROUTER_NS, "eth1", ROUTED_CLIENT_NS, "eth0", `${ROUTED_CLIENT_IP}/${ROUTED_PREFIX}`);
    await inNet(ROUTER_NS, "ip", [
      "addr",
      "add",
      `${ROUTER_ROUTED_IP}/${ROUTED_PREFIX}`,
      "dev",
      "eth1",
    ]);
    await inNet(ROUTER_NS, "ip", ["link", "set", "eth1", "up"]);
    await inNet(ROUTED_CLIENT_NS, "ip", ["route", "add", "default", "via", ROUTER_ROUTED_IP]);
    // Namespaced sysctls of the router's own namespace (the root's stay as they are).
    await inNet(ROUTER_NS, "sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
    await inNet(ROUTER_NS, "sysctl", ["-qw", "net.ipv4.fib_multipath_hash_policy=1"]);
    for (const n of c.nodes)
      await inNet(n.ns, "ip", ["route", "add", ROUTED_CIDR, "via", ROUTER_IP]);
    const conf = bgpdConf(c.nodes.map((n) => n.ip));
    const frr = await Frr.start(ROUTER_NS, (dir) => conf.replaceAll("DIR", dir), {
      dir: ROUTER_DIR,
    });
    return new LabRouter(frr, c);
  }

  /** The router's kernel next hops for a Service IP, sorted. */
  async nextHops(ip: string): Promise<string[]> {
    return nextHops(await kernelRoute(ROUTER_NS, `${ip}/32`));
  }

  /** What a user would type on the router: FRR's view of the route. */
  async showRoute(ip: string): Promise<string> {
    return (await this.frr.vtysh(`show ip route ${ip}`)).trimEnd();
  }

  /** The router kernel's route, as `ip route show` prints it. */
  async kernelRouteText(ip: string): Promise<string> {
    return (await inNet(ROUTER_NS, "ip", ["route", "show", "exact", `${ip}/32`])).trimEnd();
  }

  /** The router's BGP state per node address (FRR's `show bgp neighbors`). */
  async sessions(): Promise<Record<string, string>> {
    const r = await this.frr.json<Record<string, { bgpState?: string }>>("show bgp neighbors json");
    return Object.fromEntries(Object.entries(r).map(([ip, n]) => [ip, n.bgpState ?? "?"]));
  }

  /** Waits until the router's session with every node is Established. */
  async waitEstablished(timeoutMs = 60_000): Promise<void> {
    const want = this.c.nodes.map((n) => `${n.ip}=Established`).sort();
    const now = async () =>
      Object.entries(await this.sessions())
        .map(([ip, st]) => `${ip}=${st}`)
        .sort();
    await waitFor(
      "the router's session with every node Established",
      async () => JSON.stringify(await now()) === JSON.stringify(want),
      timeoutMs,
      100,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}; now ${(await now()).join(", ")}`);
    });
  }

  /** The lines of the router's BGP log that match `re` (what its operator would read). */
  logLines(re: RegExp): string[] {
    let text = "";
    try {
      text = readFileSync(join(this.frr.dir, "bgpd.log"), "utf8");
    } catch {
      return [];
    }
    return text.split("\n").filter((l) => re.test(l));
  }

  /** Waits until the router's next hops for `ip` are exactly `want`; the milliseconds taken. */
  async waitNextHops(ip: string, want: string[], timeoutMs = 30_000): Promise<number> {
    const t0 = performance.now();
    const wanted = JSON.stringify([...want].sort());
    await waitFor(
      `the router's next hops for ${ip} to be [${want.join(", ")}]`,
      async () => JSON.stringify(await this.nextHops(ip)) === wanted,
      timeoutMs,
      10,
    ).catch(async (err: Error) => {
      throw new Error(`${err.message}; now [${(await this.nextHops(ip)).join(", ")}]`);
    });
    return performance.now() - t0;
  }

  /** One GET from the routed client (a new connection), parsed; undefined when none came. */
  async clientEcho(ip: string, timeoutMs = 1000): Promise<EchoAnswer | undefined> {
    const out = await tryRun("nsenter", [
      `--net=/run/netns/${ROUTED_CLIENT_NS}`,
      "--",
      "curl",
      "-sS",
      "--max-time",
      String(timeoutMs / 1000),
      `http://${ip}/`,
    ]);
    return parseEcho(out?.trim());
  }

  /** `count` GETs from the routed client; the answers. */
  async sample(ip: string, count: number): Promise<EchoAnswer[]> {
    const out: EchoAnswer[] = [];
    for (let i = 0; i < count; i++) {
      const a = await this.clientEcho(ip);
      if (a) out.push(a);
    }
    return out;
  }

  /** The first answer at the routed client (the route may still be on its way). */
  waitAnswer(ip: string, timeoutMs = 30_000): Promise<EchoAnswer> {
    return waitFor(
      `an answer from http://${ip}/ at the routed client`,
      () => this.clientEcho(ip, 500),
      timeoutMs,
      50,
    );
  }

  /**
   * Deletes `node`'s speaker pod and follows the router's next hops for `ip`: the node's
   * goes (the leaving speaker ends its session with a Cease), `whileGone` runs, then the
   * node's next hop comes back once the DaemonSet's new pod has its session up again.
   */
  async failover<T>(
    ip: string,
    node: string,
    whileGone: () => Promise<T>,
    timeoutMs = 90_000,
  ): Promise<BgpFailover & { whileGone: T }> {
    const all = this.c.nodes.map((n) => n.ip);
    const gone = this.c.node(node).ip;
    await this.waitNextHops(ip, all);
    const t0 = performance.now();
    await deleteSpeakerPod(this.c, node);
    await this.waitNextHops(
      ip,
      all.filter((h) => h !== gone),
      timeoutMs,
    );
    const withdrawnMs = performance.now() - t0;
    const during = await this.nextHops(ip);
    const result = await whileGone();
    await this.waitNextHops(ip, all, timeoutMs);
    return { node, withdrawnMs, during, backMs: performance.now() - t0, whileGone: result };
  }
}
