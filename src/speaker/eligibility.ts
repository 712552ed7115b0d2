// Which nodes may announce one Service IP. The protocol-neutral part (an advertisement's
// scope over pools and nodes, the node conditions and label every mode honours, the
// endpoints a traffic policy needs) serves both modes; `eligibleNodes` is Layer 2's use of
// it (with interfaces and live speakers), after which the election (election.ts) picks one
// owner; BGP's use is bgp-plan.ts (every eligible node advertises). Pure: the k8s edge
// translates Nodes, Leases, advertisements, pools and EndpointSlices into these types.

import { anySelectorMatches } from "../allocator/selectors.ts";
import type { LabelSelector } from "../allocator/types.ts";
import { gratuitousIntervalMs } from "../api/l2advertisement.ts";
import { linksContain, type PublishedLink } from "./links.ts";

/** A Kubernetes condition status. */
export type ConditionStatus = "True" | "False" | "Unknown";

/** Label that removes a node from external load balancers (any value, even empty). */
export const EXCLUDE_FROM_LB_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers";

/**
 * Node annotation for a planned handover (`ironlb drain`, or GitOps): "true" moves every IP
 * this node can hand over to another node (make-before-break), keeping those no other node
 * may announce; "force" withdraws those too. "false" (or no annotation): not drained.
 */
export const DRAIN_ANNOTATION = "ironlb.dev/drain";

/** How a node is drained: "drain" hands over what it can, "force" announces nothing. */
export type DrainMode = "drain" | "force";

/** The drain mode an annotation value asks for (decision.ts reads NodeInfo.drain). */
export function drainMode(value: string | undefined): DrainMode | undefined {
  if (value === undefined || value === "false") return undefined;
  // Any other value drains: an operator who set the annotation meant to move IPs away.
  return value === "force" ? "force" : "drain";
}

/** What eligibility needs of a Node object. */
export interface NodeInfo {
  /**
   * DRAIN_ANNOTATION: the node stays eligible (it keeps answering during the handover), but
   * the decision prefers every other eligible node (decision.ts); "force" makes it ineligible.
   */
  drain?: DrainMode;
  name: string;
  labels: Readonly<Record<string, string>>;
  /** Status of the `Ready` condition; absent (no condition yet) counts as not ready. */
  ready?: ConditionStatus;
  /** Status of the `NetworkUnavailable` condition; only "True" disqualifies. */
  networkUnavailable?: ConditionStatus;
  /**
   * The usable interfaces its speaker publishes on its Lease (links.ts); absent for a
   * speaker that publishes none (an older version): it may announce anywhere, as before.
   */
  links?: readonly PublishedLink[];
}

/** What any advertisement (L2 or BGP) says about pools and nodes, with its name (for messages). */
export interface AdvertisementScope {
  name: string;
  /** Pool names. With `ipAddressPoolSelectors` both empty/absent: every pool. */
  ipAddressPools?: readonly string[];
  /** Alternatives matched against pool labels. */
  ipAddressPoolSelectors?: readonly LabelSelector[];
  /** Alternatives matched against node labels; empty/absent: every node. */
  nodeSelectors?: readonly LabelSelector[];
}

/** An L2Advertisement's spec, with its name (for messages). */
export interface L2AdvertisementInfo extends AdvertisementScope {
  /** Interfaces to announce on; empty/absent: the default choice ("auto"). */
  interfaces?: readonly string[];
  /** Periodic gratuitous ARP/NA interval, e.g. "30s"; absent: only on takeover. */
  gratuitousInterval?: string;
}

/** The pool an IP was allocated from. */
export interface PoolInfo {
  name: string;
  labels: Readonly<Record<string, string>>;
}

/** Ready endpoints of a Service, as counted by `countReadyEndpoints`. */
export interface EndpointCounts {
  /** Ready endpoints per node name (endpoints without a nodeName are not here). */
  byNode: ReadonlyMap<string, number>;
  /** All ready endpoints, with or without a nodeName. */
  total: number;
}

/** What eligibility needs of a Service. */
export interface ServiceInfo {
  externalTrafficPolicy: "Cluster" | "Local";
  endpoints: EndpointCounts;
}

