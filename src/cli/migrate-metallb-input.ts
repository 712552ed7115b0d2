// `ironlb migrate-from-metallb`'s edge: MetalLB's objects from a file, stdin ("-") or the
// cluster (its namespace, and every Service to see which IPs are shared across namespaces).
import { readFileSync } from "node:fs";
import type { KubeClient } from "../k8s/client.ts";
import { httpStatus } from "../k8s/errors.ts";
import { listAll } from "../k8s/list.ts";
import { parseDocuments } from "./migrate-metallb.ts";

/** MetalLB's kinds, where they are served (BGPPeer moved to v1beta2, v1beta1 still served). */
const KINDS: Array<{ kind: string; plural: string; versions: string[] }> = [
  { kind: "IPAddressPool", plural: "ipaddresspools", versions: ["v1beta1"] },
  { kind: "L2Advertisement", plural: "l2advertisements", versions: ["v1beta1"] },
  { kind: "BGPPeer", plural: "bgppeers", versions: ["v1beta2", "v1beta1"] },
  { kind: "BGPAdvertisement", plural: "bgpadvertisements", versions: ["v1beta1"] },
  { kind: "BFDProfile", plural: "bfdprofiles", versions: ["v1beta1"] },
  { kind: "Community", plural: "communities", versions: ["v1beta1"] },
];

/**
 * The objects of a file, or of stdin for "-"; with `namespace`, only the MetalLB objects of
 * that namespace or of none (Services all stay: they only tell which IPs are shared).
 */
export function readObjectsFromFile(file: string, namespace?: string): unknown[] {
  const all = parseDocuments(readFileSync(file === "-" ? 0 : file, "utf8"));
  if (namespace === undefined) return all;
  return all.filter((o) => {
    const x = o as { kind?: unknown; metadata?: { namespace?: unknown } };
    const ns = x.metadata?.namespace;
    return x.kind === "Service" || ns === undefined || ns === namespace;
  });
}

/**
 * MetalLB's objects in `namespace` (a kind it does not serve is skipped), its legacy
 * ConfigMap `config` if there is one, and every Service.
 */
export async function readObjectsFromCluster(
  api: KubeClient,
  namespace: string,
): Promise<unknown[]> {
  const out: unknown[] = [];
  for (const k of KINDS) {
    for (const v of k.versions) {
      try {
        const items = await listAll<Record<string, unknown>>(
          api,
          `/apis/metallb.io/${v}/namespaces/${namespace}/${k.plural}`,
        );
        // A list's items may come without apiVersion and kind.
        out.push(...items.map((i) => ({ apiVersion: `metallb.io/${v}`, kind: k.kind, ...i })));
        break;
      } catch (err) {
        if (httpStatus(err) !== 404) throw err;
      }
    }
  }
  // MetalLB's configuration before v0.13, if it is still there.
  try {
    const cm = await api.get<Record<string, unknown>>(
      `/api/v1/namespaces/${namespace}/configmaps/config`,
    );
    out.push({ apiVersion: "v1", kind: "ConfigMap", ...cm });
  } catch (err) {
    if (httpStatus(err) !== 404) throw err;
  }
  const services = await listAll<Record<string, unknown>>(api, "/api/v1/services");
  out.push(...services.map((s) => ({ apiVersion: "v1", kind: "Service", ...s })));
  return out;
}
