// What this node advertises over BGP, as one pure function of a snapshot:
//
//   plan = f(this node, services, slices, pools, BGPAdvertisements, BGPPeers)
//
// Unlike Layer 2 there is no election: every eligible node advertises each Service IP and
// the router spreads flows over them (ECMP), so each node decides for itself alone.
// Eligibility is MetalLB's rule, built from eligibility.ts's protocol-neutral parts: the
// pool and an advertisement select the node and the Service; the node is not
// NetworkUnavailable nor labelled exclude-from-external-load-balancers; `Local` needs a
// ready endpoint on this node, `Cluster` one anywhere. Node readiness and speaker liveness
// (Layer 2's extra checks) do not apply: a node that runs this code holds its sessions
// itself, and a dead speaker's sessions end with it.
//
// Merging: routes are keyed by peer and prefix. When several advertisements (or several
// Services behind an aggregate) give the same prefix to the same peer, the route carries
// the union of their communities and large communities and the highest localPref (a router
// prefers the highest, so the most-preferred intent wins). A Service IP shared by several
// Services is advertised when any of them allows it, as MetalLB does.
//
// Drain (Node annotation ironlb.dev/drain on this node, RFC 8326 graceful shutdown): first
// every route is sent again with the GRACEFUL_SHUTDOWN community 65535:0 and, to internal
// peers, LOCAL_PREF 0, so that routers move traffic to the other nodes' paths while this
// node's still work; after the drain delay (the edge's clock: `drainWithdraw`) the routes
// are withdrawn. A `Local` IP whose ready endpoints of its family are all on this node is
// kept (with the community) unless the drain is "force": no other node has a path for it.
//
// The edge (bgp-mode.ts) turns Kubernetes objects into this snapshot and the plan into
// sessions (bgp-backend.ts), status objects and logs.

import { anySelectorMatches } from "../allocator/selectors.ts";
import type { LabelSelector } from "../allocator/types.ts";
import { parseCommunity } from "../api/bgpadvertisement.ts";
import type { BGPPeerSpec } from "../api/bgppeer.ts";
import { bgpPeerDefaults, durationSeconds } from "../api/bgppeer.ts";
import type { BgpPeerConfig, BgpRoute } from "../bgp/types.ts";
import { bitsOf, formatIP, parseIP } from "../net/address.ts";
import { hostMask } from "../net/cidr.ts";
import { type AddressEntry, parseAddressEntry } from "../net/range.ts";
import { type PoolSnapshot, poolOf, type ServiceSnapshot } from "./decision.ts";
import {
  type AdvertisementScope,
  advertisementSelectsNode,
  advertisementSelectsPool,
  countReadyEndpoints,
  type EndpointSliceLike,
  EXCLUDE_FROM_LB_LABEL,
  endpointsAllow,
  loadBalancingExclusion,
  type NodeInfo,
} from "./eligibility.ts";

/** A BGPAdvertisement's spec (defaults applied), with its name. */
export interface BgpAdvertisementInfo extends AdvertisementScope {
  serviceSelectors?: readonly LabelSelector[];
  /** BGPPeer names; empty/absent: every peer this node has a session with. */
  peers?: readonly string[];
  communities?: readonly string[];
  localPref?: number;
  aggregationLength: number;
  aggregationLengthV6: number;
}

export interface BgpPeerInfo {
  name: string;
  spec: BGPPeerSpec;
}

export interface BgpSnapshot {
  /** This node's name. */
  self: string;
  /** This node's Node object; undefined until the informer has it. */
  node: NodeInfo | undefined;
  /** An IPv4 address of this node: the router ID of peers that set none. */
  nodeIPv4?: string;
  services: readonly ServiceSnapshot[];
  /** EndpointSlices with the Service ("namespace/name") each belongs to. */
  slices: ReadonlyArray<EndpointSliceLike & { service: string }>;
  pools: readonly PoolSnapshot[];
  advertisements: readonly BgpAdvertisementInfo[];
  peers: readonly BgpPeerInfo[];
  /** This node is drained and its drain delay has passed: withdraw (else: graceful shutdown). */
  drainWithdraw?: boolean;
}

/** RFC 8326 GRACEFUL_SHUTDOWN, 65535:0. */
export const GRACEFUL_SHUTDOWN_COMMUNITY = 0xffff0000;

