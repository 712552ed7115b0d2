// At SIGTERM: is this speaker restarting (rolling update, a pod deleted by hand: its
// DaemonSet brings it back within seconds) or leaving (uninstall, node drained, cordoned,
// shutting down or deleted)? A restart may keep its BGP routes at the routers through
// graceful restart (RFC 4724: the TCP connection closes without a NOTIFICATION, the router
// keeps the routes as stale for the restart time); a departure must end its sessions with a
// Cease, or the router keeps forwarding to a node that is not coming back for the whole
// restart time (metallb#2677: drain + reboot blackholes traffic for 120 s).
// Pure: the Kubernetes reads are in shutdown-evidence.ts.
import { DRAIN_ANNOTATION, drainMode } from "./eligibility.ts";

/** What the speaker's DaemonSet and Node looked like when SIGTERM arrived. */
export interface ShutdownEvidence {
  /** --daemonset: the speaker's DaemonSet (in its namespace); undefined: not given. */
  daemonSetName?: string;
  /**
   * The API server could not be asked (timeout, refused, 403): why. Nothing else is known
   * then.
   */
  error?: string;
  /** The DaemonSet as read; null: it does not exist (404). */
  daemonSet?: DaemonSetFacts | null;
  /** This node as read; null: it does not exist (404). */
  node?: NodeFacts | null;
}

/** The DaemonSet fields the decision reads. */
export interface DaemonSetFacts {
  deletionTimestamp?: unknown;
  /** spec.template.spec.nodeSelector */
  nodeSelector?: Record<string, string>;
}

/** The Node fields the decision reads. */
export interface NodeFacts {
  deletionTimestamp?: unknown;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** spec.unschedulable: cordoned (kubectl cordon / drain). */
  unschedulable?: boolean;
  taints?: readonly { key: string; effect?: string }[];
  conditions?: readonly { type: string; status: string; reason?: string; message?: string }[];
}

export interface ShutdownIntent {
  /** true: keep the routes through graceful restart; false: Cease. */
  restart: boolean;
  /** Why, for the log line. */
  reason: string;
}

/**
 * Taints of nodes on their way out: the cluster autoscaler's and Karpenter's removal
 * marks, and the out-of-service taint an operator sets on a node that is down.
 */
export const LEAVING_TAINTS: ReadonlySet<string> = new Set([
  "ToBeDeletedByClusterAutoscaler",
  "karpenter.sh/disrupted",
  "node.kubernetes.io/out-of-service",
]);

/** Restart or departure, from what the API server said at SIGTERM. */
export function shutdownIntent(e: ShutdownEvidence): ShutdownIntent {
  const leave = (reason: string): ShutdownIntent => ({ restart: false, reason });
  if (e.daemonSetName === undefined)
    return leave("no --daemonset given: a restart cannot be told from a departure");
  if (e.error !== undefined)
    // The safe side: a needless Cease costs one withdrawal and re-advertisement of this
    // node's routes (the other nodes carry the traffic meanwhile); a wrong graceful restart
    // keeps a leaving node's routes at the routers for the whole restart time.
    return leave(`the API server could not be asked (${e.error}): treated as a departure`);
  const ds = e.daemonSet;
  if (ds === null || ds === undefined)
    return leave(`DaemonSet ${e.daemonSetName} is gone (uninstall)`);
  if (ds.deletionTimestamp) return leave(`DaemonSet ${e.daemonSetName} is being deleted`);
  const n = e.node;
  if (n === null || n === undefined) return leave("this node is gone from the API");
  if (n.deletionTimestamp) return leave("this node is being deleted");
  const drain = drainMode(n.annotations?.[DRAIN_ANNOTATION]);
  if (drain !== undefined) return leave(`this node is drained (${DRAIN_ANNOTATION})`);
  if (n.unschedulable) return leave("this node is cordoned (kubectl cordon or drain)");
  const taint = n.taints?.find((t) => LEAVING_TAINTS.has(t.key));
  if (taint) return leave(`this node has the taint ${taint.key}: it is being removed`);
  // Graceful node shutdown: the kubelet marks the node NotReady ("node is shutting down")
  // before it stops the pods.
  const ready = n.conditions?.find((c) => c.type === "Ready");
  if (ready && ready.status !== "True" && /shutting down/i.test(`${ready.reason} ${ready.message}`))
    return leave("the kubelet reports this node shutting down");
  for (const [k, v] of Object.entries(ds.nodeSelector ?? {}))
    if (n.labels?.[k] !== v)
      return leave(`DaemonSet ${e.daemonSetName} no longer selects this node (${k}=${v})`);
  return {
    restart: true,
    reason: `DaemonSet ${e.daemonSetName} stays and this node is not leaving: a restart`,
  };
}
