// IPAnnouncement (ironlb.dev/v1beta1, cluster-scoped): the checked twin of
// config/crd/ironlb.dev_ipannouncements.yaml. Written by speakers (which import only the
// types), read by `ironlb status`. Layer 2 fields (`node`, `interfaces`, `services`,
// `since`): the one node answering ARP/NDP; `bgp`: one entry per node advertising the IP
// over BGP, each written by that node's speaker alone (server-side apply, a field manager
// per node), so that a record may carry either part or both.
import { parseIP } from "../net/address.ts";
import {
  dnsSubdomainPattern,
  envelope,
  type ObjectMeta,
  type ParseOptions,
  type ParseResult,
  parseWith,
  stringSet,
} from "./common.ts";
import { interfaceName } from "./l2advertisement.ts";
import { array, dateTime, object, optional, required, string } from "./validate.ts";

export const ipAnnouncementKind = "IPAnnouncement";

export const ipAnnouncementMessages = {
  ip: "ip must be an IPv4 or IPv6 address",
  node: "a node name is a DNS subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
  service: "a Service is written as namespace/name",
} as const;

const servicePattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/** One node's BGP advertisement of the IP: to which of its BGPPeers, since when. */
export interface BgpAdvertiser {
  node: string;
  /** BGPPeer names, sorted. */
  peers: string[];
  since?: string;
}

export interface IPAnnouncementStatus {
  ip: string;
  /** The Layer 2 owner; absent when the IP is advertised over BGP only. */
  node?: string;
  interfaces?: string[];
  services?: string[];
  since?: string;
  /** Nodes advertising the IP over BGP; a list-map keyed by node. */
  bgp?: BgpAdvertiser[];
}

const nodeName = string({
  max: 253,
  pattern: dnsSubdomainPattern,
  message: ipAnnouncementMessages.node,
});

export const bgpAdvertiser = object<BgpAdvertiser>({
  node: required(nodeName),
  peers: required(stringSet(string({ max: 253 }), 64)),
  since: optional(dateTime()),
});

export const ipAnnouncementStatus = object<IPAnnouncementStatus>({
  ip: required(
    string({
      max: 45,
      refine: (s) => (parseIP(s) === undefined ? [ipAnnouncementMessages.ip] : []),
    }),
  ),
  node: optional(nodeName),
  interfaces: optional(stringSet(interfaceName, 64)),
  services: optional(
    stringSet(
      string({ max: 317, pattern: servicePattern, message: ipAnnouncementMessages.service }),
      256,
    ),
  ),
  since: optional(dateTime()),
  bgp: optional(array(bgpAdvertiser, { max: 5000, mapKey: "node" })),
});

/** The IPAnnouncement name of an IP: dots and colons become dashes (a DNS subdomain). */
export function ipAnnouncementName(ip: string): string {
  return ip.toLowerCase().replace(/[.:]/g, "-");
}

export interface IPAnnouncement {
  apiVersion: "ironlb.dev/v1beta1";
  kind: "IPAnnouncement";
  metadata: ObjectMeta;
  status?: IPAnnouncementStatus;
}

export const ipAnnouncement = object<IPAnnouncement>({
  ...envelope(ipAnnouncementKind),
  status: optional(ipAnnouncementStatus),
});

/** Validates a whole IPAnnouncement object as the apiserver would. */
export function parseIPAnnouncement(
  obj: unknown,
  opts?: ParseOptions,
): ParseResult<IPAnnouncement> {
  return parseWith(ipAnnouncement, obj, opts);
}
