// Whether some node can announce each of a Service's IPs, and if not, why: the verdict the
// controller writes as the Service's `ironlb.dev/Announceable` condition and `ironlb status`
// prints. It is the speakers' own decision (decision.ts for Layer 2, bgp-plan.ts for BGP)
// evaluated over what the API server holds, with "whose speaker runs" given by the caller,
// so that the condition, status and the speakers cannot disagree on a rule. Pure.
import type {
  KubernetesObject,
  V1EndpointSlice,
  V1Lease,
  V1Node,
  V1Service,
} from "@kubernetes/client-node";
import { type BGPAdvertisement, parseBGPAdvertisement } from "../api/bgpadvertisement.ts";
import { type BGPPeer, parseBGPPeer } from "../api/bgppeer.ts";
import type { IPAddressPool } from "../api/ipaddresspool.ts";
import type { L2Advertisement } from "../api/l2advertisement.ts";
import { type BgpAdvertisementInfo, type BgpPeerInfo, planBgp } from "./bgp-plan.ts";
import { decide, poolOf } from "./decision.ts";
import { advertisementSelectsPool, countReadyEndpoints } from "./eligibility.ts";
import { LINKS_ANNOTATION } from "./links.ts";
import { clusterSnapshot } from "./snapshot.ts";

/**
 * The cluster's objects as the API server holds them: what the verdict reads besides
 * liveness and BGP. The controller hands in its caches; `ironlb status`, doctor and drain
 * what they listed (src/cli/status.ts StatusInput adds the IPAnnouncements).
 */
export interface AnnounceObjects {
  /** The verdict judges each one given: a caller passes its own (load balancer class). */
  services: V1Service[];
  slices: V1EndpointSlice[];
  nodes: V1Node[];
  pools: (IPAddressPool & KubernetesObject)[];
  ads: (L2Advertisement & KubernetesObject)[];
  /** The speakers' Leases: the links each publishes (`ironlb.dev/links`). */
  leases: V1Lease[];
}

export interface AnnounceInput extends AnnounceObjects {
  /** Nodes whose speaker runs (the caller judges Leases). */
  live: ReadonlySet<string>;
  /** BGPPeers and BGPAdvertisements as read (empty or absent: BGP mode unused). */
  bgpPeers?: readonly unknown[];
  bgpAds?: readonly unknown[];
}

/** Why no node may announce an IP, as a condition reason (CamelCase). */
export type NotAnnounceableReason =
  /** The IP is in no pool, or not in the pool its Service is attributed to. */
  | "NotInPool"
  /** No L2Advertisement and no BGPAdvertisement (with a BGPPeer) selects the IP's pool. */
  | "NoAdvertisement"
  /** The Service has no ready endpoint of the IP's family anywhere. */
  | "NoReadyEndpoints"
  /** Advertisements select the pool, but every node they could use is ruled out. */
  | "NoEligibleNode";

/** One IP no node may announce, and why. */
export interface Unannounced {
  ip: string;
  reason: NotAnnounceableReason;
  why: string;
}

export type AnnounceVerdict =
  | { announceable: true }
  | {
      announceable: false;
      reason: NotAnnounceableReason;
      message: string;
      /** Each IP no node may announce (`ironlb status` prints one row per IP). */
      ips: Unannounced[];
    };

/** The message of a True condition: constant, so that nothing is rewritten while it holds. */
export const ANNOUNCEABLE_MESSAGE = "some node may announce each of its IPs";

/**
 * Per Service ("namespace/name") with IPs in its status, whether some node may announce
 * every one of them. A node may when its speaker is `live` and the speakers' rules let it:
 * in Layer 2, the election has an owner; in BGP, some node advertises the IP to a peer.
 * Not announceable: the reason of the first IP no node may announce, and a message naming
 * each such IP with the rule that rules the nodes out.
 */
