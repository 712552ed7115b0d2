// `ironlb cleanup`: what an uninstall must undo, since Helm deletes only the objects it
// made. ironlb makes Leases, IPAnnouncements and the heartbeat Secret at run time: records of
// components that are gone, removed always. It also writes into Services it does not own
// (status.loadBalancer.ingress, its condition, the pool annotation): by default those stay,
// as MetalLB's do, so that a reinstall reads them back and every Service keeps its address;
// with keepAddresses false they go too (full cleanup). The chart runs this as a
// post-delete hook, after the controller and speakers are gone.
import type { V1Lease, V1Service } from "@kubernetes/client-node";
import { ANNOTATIONS, type ClassFilter, isOurs } from "../api/service.ts";
import {
  ALLOCATED_CONDITION,
  ANNOUNCEABLE_CONDITION,
  CONTROLLER_LEASE,
  keyOf,
  leasesPath,
  PATHS,
  SPEAKER_LEASE_LABEL,
  secretsPath,
  servicePath,
} from "../api/vocabulary.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus, timestamp } from "../k8s/errors.ts";
import { listPages } from "../k8s/list.ts";
import type { Logger } from "../observability/log.ts";

/** The controller's leader Lease (src/controller/main.ts). */

/**
 * The merge patch (for the status subresource, which also takes metadata) that removes
 * what ironlb wrote into a Service, or undefined when there is nothing to remove. A
 * Service whose class another implementation handles is left alone, even with marks.
 * User annotations (the IPs, pool and sharing key asked for) stay: they are the user's.
 *
 * keepAddresses (the default of `ironlb cleanup` and the chart) keeps the status IPs, which
 * a reinstalled controller restores assignments from, and the IPAllocated condition and pool
 * annotation that describe them. Only the announcing-node annotation goes (older releases'
 * speakers wrote it): it names a node that no longer announces, and nothing reads it back;
 * so does the Announceable condition (whether a node may announce: none does any more).
 */
export function cleanupPatch(
  svc: V1Service,
  filter: ClassFilter,
  keepAddresses: boolean,
): object | undefined {
  const ann = svc.metadata?.annotations ?? {};
  const conds = svc.status?.conditions ?? [];
  const drop = (type: string | undefined) =>
    type === ANNOUNCEABLE_CONDITION || (!keepAddresses && type === ALLOCATED_CONDITION);
  const ownCond = conds.some((c) => drop(c.type));
  const fromPool = !keepAddresses && ann[ANNOTATIONS.allocatedFromPool] !== undefined;
  const announced = ann[ANNOTATIONS.announcingNode] !== undefined;
  if (!ownCond && !fromPool && !announced) return undefined;
  if (svc.spec?.type === "LoadBalancer" && !isOurs(svc, filter)) return undefined;
  const annotations: Record<string, null> = {};
  if (fromPool) annotations[ANNOTATIONS.allocatedFromPool] = null;
  if (announced) annotations[ANNOTATIONS.announcingNode] = null;
  const hasIngress = !keepAddresses && (svc.status?.loadBalancer?.ingress ?? []).length > 0;
  return {
    metadata: {
      // Guarded: a concurrent writer makes this a 409, and the caller re-reads.
      resourceVersion: svc.metadata?.resourceVersion,
      ...(fromPool || announced ? { annotations } : {}),
    },
    status: {
      // null removes in a merge patch; the IPs came from ironlb if any mark is there.
      ...(hasIngress ? { loadBalancer: { ingress: null } } : {}),
      ...(ownCond ? { conditions: conds.filter((c) => !drop(c.type)) } : {}),
    },
  };
}

/** True while a Lease is held and not expired at `now` (ms since the epoch). */
export function leaseLive(lease: V1Lease, now: number): boolean {
  const holder = lease.spec?.holderIdentity;
  const renewed = Date.parse(timestamp(lease.spec?.renewTime ?? lease.spec?.acquireTime));
  const duration = lease.spec?.leaseDurationSeconds;
  if (!holder || Number.isNaN(renewed) || duration === undefined) return false;
  return renewed + duration * 1000 > now;
}

export interface CleanupOptions extends ClassFilter {
  /** The release namespace: Leases and the heartbeat Secret live there. */
  namespace: string;
  /** The heartbeat Secret the controller made (deleted only if the controller made it). */
  heartbeatSecret?: string;
  /** How long to wait for the components to stop (their Leases to end), ms. */
  waitMs: number;
  /**
   * true: Services keep their IPs, the IPAllocated condition and the pool annotation, so a
   * reinstall gives every Service its address back. false: those are removed too.
   */
  keepAddresses: boolean;
}

export interface CleanupResult {
  /** Services patched (with keepAddresses, only those that carried announcing-node). */
  services: string[];
  leases: string[];
  /** IPAnnouncements deleted (the speakers' records of who announces what). */
  announcements: string[];
  /** BGPSessionStates deleted (the speakers' records of their BGP sessions). */
  sessionStates: string[];
  secret?: string;
}

