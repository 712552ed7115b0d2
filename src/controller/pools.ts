// IPAddressPool objects to allocator pools, and allocator reports back to pool status.
import type { Family, PoolReport, PoolSpec } from "../allocator/types.ts";
import {
  type IPAddressPool,
  parseIPAddressPool,
  poolConditions,
  salvagedAddresses,
} from "../api/ipaddresspool.ts";
import { timestamp } from "../k8s/errors.ts";

export interface PoolInput {
  name: string;
  /**
   * The pool for the allocator. When the object cannot be read as it is (`errors`), a
   * frozen stand-in: the last good spec of the same object, else what can be salvaged of
   * its addresses, so that its Services keep their IPs. Absent only when nothing can be.
   */
  spec?: PoolSpec;
  /** Why the object cannot be read as it is (it slipped past the schema: version skew). */
  errors: string[];
  /** Fields of the object this controller does not know, left out (a newer CRD or writer). */
  ignored: string[];
  uid?: string;
  generation?: number;
  current?: IPAddressPool["status"];
}

/** The last spec read from a pool object, to freeze it on if a later version is unreadable. */
export interface LastGood {
  uid: string;
  spec: PoolSpec;
}

/**
 * Converts a pool object as read from the API; never throws. Unknown fields are ignored
 * (listed in `ignored`). An object that cannot be read freezes on `lastGood` (same uid)
 * or on its salvaged addresses: losing the pool would release every IP it gave.
 */
export function toPoolInput(obj: unknown, lastGood?: LastGood): PoolInput {
  const meta = (
    obj as {
      metadata?: {
        name?: string;
        uid?: string;
        generation?: number;
        creationTimestamp?: string | Date;
      };
    }
  ).metadata;
  const name = meta?.name ?? "";
  const uid = meta?.uid;
  const creationTimestamp = timestamp(meta?.creationTimestamp) || new Date(0).toISOString();
  const parsed = parseIPAddressPool(obj, { unknownFields: "ignore" });
  const ignored = parsed.ignored ?? [];
  if (!parsed.ok) {
    const known = lastGood !== undefined && lastGood.uid === uid ? lastGood.spec : undefined;
    const spec = known ? { ...known } : salvage(obj, name, creationTimestamp);
    const out: PoolInput = { name, errors: parsed.errors, ignored, generation: meta?.generation };
    if (uid !== undefined) out.uid = uid;
    if (spec) out.spec = { ...spec, frozen: true };
    return out;
  }
  const pool = parsed.value;
  const sa = pool.spec.serviceAllocation;
  const spec: PoolSpec = {
    name,
    addresses: pool.spec.addresses,
    autoAssign: pool.spec.autoAssign ?? true,
    avoidBuggyIPs: pool.spec.avoidBuggyIPs ?? false,
    excludeNetworkAndBroadcast: pool.spec.excludeNetworkAndBroadcast ?? false,
    creationTimestamp,
  };
  if (sa?.priority !== undefined) spec.priority = sa.priority;
  if (sa?.namespaces?.length) spec.namespaces = sa.namespaces;
  if (sa?.namespaceSelectors?.length)
    spec.namespaceSelectors = sa.namespaceSelectors as PoolSpec["namespaceSelectors"];
  if (sa?.serviceSelectors?.length)
    spec.serviceSelectors = sa.serviceSelectors as PoolSpec["serviceSelectors"];
  if (sa?.allowSharingAcrossNamespaces) spec.allowSharingAcrossNamespaces = true;
  const out: PoolInput = {
    name,
    spec,
    errors: [],
    ignored,
    generation: meta?.generation,
    current: pool.status,
  };
  if (uid !== undefined) out.uid = uid;
  return out;
}

/**
 * A frozen pool's spec from an object the checker refused, when no earlier version of it
 * was read (a controller that starts next to such a pool): its address entries that are
 * strings (the allocator parses them, and reports those it cannot), no serviceAllocation
 * and sharing across namespaces allowed, so that every Service holding one of its IPs keeps
 * it.
 */
function salvage(obj: unknown, name: string, creationTimestamp: string): PoolSpec | undefined {
  const spec = (obj as { spec?: Record<string, unknown> }).spec;
  const addresses = salvagedAddresses(obj);
  if (name === "" || addresses.length === 0) return undefined;
  const flag = (k: string) => spec?.[k] === true;
  return {
    name,
    addresses,
    autoAssign: false,
    avoidBuggyIPs: flag("avoidBuggyIPs"),
    excludeNetworkAndBroadcast: flag("excludeNetworkAndBroadcast"),
    creationTimestamp,
    // Whatever it allowed, Services sharing its IPs keep them; a frozen pool lets nobody join.
    allowSharingAcrossNamespaces: true,
  };
}

export interface PoolCondition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  lastTransitionTime?: string;
  observedGeneration?: number;
}

export interface PoolStatus {
  assignedIPv4: number;
  assignedIPv6: number;
  availableIPv4: number;
  availableIPv6: number;
  conditions: PoolCondition[];
}

