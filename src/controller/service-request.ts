// Translating a Service into what the allocator needs, and deciding which Services ironlb
// handles. Pure: bad annotations become errors to report, never exceptions.
import { isIP } from "node:net";
import type { V1Service } from "@kubernetes/client-node";
import type { Family, PortKey, ServiceRequest } from "../allocator/types.ts";

/** The annotation keys ironlb reads, and the MetalLB spellings it accepts for migration. */
export const ANNOTATIONS = {
  loadBalancerIPs: "ironlb.dev/loadBalancerIPs",
  addressPool: "ironlb.dev/address-pool",
  allowSharedIP: "ironlb.dev/allow-shared-ip",
  /** Written by the controller: the pool the Service's IPs come from. */
  allocatedFromPool: "ironlb.dev/ip-allocated-from-pool",
} as const;

const METALLB_PREFIXES = ["metallb.io/", "metallb.universe.tf/"];

/** The default `spec.loadBalancerClass` ironlb answers to. */
export const DEFAULT_LB_CLASS = "ironlb.dev/lb";

export interface ClassFilter {
  /** The loadBalancerClass handled (default ironlb.dev/lb). */
  lbClass: string;
  /** Whether Services without a loadBalancerClass are handled (default true). */
  handleUnclassed: boolean;
}

/** True when the Service is a LoadBalancer that this ironlb instance is responsible for. */
export function isOurs(svc: V1Service, filter: ClassFilter): boolean {
  if (svc.spec?.type !== "LoadBalancer") return false;
  const cls = svc.spec.loadBalancerClass;
  return cls === undefined || cls === "" ? filter.handleUnclassed : cls === filter.lbClass;
}

export type TranslateResult =
  | { ok: true; request: ServiceRequest; warnings: string[] }
  | { ok: false; error: string; warnings: string[] };

/**
 * Reads one ironlb annotation, falling back to the MetalLB spellings with a warning that
 * names the ironlb key to use instead. Both spellings set with different values is an error.
 */
function annotation(
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
        error: `annotations ${key}="${own}" and ${prefix + suffix}="${alias}" disagree; remove ${prefix + suffix}`,
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

function familyOf(ip: string): Family | undefined {
  const v = isIP(ip);
  return v === 4 ? "IPv4" : v === 6 ? "IPv6" : undefined;
}

/** Builds the allocator's view of a Service, or says what is wrong with its configuration. */
export function translateService(
  svc: V1Service,
  namespaceLabels: Record<string, string>,
): TranslateResult {
  const warnings: string[] = [];
  const fail = (error: string): TranslateResult => ({ ok: false, error, warnings });
  const meta = svc.metadata ?? {};
  const spec = svc.spec ?? {};
  const annotations = meta.annotations ?? {};

  const ipsAnn = annotation(annotations, ANNOTATIONS.loadBalancerIPs, warnings);
  if (ipsAnn.error) return fail(ipsAnn.error);
  const poolAnn = annotation(annotations, ANNOTATIONS.addressPool, warnings);
  if (poolAnn.error) return fail(poolAnn.error);
  const shareAnn = annotation(annotations, ANNOTATIONS.allowSharedIP, warnings);
  if (shareAnn.error) return fail(shareAnn.error);

  const requested = ipsAnn.value
    ? ipsAnn.value
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "")
    : [];
  const specIP = spec.loadBalancerIP?.trim();
  if (specIP) {
    if (requested.length > 0 && !requested.includes(specIP)) {
      return fail(
        `spec.loadBalancerIP ${specIP} and annotation ${ANNOTATIONS.loadBalancerIPs}="${ipsAnn.value}" disagree; set only one`,
      );
    }
    if (requested.length === 0) requested.push(specIP);
  }
  const seenFamilies = new Set<Family>();
  for (const ip of requested) {
    const fam = familyOf(ip);
    if (!fam) return fail(`requested IP "${ip}" is not a valid IPv4 or IPv6 address`);
    if (seenFamilies.has(fam))
      return fail(`at most one ${fam} address may be requested, got ${requested.join(", ")}`);
    seenFamilies.add(fam);
  }

  const specFamilies = (spec.ipFamilies ?? []).filter(
    (f): f is Family => f === "IPv4" || f === "IPv6",
  );
  const policy = spec.ipFamilyPolicy ?? "SingleStack";
  const first: Family = specFamilies[0] ?? (requested[0] ? familyOf(requested[0])! : "IPv4");
  const other: Family = first === "IPv4" ? "IPv6" : "IPv4";
  let families: ServiceRequest["families"];
  if (policy === "RequireDualStack")
    families = [
      { family: first, required: true },
      { family: other, required: true },
    ];
  else if (policy === "PreferDualStack")
    families = [
      { family: first, required: true },
      { family: other, required: false },
    ];
  else families = [{ family: first, required: true }];
  for (const fam of seenFamilies) {
    if (!families.some((f) => f.family === fam)) {
      return fail(
        `requested ${fam} address, but the Service's IP families are ${families.map((f) => f.family).join(", ")} (ipFamilyPolicy ${policy})`,
      );
    }
  }

  const ports: PortKey[] = (spec.ports ?? []).map((p) => ({
    protocol: (p.protocol ?? "TCP") as PortKey["protocol"],
    port: p.port,
  }));

  const request: ServiceRequest = {
    key: `${meta.namespace}/${meta.name}`,
    namespace: meta.namespace ?? "default",
    labels: meta.labels ?? {},
    namespaceLabels,
    families,
    requestedIPs: requested,
    ports,
    trafficPolicy: spec.externalTrafficPolicy === "Local" ? "Local" : "Cluster",
  };
  if (poolAnn.value) request.pool = poolAnn.value;
  if (shareAnn.value) request.sharingKey = shareAnn.value;
  if (spec.selector) request.selector = spec.selector;
  return { ok: true, request, warnings };
}

/** The IPs currently published in a Service's status, in order. */
export function statusIPs(svc: V1Service): string[] {
  return (svc.status?.loadBalancer?.ingress ?? []).map((i) => i.ip ?? "").filter((ip) => ip !== "");
}
