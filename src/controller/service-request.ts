// Translating a Service into what the allocator needs (the shared rules about Services
// are in src/api/service.ts). Pure: bad annotations become errors to report, never exceptions.
import type { V1Service } from "@kubernetes/client-node";
import type { Family, PortKey, ServiceRequest } from "../allocator/types.ts";
import { ANNOTATIONS, annotation, quoted } from "../api/service.ts";
import { formatIP, isUnspecified, parseIP } from "../net/address.ts";

export type TranslateResult =
  | { ok: true; request: ServiceRequest; warnings: string[] }
  | { ok: false; error: string; warnings: string[] };

function familyOf(ip: string): Family | undefined {
  return parseIP(ip)?.family;
}

// Pool objects are named like any object: a DNS subdomain (RFC 1123).
const POOL_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

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

  // An empty annotation is unset; anything else must be a list of addresses, no empty entries.
  const requested = ipsAnn.value ? ipsAnn.value.split(",").map((s) => s.trim()) : [];
  if (requested.some((s) => s === "")) {
    return fail(
      `annotation ${ANNOTATIONS.loadBalancerIPs}=${quoted(ipsAnn.value ?? "")} has an empty entry; list the IPs separated by commas, like 198.51.100.7,2001:db8::7`,
    );
  }
  if (requested.length > 2) {
    return fail(
      `annotation ${ANNOTATIONS.loadBalancerIPs} lists ${requested.length} entries; at most one IPv4 and one IPv6 address may be requested`,
    );
  }
  const specIP = spec.loadBalancerIP?.trim();
  if (specIP) {
    if (requested.length > 0 && !requested.includes(specIP)) {
      return fail(
        `spec.loadBalancerIP ${quoted(specIP)} and annotation ${ANNOTATIONS.loadBalancerIPs}=${quoted(ipsAnn.value ?? "")} disagree; set only one`,
      );
    }
    if (requested.length === 0) requested.push(specIP);
  }
  const seenFamilies = new Set<Family>();
  for (const text of requested) {
    const ip = parseIP(text);
    if (!ip) return fail(`requested IP ${quoted(text)} is not a valid IPv4 or IPv6 address`);
    if (isUnspecified(ip)) {
      return fail(
        `requested IP ${formatIP(ip)} is the unspecified address, which no Service can have`,
      );
    }
    if (seenFamilies.has(ip.family))
      return fail(
        `at most one ${ip.family} address may be requested, got ${requested.map((r) => quoted(r)).join(", ")}`,
      );
    seenFamilies.add(ip.family);
  }
  if (poolAnn.value && !POOL_NAME.test(poolAnn.value)) {
    return fail(
      `annotation ${ANNOTATIONS.addressPool}=${quoted(poolAnn.value)} is not a pool name (a DNS subdomain: lower-case letters, digits, '-' and '.', at most 253 characters)`,
    );
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
