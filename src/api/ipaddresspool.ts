// IPAddressPool (ironlb.dev/v1beta1, cluster-scoped): the checked twin of
// config/crd/ironlb.dev_ipaddresspools.yaml (which stays what `kubectl explain` shows).
// Both must accept and reject the same objects (test/fixtures/crd-examples.ts is the
// shared table).
import { addressEntryErrors } from "./addresses.ts";
import {
  type Condition,
  condition,
  envelope,
  type LabelSelector,
  labelSelector,
  namespaceName,
  type ObjectMeta,
  type ParseOptions,
  type ParseResult,
  parseWith,
  stringSet,
} from "./common.ts";
import {
  array,
  boolean,
  integer,
  object,
  optional,
  required,
  string,
  withDefault,
} from "./validate.ts";

export const ipAddressPoolKind = "IPAddressPool";

/** Largest count the status reports: available IPv6 counts saturate here. */
export const maxCount = Number.MAX_SAFE_INTEGER;

/** Condition types and reasons the controller writes on pools. */
export const poolConditions = {
  ready: "Ready",
  conflict: "Conflict",
  reasons: {
    ready: "PoolReady",
    invalidSpec: "InvalidSpec",
    invalidAddresses: "InvalidAddresses",
    noUsableAddresses: "NoUsableAddresses",
    familyUnavailable: "FamilyUnavailable",
    overlapsPool: "OverlapsPool",
    noOverlap: "NoOverlap",
  },
} as const;

// The longest valid entry: two IPv6 addresses with an embedded IPv4 part (45 characters each).
export const addressEntry = string({ max: 91, refine: addressEntryErrors });

export interface ServiceAllocation {
  priority?: number;
  namespaces?: string[];
  namespaceSelectors?: LabelSelector[];
  serviceSelectors?: LabelSelector[];
  /** Absent means false; no schema default, so pools written before the field stay as they are. */
  allowSharingAcrossNamespaces?: boolean;
}

export const serviceAllocation = object<ServiceAllocation>({
  priority: optional(integer(0, 2147483647)),
  namespaces: optional(stringSet(namespaceName, 256)),
  namespaceSelectors: optional(array(labelSelector, { max: 16 })),
  serviceSelectors: optional(array(labelSelector, { max: 16 })),
  allowSharingAcrossNamespaces: optional(boolean()),
});

/** The spec with defaults applied (what the controller works with). */
export interface IPAddressPoolSpec {
  addresses: string[];
  autoAssign: boolean;
  avoidBuggyIPs: boolean;
  excludeNetworkAndBroadcast: boolean;
  serviceAllocation?: ServiceAllocation;
}

export const ipAddressPoolSpec = object<IPAddressPoolSpec>({
  addresses: required(stringSet(addressEntry, 256, 1)),
  autoAssign: withDefault(boolean(), true),
  avoidBuggyIPs: withDefault(boolean(), false),
  excludeNetworkAndBroadcast: withDefault(boolean(), false),
  serviceAllocation: optional(serviceAllocation),
});

const count = integer(0, maxCount);

export interface IPAddressPoolStatus {
  assignedIPv4?: number;
  assignedIPv6?: number;
  availableIPv4?: number;
  availableIPv6?: number;
  conditions?: Condition[];
}

export const ipAddressPoolStatus = object<IPAddressPoolStatus>({
  assignedIPv4: optional(count),
  assignedIPv6: optional(count),
  availableIPv4: optional(count),
  availableIPv6: optional(count),
  // listType map keyed by type: one entry per type.
  conditions: optional(array(condition, { max: 8, mapKey: "type" })),
});

export interface IPAddressPool {
  apiVersion: "ironlb.dev/v1beta1";
  kind: "IPAddressPool";
  metadata: ObjectMeta;
  spec: IPAddressPoolSpec;
  status?: IPAddressPoolStatus;
}

export const ipAddressPool = object<IPAddressPool>({
  ...envelope(ipAddressPoolKind),
  spec: required(ipAddressPoolSpec),
  status: optional(ipAddressPoolStatus),
});

/** Validates a whole IPAddressPool object as the apiserver would, applying defaults. */
export function parseIPAddressPool(obj: unknown, opts?: ParseOptions): ParseResult<IPAddressPool> {
  return parseWith(ipAddressPool, obj, opts);
}

/**
 * The address entries of a pool object that fails its checks, where they are strings: still
 * the addresses its Services hold, which the controller keeps assigned and the speakers keep
 * announcing (both parse them, and set aside those they cannot). Empty when there are none.
 */
export function salvagedAddresses(obj: unknown): string[] {
  const raw = (obj as { spec?: { addresses?: unknown } } | null)?.spec?.addresses;
  return Array.isArray(raw) ? raw.filter((a): a is string => typeof a === "string") : [];
}

/** Validates a pool's status alone (what the status subresource accepts). */
export function parseIPAddressPoolStatus(obj: unknown): ParseResult<IPAddressPoolStatus> {
  return parseWith(ipAddressPoolStatus, obj);
}