export interface PeerPlan {
  config: BgpPeerConfig;
  /** Sorted by prefix. */
  routes: BgpRoute[];
}

export interface IpPlan {
  /** Services using the IP, sorted. */
  services: string[];
  pool?: string;
  /** Peer name -> the prefixes advertised to it for this IP. */
  advertised: Map<string, string[]>;
  /** Why this node advertises it to no peer (set when `advertised` is empty). */
  reason?: string;
  /** This node is drained but keeps the IP: no other node has a ready endpoint for it. */
  drainKept?: string;
}

export interface BgpPlan {
  /** The peers this node has a session with, with what it advertises to each. */
  peers: Map<string, PeerPlan>;
  /** BGPPeers that select this node but get no session, and why. */
  skippedPeers: Map<string, string>;
  ips: Map<string, IpPlan>;
}

/** Whether a BGPPeer applies to this node (its nodeSelectors; none: every node). */
export function peerSelectsNode(spec: BGPPeerSpec, node: NodeInfo | undefined): boolean {
  const selectors = spec.nodeSelectors ?? [];
  if (selectors.length === 0) return true;
  return node !== undefined && anySelectorMatches(selectors, node.labels);
}

/**
 * A BGP identifier for a node without an IPv4 address and a peer without routerID: derived
 * from the node's name (FNV-1a), never 0.0.0.0. Unique in practice, stable across restarts.
 */
export function derivedRouterID(node: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < node.length; i++) {
    h ^= node.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  if (h === 0) h = 1;
  return formatIP({ family: "IPv4", value: BigInt(h) });
}

/** The session settings of a BGPPeer on this node, defaults applied. */
export function peerConfig(
  peer: BgpPeerInfo,
  self: string,
  nodeIPv4: string | undefined,
): BgpPeerConfig {
  const s = peer.spec;
  const holdTime = durationSeconds(s.holdTime ?? "") ?? bgpPeerDefaults.holdTimeSeconds;
  const keepaliveTime =
    durationSeconds(s.keepaliveTime ?? "") ??
    Math.floor(holdTime / bgpPeerDefaults.keepaliveFraction);
  const cfg: BgpPeerConfig = {
    name: peer.name,
    myASN: s.myASN,
    peerASN: s.peerASN ?? 0,
    peerAddress: s.peerAddress,
    peerPort: s.peerPort,
    holdTime,
    keepaliveTime,
    connectTime: durationSeconds(s.connectTime ?? "") ?? bgpPeerDefaults.connectTimeSeconds,
    routerID: s.routerID ?? nodeIPv4 ?? derivedRouterID(self),
  };
  if (s.dynamicASN !== undefined) cfg.dynamicASN = s.dynamicASN;
  if (s.sourceAddress !== undefined) cfg.sourceAddress = s.sourceAddress;
  if (s.ttlSecurityHops !== undefined) cfg.ttlSecurityHops = s.ttlSecurityHops;
  if (s.enableGracefulRestart === true) {
    cfg.gracefulRestartTime =
      durationSeconds(s.gracefulRestartTime ?? "") ?? bgpPeerDefaults.gracefulRestartTimeSeconds;
  }
  return cfg;
}

const parsedEntries = new WeakMap<readonly string[], AddressEntry[]>();

/** The entry of the pool that holds the address (parsed once per addresses array). */
function entryHolding(pool: PoolSnapshot, family: string, value: bigint): AddressEntry | undefined {
  let entries = parsedEntries.get(pool.addresses);
  if (entries === undefined) {
    entries = pool.addresses.flatMap((e) => parseAddressEntry(e) ?? []);
    parsedEntries.set(pool.addresses, entries);
  }
  return entries.find((e) => e.family === family && e.first <= value && value <= e.last);
}

/** Accumulates one route per peer and prefix. */
interface RouteAcc {
  communities: Set<number>;
  large: Map<string, readonly [number, number, number]>;
  localPref?: number;
}

function quote(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(", ");
}