export function announceVerdicts(input: AnnounceInput): Map<string, AnnounceVerdict> {
  const objects = clusterSnapshot({ ...input, links: publishedLinks(input.leases) });
  const d = decide({
    ...objects,
    // No node of our own: only the shared answer (is there an owner?) matters.
    membership: { self: "", live: input.live, settled: true, quorum: true },
    currentOwners: new Map(),
    held: new Set(),
    contested: new Set(),
  });
  const peers = parseAll<BGPPeer, BgpPeerInfo>(input.bgpPeers, parseBGPPeer, (p) => ({
    name: p.metadata.name ?? "",
    spec: p.spec,
  }));
  const bgpAds =
    peers.length === 0
      ? []
      : parseAll<BGPAdvertisement, BgpAdvertisementInfo>(
          input.bgpAds,
          parseBGPAdvertisement,
          (a) => ({ name: a.metadata.name ?? "", ...a.spec }),
        );

  // BGP is asked only about the Services Layer 2 leaves without an owner for some IP.
  const l2Misses = objects.services.filter((s) =>
    s.ips.some((ip) => d.ips.get(ip)?.owner === undefined),
  );
  const bgp = new Map<string, { advertised: boolean; reason?: string }>();
  if (bgpAds.length > 0 && l2Misses.length > 0) {
    const nodes = [...objects.nodes]
      .filter((n) => input.live.has(n.name))
      .sort((a, b) => (a.name < b.name ? -1 : 1));
    for (const node of nodes) {
      const plan = planBgp({
        self: node.name,
        node,
        services: l2Misses,
        slices: objects.slices,
        pools: objects.pools,
        advertisements: bgpAds,
        peers,
      });
      for (const [ip, p] of plan.ips) {
        const seen = bgp.get(ip) ?? { advertised: false };
        bgp.set(ip, seen);
        if (p.advertised.size > 0) seen.advertised = true;
        else if (p.reason !== undefined && seen.reason === undefined)
          seen.reason = `${node.name}: ${p.reason}`;
      }
    }
  }

  const slicesOf = new Map<string, (typeof objects.slices)[number][]>();
  for (const sl of objects.slices) {
    const list = slicesOf.get(sl.service) ?? [];
    list.push(sl);
    slicesOf.set(sl.service, list);
  }
  const out = new Map<string, AnnounceVerdict>();
  for (const svc of objects.services) {
    if (svc.ips.length === 0) continue;
    const problems: Unannounced[] = [];
    for (const ip of svc.ips) {
      const x = d.ips.get(ip);
      if (x?.owner !== undefined && !x.refused?.some((r) => r.service === svc.key)) continue;
      if (bgp.get(ip)?.advertised === true) continue;
      const match = poolOf(ip, objects.pools, svc.allocatedFromPool);
      let reason: NotAnnounceableReason;
      let why: string;
      if (match === undefined || "outside" in match) {
        reason = "NotInPool";
        why =
          x?.refused?.find((r) => r.service === svc.key)?.reason ??
          "its address is in no IPAddressPool";
      } else {
        const pool = { name: match.pool.name, labels: match.pool.labels };
        const l2 = objects.ads.some((a) => advertisementSelectsPool(a, pool));
        const viaBgp = bgpAds.some((a) => advertisementSelectsPool(a, pool));
        const family = ip.includes(":") ? "IPv6" : "IPv4";
        const slices = slicesOf.get(svc.key) ?? [];
        const bgpWhy = bgp.get(ip)?.reason ?? "no node with a running speaker";
        if (!l2 && !viaBgp) {
          reason = "NoAdvertisement";
          why =
            peers.length > 0
              ? `no L2Advertisement or BGPAdvertisement selects pool "${pool.name}"`
              : `no L2Advertisement selects pool "${pool.name}"`;
        } else {
          reason =
            countReadyEndpoints(slices, family).total === 0 ? "NoReadyEndpoints" : "NoEligibleNode";
          const l2Why = x?.reason ?? "no eligible node";
          why = l2 && viaBgp ? `Layer 2: ${l2Why}; BGP: ${bgpWhy}` : l2 ? l2Why : `BGP: ${bgpWhy}`;
        }
      }
      problems.push({ ip, reason, why });
    }
    out.set(
      svc.key,
      problems.length === 0
        ? { announceable: true }
        : {
            announceable: false,
            reason: problems[0]!.reason,
            message: `no node may announce ${problems.map((p) => `${p.ip}: ${p.why}`).join("; ")}`,
            ips: problems,
          },
    );
  }
  return out;
}

/** Objects that parse (unknown fields ignored, as the speakers read them), converted. */
function parseAll<T, U>(
  objs: readonly unknown[] | undefined,
  parse: (o: unknown, opts: { unknownFields: "ignore" }) => { ok: true; value: T } | { ok: false },
  convert: (v: T) => U,
): U[] {
  return (objs ?? []).flatMap((o) => {
    const r = parse(o, { unknownFields: "ignore" });
    return r.ok ? [convert(r.value)] : [];
  });
}

/** Node -> the `ironlb.dev/links` annotation of its speaker's Lease. */
export function publishedLinks(leases: readonly V1Lease[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const l of leases) {
    const node = l.spec?.holderIdentity;
    const text = l.metadata?.annotations?.[LINKS_ANNOTATION];
    if (node && text !== undefined) out.set(node, text);
  }
  return out;
}