interface List<T> {
  items: T[];
  metadata?: { continue?: string };
}

/** Waits until no controller or speaker Lease in the namespace is live (or the deadline). */
async function waitForComponents(api: KubeClient, o: CleanupOptions, log: Logger) {
  const path = leasesPath(o.namespace);
  const deadline = Date.now() + o.waitMs;
  for (;;) {
    const leases = (await api.get<List<V1Lease>>(path)).items.filter(
      (l) =>
        l.metadata?.name === CONTROLLER_LEASE ||
        l.metadata?.labels?.[SPEAKER_LEASE_LABEL] !== undefined,
    );
    const live = leases.filter((l) => leaseLive(l, Date.now())).map((l) => l.metadata?.name);
    if (live.length === 0) return;
    if (Date.now() >= deadline) {
      // Cleaning anyway: a component still running would only rewrite what it owns.
      log.warn({ leases: live }, "components still hold Leases; cleaning up anyway");
      return;
    }
    log.info({ leases: live }, "waiting for the components to stop");
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * Removes ironlb's run-time objects (IPAnnouncements, Leases, the heartbeat Secret it made)
 * and, unless o.keepAddresses, its writes into every Service it handled.
 */
export async function cleanup(
  api: KubeClient,
  o: CleanupOptions,
  log: Logger,
): Promise<CleanupResult> {
  await waitForComponents(api, o, log);
  const result: CleanupResult = {
    services: [],
    leases: [],
    announcements: [],
    sessionStates: [],
  };
  // Paged as large as the client's body cap allows (Services may be large).
  for await (const items of listPages<V1Service>(api, PATHS.services)) {
    for (let svc of items) {
      const key = keyOf(svc);
      const path = servicePath(svc.metadata?.namespace, svc.metadata?.name);
      for (let attempt = 0; ; attempt++) {
        const patch = cleanupPatch(svc, o, o.keepAddresses);
        if (!patch) break;
        try {
          await api.mergePatch(`${path}/status`, patch);
          result.services.push(key);
          log.info(
            { service: key },
            o.keepAddresses
              ? "removed the stale announcing-node annotation; IPs kept"
              : "removed ironlb's status and annotations",
          );
          break;
        } catch (err) {
          const code = httpStatus(err);
          if (code === 404) break;
          if (code !== 409 || attempt >= 5) {
            throw new Error(`cannot clean Service ${key}: ${describeError(err)}`);
          }
          svc = await api.get<V1Service>(path);
        }
      }
    }
  }

  // The speakers' records: cluster-scoped objects of ironlb's own CRDs, which outlive the
  // release (Helm keeps CRDs), so they would describe announcements and BGP sessions nobody
  // makes any more.
  for (const [path, into] of [
    [PATHS.ipAnnouncements, result.announcements],
    [PATHS.bgpSessionStates, result.sessionStates],
  ] as const) {
    try {
      const list = await api.get<List<{ metadata?: { name?: string } }>>(path);
      for (const a of list.items) {
        await deleteIfThere(api, `${path}/${a.metadata?.name}`);
        into.push(a.metadata?.name ?? "");
      }
    } catch (err) {
      // No such resource: CRDs from before the kind existed.
      if (httpStatus(err) !== 404) throw err;
    }
  }

  const leasePath = leasesPath(o.namespace);
  const leases = (await api.get<List<V1Lease>>(leasePath)).items.filter(
    (l) =>
      l.metadata?.name === CONTROLLER_LEASE ||
      l.metadata?.labels?.[SPEAKER_LEASE_LABEL] !== undefined,
  );
  for (const l of leases) {
    await deleteIfThere(api, `${leasePath}/${l.metadata?.name}`);
    result.leases.push(`${o.namespace}/${l.metadata?.name}`);
  }
  if (o.heartbeatSecret) {
    const path = `${secretsPath(o.namespace)}/${o.heartbeatSecret}`;
    try {
      const s = await api.get<{ metadata?: { labels?: Record<string, string> } }>(path);
      // Only the one the controller made: a user's own Secret (existingSecret) stays.
      if (s.metadata?.labels?.["app.kubernetes.io/managed-by"] === "ironlb-controller") {
        await deleteIfThere(api, path);
        result.secret = `${o.namespace}/${o.heartbeatSecret}`;
      }
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
    }
  }
  log.info(
    {
      keepAddresses: o.keepAddresses,
      services: result.services.length,
      leases: result.leases.length,
      announcements: result.announcements.length,
      sessionStates: result.sessionStates.length,
      secret: result.secret,
    },
    "cleanup done",
  );
  return result;
}

async function deleteIfThere(api: KubeClient, path: string): Promise<void> {
  try {
    await api.request("DELETE", path);
  } catch (err) {
    if (httpStatus(err) !== 404) throw err;
  }
}