/** The peers this node has sessions with, and those it skips (an address taken twice). */
function selectPeers(s: BgpSnapshot): {
  peers: Map<string, PeerPlan>;
  skipped: Map<string, string>;
} {
  const peers = new Map<string, PeerPlan>();
  const skipped = new Map<string, string>();
  const byEndpoint = new Map<string, string>();
  const sorted = [...s.peers].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const p of sorted) {
    if (!peerSelectsNode(p.spec, s.node)) continue;
    // Two sessions from one node to one router address and port would collide at the
    // router (it keeps one): the first by name is used, the other said.
    const ip = parseIP(p.spec.peerAddress);
    const endpoint = `${ip ? formatIP(ip) : p.spec.peerAddress}|${p.spec.peerPort}`;
    const first = byEndpoint.get(endpoint);
    if (first !== undefined) {
      skipped.set(
        p.name,
        `BGPPeer "${first}" already peers with ${p.spec.peerAddress} port ${p.spec.peerPort} from this node`,
      );
      continue;
    }
    byEndpoint.set(endpoint, p.name);
    peers.set(p.name, { config: peerConfig(p, s.self, s.nodeIPv4), routes: [] });
  }
  return { peers, skipped };
}

/** What this node advertises to each of its peers, and why it does not advertise an IP. */
export function planBgp(s: BgpSnapshot): BgpPlan {
  const { peers, skipped } = selectPeers(s);
  const ips = new Map<string, IpPlan>();
  const acc = new Map<string, Map<string, RouteAcc>>();
  for (const name of peers.keys()) acc.set(name, new Map());

  const slicesBySvc = new Map<string, EndpointSliceLike[]>();
  for (const sl of s.slices) {
    const list = slicesBySvc.get(sl.service) ?? [];
    list.push(sl);
    slicesBySvc.set(sl.service, list);
  }
  // Why the whole node is out, if it is: said for every IP.
  let nodeOut: string | undefined;
  if (s.node === undefined) nodeOut = `this node's Node object (${s.self}) is not known yet`;
  else {
    const ex = loadBalancingExclusion(s.node);
    if (ex === "NetworkUnavailable") nodeOut = "this node is NetworkUnavailable";
    else if (ex === "ExcludedByLabel") nodeOut = `this node is labelled ${EXCLUDE_FROM_LB_LABEL}`;
  }

  const services = [...s.services].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const svc of services) {
    for (const ip of svc.ips) {
      let plan = ips.get(ip);
      if (plan === undefined) {
        plan = { services: [], advertised: new Map() };
        ips.set(ip, plan);
      }
      plan.services.push(svc.key);
      const why = advertiseOne(s, svc, ip, plan, peers, acc, slicesBySvc, nodeOut);
      // The first Service's reason is kept: the one a reader sees first in the list.
      if (why !== undefined) plan.reason ??= why;
    }
  }
  for (const plan of ips.values()) if (plan.advertised.size > 0) delete plan.reason;

  for (const [name, pp] of peers) {
    const routes: BgpRoute[] = [];
    for (const [prefix, a] of acc.get(name) ?? []) {
      const r: BgpRoute = {
        prefix,
        communities: [...a.communities].sort((x, y) => x - y),
        largeCommunities: [...a.large.entries()]
          .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
          .map(([, v]) => v),
      };
      if (a.localPref !== undefined) r.localPref = a.localPref;
      if (s.node?.drain !== undefined) {
        // Lowest preference everywhere: the community for external peers (whose routers
        // honour it by policy), LOCAL_PREF 0 inside the AS (sent to internal peers only).
        r.communities = [...new Set([...r.communities, GRACEFUL_SHUTDOWN_COMMUNITY])].sort(
          (x, y) => x - y,
        );
        r.localPref = 0;
      }
      routes.push(r);
    }
    pp.routes = routes.sort((x, y) => (x.prefix < y.prefix ? -1 : x.prefix > y.prefix ? 1 : 0));
  }
  return { peers, skippedPeers: skipped, ips };
}

