// When two Services may hold the same IP. Kept apart from the allocator so that the rule
// reads in one place and can be tested on its own.

import type { ServiceRequest } from "./types.ts";

/** Why a Service may not take an IP another Service holds. */
export interface SharingConflict {
  reason: "IPInUse" | "SharingRefused";
  /** Human-readable explanation, naming the holder. */
  why: string;
}

function sameSelector(a?: Record<string, string>, b?: Record<string, string>): boolean {
  const ea = Object.entries(a ?? {});
  const eb = b ?? {};
  if (ea.length !== Object.keys(eb).length) return false;
  return ea.every(([k, v]) => Object.hasOwn(eb, k) && eb[k] === v);
}

/** The pool an IP belongs to, as far as sharing is concerned. */
export interface SharingPool {
  name: string;
  /** Services of different namespaces may share the pool's IPs. */
  allowSharingAcrossNamespaces?: boolean;
}

/** The pool field that lets Services of different namespaces share an IP (named in messages). */
export const ACROSS_NAMESPACES_FIELD = "spec.serviceAllocation.allowSharingAcrossNamespaces";

/**
 * Whether `wanting` may share an IP of `pool` with `holder` (whose key is `holderKey`):
 * both need the same sharing key, the same namespace unless the pool allows sharing across
 * namespaces, no common (protocol, port), and compatible traffic policies (both Cluster, or
 * both Local with the same pod selector, since a Local IP is announced only where that
 * selector's endpoints are). Returns undefined when sharing is legal.
 */
export function sharingConflict(
  wanting: ServiceRequest,
  holder: ServiceRequest,
  holderKey: string,
  pool: SharingPool,
): SharingConflict | undefined {
  if (wanting.sharingKey === undefined) {
    return { reason: "IPInUse", why: `in use by ${holderKey}` };
  }
  if (holder.sharingKey === undefined) {
    return { reason: "IPInUse", why: `in use by ${holderKey}, which does not allow sharing` };
  }
  // Checked before the keys, so that a Service of another namespace is not told the holder's
  // sharing key (a key is no secret worth relying on, but no need to hand it out either).
  if (wanting.namespace !== holder.namespace && pool.allowSharingAcrossNamespaces !== true) {
    return {
      reason: "SharingRefused",
      why: `${holderKey} is in namespace ${holder.namespace}, not ${wanting.namespace}, and pool ${pool.name} does not allow sharing across namespaces (set ${ACROSS_NAMESPACES_FIELD}: true to allow it)`,
    };
  }
  if (wanting.sharingKey !== holder.sharingKey) {
    return {
      reason: "SharingRefused",
      why: `sharing key ${shown(wanting.sharingKey)} differs from ${shown(holder.sharingKey)} of ${holderKey}`,
    };
  }
  for (const p of wanting.ports) {
    if (holder.ports.some((q) => q.port === p.port && q.protocol === p.protocol)) {
      return {
        reason: "SharingRefused",
        why: `port ${p.port}/${p.protocol} already used by ${holderKey}`,
      };
    }
  }
  if (wanting.trafficPolicy !== holder.trafficPolicy) {
    return {
      reason: "SharingRefused",
      why: `traffic policy ${wanting.trafficPolicy} differs from ${holder.trafficPolicy} of ${holderKey}`,
    };
  }
  if (wanting.trafficPolicy === "Local" && !sameSelector(wanting.selector, holder.selector)) {
    return { reason: "SharingRefused", why: `Local pod selector differs from ${holderKey}` };
  }
  return undefined;
}

/** A sharing key for a message: annotations may be huge, messages must not be. */
function shown(key: string): string {
  return key.length <= 64 ? `"${key}"` : `"${key.slice(0, 64)}…" (${key.length} characters)`;
}
