// Who announces what, as one pure function of a snapshot:
//
//   desired announcements = f(services, slices, nodes, pools, ads, membership, current owners)
//
// Every speaker evaluates it over (eventually) the same snapshot and gets the same owner for
// every IP, so there is no coordination on the hot path. Three rules keep clients where
// they are (every move costs each client of the IP a reconnect):
//   - stickiness: an IP stays with its current owner (recorded in its IPAnnouncement, which
//     every speaker reads) while that owner is eligible; the rendezvous hash (election.ts)
//     only picks an owner when there is none, the owner became ineligible, or an operator
//     asked for a re-balance (annotation `ironlb.dev/rebalance`);
//   - drain (Node annotation `ironlb.dev/drain`): a drained node is chosen only when no
//     other node may announce the IP; the handover itself is make-before-break (speaker.ts:
//     the drained node answers until the new owner has the IP);
//   - settling: a speaker whose membership view is not settled (start, rejoin after a link
//     outage or a long stall) or that hears less than a majority of the speakers (it may be
//     the one cut off) claims nothing it does not hold already;
//   - gratuitous ARP again whenever another node may have claimed an IP since we last said
//     it is ours ("contested"), not only when we start announcing it.
// The edge (speaker.ts) turns Kubernetes objects and sockets into this snapshot and the
// result into announcer calls, IPAnnouncement writes and logs.

import { parseIP } from "../net/address.ts";
import { type AddressEntry, parseAddressEntry } from "../net/range.ts";
import { chooseOwner } from "./election.ts";
import {
  countReadyEndpoints,
  type DrainMode,
  type EligibleNode,
  type EndpointSliceLike,
  eligibleNodes,
  type InterfaceChoice,
  type L2AdvertisementInfo,
  type NodeInfo,
  nodesOnSubnet,
} from "./eligibility.ts";

/** Service annotation: ignore the current owner and let the hash choose (re-balance). */
export const REBALANCE_ANNOTATION = "ironlb.dev/rebalance";

export interface ServiceSnapshot {
  /** "namespace/name". */
  key: string;
  /** IPs in status.loadBalancer.ingress. */
  ips: readonly string[];
  externalTrafficPolicy: "Cluster" | "Local";
  /** The controller's `ironlb.dev/ip-allocated-from-pool`, if set. */
  allocatedFromPool?: string;
  /** The operator asked for the hash's choice (REBALANCE_ANNOTATION is "true"). */
  rebalance?: boolean;
  /** The Service's labels (BGPAdvertisement serviceSelectors; Layer 2 does not read them). */
  labels?: Readonly<Record<string, string>>;
}

export interface PoolSnapshot {
  name: string;
  labels: Readonly<Record<string, string>>;
  addresses: readonly string[];
}

export interface MembershipView {
  /** This node. */
  self: string;
  /** Nodes whose speaker is alive now, this node included while it may announce. */
  live: ReadonlySet<string>;
  /** False while this node has not yet heard from (or timed out) every peer it should. */
  settled: boolean;
  /** False when this node hears less than a majority of the speakers it knows. */
  quorum: boolean;
}

export interface Snapshot {
  services: readonly ServiceSnapshot[];
  /** EndpointSlices with the Service ("namespace/name") each belongs to. */
  slices: ReadonlyArray<EndpointSliceLike & { service: string }>;
  nodes: readonly NodeInfo[];
  pools: readonly PoolSnapshot[];
  ads: readonly L2AdvertisementInfo[];
  membership: MembershipView;
  /** IP -> the node recorded as announcing it (IPAnnouncements, plus our own claims). */
  currentOwners: ReadonlyMap<string, string>;
  /** IPs this node announces now. */
  held: ReadonlySet<string>;
  /** Held IPs another node may have claimed since our last gratuitous burst for them. */
  contested: ReadonlySet<string>;
}

/** The Kubernetes objects of a snapshot: what Layer 2 and BGP both decide from. */
export type ObjectInputs = Pick<Snapshot, "services" | "slices" | "nodes" | "pools">;

/** A Service whose status holds the IP, but for which the IP is not announced. */
export interface RefusedService {
  service: string;
  /** The pool its `ironlb.dev/ip-allocated-from-pool` names, which does not hold the IP. */
  pool: string;
  reason: string;
}

