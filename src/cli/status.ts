// `ironlb status`: per Service, its IPs, their pool, the node and interfaces announcing each
// (from the speakers' IPAnnouncements), and why an IP is pending or not announced (BGP
// sessions and advertisers: status-bgp.ts). The reasons come from the speakers' own
// decision function (src/speaker/decision.ts) run over what the API server holds, with
// Leases as the only liveness a client can see.
import type {
  KubernetesObject,
  V1EndpointSlice,
  V1Lease,
  V1Node,
  V1Service,
} from "@kubernetes/client-node";
import type { IPAddressPool } from "../api/ipaddresspool.ts";
import type { IPAnnouncement } from "../api/ipannouncement.ts";
import type { L2Advertisement } from "../api/l2advertisement.ts";
import { type ClassFilter, isOurs, statusIPs } from "../api/service.ts";
import {
  ALLOCATED_CONDITION,
  keyOf,
  namespacedPath,
  PATHS,
  SPEAKER_LEASE_LABEL,
} from "../api/vocabulary.ts";
import type { KubeClient } from "../k8s/client.ts";
import { httpStatus, timestamp } from "../k8s/errors.ts";
import { listAll } from "../k8s/list.ts";
import { type AnnounceObjects, announceVerdicts, publishedLinks } from "../speaker/announceable.ts";
import { decide } from "../speaker/decision.ts";
import { type ClusterSnapshot, clusterSnapshot } from "../speaker/snapshot.ts";
import type { BgpStatusInput } from "./status-bgp.ts";

/** What the verdict reads (every Service listed: ours are picked here), and the IPAnnouncements. */
export interface StatusInput extends AnnounceObjects {
  announcements: (IPAnnouncement & KubernetesObject)[];
}

export interface StatusRow {
  service: string;
  ip: string;
  pool: string;
  node: string;
  interfaces: string;
  state: string;
}

/** Speakers whose Lease is current at `nowMs`. */
export function liveByLease(leases: V1Lease[], nowMs: number): Set<string> {
  const out = new Set<string>();
  for (const l of leases) {
    const node = l.spec?.holderIdentity;
    const renewed = Date.parse(timestamp(l.spec?.renewTime));
    const duration = (l.spec?.leaseDurationSeconds ?? 15) * 1000;
    if (node && Number.isFinite(renewed) && nowMs - renewed < duration) out.add(node);
  }
  return out;
}

/** The objects as the speakers' decisions take them (Layer 2 and BGP alike). */
export function statusObjects(input: StatusInput, filter: ClassFilter): ClusterSnapshot {
  return clusterSnapshot({
    services: input.services.filter((s) => isOurs(s, filter)),
    slices: input.slices,
    nodes: input.nodes,
    pools: input.pools,
    ads: input.ads,
    links: publishedLinks(input.leases),
  });
}

/**
 * The rows `ironlb status` prints, one per Service IP (one per Service without IP). With
 * `bgp`, an IP no node announces in Layer 2 but some node advertises over BGP says so.
 */
