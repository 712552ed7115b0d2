// What shutdown-intent.ts decides from, read from the API server at SIGTERM: the speaker's
// DaemonSet and its Node, both fresh (the informers' slim copies lack cordon, taints and
// deletion marks), within a short timeout so that a slow API server cannot eat the pod's
// termination grace period.
import type { V1DaemonSet, V1Node, V1NodeList } from "@kubernetes/client-node";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus } from "../k8s/errors.ts";
import type { DaemonSetFacts, NodeFacts, ShutdownEvidence } from "./shutdown-intent.ts";

/** How long SIGTERM waits for the API server before treating the stop as a departure. */
export const SHUTDOWN_READ_TIMEOUT_MS = 2000;

/** Reads the DaemonSet `daemonSet` of `namespace` and the Node `node`. */
export async function readShutdownEvidence(
  api: KubeClient,
  opts: { namespace: string; node: string; daemonSet?: string; timeoutMs?: number },
): Promise<ShutdownEvidence> {
  if (opts.daemonSet === undefined) return {};
  const timeoutMs = opts.timeoutMs ?? SHUTDOWN_READ_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  /** The object, or null on 404. */
  const get = <T>(path: string) =>
    api.request<T>("GET", path, { signal }).catch((err: unknown) => {
      if (httpStatus(err) === 404) return null;
      throw err;
    });
  try {
    const [ds, node] = await Promise.all([
      get<V1DaemonSet>(
        `/apis/apps/v1/namespaces/${encodeURIComponent(opts.namespace)}/daemonsets/${encodeURIComponent(opts.daemonSet)}`,
      ),
      // A list by name, not a get: the speaker's RBAC lists Nodes (its informer) already.
      api
        .request<V1NodeList>("GET", "/api/v1/nodes", {
          signal,
          query: { fieldSelector: `metadata.name=${opts.node}` },
        })
        .then((l) => l.items[0] ?? null),
    ]);
    return {
      daemonSetName: opts.daemonSet,
      daemonSet: ds === null ? null : daemonSetFacts(ds),
      node: node === null ? null : nodeFacts(node),
    };
  } catch (err) {
    const why = signal.aborted ? `no answer within ${timeoutMs} ms` : describeError(err);
    return { daemonSetName: opts.daemonSet, error: why };
  }
}

function daemonSetFacts(ds: V1DaemonSet): DaemonSetFacts {
  return {
    deletionTimestamp: ds.metadata?.deletionTimestamp,
    nodeSelector: ds.spec?.template?.spec?.nodeSelector,
  };
}

function nodeFacts(n: V1Node): NodeFacts {
  return {
    deletionTimestamp: n.metadata?.deletionTimestamp,
    labels: n.metadata?.labels,
    annotations: n.metadata?.annotations,
    unschedulable: n.spec?.unschedulable,
    taints: n.spec?.taints,
    conditions: n.status?.conditions,
  };
}
