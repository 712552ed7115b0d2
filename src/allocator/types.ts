// The contract between the pure allocator and its callers (the controller). Nothing here
// knows about Kubernetes objects: the controller translates Services and pools into these.
import type { IPFamily } from "../net/address.ts";

/** An IP family, spelled as Kubernetes spells it in `spec.ipFamilies`. */
export type Family = IPFamily;

/** A Kubernetes label selector (matchLabels and matchExpressions). */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: {
    key: string;
    operator: "In" | "NotIn" | "Exists" | "DoesNotExist";
    values?: string[];
  }[];
}

/** One address pool, as the allocator needs it (from an IPAddressPool's spec). */
export interface PoolSpec {
  name: string;
  /** CIDRs ("192.0.2.0/24", "2001:db8::/64") and ranges ("192.0.2.10-192.0.2.20"). */
  addresses: string[];
  /** When false, the pool serves only Services that request one of its IPs or the pool by name. */
  autoAssign: boolean;
  /** Skip IPv4 addresses ending in .0 or .255 (some old clients mishandle them). */
  avoidBuggyIPs: boolean;
  /** Skip the first and last address of each IPv4 CIDR (network and broadcast). */
  excludeNetworkAndBroadcast: boolean;
  /** Lower numbers are tried first; pools without a priority come after all that have one. */
  priority?: number;
  /**
   * With `namespaceSelectors`: if either is set, only Services whose namespace is listed here
   * or whose namespace labels match one of the selectors may use the pool (either suffices,
   * as in MetalLB).
   */
  namespaces?: string[];
  /** See `namespaces`. */
  namespaceSelectors?: LabelSelector[];
  /** If set, only Services whose labels match one of these may use the pool. */
  serviceSelectors?: LabelSelector[];
  /**
   * Whether Services of different namespaces may share one of the pool's IPs (same sharing
   * key). Absent or false: sharing stays within a namespace, so that a sharing key seen in
   * another tenant's Service cannot be used to join its IP.
   */
  allowSharingAcrossNamespaces?: boolean;
  /** RFC 3339 creation time: of two overlapping pools the older keeps the overlap. */
  creationTimestamp: string;
  /**
   * The pool's object can no longer be read as it is (version skew with a newer CRD, say):
   * Services keep the IPs they hold from it, and it gives no new ones.
   */
  frozen?: boolean;
}

/** A (protocol, port) pair a Service exposes; used to decide whether two Services can share an IP. */
export interface PortKey {
  protocol: "TCP" | "UDP" | "SCTP";
  port: number;
}

/** What the allocator needs to know of one Service. */
export interface ServiceRequest {
  /** "namespace/name". */
  key: string;
  namespace: string;
  labels: Record<string, string>;
  namespaceLabels: Record<string, string>;
  /**
   * Families the Service wants, in order. `required` is false only for PreferDualStack's
   * second family: the Service is fine with one address if that one cannot be had.
   */
  families: { family: Family; required: boolean }[];
  /** Explicitly requested IPs (at most one per family), already validated as addresses. */
  requestedIPs: string[];
  /** A pool requested by name, if any. */
  pool?: string;
  /** Sharing key (`ironlb.dev/allow-shared-ip`), if any. */
  sharingKey?: string;
  ports: PortKey[];
  trafficPolicy: "Cluster" | "Local";
  /** The Service's pod selector, compared for sharing between Local Services. */
  selector?: Record<string, string>;
}

/** Why an allocation failed: a stable code for metrics, plus a message for people. */
export type FailureReason =
  | "NoMatchingPool"
  | "PoolExhausted"
  | "IPInUse"
  | "IPNotInPool"
  | "SharingRefused"
  | "FamilyUnavailable"
  | "NoUsableAddresses"
  | "PoolNotFound"
  | "PoolFrozen"
  | "InvalidRequest";

export type AllocationResult =
  | { ok: true; ips: string[]; pool: string }
  | { ok: false; reason: FailureReason; message: string };

/** Per-pool figures and problems, for the pool's status. */
export interface PoolReport {
  name: string;
  assignedIPv4: number;
  assignedIPv6: number;
  /** Free addresses; saturates at Number.MAX_SAFE_INTEGER for huge IPv6 pools. */
  availableIPv4: number;
  availableIPv6: number;
  /** Entries of `addresses` that could not be parsed (the rest of the pool still works). */
  invalidAddresses: string[];
  /** Names of older pools whose addresses this pool overlaps (this pool does not use the overlap). */
  overlapsWith: string[];
  /** True when the pool has no usable address at all. */
  empty: boolean;
  /** Legal but suspicious contents (loopback, multicast addresses), for people to check. */
  warnings: string[];
}