/** The parts of an EndpointSlice that matter here (the discovery.k8s.io/v1 shape). */
export interface EndpointSliceLike {
  addressType?: string;
  endpoints?: ReadonlyArray<{
    conditions?: { ready?: boolean | null } | null;
    nodeName?: string | null;
  }> | null;
}

/**
 * Counts ready endpoints over a Service's EndpointSlices. An endpoint is ready unless
 * `conditions.ready` is false (Kubernetes reads unset as ready). When `addressType` is
 * given ("IPv4" / "IPv6"), only slices of that type count, so that an IPv4 VIP is not
 * announced from a node whose only local endpoints are IPv6. A dual-stack pod appears in
 * one slice per family; counts are only compared with zero, so that does not matter.
 */
export function countReadyEndpoints(
  slices: Iterable<EndpointSliceLike>,
  addressType?: string,
): EndpointCounts {
  const byNode = new Map<string, number>();
  let total = 0;
  for (const slice of slices) {
    if (addressType !== undefined && slice.addressType !== addressType) continue;
    for (const ep of slice.endpoints ?? []) {
      if (ep.conditions?.ready === false) continue;
      total++;
      if (ep.nodeName) byNode.set(ep.nodeName, (byNode.get(ep.nodeName) ?? 0) + 1);
    }
  }
  return { byNode, total };
}

/** Interfaces a node announces on: explicit names, or "auto" for the default choice. */
export type InterfaceChoice = readonly string[] | "auto";

/** Why a node is not eligible; the first failing check, in the order listed. */
export type NodeExclusion =
  | "SpeakerNotLive"
  | "NotReady"
  | "NetworkUnavailable"
  | "ExcludedByLabel"
  | "NotSelectedByAdvertisement"
  | "NoListedInterface"
  | "NotOnIPSubnet"
  | "NoLocalEndpoint";

export interface EligibleNode {
  name: string;
  interfaces: InterfaceChoice;
  /** Periodic gratuitous ARP/NA, ms: the shortest of the advertisements that set one. */
  gratuitousIntervalMs?: number;
}

export interface EligibilityResult {
  /** Eligible nodes, sorted by name. */
  nodes: EligibleNode[];
  /** Set when `nodes` is empty: why, in words fit for an Event or a log line. */
  reason?: string;
  /** Every known node that is not eligible, with the first check it failed. */
  excluded: Array<{ name: string; cause: NodeExclusion }>;
}

export interface EligibilityInput {
  nodes: readonly NodeInfo[];
  /** Nodes whose speaker heartbeat (lease or UDP) is live. */
  liveSpeakers: ReadonlySet<string>;
  l2Advertisements: readonly L2AdvertisementInfo[];
  pool: PoolInfo;
  service: ServiceInfo;
  /**
   * Nodes that publish an interface whose subnet holds the IP (`nodesOnSubnet`). When some
   * do, an "auto" node outside it is not eligible: its answers would reach no client of
   * that subnet. Empty or absent: no node has the subnet, and every node may announce.
   */
  onSubnet?: ReadonlySet<string>;
}

/** The nodes whose published links hold `ip` in a subnet, sorted (a cache key for decide). */
export function nodesOnSubnet(nodes: readonly NodeInfo[], ip: string): string[] {
  const out: string[] = [];
  for (const n of nodes) if (n.links && linksContain(n.links, ip)) out.push(n.name);
  return out.sort();
}

/**
 * Whether the node's published links let it announce with `choice`: an explicit list needs
 * one of its interfaces, "auto" a subnet holding the IP when any node has one. A node that
 * publishes nothing may (an older speaker during an upgrade).
 */
function linkExclusion(
  node: NodeInfo,
  choice: InterfaceChoice,
  onSubnet: ReadonlySet<string> | undefined,
): "NoListedInterface" | "NotOnIPSubnet" | undefined {
  if (node.links === undefined) return undefined;
  if (choice !== "auto") {
    const names = new Set(node.links.map((l) => l.name));
    return choice.some((n) => names.has(n)) ? undefined : "NoListedInterface";
  }
  if (onSubnet === undefined || onSubnet.size === 0) return undefined;
  return onSubnet.has(node.name) ? undefined : "NotOnIPSubnet";
}