export interface IpDecision {
  ip: string;
  /** Services using the IP, sorted. */
  services: string[];
  pool?: string;
  /**
   * Services whose status holds the IP outside the pool they are attributed to: the IP is
   * not announced for them (it still is for the others, if any).
   */
  refused?: RefusedService[];
  /** The one live node that reports `refused` with an Event (so that N nodes do not). */
  reportedBy?: string;
  /** The one node that announces the IP (the same answer on every speaker). */
  owner?: string;
  /** Why no node announces it (set when owner is undefined). */
  reason?: string;
  /** How the owner was chosen. */
  by?: "current" | "hash";
  /** Eligible nodes. */
  eligible: EligibleNode[];
  /**
   * Set when the owner is a drained node that keeps the IP because no undrained node may
   * announce it (e.g. `Local` with the only ready endpoint there): why, for logs, `ironlb
   * drain` and the doctor.
   */
  drainKept?: string;
}

export interface Announcement {
  interfaces: InterfaceChoice;
  /** Periodic gratuitous ARP/NA interval, ms (L2Advertisement gratuitousInterval). */
  gratuitousIntervalMs?: number;
  services: string[];
  /** Send a gratuitous burst: new to us, or another node may have claimed it. */
  gratuitous: boolean;
}

export interface Decision {
  ips: Map<string, IpDecision>;
  /** What this node announces. */
  mine: Map<string, Announcement>;
  /** IPs this node owns but does not claim yet (membership not settled, or no quorum). */
  deferred: Map<string, string>;
}

/** Whether `live` of `members` speakers is a strict majority (this node counts in both). */
export function hasQuorum(members: number, live: number): boolean {
  return members <= 1 || 2 * live > members;
}

/** Where an IP is attributed: its pool, or the named pool that does not hold it. */
export type PoolMatch = { pool: PoolSnapshot } | { outside: string } | undefined;

/**
 * Parsed entries per `addresses` array. The edge passes the informer's own arrays, which stay
 * the same objects while a pool is unchanged: every Service IP is checked on every
 * evaluation, and parsing a pool's entries each time would cost more than the rest.
 */
const parsedEntries = new WeakMap<readonly string[], AddressEntry[]>();

function holds(pool: PoolSnapshot, addr: NonNullable<ReturnType<typeof parseIP>>): boolean {
  let entries = parsedEntries.get(pool.addresses);
  if (entries === undefined) {
    entries = pool.addresses.flatMap((e) => parseAddressEntry(e) ?? []);
    parsedEntries.set(pool.addresses, entries);
  }
  return entries.some(
    (entry) =>
      entry.family === addr.family && entry.first <= addr.value && addr.value <= entry.last,
  );
}

/**
 * The pool an IP is announced under. The pool the Service's annotation names, if it exists,
 * must hold the IP: otherwise the IP is `outside` it and not announced for that Service,
 * whichever other pool holds it. The status and the annotation are written together by the
 * controller, so a mismatch means someone else wrote one of them (anyone with
 * services/status can write any IP), and the named pool's advertisements must not carry an
 * address it does not own; announcing it under the pool that holds it instead would let a
 * status writer pick the pool. With no annotation, or one naming a pool that does not exist
 * (renamed or deleted, the controller has yet to catch up), the pool whose addresses hold
 * the IP counts: the IP is still inside some pool.
 */
export function poolOf(ip: string, pools: readonly PoolSnapshot[], named?: string): PoolMatch {
  const addr = parseIP(ip);
  if (!addr) return undefined;
  if (named) {
    const p = pools.find((x) => x.name === named);
    if (p) return holds(p, addr) ? { pool: p } : { outside: p.name };
  }
  const p = pools.find((x) => holds(x, addr));
  return p ? { pool: p } : undefined;
}

function mergeInterfaces(a: InterfaceChoice | undefined, b: InterfaceChoice): InterfaceChoice {
  if (a === undefined) return b;
  if (a === "auto" || b === "auto") return "auto";
  return [...new Set([...a, ...b])].sort();
}

