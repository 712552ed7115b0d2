// `ironlb doctor`'s edge: reads what the checks (doctor-checks.ts) need from the API server
// with the CLI's client (kubeconfig or in-cluster). What status reads must be readable;
// Events, the controller's Lease and kube-proxy's ConfigMap are read if allowed, and a
// refusal becomes a warning finding instead of an error.
import type {
  CoreV1Event,
  V1ConfigMap,
  V1CustomResourceDefinition,
  V1Lease,
} from "@kubernetes/client-node";
import { group } from "../api/group.ts";
import { CONTROLLER_LEASE } from "../api/vocabulary.ts";
import type { KubeClient } from "../k8s/client.ts";
import { describeError, httpStatus } from "../k8s/errors.ts";
import { listAll } from "../k8s/list.ts";
import type { DoctorInput } from "./doctor-checks.ts";
import type { Finding } from "./doctor-findings.ts";
import type { KubeProxyConfig } from "./doctor-kube-proxy.ts";
import { fetchBgpStatusInput, fetchStatusInput } from "./status.ts";

/** Event reasons the checks read. */
const EVENT_REASONS = ["IPConflict", "NodeAnnouncing"];

export async function fetchDoctorInput(
  api: KubeClient,
  namespace?: string,
): Promise<{ input: DoctorInput; unreadable: Finding[] }> {
  const unreadable: Finding[] = [];
  const optional = async <T>(what: string, read: () => Promise<T[]>): Promise<T[]> => {
    try {
      return await read();
    } catch (err) {
      unreadable.push({
        severity: "warning",
        check: "access",
        subject: "cluster",
        cause: `cannot read ${what} (${describeError(err)}): the checks based on them were skipped`,
        fix: `run doctor with permission to list ${what}`,
      });
      return [];
    }
  };
  const ns = namespace ? `/namespaces/${namespace}` : "";
  let crdsRead = true;
  const [status, [bgp], eventLists, controllerLeases, kubeProxy, crds] = await Promise.all([
    fetchStatusInput(api, namespace),
    optional("bgppeers, bgpadvertisements and bgpsessionstates", async () => [
      await fetchBgpStatusInput(api),
    ]),
    optional("events", async () =>
      (
        await Promise.all(
          EVENT_REASONS.map((r) =>
            listAll<CoreV1Event>(api, `/api/v1${ns}/events`, { fieldSelector: `reason=${r}` }),
          ),
        )
      ).flat(),
    ),
    optional("leases", () =>
      listAll<V1Lease>(api, "/apis/coordination.k8s.io/v1/leases", {
        fieldSelector: `metadata.name=${CONTROLLER_LEASE}`,
      }),
    ),
    readKubeProxy(api),
    optional("customresourcedefinitions", async () => {
      try {
        return (
          await listAll<V1CustomResourceDefinition>(
            api,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
          )
        ).filter((c) => c.spec?.group === group);
      } catch (err) {
        crdsRead = false;
        throw err;
      }
    }),
  ]);
  return {
    input: {
      ...status,
      bgpAds: bgp?.ads ?? [],
      bgpPeers: bgp?.peers ?? [],
      bgpSessions: bgp?.sessions ?? [],
      events: eventLists,
      controllerLeases,
      kubeProxy,
      ...(crdsRead ? { crds } : {}),
    },
    unreadable,
  };
}

async function readKubeProxy(api: KubeClient): Promise<KubeProxyConfig> {
  try {
    const cm = await api.request<V1ConfigMap>(
      "GET",
      "/api/v1/namespaces/kube-system/configmaps/kube-proxy",
    );
    const text = cm.data?.["config.conf"];
    return text === undefined
      ? { found: false, reason: "error", detail: "it has no config.conf" }
      : { found: true, text };
  } catch (err) {
    const code = httpStatus(err);
    if (code === 404) return { found: false, reason: "missing" };
    return {
      found: false,
      reason: code === 403 ? "forbidden" : "error",
      detail: describeError(err),
    };
  }
}
