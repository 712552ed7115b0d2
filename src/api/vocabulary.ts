// The names the controller, the speaker and the `ironlb` command share: where each resource
// lives in the API, the labels and condition types they read and write, the heartbeat key
// size. One definition each, so that a writer and its readers cannot drift apart. No
// validators here: code needing only the names loads only this (and group.ts).
import { group, version } from "./group.ts";

const ipAddressPoolPlural = "ipaddresspools";
const l2AdvertisementPlural = "l2advertisements";
const ipAnnouncementPlural = "ipannouncements";
const bgpPeerPlural = "bgppeers";
const bgpAdvertisementPlural = "bgpadvertisements";
const bgpSessionStatePlural = "bgpsessionstates";
const bfdProfilePlural = "bfdprofiles";

/** Collection paths (cluster-wide lists and watches; the CRDs are cluster-scoped). */
export const PATHS = {
  services: "/api/v1/services",
  nodes: "/api/v1/nodes",
  namespaces: "/api/v1/namespaces",
  endpointSlices: "/apis/discovery.k8s.io/v1/endpointslices",
  leases: "/apis/coordination.k8s.io/v1/leases",
  ipAddressPools: `/apis/${group}/${version}/${ipAddressPoolPlural}`,
  l2Advertisements: `/apis/${group}/${version}/${l2AdvertisementPlural}`,
  ipAnnouncements: `/apis/${group}/${version}/${ipAnnouncementPlural}`,
  bgpPeers: `/apis/${group}/${version}/${bgpPeerPlural}`,
  bgpAdvertisements: `/apis/${group}/${version}/${bgpAdvertisementPlural}`,
  bgpSessionStates: `/apis/${group}/${version}/${bgpSessionStatePlural}`,
  bfdProfiles: `/apis/${group}/${version}/${bfdProfilePlural}`,
} as const;

/** A Service's path, or its status subresource's with `/status` appended by the caller. */
export function servicePath(namespace: string | undefined, name: string | undefined): string {
  return `/api/v1/namespaces/${namespace}/services/${name}`;
}

/** The collection of one namespace's Services or EndpointSlices (`ironlb status -n`). */
export function namespacedPath(
  collection: "services" | "endpointSlices",
  namespace: string | undefined,
): string {
  if (!namespace) return PATHS[collection];
  const ns = `/namespaces/${encodeURIComponent(namespace)}`;
  return collection === "services"
    ? `/api/v1${ns}/services`
    : `/apis/discovery.k8s.io/v1${ns}/endpointslices`;
}

/** The Leases of a namespace (speaker membership, leader election). */
export function leasesPath(namespace: string): string {
  return `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`;
}

/** The Secrets of a namespace (the heartbeat key). */
export function secretsPath(namespace: string): string {
  return `/api/v1/namespaces/${namespace}/secrets`;
}

/** The label Kubernetes puts on every EndpointSlice: the name of its Service. */
export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

/** The label on every speaker's membership Lease (what `ironlb status` and cleanup list). */
export const SPEAKER_LEASE_LABEL = "ironlb.dev/speaker";

/** The controller's leader-election Lease (in the release namespace). */
export const CONTROLLER_LEASE = "ironlb-controller";

/** The UDP port speakers send heartbeats to unless told otherwise (chart: speaker.heartbeat.port). */
export const DEFAULT_HEARTBEAT_PORT = 7947;

/** The Service condition the controller writes when it allocates (or cannot). */
export const ALLOCATED_CONDITION = "ironlb.dev/IPAllocated";

/**
 * The Service condition the controller writes when no node may announce one of its IPs
 * (False, with the reason), and sets back to True when some node may again.
 */
export const ANNOUNCEABLE_CONDITION = "ironlb.dev/Announceable";

/** The shortest heartbeat key speakers accept; the controller generates and checks to it. */
export const MIN_HEARTBEAT_KEY_BYTES = 16;

/** The key of a namespaced object, "namespace/name" (what work queues and maps hold). */
export function keyOf(obj: { metadata?: { namespace?: string; name?: string } }): string {
  return `${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? ""}`;
}