/** Whether an advertisement applies to a pool: by name, by selector, or to all pools. */
export function advertisementSelectsPool(ad: AdvertisementScope, pool: PoolInfo): boolean {
  const names = ad.ipAddressPools ?? [];
  const selectors = ad.ipAddressPoolSelectors ?? [];
  if (names.length === 0 && selectors.length === 0) return true;
  return names.includes(pool.name) || anySelectorMatches(selectors, pool.labels);
}

/** Whether an advertisement applies to a node: by selector, or to all nodes. */
export function advertisementSelectsNode(ad: AdvertisementScope, node: NodeInfo): boolean {
  const selectors = ad.nodeSelectors ?? [];
  return selectors.length === 0 || anySelectorMatches(selectors, node.labels);
}

/**
 * What keeps a node out of load balancing in every mode: the `NetworkUnavailable`
 * condition, or the exclude-from-external-load-balancers label (any value, even empty).
 */
export function loadBalancingExclusion(
  node: NodeInfo,
): "NetworkUnavailable" | "ExcludedByLabel" | undefined {
  if (node.networkUnavailable === "True") return "NetworkUnavailable";
  if (Object.hasOwn(node.labels, EXCLUDE_FROM_LB_LABEL)) return "ExcludedByLabel";
  return undefined;
}

/**
 * Whether the traffic policy lets `node` take the Service's traffic: `Local` needs a ready
 * endpoint on the node, `Cluster` a ready endpoint anywhere (an address that blackholes
 * traffic is worse than none).
 */
export function endpointsAllow(service: ServiceInfo, node: string): boolean {
  if (service.externalTrafficPolicy === "Local")
    return (service.endpoints.byNode.get(node) ?? 0) > 0;
  return service.endpoints.total > 0;
}

/** Union of the advertisements' interfaces; any advertisement without a list makes it "auto". */
function unionInterfaces(ads: readonly L2AdvertisementInfo[]): InterfaceChoice {
  const names = new Set<string>();
  for (const ad of ads) {
    // "auto" absorbs explicit names: an advertisement without a list says "wherever the
    // IP's subnet is", which is where LAN clients send their ARP requests anyway.
    if (!ad.interfaces || ad.interfaces.length === 0) return "auto";
    for (const name of ad.interfaces) names.add(name);
  }
  return [...names].sort();
}

/** The shortest `gratuitousInterval` the advertisements set, ms; undefined when none does. */
export function shortestInterval(ads: readonly L2AdvertisementInfo[]): number | undefined {
  let out: number | undefined;
  for (const ad of ads) {
    const ms = gratuitousIntervalMs(ad.gratuitousInterval);
    if (ms !== undefined && (out === undefined || ms < out)) out = ms;
  }
  return out;
}

const CAUSE_WORDS: Record<NodeExclusion, string> = {
  SpeakerNotLive: "without a live speaker",
  NotReady: "not Ready",
  NetworkUnavailable: "NetworkUnavailable",
  ExcludedByLabel: `labelled ${EXCLUDE_FROM_LB_LABEL}`,
  NotSelectedByAdvertisement: "not selected by the nodeSelectors of",
  NoListedInterface: "without any interface listed by",
  NotOnIPSubnet: "without an interface in the IP's subnet",
  NoLocalEndpoint: "without a ready local endpoint",
};

function quoteList(names: readonly string[]): string {
  return names.map((n) => `"${n}"`).join(", ");
}

/**
 * The nodes eligible to announce one Service IP, with the interfaces each may use.
 *
 * A node is eligible when its speaker is live, it is Ready and not NetworkUnavailable, it
 * does not carry the exclude-from-external-load-balancers label, and at least one
 * L2Advertisement selects both the IP's pool and the node. A node that publishes its links
 * must also have one of the advertisements' listed interfaces, or with "auto" an interface
 * in the IP's subnet when any node has one (`onSubnet`). With
 * `externalTrafficPolicy: Local` it must also hold a ready endpoint of the Service. A
 * Service with no ready endpoint at all has no eligible node under either policy: an
 * announced IP that blackholes traffic is worse than none. When the result is empty,
 * `reason` says why.
 */