/** The decision for every assigned IP, and this node's share of it. */
export function decide(s: Snapshot): Decision {
  const { membership: m } = s;
  const slicesBySvc = new Map<string, EndpointSliceLike[]>();
  for (const sl of s.slices) {
    const list = slicesBySvc.get(sl.service) ?? [];
    list.push(sl);
    slicesBySvc.set(sl.service, list);
  }
  // Per IP, the eligibility of each Service using it (shared IPs have several).
  const perIp = new Map<
    string,
    {
      services: string[];
      /** Services the IP is announced for (not refused). */
      serving: string[];
      refused: RefusedService[];
      pool?: string;
      results: ReturnType<typeof eligibleNodes>[];
    }
  >();
  const rebalance = new Set<string>();
  const sameForPool = new Map<string, ReturnType<typeof eligibleNodes>>();
  const services = [...s.services].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  // Subnets matter only once some speaker publishes its links (none before an upgrade).
  const linked = s.nodes.some((n) => n.links !== undefined);
  for (const svc of services) {
    for (const ip of svc.ips) {
      const entry = perIp.get(ip) ?? { services: [], serving: [], refused: [], results: [] };
      perIp.set(ip, entry);
      entry.services.push(svc.key);
      const match = poolOf(ip, s.pools, svc.allocatedFromPool);
      if (match && "outside" in match) {
        entry.refused.push({
          service: svc.key,
          pool: match.outside,
          reason: `${ip} is not in pool ${match.outside}, which ${svc.key} names in ironlb.dev/ip-allocated-from-pool`,
        });
        continue;
      }
      entry.serving.push(svc.key);
      if (svc.rebalance) rebalance.add(ip);
      if (!match) continue;
      const { pool } = match;
      entry.pool ??= pool.name;
      const family = ip.includes(":") ? "IPv6" : "IPv4";
      const endpoints = countReadyEndpoints(slicesBySvc.get(svc.key) ?? [], family);
      const onSubnet = linked ? nodesOnSubnet(s.nodes, ip) : [];
      // Under policy Cluster the answer depends on the pool, on "any ready endpoint" and on
      // which nodes hold the IP's subnet only: computed once per such triple (per Service,
      // it was most of a decision's garbage).
      const shared =
        svc.externalTrafficPolicy === "Cluster"
          ? `${pool.name}|${endpoints.total > 0}|${onSubnet.join(",")}`
          : "";
      let result = shared ? sameForPool.get(shared) : undefined;
      if (!result) {
        result = eligibleNodes({
          nodes: s.nodes,
          liveSpeakers: m.live,
          l2Advertisements: s.ads,
          pool: { name: pool.name, labels: pool.labels },
          service: { externalTrafficPolicy: svc.externalTrafficPolicy, endpoints },
          ...(onSubnet.length > 0 ? { onSubnet: new Set(onSubnet) } : {}),
        });
        if (shared) sameForPool.set(shared, result);
      }
      entry.results.push(result);
    }
  }

  const ips = new Map<string, IpDecision>();
  const mine = new Map<string, Announcement>();
  const deferred = new Map<string, string>();
  const drainOf = new Map<string, DrainMode>();
  for (const n of s.nodes) if (n.drain !== undefined) drainOf.set(n.name, n.drain);
  for (const [ip, e] of perIp) {
    const d: IpDecision = { ip, services: e.services, eligible: [] };
    if (e.pool !== undefined) d.pool = e.pool;
    if (e.refused.length > 0) {
      d.refused = e.refused;
      d.reportedBy = chooseOwner(ip, [...m.live]);
    }
    ips.set(ip, d);
    if (e.results.length === 0) {
      d.reason =
        e.serving.length === 0 && e.refused.length > 0
          ? e.refused[0]!.reason
          : "its address is in no IPAddressPool";
      continue;
    }
    // A node announces a shared IP only if every Service using it allows that node; when
    // they allow disjoint sets, the first Service (by name) decides, so that the IP is
    // still answered somewhere.
    const withNodes = e.results.filter((r) => r.nodes.length > 0);
    if (withNodes.length === 0) {
      d.reason = e.results[0]!.reason ?? "no eligible node";
      continue;
    }
    const names = (r: (typeof withNodes)[number]) => new Set(r.nodes.map((n) => n.name));
    let allowed = names(withNodes[0]!);
    if (withNodes.length === e.results.length) {
      for (const r of withNodes.slice(1)) {
        const next = names(r);
        const both = new Set([...allowed].filter((n) => next.has(n)));
        if (both.size > 0) allowed = both;
      }
    }
    // Drained nodes (DRAIN_ANNOTATION): "force" takes a node out altogether; "drain" only
    // makes every other allowed node preferred, so that a drained node keeps an IP no other
    // node can announce (reported as `drainKept`) instead of black-holing it.
    if (drainOf.size > 0) {
      const forced = [...allowed].filter((n) => drainOf.get(n) === "force");
      for (const n of forced) allowed.delete(n);
      if (allowed.size === 0) {
        d.reason = `every node that may announce it is drained with ironlb.dev/drain=force: ${forced.sort().join(", ")}`;
        continue;
      }
    }
    const eligible: EligibleNode[] = [];
    for (const name of [...allowed].sort()) {
      let interfaces: InterfaceChoice | undefined;
      let refresh: number | undefined;
      for (const r of withNodes) {
        const n = r.nodes.find((x) => x.name === name);
        if (n) interfaces = mergeInterfaces(interfaces, n.interfaces);
        const ms = n?.gratuitousIntervalMs;
        if (ms !== undefined && (refresh === undefined || ms < refresh)) refresh = ms;
      }
      eligible.push({
        name,
        interfaces: interfaces ?? "auto",
        ...(refresh === undefined ? {} : { gratuitousIntervalMs: refresh }),
      });
    }
    d.eligible = eligible;
    const undrained = new Set([...allowed].filter((n) => !drainOf.has(n)));
    // With no other node, the drained ones stay candidates (stickiness among them too).
    const candidates = undrained.size > 0 ? undrained : allowed;
    const current = s.currentOwners.get(ip);
    if (!rebalance.has(ip) && current !== undefined && candidates.has(current)) {
      d.owner = current;
      d.by = "current";
    } else {
      d.owner = chooseOwner(ip, [...candidates]);
      d.by = "hash";
    }
    if (undrained.size === 0 && d.owner !== undefined && drainOf.has(d.owner)) {
      d.drainKept = `${d.owner} is drained, but no other node may announce ${ip}: kept until one can (or ironlb.dev/drain=force)`;
    }
    if (d.owner !== m.self) continue;
    const held = s.held.has(ip);
    if (!held && !m.settled) {
      deferred.set(ip, "membership not settled yet");
      continue;
    }
    if (!held && !m.quorum) {
      deferred.set(ip, "this node hears less than a majority of the speakers");
      continue;
    }
    const self = eligible.find((n) => n.name === m.self)!;
    mine.set(ip, {
      interfaces: self.interfaces,
      ...(self.gratuitousIntervalMs === undefined
        ? {}
        : { gratuitousIntervalMs: self.gratuitousIntervalMs }),
      services: e.serving,
      // A contested IP is re-announced once the view has settled: the claimant's record
      // may still be on its way, and then the IP is not ours to win back.
      gratuitous: !held || (s.contested.has(ip) && m.settled),
    });
  }
  return { ips, mine, deferred };
}

