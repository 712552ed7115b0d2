// IPAnnouncement (ironlb.dev/v1beta1, cluster-scoped): the zod twin of
// config/crd/ironlb.dev_ipannouncements.yaml. Written by speakers (which import only the
// types: the speaker does not load zod), read by `ironlb status`.
import { z } from "zod";
import { parseIP } from "../net/address.ts";
import { dnsSubdomainPattern, envelope, type ParseResult, parseWith, stringSet } from "./common.ts";
import { interfaceName } from "./l2advertisement.ts";

export const ipAnnouncementKind = "IPAnnouncement";
export const ipAnnouncementPlural = "ipannouncements";

export const ipAnnouncementMessages = {
  ip: "ip must be an IPv4 or IPv6 address",
  node: "a node name is a DNS subdomain: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit",
  service: "a Service is written as namespace/name",
} as const;

const servicePattern = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

export const ipAnnouncementStatus = z.strictObject({
  ip: z
    .string()
    .max(45)
    .refine((s) => parseIP(s) !== undefined, ipAnnouncementMessages.ip),
  node: z.string().max(253).regex(dnsSubdomainPattern, ipAnnouncementMessages.node),
  interfaces: stringSet(interfaceName, 64).optional(),
  services: stringSet(
    z.string().max(317).regex(servicePattern, ipAnnouncementMessages.service),
    256,
  ).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
});
export type IPAnnouncementStatus = z.infer<typeof ipAnnouncementStatus>;

export const ipAnnouncement = z.strictObject({
  ...envelope(ipAnnouncementKind),
  status: ipAnnouncementStatus.optional(),
});
export type IPAnnouncement = z.infer<typeof ipAnnouncement>;

/** Validates a whole IPAnnouncement object as the apiserver would. */
export function parseIPAnnouncement(obj: unknown): ParseResult<IPAnnouncement> {
  return parseWith(ipAnnouncement, obj);
}
