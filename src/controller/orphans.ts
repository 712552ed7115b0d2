// What the controller does with a Service whose published IP lies in no pool it knows.
// Seen at start-up, this is usually not a wish to lose the address: the pools were not
// created yet (a switch from MetalLB done in the wrong order, a cluster restored from a
// backup) or were deleted and are coming back (a CRD reinstalled). Releasing would hand
// the Service a different IP once the pools exist. So such an IP is held: kept in the
// status, not announced (speakers announce only IPs inside a pool), until a pool holds it.
// A pool deleted while the controller watches is a decision it saw: its IPs are released
// as before. Pure.
import type { FailureReason } from "../allocator/types.ts";

export type OrphanVerdict =
  /** A pool holds the IP now: the Service keeps it as an ordinary assignment. */
  | "adopt"
  /** Keep the IP in the status, unannounced, and look again when pools change. */
  | "hold"
  /** Let the ordinary reconcile decide (a new IP, or none). */
  | "release";

export interface OrphanFacts {
  /** The allocator's answer to restoring the status IPs under the Service's request. */
  restore: { ok: true } | { ok: false; reason: FailureReason };
  /** The pool the Service's status was written from (ironlb's or MetalLB's annotation). */
  allocatedFrom: string | undefined;
  /** The pool the Service asks for by name (`ironlb.dev/address-pool`), if any. */
  requestedPool: string | undefined;
  /** Whether an IPAddressPool of this name exists (readable or not). */
  poolExists: (name: string) => boolean;
}

export function judgeOrphan(f: OrphanFacts): OrphanVerdict {
  if (f.restore.ok) return "adopt";
  // In a pool, but not usable by this Service (taken, refused, frozen…): the ordinary rules.
  if (f.restore.reason !== "IPNotInPool") return "release";
  // The pool it came from exists and no longer holds it: its range was edited on purpose.
  if (f.allocatedFrom !== undefined && f.poolExists(f.allocatedFrom)) return "release";
  // The user asks for an existing pool by name: they chose where the Service's IP comes from.
  if (f.requestedPool !== undefined && f.poolExists(f.requestedPool)) return "release";
  return "hold";
}
