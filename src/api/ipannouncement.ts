// IPAnnouncement (ironlb.dev/v1beta1, cluster-scoped): the checked twin of
// config/crd/ironlb.dev_ipannouncements.yaml. Written by speakers (which import only the
// types), read by `ironlb status`.
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
import { dateTime, object, optional, required, string } from "./validate.ts";

export const ipAnnouncementKind = "IPAnnouncement";

export const ipAnnouncementMessages = {
  ip: "ip must be an IPv4 or IPv6 address",
  node: "a node name is a DNS subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
  service: "a Service is written as namespace/name",
} as const;

const servicePattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export interface IPAnnouncementStatus {
  ip: string;
  node: string;
  interfaces?: string[];
  services?: string[];
  since?: string;
}

export const ipAnnouncementStatus = object<IPAnnouncementStatus>({
  ip: required(
    string({
      max: 45,
      refine: (s) => (parseIP(s) === undefined ? [ipAnnouncementMessages.ip] : []),
    }),
  ),
  node: required(
    string({ max: 253, pattern: dnsSubdomainPattern, message: ipAnnouncementMessages.node }),
  ),
  interfaces: optional(stringSet(interfaceName, 64)),
  services: optional(
    stringSet(
      string({ max: 317, pattern: servicePattern, message: ipAnnouncementMessages.service }),
      256,
    ),
  ),
  since: optional(dateTime()),
});

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
