// Vitest-free helpers for talking to a test control plane: usable from the lab command
// (plain Node) as well as from tests. cluster.ts re-exports these with defaults that read
// the kubeconfig the vitest global setup provides.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  loadAllYaml,
  type V1CustomResourceDefinition,
} from "@kubernetes/client-node";

import { waitFor } from "./wait.ts";

export { sleep, waitFor } from "./wait.ts";

export const repoRoot = join(import.meta.dirname, "../..");
export const group = "ironlb.dev";
export const version = "v1beta1";

/** A KubeConfig loaded from a file. */
export function kubeConfigFrom(path: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  return kc;
}

/** The API clients the tests and the lab use. */
export function clientsFor(kc: KubeConfig) {
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    ext: kc.makeApiClient(ApiextensionsV1Api),
    discovery: kc.makeApiClient(DiscoveryV1Api),
  };
}

/** The HTTP status of a client-node API error, if it has one. */
export function apiStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown }).code;
  return typeof code === "number" ? code : undefined;
}

/** Installs (or updates) the CRDs from config/crd and waits until they are served. */
export async function installCRDs(kc: KubeConfig): Promise<void> {
  const { ext, custom } = clientsFor(kc);
  const dir = join(repoRoot, "config/crd");
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".yaml"))) {
    for (const doc of loadAllYaml(
      readFileSync(join(dir, file), "utf8"),
    ) as V1CustomResourceDefinition[]) {
      const name = doc.metadata!.name!;
      try {
        const cur = await ext.readCustomResourceDefinition({ name });
        doc.metadata!.resourceVersion = cur.metadata!.resourceVersion;
        await ext.replaceCustomResourceDefinition({ name, body: doc });
      } catch (err) {
        if (apiStatus(err) !== 404) throw err;
        await ext.createCustomResourceDefinition({ body: doc });
      }
      await waitFor(`CRD ${name} Established`, async () => {
        const crd = await ext.readCustomResourceDefinition({ name });
        return crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
      });
    }
  }
  // Discovery and the CRD's storage take a moment after Established: wait until each lists.
  for (const plural of [
    "ipaddresspools",
    "l2advertisements",
    "bgppeers",
    "bgpadvertisements",
    "bgpsessionstates",
    "bfdprofiles",
  ]) {
    await waitFor(`${plural} to be served`, async () => {
      await custom.listClusterCustomObject({ group, version, plural });
      return true;
    });
  }
}

/** Creates a namespace unless it exists. */
export async function ensureNamespace(kc: KubeConfig, name: string): Promise<void> {
  try {
    await clientsFor(kc).core.createNamespace({ body: { metadata: { name } } });
  } catch (err) {
    if (apiStatus(err) !== 409) throw err;
  }
}

/** Creates an IPAddressPool. */
export async function createPoolWith(
  kc: KubeConfig,
  name: string,
  spec: Record<string, unknown>,
  labels: Record<string, string> = {},
) {
  return clientsFor(kc).custom.createClusterCustomObject({
    group,
    version,
    plural: "ipaddresspools",
    body: {
      apiVersion: `${group}/${version}`,
      kind: "IPAddressPool",
      metadata: { name, labels },
      spec,
    },
  });
}