export function statusRows(
  input: StatusInput,
  filter: ClassFilter,
  nowMs: number,
  bgp?: Pick<BgpStatusInput, "peers" | "ads">,
): StatusRow[] {
  const services = input.services.filter((s) => isOurs(s, filter));
  const live = liveByLease(input.leases, nowMs);
  const records = new Map<string, IPAnnouncement>();
  for (const a of input.announcements) if (a.status?.ip) records.set(a.status.ip, a);
  const d = decide({
    ...statusObjects(input, filter),
    // No node of our own: nothing is "mine", only the shared answer matters here.
    membership: { self: "", live, settled: true, quorum: true },
    currentOwners: new Map(
      [...records].flatMap(([ip, r]) => (r.status?.node ? [[ip, r.status.node] as const] : [])),
    ),
    held: new Set(),
    contested: new Set(),
  });

  // The verdict the controller writes as the Announceable condition (both modes).
  const verdicts = announceVerdicts({
    ...input,
    services,
    live,
    bgpPeers: bgp?.peers ?? [],
    bgpAds: bgp?.ads ?? [],
  });
  const rows: StatusRow[] = [];
  for (const s of [...services].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : 1))) {
    const ips = statusIPs(s);
    if (ips.length === 0) {
      const c = s.status?.conditions?.find((x) => x.type === ALLOCATED_CONDITION);
      const why =
        c && c.status === "False"
          ? `${c.reason}: ${c.message}`
          : "waiting for the controller to assign an IP";
      rows.push({
        service: keyOf(s),
        ip: "-",
        pool: "-",
        node: "-",
        interfaces: "-",
        state: `pending: ${why}`,
      });
      continue;
    }
    for (const ip of ips) {
      const x = d.ips.get(ip);
      const rec = records.get(ip)?.status;
      const row: StatusRow = {
        service: keyOf(s),
        ip,
        pool: x?.pool ?? "-",
        node: rec?.node ?? "-",
        interfaces: rec?.interfaces?.join(",") || "-",
        state: "",
      };
      const refused = x?.refused?.find((r) => r.service === keyOf(s));
      const v = verdicts.get(keyOf(s));
      const unannounced = v?.announceable === false ? v.ips.find((i) => i.ip === ip) : undefined;
      if (unannounced || ((refused || x?.reason) && !bgp)) {
        row.node = "-";
        row.interfaces = "-";
        row.state = `not announced: ${unannounced?.why ?? refused?.reason ?? x?.reason}`;
        if (refused) row.pool = "-";
      } else if (refused || x?.reason) {
        row.node = "-";
        row.interfaces = "-";
        row.state = "advertised over BGP (see below)";
      } else if (rec?.node && x?.owner === rec.node)
        row.state = x.drainKept ? `announced, drained node keeps it: ${x.drainKept}` : "announced";
      else if (x?.owner)
        row.state = rec?.node
          ? `moving: ${rec.node} recorded, speakers choose ${x.owner}`
          : `pending: ${x.owner} is about to announce it`;
      else row.state = "not announced";
      rows.push(row);
    }
  }
  return rows;
}

/** Formats rows as an aligned table with a header. */
export function formatRows(rows: StatusRow[]): string {
  const head: StatusRow = {
    service: "SERVICE",
    ip: "IP",
    pool: "POOL",
    node: "NODE",
    interfaces: "INTERFACES",
    state: "STATUS",
  };
  const cols = ["service", "ip", "pool", "node", "interfaces", "state"] as const;
  const all = [head, ...rows];
  const width = cols.map((c) => Math.max(...all.map((r) => r[c].length)));
  return all
    .map((r) =>
      cols
        .map((c, i) => (i === cols.length - 1 ? r[c] : r[c].padEnd(width[i]!)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** Reads what status needs from the API server. */
export async function fetchStatusInput(api: KubeClient, namespace?: string): Promise<StatusInput> {
  // Paged, so that no answer outgrows the client's body cap (Services may be large).
  const items = <T>(path: string, query?: Record<string, string>) => listAll<T>(api, path, query);
  const [services, slices, nodes, pools, ads, leases, announcements] = await Promise.all([
    items<V1Service>(namespacedPath("services", namespace)),
    items<V1EndpointSlice>(namespacedPath("endpointSlices", namespace)),
    items<V1Node>(PATHS.nodes),
    items<IPAddressPool & KubernetesObject>(PATHS.ipAddressPools),
    items<L2Advertisement & KubernetesObject>(PATHS.l2Advertisements),
    items<V1Lease>(PATHS.leases, { labelSelector: SPEAKER_LEASE_LABEL }),
    items<IPAnnouncement & KubernetesObject>(PATHS.ipAnnouncements),
  ]);
  return { services, slices, nodes, pools, ads, leases, announcements };
}

/** Reads what the BGP part of status needs; empty where the BGP CRDs are not installed. */
export async function fetchBgpStatusInput(api: KubeClient): Promise<BgpStatusInput> {
  const items = async <T>(path: string): Promise<T[]> => {
    try {
      return await listAll<T>(api, path);
    } catch (err) {
      if (httpStatus(err) === 404) return [];
      throw err;
    }
  };
  const [peers, ads, sessions] = await Promise.all([
    items<BgpStatusInput["peers"][number]>(PATHS.bgpPeers),
    items<BgpStatusInput["ads"][number]>(PATHS.bgpAdvertisements),
    items<BgpStatusInput["sessions"][number]>(PATHS.bgpSessionStates),
  ]);
  return { peers, ads, sessions };
}
