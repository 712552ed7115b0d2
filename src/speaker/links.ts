// The links a speaker publishes on its membership Lease (annotation `ironlb.dev/links`), so
// that every speaker can tell which nodes have an interface in an IP's subnet, or one of an
// L2Advertisement's interfaces, and all of them compute the same eligible set (eligibility.ts).
// Pure: the edge reads the host's interfaces and the Leases.

import { bitsOf, type IPFamily, parseIP } from "../net/address.ts";
import { type HostInterface, isVirtualInterface } from "./interfaces.ts";

/** Lease annotation: this node's usable interfaces with their subnets, as JSON. */
export const LINKS_ANNOTATION = "ironlb.dev/links";

/** One usable interface of a node: up, not loopback, not container or CNI plumbing. */
export interface PublishedLink {
  name: string;
  /** "192.0.2.5/24"; full-length prefixes are left out (they describe no LAN segment). */
  cidrs: readonly string[];
}

/** The interfaces a node publishes: the ones "auto" may choose from (interfaces.ts). */
export function usableLinks(host: readonly HostInterface[]): PublishedLink[] {
  return host
    .filter(
      (i) =>
        i.up && i.name !== "lo" && !i.addresses.some((a) => a.internal) && !isVirtualInterface(i),
    )
    .map((i) => ({
      name: i.name,
      cidrs: i.addresses.flatMap((a) => (a.cidr !== null && parseCidr(a.cidr) ? [a.cidr] : [])),
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The annotation's value: `{"eth0":["192.0.2.5/24"],"eth1":[]}`, keys sorted. */
export function formatLinks(links: readonly PublishedLink[]): string {
  const out: Record<string, string[]> = {};
  for (const l of [...links].sort((a, b) => (a.name < b.name ? -1 : 1))) out[l.name] = [...l.cidrs];
  return JSON.stringify(out);
}

/**
 * Reads the annotation. Undefined when it is absent or malformed: such a node is treated as
 * a speaker that publishes nothing (one from before this annotation), which may announce
 * anywhere, so that an upgrade or a bad write never takes IPs away.
 */
export function parseLinks(text: string | undefined): PublishedLink[] | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const out: PublishedLink[] = [];
  for (const [name, cidrs] of Object.entries(value)) {
    if (!Array.isArray(cidrs) || !cidrs.every((c) => typeof c === "string")) return undefined;
    out.push({ name, cidrs: cidrs.filter((c) => parseCidr(c) !== undefined) });
  }
  return out;
}

interface Cidr {
  family: IPFamily;
  /** The network part, shifted right by the host bits. */
  net: bigint;
  shift: bigint;
}

const cidrCache = new Map<string, Cidr | undefined>();

/** A subnet of a LAN segment; undefined for malformed text and full-length prefixes. */
function parseCidr(text: string): Cidr | undefined {
  if (cidrCache.has(text)) return cidrCache.get(text);
  let out: Cidr | undefined;
  const slash = text.indexOf("/");
  const addr = slash > 0 ? parseIP(text.slice(0, slash)) : undefined;
  const prefixText = text.slice(slash + 1);
  if (addr && /^\d{1,3}$/.test(prefixText)) {
    const bits = BigInt(bitsOf(addr.family));
    const prefix = BigInt(prefixText);
    if (prefix < bits) {
      const shift = bits - prefix;
      out = { family: addr.family, net: addr.value >> shift, shift };
    }
  }
  // Bounded: node addresses are few, but the texts come from Leases anyone may write.
  if (cidrCache.size >= 4096) cidrCache.clear();
  cidrCache.set(text, out);
  return out;
}

/** Whether any of the links has a subnet containing `ip`. */
export function linksContain(links: readonly PublishedLink[], ip: string): boolean {
  const addr = parseIP(ip);
  if (!addr) return false;
  return links.some((l) =>
    l.cidrs.some((text) => {
      const c = parseCidr(text);
      return c !== undefined && c.family === addr.family && addr.value >> c.shift === c.net;
    }),
  );
}