/** A Service that names the pool, and the families it requires from it. */
export interface PoolAsk {
  service: string;
  families: Family[];
}

const NAMED_SERVICES = 5;

/**
 * The status a pool should have, given the allocator's report (or the object's own errors)
 * and what the Services naming this pool require of it. Ready means the pool can serve
 * what it is asked for: usable addresses, of every family asked.
 */
export function desiredPoolStatus(
  input: PoolInput,
  report: PoolReport | undefined,
  asked: readonly PoolAsk[] = [],
): PoolStatus {
  const ready: PoolCondition = {
    type: poolConditions.ready,
    status: "True",
    reason: poolConditions.reasons.ready,
    message: "the pool has usable addresses",
  };
  const conflict: PoolCondition = {
    type: poolConditions.conflict,
    status: "False",
    reason: poolConditions.reasons.noOverlap,
    message: "the pool overlaps no other pool",
  };
  if (input.errors.length > 0 || !report) {
    ready.status = "False";
    ready.reason = poolConditions.reasons.invalidSpec;
    const why = input.errors.join("; ") || "the pool could not be read";
    ready.message = input.spec?.frozen
      ? `the pool is frozen: Services keep the IPs it gave them, and it gives no new ones, until it can be read again: ${why}`
      : why;
  } else if (report.invalidAddresses.length > 0) {
    ready.status = report.empty ? "False" : "True";
    ready.reason = poolConditions.reasons.invalidAddresses;
    ready.message = `these addresses cannot be used: ${report.invalidAddresses.join(", ")}`;
  } else if (report.empty) {
    ready.status = "False";
    ready.reason = poolConditions.reasons.noUsableAddresses;
    ready.message =
      report.overlapsWith.length > 0
        ? `every address overlaps an older pool (${report.overlapsWith.join(", ")})`
        : "no address is left after exclusions (avoidBuggyIPs, excludeNetworkAndBroadcast, the unspecified address)";
  } else {
    const has = (f: Family) =>
      f === "IPv4"
        ? report.assignedIPv4 + report.availableIPv4 > 0
        : report.assignedIPv6 + report.availableIPv6 > 0;
    const missing = (["IPv4", "IPv6"] as const).filter((f) => !has(f));
    const askers = [
      ...new Set(
        asked.filter((a) => a.families.some((f) => missing.includes(f))).map((a) => a.service),
      ),
    ].sort();
    if (askers.length > 0) {
      const fams = missing.filter((f) => asked.some((a) => a.families.includes(f)));
      const shown = askers.slice(0, NAMED_SERVICES).join(", ");
      const more =
        askers.length > NAMED_SERVICES ? ` and ${askers.length - NAMED_SERVICES} more` : "";
      ready.status = "False";
      ready.reason = poolConditions.reasons.familyUnavailable;
      ready.message = `Services ask this pool for ${fams.join(" and ")} addresses but it has none usable (${shown}${more})`;
    } else if (report.warnings.length > 0) {
      ready.message = `the pool has usable addresses, but it ${report.warnings.join("; it ")}`;
    }
  }
  if (report && report.overlapsWith.length > 0) {
    conflict.status = "True";
    conflict.reason = poolConditions.reasons.overlapsPool;
    conflict.message = `overlaps the older pool(s) ${report.overlapsWith.join(", ")}, which keep the shared addresses; this pool does not assign them`;
  }
  const conditions = [ready, conflict].map((c) => {
    const prev = input.current?.conditions?.find((p) => p.type === c.type);
    const since =
      prev && prev.status === c.status
        ? timestamp(prev.lastTransitionTime as string | Date | undefined)
        : new Date().toISOString();
    return { ...c, lastTransitionTime: since, observedGeneration: input.generation };
  });
  return {
    assignedIPv4: report?.assignedIPv4 ?? 0,
    assignedIPv6: report?.assignedIPv6 ?? 0,
    availableIPv4: report?.availableIPv4 ?? 0,
    availableIPv6: report?.availableIPv6 ?? 0,
    conditions,
  };
}

/** True when two statuses differ in anything but transition times. */
export function poolStatusChanged(
  current: IPAddressPool["status"] | undefined,
  next: PoolStatus,
): boolean {
  if (!current) return true;
  const c = current as Partial<PoolStatus>;
  if (
    c.assignedIPv4 !== next.assignedIPv4 ||
    c.assignedIPv6 !== next.assignedIPv6 ||
    c.availableIPv4 !== next.availableIPv4 ||
    c.availableIPv6 !== next.availableIPv6
  ) {
    return true;
  }
  const cur = c.conditions ?? [];
  if (cur.length !== next.conditions.length) return true;
  return next.conditions.some((n) => {
    const p = cur.find((x) => x.type === n.type);
    return (
      !p ||
      p.status !== n.status ||
      p.reason !== n.reason ||
      p.message !== n.message ||
      p.observedGeneration !== n.observedGeneration
    );
  });
}
