// Which object changes can alter what a speaker announces (Layer 2 or BGP): only those are
// worth an evaluation. Skipping the others matters for latency, not only for CPU: every
// evaluation opens the speaker's batch window (OBJECT_BATCH_MS in speaker.ts), so a new
// Service's creation and its EndpointSlice, evaluated for nothing, used to hold back the
// controller's IP assignment that followed them by up to the whole window.
import { type ClassFilter, isOurs, type ServiceLike, statusIPs } from "../api/service.ts";

/** A Service bears on announcements only if it is ours and has an IP in its status. */
export function serviceCanMatter(svc: ServiceLike | undefined, filter: ClassFilter): boolean {
  return svc !== undefined && isOurs(svc, filter) && statusIPs(svc).length > 0;
}

/**
 * A Service's change (`was` absent: added; `now` absent: deleted) matters if the Service
 * mattered before or after it: an IP assigned, changed or taken away, or any change of a
 * Service with an IP (its policy, labels, pool annotation).
 */
export function serviceChangeMatters(
  now: ServiceLike | undefined,
  was: ServiceLike | undefined,
  filter: ClassFilter,
): boolean {
  return serviceCanMatter(now, filter) || serviceCanMatter(was, filter);
}

/**
 * An EndpointSlice's change matters only through its Service as cached now: when that
 * Service is unknown yet, or has no IP, the Service's own change that gives it one is
 * evaluated later and reads the slice then.
 */
export function sliceChangeMatters(service: ServiceLike | undefined, filter: ClassFilter): boolean {
  return serviceCanMatter(service, filter);
}