/** Adds the routes of one Service IP; returns why it adds none. */
function advertiseOne(
  s: BgpSnapshot,
  svc: ServiceSnapshot,
  ip: string,
  plan: IpPlan,
  peers: ReadonlyMap<string, PeerPlan>,
  acc: Map<string, Map<string, RouteAcc>>,
  slicesBySvc: ReadonlyMap<string, EndpointSliceLike[]>,
  nodeOut: string | undefined,
): string | undefined {
  const match = poolOf(ip, s.pools, svc.allocatedFromPool);
  if (match === undefined) return "its address is in no IPAddressPool";
  if ("outside" in match)
    return `${ip} is not in pool ${match.outside}, which ${svc.key} names in ironlb.dev/ip-allocated-from-pool`;
  const pool = match.pool;
  plan.pool ??= pool.name;
  if (nodeOut !== undefined) return nodeOut;
  const node = s.node as NodeInfo;

  if (s.advertisements.length === 0) return "no BGPAdvertisement exists";
  const forPool = s.advertisements.filter((a) => advertisementSelectsPool(a, pool));
  if (forPool.length === 0) return `no BGPAdvertisement selects pool "${pool.name}"`;
  const forService = forPool.filter(
    (a) =>
      (a.serviceSelectors?.length ?? 0) === 0 ||
      anySelectorMatches(a.serviceSelectors ?? [], svc.labels ?? {}),
  );
  if (forService.length === 0)
    return `the serviceSelectors of BGPAdvertisement ${quote(forPool.map((a) => a.name))} leave ${svc.key} out`;
  const forNode = forService.filter((a) => advertisementSelectsNode(a, node));
  if (forNode.length === 0)
    return `this node is not selected by the nodeSelectors of BGPAdvertisement ${quote(forService.map((a) => a.name))}`;

  const addr = parseIP(ip);
  if (addr === undefined) return "not an IP address";
  const family = addr.family === "IPv4" ? "IPv4" : "IPv6";
  const endpoints = countReadyEndpoints(slicesBySvc.get(svc.key) ?? [], family);
  if (!endpointsAllow({ externalTrafficPolicy: svc.externalTrafficPolicy, endpoints }, s.self)) {
    return svc.externalTrafficPolicy === "Local"
      ? "externalTrafficPolicy Local and no ready endpoint on this node"
      : "no ready endpoints";
  }
  if (peers.size === 0) return "this node has no BGPPeer (none selects it)";
  if (node.drain !== undefined && s.drainWithdraw) {
    const elsewhere = [...endpoints.byNode.keys()].some((n) => n !== s.self);
    const alone = svc.externalTrafficPolicy === "Local" && !elsewhere;
    if (!alone || node.drain === "force")
      return "this node is drained (ironlb.dev/drain): routes withdrawn after the graceful-shutdown delay";
    plan.drainKept = `${s.self} is drained, but no other node has a ready endpoint of ${svc.key}: kept (with the graceful-shutdown community) until one has, or ironlb.dev/drain=force`;
  }

  const entry = entryHolding(pool, addr.family, addr.value);
  const refusals: string[] = [];
  let any = false;
  for (const ad of forNode) {
    const targets =
      (ad.peers?.length ?? 0) === 0
        ? [...peers.keys()]
        : (ad.peers ?? []).filter((p) => peers.has(p));
    if (targets.length === 0) {
      refusals.push(
        `BGPAdvertisement "${ad.name}" names peers this node has no session with (${(ad.peers ?? []).join(", ")})`,
      );
      continue;
    }
    const len = addr.family === "IPv4" ? ad.aggregationLength : ad.aggregationLengthV6;
    const bits = bitsOf(addr.family);
    const first = addr.value & ~hostMask(addr.family, Math.min(len, bits));
    const last = first | hostMask(addr.family, Math.min(len, bits));
    // An aggregate reaching beyond the pool would draw traffic for addresses that are not
    // the cluster's to answer (the same reason an IP outside its pool is never advertised).
    if (entry === undefined || first < entry.first || last > entry.last) {
      refusals.push(
        `BGPAdvertisement "${ad.name}" aggregates to ${formatIP({ family: addr.family, value: first })}/${len}, which reaches beyond pool "${pool.name}"`,
      );
      continue;
    }
    const prefix = `${formatIP({ family: addr.family, value: first })}/${len}`;
    for (const peer of targets) {
      const routes = acc.get(peer)!;
      let r = routes.get(prefix);
      if (r === undefined) {
        r = { communities: new Set(), large: new Map() };
        routes.set(prefix, r);
      }
      for (const text of ad.communities ?? []) {
        const c = parseCommunity(text);
        if (c?.kind === "standard") r.communities.add(c.value);
        else if (c?.kind === "large") r.large.set(c.value.join(":"), c.value);
      }
      if (ad.localPref !== undefined) r.localPref = Math.max(r.localPref ?? 0, ad.localPref);
      const list = plan.advertised.get(peer) ?? [];
      if (!list.includes(prefix)) list.push(prefix);
      plan.advertised.set(peer, list);
      any = true;
    }
  }
  return any ? undefined : refusals.join("; ");
}
