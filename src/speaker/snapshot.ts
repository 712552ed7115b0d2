// From Kubernetes objects to the decision's input: the one adapter the speaker (from its
// informers) and `ironlb status` (from a list) both use, so that what status explains is
// what the speakers decide. Pure.
import type { V1EndpointSlice, V1Node, V1Service } from "@kubernetes/client-node";
import type { L2AdvertisementSpec } from "../api/l2advertisement.ts";
import { ANNOTATIONS, statusIPs } from "../api/service.ts";
import { keyOf, SERVICE_NAME_LABEL } from "../api/vocabulary.ts";
import { REBALANCE_ANNOTATION, type ServiceSnapshot, type Snapshot } from "./decision.ts";
import { DRAIN_ANNOTATION, drainMode, type NodeInfo } from "./eligibility.ts";
import { parseLinks } from "./links.ts";

/** The objects the decision reads. `services` are ours only (the caller filters). */
export interface ClusterObjects {
  services: readonly V1Service[];
  slices: readonly V1EndpointSlice[];
  nodes: readonly V1Node[];
  pools: ReadonlyArray<{
    metadata?: { name?: string; labels?: Record<string, string> };
    spec?: { addresses?: readonly string[] };
  }>;
  ads: ReadonlyArray<{ metadata?: { name?: string }; spec?: L2AdvertisementSpec }>;
  /** Node -> the `ironlb.dev/links` annotation of its speaker's Lease, when it has one. */
  links?: ReadonlyMap<string, string>;
}

/** The part of the decision's Snapshot that comes from the cluster's objects. */
export type ClusterSnapshot = Pick<Snapshot, "services" | "slices" | "nodes" | "pools" | "ads">;

export function clusterSnapshot(o: ClusterObjects): ClusterSnapshot {
  return {
    services: o.services.map(serviceSnapshot),
    // A slice without the label belongs to no Service (a hand-made one): nothing reads it.
    slices: o.slices.flatMap((s) => {
      const name = s.metadata?.labels?.[SERVICE_NAME_LABEL];
      return name ? [{ ...s, service: `${s.metadata?.namespace}/${name}` }] : [];
    }),
    nodes: o.nodes.map((n) => nodeInfo(n, o.links)),
    pools: o.pools.map((p) => ({
      name: p.metadata?.name ?? "",
      labels: p.metadata?.labels ?? {},
      addresses: p.spec?.addresses ?? [],
    })),
    ads: o.ads.map((a) => ({ name: a.metadata?.name ?? "", ...(a.spec ?? {}) })),
  };
}

function serviceSnapshot(svc: V1Service): ServiceSnapshot {
  const a = svc.metadata?.annotations ?? {};
  const pool = a[ANNOTATIONS.allocatedFromPool];
  return {
    key: keyOf(svc),
    ips: statusIPs(svc),
    externalTrafficPolicy: svc.spec?.externalTrafficPolicy === "Local" ? "Local" : "Cluster",
    ...(pool ? { allocatedFromPool: pool } : {}),
    rebalance: a[REBALANCE_ANNOTATION] === "true",
    // BGPAdvertisement serviceSelectors match them.
    labels: svc.metadata?.labels ?? {},
  };
}

/** What eligibility needs of a Node: labels, the two conditions it reads, drain, published links. */
function nodeInfo(n: V1Node, published?: ReadonlyMap<string, string>): NodeInfo {
  const cond = (type: string) =>
    n.status?.conditions?.find((c) => c.type === type)?.status as NodeInfo["ready"];
  const info: NodeInfo = { name: n.metadata?.name ?? "", labels: n.metadata?.labels ?? {} };
  const ready = cond("Ready");
  const netUnavailable = cond("NetworkUnavailable");
  if (ready) info.ready = ready;
  if (netUnavailable) info.networkUnavailable = netUnavailable;
  const drain = drainMode(n.metadata?.annotations?.[DRAIN_ANNOTATION]);
  if (drain) info.drain = drain;
  const links = parseLinks(published?.get(info.name));
  if (links) info.links = links;
  return info;
}
