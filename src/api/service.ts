// The rules about Services that the controller and the speaker share: which Services
// ironlb handles, the annotations it reads (with their MetalLB spellings), and the IPs a
// Service's status publishes. Pure.

/**
 * The parts of a Service these rules read. Structural, so that src/api depends on nothing
 * but net (test/unit/layering.test.ts); client-node's V1Service fits it.
 */
export interface ServiceLike {
  spec?: { type?: string; loadBalancerClass?: string };
  status?: { loadBalancer?: { ingress?: { ip?: string }[] } };
}

/** The annotation keys ironlb reads, and the MetalLB spellings it accepts for migration. */
export const ANNOTATIONS = {
  loadBalancerIPs: "ironlb.dev/loadBalancerIPs",
  addressPool: "ironlb.dev/address-pool",
  allowSharedIP: "ironlb.dev/allow-shared-ip",
  /** Written by the controller: the pool the Service's IPs come from. */
  allocatedFromPool: "ironlb.dev/ip-allocated-from-pool",
  /** Written by the speaker: the node that announces the Service's IPs. */
  announcingNode: "ironlb.dev/announcing-node",
} as const;

export const METALLB_PREFIXES = ["metallb.io/", "metallb.universe.tf/"];

/** The default `spec.loadBalancerClass` ironlb answers to. */
export const DEFAULT_LB_CLASS = "ironlb.dev/lb";

export interface ClassFilter {
  /** The loadBalancerClass handled (default ironlb.dev/lb). */
  lbClass: string;
  /** Whether Services without a loadBalancerClass are handled (default true). */
  handleUnclassed: boolean;
}

/** True when the Service is a LoadBalancer that this ironlb instance is responsible for. */
export function isOurs(svc: ServiceLike, filter: ClassFilter): boolean {
  if (svc.spec?.type !== "LoadBalancer") return false;
  const cls = svc.spec.loadBalancerClass;
  return cls === undefined || cls === "" ? filter.handleUnclassed : cls === filter.lbClass;
}

/** Longest annotation text echoed into a message: annotations may hold up to 256 KiB. */
export const ECHO_LIMIT = 64;

/** A value for a message: quoted, and cut to `max` characters with its full length said. */
export function quoted(value: string, max = ECHO_LIMIT): string {
  const a = ABBREVIATED.exec(value);
  if (a) return `"${a[1]!.slice(0, max)}…" (${a[2]} characters)`;
  if (value.length <= max) return `"${value}"`;
  return `"${value.slice(0, max)}…" (${value.length} characters)`;
}

/**
 * A long value as a cache keeps it (the controller's, src/controller/slim.ts): its first
 * ECHO_LIMIT characters, its length and a digest of it (the caller's), so that quoted()
 * says what it would say of the value itself, and equal values stay equal.
 */
export function abbreviated(value: string, digest: string): string {
  return `${value.slice(0, ECHO_LIMIT).replaceAll("\0", "")}\0${value.length}\0${digest}`;
}

const ABBREVIATED = /^([^\0]*)\0(\d+)\0/;

/**
 * Reads one ironlb annotation, falling back to the MetalLB spellings with a warning that
 * names the ironlb key to use instead. Both spellings set with different values is an error.
 */
export function annotation(
  annotations: Record<string, string>,
  key: string,
  warnings: string[],
): { value?: string; error?: string } {
  const own = annotations[key];
  const suffix = key.slice("ironlb.dev/".length);
  for (const prefix of METALLB_PREFIXES) {
    const alias = annotations[prefix + suffix];
    if (alias === undefined) continue;
    if (own !== undefined && own.trim() !== alias.trim()) {
      return {
        error: `annotations ${key}=${quoted(own)} and ${prefix + suffix}=${quoted(alias)} disagree; remove ${prefix + suffix}`,
      };
    }
    if (own === undefined) {
      warnings.push(
        `annotation ${prefix + suffix} is read for compatibility with MetalLB; use ${key} instead`,
      );
      return { value: alias.trim() };
    }
  }
  return { value: own?.trim() };
}

/** The IPs currently published in a Service's status, in order. */
export function statusIPs(svc: ServiceLike): string[] {
  return (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? "").filter((ip) => ip !== "");
}