export function eligibleNodes(input: EligibilityInput): EligibilityResult {
  const { pool, service } = input;
  const excluded: EligibilityResult["excluded"] = [];
  const none = (reason: string): EligibilityResult => ({ nodes: [], reason, excluded });

  if (input.l2Advertisements.length === 0) {
    return none(`no L2Advertisement exists, so IPs of pool "${pool.name}" are not announced`);
  }
  const poolAds = input.l2Advertisements.filter((ad) => advertisementSelectsPool(ad, pool));
  if (poolAds.length === 0) return none(`no L2Advertisement selects pool "${pool.name}"`);
  if (service.endpoints.total === 0) return none("no ready endpoints");

  const local = service.externalTrafficPolicy === "Local";
  const nodes: EligibleNode[] = [];
  const exclusionOf = (
    node: NodeInfo,
    ads: readonly L2AdvertisementInfo[],
  ): NodeExclusion | undefined => {
    if (!input.liveSpeakers.has(node.name)) return "SpeakerNotLive";
    if (node.ready !== "True") return "NotReady";
    const lb = loadBalancingExclusion(node);
    if (lb !== undefined) return lb;
    if (ads.length === 0) return "NotSelectedByAdvertisement";
    const link = linkExclusion(node, unionInterfaces(ads), input.onSubnet);
    if (link !== undefined) return link;
    // Under Cluster, "any ready endpoint" was checked above for all nodes at once.
    return endpointsAllow(service, node.name) ? undefined : "NoLocalEndpoint";
  };
  const sorted = [...input.nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const node of sorted) {
    const ads = poolAds.filter((ad) => advertisementSelectsNode(ad, node));
    const cause = exclusionOf(node, ads);
    if (cause === undefined) {
      const refresh = shortestInterval(ads);
      nodes.push({
        name: node.name,
        interfaces: unionInterfaces(ads),
        ...(refresh === undefined ? {} : { gratuitousIntervalMs: refresh }),
      });
    } else excluded.push({ name: node.name, cause });
  }
  if (nodes.length > 0) return { nodes, excluded };

  if (input.nodes.length === 0) return none("no nodes are known");
  const adNames = quoteList(poolAds.map((ad) => ad.name));
  if (local) {
    // Explain in terms of the nodes that hold endpoints: those are the only candidates,
    // and each of them failed a check other than NoLocalEndpoint.
    const holders = excluded.filter((e) => (service.endpoints.byNode.get(e.name) ?? 0) > 0);
    if (holders.length === 0) {
      return none(
        "externalTrafficPolicy Local and no known node holds a ready endpoint of the Service",
      );
    }
    if (holders.every((e) => e.cause === "SpeakerNotLive")) {
      return none(
        "externalTrafficPolicy Local and no node with a ready endpoint has a live speaker",
      );
    }
    const parts = holders.map((e) => `${e.name} ${causeText(e.cause, adNames)}`);
    return none(
      `externalTrafficPolicy Local and no node with a ready endpoint is eligible: ${parts.join("; ")}`,
    );
  }
  return none(`no eligible node among ${input.nodes.length}: ${summarize(excluded, adNames)}`);
}

function causeText(cause: NodeExclusion, adNames: string): string {
  return cause === "NotSelectedByAdvertisement" || cause === "NoListedInterface"
    ? `${CAUSE_WORDS[cause]} L2Advertisement ${adNames}`
    : CAUSE_WORDS[cause];
}

/** "3 without a live speaker, 1 not Ready", in the order of the checks. */
function summarize(excluded: EligibilityResult["excluded"], adNames: string): string {
  const counts = new Map<NodeExclusion, number>();
  for (const e of excluded) counts.set(e.cause, (counts.get(e.cause) ?? 0) + 1);
  const order = Object.keys(CAUSE_WORDS) as NodeExclusion[];
  return order
    .filter((c) => counts.has(c))
    .map((c) => `${counts.get(c)} ${causeText(c, adNames)}`)
    .join(", ");
}