export interface LinkChangeInput {
  /** Interface name -> usable (up, with carrier), before and after the change. */
  before: ReadonlyMap<string, boolean>;
  after: ReadonlyMap<string, boolean>;
  /** What this node announces now: ip -> interfaces. */
  announced: ReadonlyMap<string, readonly string[]>;
  /** Container and CNI plumbing (interfaces.ts): its links come and go with pods. */
  isVirtual: (name: string) => boolean;
}

export interface LinkReaction {
  /** Interfaces that lost their carrier (or vanished). */
  lost: string[];
  /** Stop answering for these at once: the link is gone, peers take over. */
  withdraw: Array<{ ip: string; ifname: string }>;
  /**
   * LAN interfaces whose carrier came back: rejoin. Peers may have taken this node's IPs
   * over meanwhile, so settle (hear every peer, read the records afresh) before claiming
   * anything not still held elsewhere, then announce what is ours with gratuitous ARP.
   */
  rejoin: string[];
}

/**
 * How a speaker reacts when its links change, as soon as the kernel says so (a short
 * outage may be over before any heartbeat is missed, so the node must not rely on noticing
 * it was cut off).
 */
export function reactToLinks(i: LinkChangeInput): LinkReaction {
  const lost: string[] = [];
  const rejoin: string[] = [];
  for (const [name, was] of i.before) {
    if (was && i.after.get(name) !== true) lost.push(name);
  }
  for (const [name, now] of i.after) {
    if (now && i.before.get(name) === false && !i.isVirtual(name)) rejoin.push(name);
  }
  const down = (n: string) => i.after.get(n) === false || (!i.after.has(n) && i.before.has(n));
  const gone = new Set([...i.announced.values()].flat().filter(down));
  const withdraw: LinkReaction["withdraw"] = [];
  for (const [ip, ifaces] of i.announced) {
    for (const ifname of ifaces) if (gone.has(ifname)) withdraw.push({ ip, ifname });
  }
  return { lost: lost.sort(), withdraw, rejoin: rejoin.sort() };
}
